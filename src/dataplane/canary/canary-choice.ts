/**
 * Which of a rollout's two backends serves a request, after the rule's weighted pick:
 *
 * 1. preview (a hostname or header value): always the canary, whatever the weight — the
 *    blue-green preview;
 * 2. override header: `always` → canary, `never` → stable (testers);
 * 3. stickiness: when the weighted pick is stable or canary, the key's bucket decides between the
 *    two (sticky-bucket.ts), so the pair's share is the rollout weight and keys never flip back;
 * 4. otherwise the weighted pick stands.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledCanary } from '../../routing-table/types.ts';
import type { RuntimeBackend } from '../runtime-table.ts';
import { BUCKETS, bucketOf } from './sticky-bucket.ts';

export interface CanaryRequest {
  /** The request's host, lower-case, without the port. */
  readonly host: string;
  readonly headers: IncomingHttpHeaders;
  readonly consumer: string | undefined;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function cookieValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const cookies = headers.cookie;
  if (!cookies) return undefined;
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export class CanaryChoice {
  readonly compiled: CompiledCanary;
  readonly stable: RuntimeBackend;
  readonly canary: RuntimeBackend;
  /** Canary share in buckets (weightPercent × 100). */
  private readonly threshold: number;

  constructor(compiled: CompiledCanary, stable: RuntimeBackend, canary: RuntimeBackend) {
    this.compiled = compiled;
    this.stable = stable;
    this.canary = canary;
    this.threshold = Math.round((compiled.weightPercent * BUCKETS) / 100);
  }

  /** True when the request is one of the rollout's two backends' (for stats). */
  governs(backend: RuntimeBackend): boolean {
    return backend === this.stable || backend === this.canary;
  }

  choose(req: CanaryRequest, picked: RuntimeBackend | undefined): RuntimeBackend | undefined {
    const c = this.compiled;
    const preview = c.preview;
    if (preview !== undefined) {
      if ('hostname' in preview) {
        if (req.host === preview.hostname) return this.canary;
      } else if (headerValue(req.headers, preview.header) === preview.value) return this.canary;
    }
    const override = c.override;
    if (override !== undefined) {
      const v = headerValue(req.headers, override.header);
      if (v !== undefined) {
        if (v === override.always) return this.canary;
        if (v === override.never) return this.stable;
      }
    }
    if (picked !== this.stable && picked !== this.canary) return picked;
    const sticky = c.stickiness;
    if (sticky === undefined) return picked;
    const key = sticky.header
      ? headerValue(req.headers, sticky.header)
      : sticky.cookie
        ? cookieValue(req.headers, sticky.cookie)
        : req.consumer;
    if (key === undefined || key === '') return picked;
    return bucketOf(c.rollout, key) < this.threshold ? this.canary : this.stable;
  }
}
