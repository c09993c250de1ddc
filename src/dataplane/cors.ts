/**
 * CORS per route (the Fetch standard's CORS protocol). Preflights (OPTIONS with Origin and
 * Access-Control-Request-Method) are answered by the gateway and never reach the backend or the
 * authentication filter: browsers send them without credentials. Actual cross-origin requests from
 * an allowed origin get the Access-Control-Allow-* response headers, on the backend's answer and on
 * the gateway's own errors alike (a page must be able to read a 401). Built once per rule.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledCors } from '../routing-table/types.ts';
import type { OutgoingHeaders } from './upstream/headers.ts';

/** True for a CORS preflight request. */
export function isPreflight(method: string | undefined, headers: IncomingHttpHeaders): boolean {
  return (
    method === 'OPTIONS' &&
    typeof headers.origin === 'string' &&
    typeof headers['access-control-request-method'] === 'string'
  );
}

/** One or more DNS labels, none empty: what `*` in an allowed origin stands for. */
const HOST_LABELS = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

export type PreflightAnswer = { ok: true; headers: OutgoingHeaders } | { ok: false; message: string };

export class CorsPolicy {
  private readonly any: boolean;
  private readonly exact: ReadonlySet<string>;
  /** `https://*.example.com` as [scheme://, .example.com]. */
  private readonly wildcards: readonly [string, string][];
  private readonly methods: ReadonlySet<string>;
  private readonly allowHeaders: ReadonlySet<string>;
  private readonly preflightBase: OutgoingHeaders;
  private readonly actualBase: OutgoingHeaders;
  readonly credentials: boolean;

  constructor(c: CompiledCors) {
    this.any = c.allowOrigins.includes('*');
    this.exact = new Set(c.allowOrigins.filter((o) => !o.includes('*')));
    this.wildcards = c.allowOrigins
      .filter((o) => o.includes('://*.'))
      .map((o) => {
        const at = o.indexOf('*');
        return [o.slice(0, at), o.slice(at + 1)] as [string, string];
      });
    this.methods = new Set(c.allowMethods);
    this.allowHeaders = new Set(c.allowHeaders);
    this.credentials = c.allowCredentials;
    this.preflightBase = {
      'access-control-allow-methods': c.allowMethods.join(', '),
      'access-control-max-age': String(c.maxAgeS),
      vary: 'origin, access-control-request-method, access-control-request-headers',
    };
    if (c.allowHeaders.length > 0)
      this.preflightBase['access-control-allow-headers'] = c.allowHeaders.join(', ');
    if (c.allowCredentials) this.preflightBase['access-control-allow-credentials'] = 'true';
    this.actualBase = { vary: 'origin' };
    if (c.exposeHeaders.length > 0)
      this.actualBase['access-control-expose-headers'] = c.exposeHeaders.join(', ');
    if (c.allowCredentials) this.actualBase['access-control-allow-credentials'] = 'true';
  }

  allows(origin: string): boolean {
    if (this.any) return true;
    const o = origin.toLowerCase();
    if (this.exact.has(o)) return true;
    for (const [scheme, suffix] of this.wildcards) {
      // One or more labels before the suffix, none of them empty.
      if (o.startsWith(scheme) && o.endsWith(suffix) && o.length > scheme.length + suffix.length) {
        const label = o.slice(scheme.length, o.length - suffix.length);
        if (HOST_LABELS.test(label)) return true;
      }
    }
    return false;
  }

  /** `*` only when any origin is allowed without credentials; otherwise the origin itself. */
  private allowOrigin(origin: string): string {
    return this.any && !this.credentials ? '*' : origin;
  }

  preflight(headers: IncomingHttpHeaders): PreflightAnswer {
    const origin = headers.origin as string;
    if (!this.allows(origin)) return { ok: false, message: `origin ${origin} is not allowed` };
    const method = headers['access-control-request-method'] as string;
    if (!this.methods.has(method)) return { ok: false, message: `method ${method} is not allowed` };
    const asked = headers['access-control-request-headers'];
    if (typeof asked === 'string') {
      for (const h of asked.split(',')) {
        const name = h.trim().toLowerCase();
        if (name && !this.allowHeaders.has(name))
          return { ok: false, message: `header ${name} is not allowed` };
      }
    }
    return {
      ok: true,
      headers: { ...this.preflightBase, 'access-control-allow-origin': this.allowOrigin(origin) },
    };
  }

  /** Headers for the response to an actual request from `origin`; undefined when not allowed. */
  actual(origin: string): OutgoingHeaders | undefined {
    if (!this.allows(origin)) return undefined;
    return { ...this.actualBase, 'access-control-allow-origin': this.allowOrigin(origin) };
  }
}
