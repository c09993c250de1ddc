/**
 * The KServe v2 REST endpoints (Open Inference Protocol, HTTP/REST section) as operations, each with
 * its gRPC method:
 *
 *   GET  /v2/health/live                                   ServerLive
 *   GET  /v2/health/ready                                  ServerReady
 *   GET  /v2                                               ServerMetadata
 *   GET  /v2/models/{name}[/versions/{version}]            ModelMetadata
 *   GET  /v2/models/{name}[/versions/{version}]/ready      ModelReady
 *   POST /v2/models/{name}[/versions/{version}]/infer      ModelInfer
 *
 * Any other path under /v2 (Triton's repository, statistics, trace, shared-memory and generate
 * extensions have no translation) is MG_KSERVE_NOT_FOUND (404); an endpoint called with another
 * method is MG_KSERVE_METHOD_NOT_ALLOWED (405) with an `allow` header. HEAD is not served (405).
 * One trailing slash is ignored (`/v2/` is the spec's own spelling of server metadata); the query
 * string is ignored. Name and version segments are percent-decoded; an undecodable or empty one is
 * a 404.
 */
import { KServeError, KServeErrors } from './errors.ts';

export const GRPC_SERVICE = 'inference.GRPCInferenceService';

export type KServeOp =
  | { kind: 'server_live' }
  | { kind: 'server_ready' }
  | { kind: 'server_metadata' }
  | { kind: 'model_metadata'; model: string; version: string }
  | { kind: 'model_ready'; model: string; version: string }
  | { kind: 'model_infer'; model: string; version: string };

export type KServeOpKind = KServeOp['kind'];

const METHOD_OF: Record<KServeOpKind, string> = {
  server_live: 'ServerLive',
  server_ready: 'ServerReady',
  server_metadata: 'ServerMetadata',
  model_metadata: 'ModelMetadata',
  model_ready: 'ModelReady',
  model_infer: 'ModelInfer',
};

/** The gRPC method name of an operation (`ModelInfer`). */
export function grpcMethodOf(op: KServeOp): string {
  return METHOD_OF[op.kind];
}

/** The HTTP/2 `:path` of an operation's gRPC call (`/inference.GRPCInferenceService/ModelInfer`). */
export function grpcPathOf(op: KServeOp): string {
  return `/${GRPC_SERVICE}/${METHOD_OF[op.kind]}`;
}

export type RouteResult =
  | { ok: true; op: KServeOp }
  | { ok: false; error: KServeError; headers?: Record<string, string> };

function notFound(path: string): RouteResult {
  return { ok: false, error: new KServeError(KServeErrors.NotFound, `no KServe v2 endpoint at ${path}`) };
}

function decodeSegment(s: string): string | undefined {
  if (s.length === 0) return undefined;
  if (!s.includes('%')) return s;
  try {
    const d = decodeURIComponent(s);
    return d.length === 0 ? undefined : d;
  } catch {
    return undefined;
  }
}

/** Whether a path is in the v2 REST namespace (`/v2` or below). */
export function isV2Path(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/') || path.startsWith('/v2?');
}

/**
 * The operation for a REST method and path (the request target as received; a query string is
 * ignored).
 */
export function parseRestRoute(method: string | undefined, rawPath: string): RouteResult {
  const q = rawPath.indexOf('?');
  let path = q === -1 ? rawPath : rawPath.slice(0, q);
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  if (path !== '/v2' && !path.startsWith('/v2/')) return notFound(path);
  const segs = path.split('/').slice(2); // ['', 'v2', ...]
  let op: KServeOp | undefined;
  if (segs.length === 0) {
    op = { kind: 'server_metadata' };
  } else if (segs[0] === 'health' && segs.length === 2) {
    if (segs[1] === 'live') op = { kind: 'server_live' };
    else if (segs[1] === 'ready') op = { kind: 'server_ready' };
  } else if (segs[0] === 'models' && segs.length >= 2) {
    const model = decodeSegment(segs[1]!);
    if (model === undefined) return notFound(path);
    let rest = segs.slice(2);
    let version = '';
    if (rest[0] === 'versions') {
      if (rest.length < 2) return notFound(path);
      const v = decodeSegment(rest[1]!);
      if (v === undefined) return notFound(path);
      version = v;
      rest = rest.slice(2);
    }
    if (rest.length === 0) op = { kind: 'model_metadata', model, version };
    else if (rest.length === 1 && rest[0] === 'ready') op = { kind: 'model_ready', model, version };
    else if (rest.length === 1 && rest[0] === 'infer') op = { kind: 'model_infer', model, version };
  }
  if (op === undefined) return notFound(path);
  const allowed = op.kind === 'model_infer' ? 'POST' : 'GET';
  if (method !== allowed) {
    return {
      ok: false,
      error: new KServeError(
        KServeErrors.MethodNotAllowed,
        `${method ?? '(none)'} is not allowed on ${path}; use ${allowed}`,
      ),
      headers: { allow: allowed },
    };
  }
  return { ok: true, op };
}
