/**
 * Raw requests to the API server with the kubeconfig's credentials and TLS settings (through
 * client-node's own RequestContext), returning plain JSON. The typed client-node APIs turn objects
 * into model classes (dates become Date objects); ModelGate keeps the objects as the API server
 * sends them, the same shape the files source produces.
 */
import { HttpMethod, type KubeConfig, RequestContext } from '@kubernetes/client-node';
import { fetch } from 'undici';

export class KubeError extends Error {
  readonly statusCode: number;
  readonly reason: string | undefined;
  constructor(statusCode: number, message: string, reason?: string) {
    super(message);
    this.name = 'KubeError';
    this.statusCode = statusCode;
    this.reason = reason;
  }
}

export interface KubeRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  body?: unknown;
  /** For PATCH: merge patch by default. */
  contentType?: string;
  query?: Record<string, string>;
}

const METHODS = {
  GET: HttpMethod.GET,
  POST: HttpMethod.POST,
  PUT: HttpMethod.PUT,
  PATCH: HttpMethod.PATCH,
  DELETE: HttpMethod.DELETE,
} as const;

export async function kubeRequest<T = unknown>(
  kc: KubeConfig,
  path: string,
  req: KubeRequest = {},
): Promise<T> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
  const method = req.method ?? 'GET';
  const ctx = new RequestContext(url.toString(), METHODS[method]);
  await kc.applySecurityAuthentication(ctx);
  ctx.setHeaderParam('accept', 'application/json');
  let body: string | undefined;
  if (req.body !== undefined) {
    body = JSON.stringify(req.body);
    ctx.setHeaderParam(
      'content-type',
      req.contentType ?? (method === 'PATCH' ? 'application/merge-patch+json' : 'application/json'),
    );
  }
  const headers = ctx.getHeaders() as Record<string, string>;
  const res = await fetch(url, { method, headers, body, dispatcher: ctx.getDispatcher() });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    // Not JSON (an HTML error page from something in between): keep it as the message.
    if (res.status < 400) throw new KubeError(res.status, `${method} ${path}: the answer is not JSON`);
    json = { message: text.slice(0, 500) };
  }
  if (res.status >= 400) {
    throw new KubeError(
      res.status,
      String(json.message ?? `${method} ${path}: HTTP ${res.status}`),
      json.reason as string | undefined,
    );
  }
  return json as T;
}
