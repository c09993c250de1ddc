/**
 * Errors of the KServe v2 REST ⇄ gRPC translation. Each has a stable code (what clients and alerts
 * match on), an HTTP status and a default message (for people; may change). The body follows the
 * v2 REST error shape `{"error": "<message>"}` with the gateway's `code` beside it, e.g.
 *
 *   {"error":"input 'x': shape [2,2] needs 4 elements, data has 3","code":"MG_KSERVE_SHAPE_MISMATCH"}
 *
 * 4xx codes are the client's request; 502 codes are the backend's answer (it is not the client's
 * fault that a backend sent a tensor whose contents disagree with its shape). A gRPC error status
 * from the backend is passed on as MG_KSERVE_UPSTREAM_STATUS with the HTTP status Google's API
 * design guide gives that gRPC code (grpcStatusToHttp in grpc-frame.ts), the backend's
 * grpc-message as `error`, and the gRPC code name as `grpc_status`. That entry has no status of
 * its own: its `status` is 'mapped' and `statuses` lists every status the mapping can give.
 */
import type { ErrorDefinition } from '../errors.ts';

/**
 * A catalogue entry without a fixed HTTP status: each reply carries the status mapped from the
 * backend's gRPC status code, which the thrower must give (see KServeError's constructor).
 */
export interface MappedErrorDefinition {
  readonly code: string;
  readonly status: 'mapped';
  /** Every HTTP status the mapping gives a non-OK gRPC code (grpcStatusToHttp), ascending. */
  readonly statuses: readonly number[];
  readonly message: string;
}

export type KServeErrorDefinition = ErrorDefinition | MappedErrorDefinition;

function def(code: string, status: number, message: string): ErrorDefinition {
  return { code, status, message };
}

/**
 * What grpcStatusToHttp gives the non-OK gRPC codes (1 to 16, and 500 for any other); a unit test
 * (test/unit/dataplane/kserve/errors.test.ts) keeps the two in step.
 */
export const GRPC_MAPPED_HTTP_STATUSES: readonly number[] = Object.freeze([
  400, 401, 403, 404, 409, 429, 499, 500, 501, 503, 504,
]);

export const KServeErrors = {
  /** The body is not JSON, or a member has the wrong JSON type, or a required one is missing. */
  BadRequest: def('MG_KSERVE_BAD_REQUEST', 400, 'the inference request is malformed'),
  /** An input's data does not hold as many elements as its shape says. */
  ShapeMismatch: def('MG_KSERVE_SHAPE_MISMATCH', 400, "an input's data does not match its shape"),
  /** An element is not a value of the input's datatype (wrong JSON type, not an integer, out of range). */
  BadTensorData: def(
    'MG_KSERVE_BAD_TENSOR_DATA',
    400,
    "an input element is not a value of the input's datatype",
  ),
  /** An input datatype the protocol does not define (the names are case-sensitive). */
  UnsupportedDatatype: def('MG_KSERVE_UNSUPPORTED_DATATYPE', 400, 'the tensor datatype is not supported'),
  /** The binary tensor data extension (Inference-Header-Content-Length, binary_data*). */
  BinaryDataUnsupported: def(
    'MG_KSERVE_BINARY_DATA_UNSUPPORTED',
    400,
    'the binary tensor data extension is not supported by the gateway; send tensor data as JSON',
  ),
  /** A path under /v2 that is not one of the protocol's endpoints. */
  NotFound: def('MG_KSERVE_NOT_FOUND', 404, 'no KServe v2 endpoint at this path'),
  /** A v2 endpoint called with the wrong method. */
  MethodNotAllowed: def(
    'MG_KSERVE_METHOD_NOT_ALLOWED',
    405,
    'this KServe v2 endpoint does not allow this method',
  ),
  /** The backend answered with a non-OK gRPC status; the HTTP status is mapped from it. */
  UpstreamStatus: {
    code: 'MG_KSERVE_UPSTREAM_STATUS',
    status: 'mapped',
    statuses: GRPC_MAPPED_HTTP_STATUSES,
    message: 'the inference server returned an error',
  },
  /** The backend's answer is not a well-formed gRPC response of the expected message. */
  BadResponse: def('MG_KSERVE_BAD_RESPONSE', 502, 'the inference server sent an invalid response'),
  /** The backend answered with an output datatype the gateway cannot render as JSON. */
  UnsupportedOutputDatatype: def(
    'MG_KSERVE_UNSUPPORTED_OUTPUT_DATATYPE',
    502,
    'the inference server returned an output datatype the gateway cannot translate',
  ),
  /** A compressed gRPC message in an encoding the gateway does not decode (or none named). */
  CompressedResponse: def(
    'MG_KSERVE_COMPRESSED_RESPONSE',
    502,
    'the inference server sent a compressed message in an unsupported encoding',
  ),
  /** A response message larger than the configured limit. */
  ResponseTooLarge: def('MG_KSERVE_RESPONSE_TOO_LARGE', 502, 'the inference server response is too large'),
} as const satisfies Record<string, KServeErrorDefinition>;

export type KServeErrorName = keyof typeof KServeErrors;

/**
 * A translation failure: a catalogue entry, the message for this case and the HTTP status (the
 * entry's own, or for a mapped entry the one this reply gets, which must then be given).
 */
export class KServeError extends Error {
  readonly def: KServeErrorDefinition;
  readonly status: number;
  readonly extra: Record<string, string> | undefined;

  constructor(definition: ErrorDefinition, message?: string, status?: number, extra?: Record<string, string>);
  constructor(
    definition: MappedErrorDefinition,
    message: string,
    status: number,
    extra?: Record<string, string>,
  );
  constructor(
    definition: KServeErrorDefinition,
    message?: string,
    status?: number,
    extra?: Record<string, string>,
  ) {
    super(message ?? definition.message);
    this.name = 'KServeError';
    this.def = definition;
    // The overloads make a mapped entry come with its status; 500 only guards untyped callers.
    this.status = status ?? (typeof definition.status === 'number' ? definition.status : 500);
    this.extra = extra;
  }

  get code(): string {
    return this.def.code;
  }
}

/** A REST reply the exchange writes as is: status, headers and the (JSON or empty) body. */
export interface RestReply {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The gateway error code when the reply is an error (for logs and metrics). */
  code?: string;
}

export const JSON_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'application/json',
});

/** The v2 REST error body `{"error": ..., "code": ...}` (plus any extra string members). */
export function kserveErrorBody(code: string, message: string, extra?: Record<string, string>): string {
  return JSON.stringify(extra ? { error: message, code, ...extra } : { error: message, code });
}

/** The REST reply for a translation error. */
export function errorReply(e: KServeError, headers?: Record<string, string>): RestReply {
  return {
    status: e.status,
    headers: { ...JSON_HEADERS, ...headers },
    body: kserveErrorBody(e.def.code, e.message, e.extra),
    code: e.def.code,
  };
}
