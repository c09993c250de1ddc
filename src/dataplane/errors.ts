/**
 * The proxy's error catalogue: every error a client can get from the gateway itself has a stable
 * code, an HTTP status and a JSON body `{"error": {"code", "message", "requestId"}}`. Clients and
 * alerts match on the code; the message is for people and may change.
 */
import type { ServerResponse } from 'node:http';

export interface ErrorDefinition {
  readonly code: string;
  readonly status: number;
  readonly message: string;
}

function def(code: string, status: number, message: string): ErrorDefinition {
  return { code, status, message };
}

export const Errors = {
  BadRequest: def('MG_BAD_REQUEST', 400, 'malformed request'),
  BadPath: def('MG_BAD_PATH', 400, 'the request path is not valid'),
  ModelMismatch: def(
    'MG_MODEL_MISMATCH',
    400,
    'the x-model header and the body model field name different models',
  ),
  ModelAmbiguous: def('MG_MODEL_AMBIGUOUS', 400, 'the request body names the model more than once'),
  BadContentEncoding: def('MG_BAD_CONTENT_ENCODING', 400, 'the request body encoding is not supported'),
  RequestInvalid: def('MG_REQUEST_INVALID', 400, "the request body does not match the route's schema"),
  RequestNotJson: def('MG_REQUEST_NOT_JSON', 400, 'the request body is not JSON'),
  Unauthenticated: def('MG_UNAUTHENTICATED', 401, 'missing or invalid credentials'),
  Forbidden: def('MG_FORBIDDEN', 403, 'the credentials do not allow this request'),
  ClientCertificateRequired: def(
    'MG_CLIENT_CERTIFICATE_REQUIRED',
    403,
    'this host requires a valid client certificate',
  ),
  CorsRejected: def('MG_CORS_REJECTED', 403, 'this origin or method is not allowed by the route CORS policy'),
  NoRoute: def('MG_NO_ROUTE', 404, 'no route matches this request'),
  RateLimited: def('MG_RATE_LIMITED', 429, 'rate limit exceeded'),
  ConcurrencyLimited: def(
    'MG_CONCURRENCY_LIMITED',
    429,
    'too many requests in flight on this route; retry shortly',
  ),
  BodyTooLarge: def('MG_BODY_TOO_LARGE', 413, 'the request body exceeds the route limit'),
  HeadersTooLarge: def('MG_HEADERS_TOO_LARGE', 431, 'the request headers are too large'),
  UpstreamConnectFailed: def('MG_UPSTREAM_CONNECT_FAILED', 502, 'could not connect to the upstream'),
  UpstreamReset: def('MG_UPSTREAM_RESET', 502, 'the upstream closed the connection before answering'),
  UpstreamProtocolError: def('MG_UPSTREAM_PROTOCOL_ERROR', 502, 'the upstream sent an invalid response'),
  UpstreamTlsError: def('MG_UPSTREAM_TLS_ERROR', 502, 'the TLS handshake with the upstream failed'),
  PipelineStepFailed: def('MG_PIPELINE_STEP_FAILED', 502, 'a pipeline step failed'),
  PipelineBadResponse: def(
    'MG_PIPELINE_BAD_RESPONSE',
    502,
    'a pipeline step or fan-out branch answered with a body that is not JSON or is too large',
  ),
  FanOutFailed: def('MG_FANOUT_FAILED', 502, 'a fan-out branch failed'),
  NoHealthyUpstream: def('MG_NO_HEALTHY_UPSTREAM', 503, 'no healthy upstream endpoint is available'),
  NotReady: def('MG_NOT_READY', 503, 'the gateway has no routing table yet'),
  AuthUnavailable: def(
    'MG_AUTH_UNAVAILABLE',
    503,
    'the credentials could not be checked (key or introspection service unreachable)',
  ),
  RateLimitUnavailable: def(
    'MG_RATE_LIMIT_UNAVAILABLE',
    503,
    'the rate limit could not be checked (its store is unreachable) and the policy fails closed',
  ),
  UpstreamTimeout: def('MG_UPSTREAM_TIMEOUT', 504, 'the upstream did not answer in time'),
  StepTimeout: def('MG_STEP_TIMEOUT', 504, 'a pipeline step or fan-out branch did not answer in time'),
  Internal: def('MG_INTERNAL', 500, 'internal gateway error'),
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorName = keyof typeof Errors;

/** Extra members of an error's `error` object (a composition names the step that failed). */
export type ErrorFields = Readonly<Record<string, string | number>>;

/** The JSON body of a gateway error. */
export function errorBody(
  e: ErrorDefinition,
  requestId: string,
  message = e.message,
  fields?: ErrorFields,
): string {
  return JSON.stringify({ error: { code: e.code, message, requestId, ...fields } });
}

/** Sends a gateway error unless a response has already started (then the connection is cut). */
export function sendError(
  res: ServerResponse,
  e: ErrorDefinition,
  requestId: string,
  message?: string,
  extraHeaders?: Record<string, string>,
  fields?: ErrorFields,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(e, requestId, message, fields);
  res.writeHead(e.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
    ...extraHeaders,
  });
  res.end(body);
}
