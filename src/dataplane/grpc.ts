/**
 * gRPC at the proxy. gRPC rides on HTTP/2 and reports errors in `grpc-status` trailers with HTTP
 * status 200, so the gateway's own errors are given in that form to gRPC clients (a JSON body would
 * reach them as an opaque protocol error), and the `grpc-timeout` deadline is enforced.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorDefinition } from './errors.ts';

export function isGrpc(req: IncomingMessage): boolean {
  const type = req.headers['content-type'];
  return typeof type === 'string' && type.startsWith('application/grpc');
}

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC status for a gateway error, by its HTTP status. */
export function grpcStatusFor(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
    case 413:
    case 431:
      return httpStatus === 400 ? GrpcStatus.INVALID_ARGUMENT : GrpcStatus.RESOURCE_EXHAUSTED;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 502:
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 504:
      return GrpcStatus.DEADLINE_EXCEEDED;
    default:
      return httpStatus >= 500 ? GrpcStatus.INTERNAL : GrpcStatus.UNKNOWN;
  }
}

interface Http2Stream {
  respond(headers: Record<string, string | string[] | number>, options: { endStream: boolean }): void;
}

/** The HTTP/2 stream behind a node:http2 compatibility response, if it is one. */
export function http2StreamOf(res: ServerResponse): Http2Stream | undefined {
  return (res as unknown as { stream?: Http2Stream }).stream;
}

/**
 * A trailers-only response: one HEADERS frame that carries the status and ends the stream, as
 * gRPC requires when there is no message (node's compatibility API would send an extra empty DATA
 * frame, which gRPC clients read as a call that ended without a status).
 */
export function respondTrailersOnly(
  res: ServerResponse,
  status: number,
  headers: Record<string, string | string[]>,
): void {
  const stream = http2StreamOf(res);
  if (stream) {
    stream.respond({ ...headers, ':status': status }, { endStream: true });
    return;
  }
  res.writeHead(status, headers);
  res.end();
}

/** Connection-specific fields, which HTTP/2 forbids (RFC 9113 §8.2.2): never metadata. */
const NOT_METADATA = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);

/**
 * A trailers-only gRPC response carrying the gateway error. `headers` are the ones an HTTP client
 * would get with the error (a rate limit's `ratelimit-policy`, `ratelimit` and `retry-after`, an
 * auth challenge's `www-authenticate`): they travel as custom metadata, which in a trailers-only
 * response is in the one HEADERS frame with the status. A `retry-after` is also given as
 * `grpc-retry-pushback-ms` (gRFC A6), which gRPC clients with a retry policy wait for before
 * retrying; a rate-limit refusal without one (the request can never be admitted) gets a pushback
 * of -1, which tells them not to retry.
 */
export function sendGrpcError(
  res: ServerResponse,
  e: ErrorDefinition,
  requestId: string,
  message = e.message,
  headers?: Record<string, string>,
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const out: Record<string, string> = {};
  if (headers !== undefined) {
    for (const k in headers) if (!NOT_METADATA.has(k)) out[k] = headers[k]!;
    const pushback = retryPushbackMs(headers['retry-after'], e.status === 429);
    if (pushback !== undefined) out['grpc-retry-pushback-ms'] = pushback;
  }
  out['content-type'] = 'application/grpc';
  out['grpc-status'] = String(grpcStatusFor(e.status));
  out['grpc-message'] = encodeGrpcMessage(`${e.code}: ${message}`);
  out['x-request-id'] = requestId;
  respondTrailersOnly(res, 200, out);
}

/**
 * A `grpc-message` value (PROTOCOL-HTTP2.md): UTF-8, with every byte outside printable ASCII and
 * `%` itself percent-encoded. Not encodeURIComponent: clients decode with decodeURI-like rules,
 * so its `%3A`, `%2F`… would reach them as they are.
 */
export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length && plain; i++) {
    const c = text.charCodeAt(i);
    plain = c >= 0x20 && c <= 0x7e && c !== 0x25;
  }
  if (plain) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * `grpc-retry-pushback-ms` for a Retry-After in delay-seconds; for a 429 without one (a request no
 * wait admits), -1: "do not retry" (gRFC A6). Undefined otherwise (no pushback: the client's own
 * backoff applies).
 */
export function retryPushbackMs(retryAfter: string | undefined, limited: boolean): string | undefined {
  if (retryAfter !== undefined) {
    const s = Number(retryAfter);
    if (/^\d{1,10}$/.test(retryAfter) && Number.isSafeInteger(s * 1000)) return String(s * 1000);
    return undefined;
  }
  return limited ? '-1' : undefined;
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** `grpc-timeout: 250m` → 250 (ms); undefined when absent or malformed. */
export function grpcTimeoutMs(header: string | string[] | undefined): number | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (!m) return undefined;
  return Math.max(1, Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!));
}
