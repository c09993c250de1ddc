/**
 * The router, built once per table: host → HostBucket (exact host, then wildcard suffixes from the
 * longest, then routes without hostnames), and within a bucket the path index. No per-request
 * regex compilation and no scan over routes that cannot apply.
 *
 * Model matching needs the request body. The router reports `needs-model` when the first
 * candidate whose other conditions hold wants a model and none was supplied; the proxy then reads
 * the body (within the route's limit) and asks again with the model (or `null` when it has none).
 * Before reading, it asks `candidates` which rules the body could select, and reads only for a
 * caller one of them admits (auth/admission.ts).
 */
import type { CompiledMatch } from '../../routing-table/types.ts';
import {
  compileConditions,
  type HeaderBag,
  headersMatch,
  modelMatches,
  queryMatches,
  type RuntimeMatch,
} from './conditions.ts';
import { HostBucket } from './host-bucket.ts';

export interface RouteRequest {
  /** Lower-case host without port. */
  host: string;
  /** Normalised path. */
  path: string;
  /** Raw query string without `?` ('' when none). */
  query: string;
  method: string;
  headers: HeaderBag;
  /** undefined: not read yet; null: read, and there is none. */
  model: string | null | undefined;
}

export type RouteResult<Rule> =
  | { kind: 'matched'; match: RuntimeMatch<Rule> }
  | { kind: 'needs-model'; match: RuntimeMatch<Rule> }
  | { kind: 'none' };

const NONE = { kind: 'none' } as const;

export class Router<Rule> {
  private readonly exactHosts = new Map<string, HostBucket<Rule>>();
  private readonly wildcardHosts = new Map<string, HostBucket<Rule>>();
  private readonly anyHost = new HostBucket<Rule>();

  /** `matches` in table precedence order; `ruleOf` resolves a match's rule id. */
  constructor(matches: readonly CompiledMatch[], ruleOf: (id: string) => Rule | undefined) {
    matches.forEach((m, order) => {
      const rule = ruleOf(m.rule);
      if (rule === undefined) return;
      const runtime = compileConditions(m, order, rule);
      this.bucketFor(m.hostname).add(m.path.type, m.path.value, runtime);
    });
  }

  private bucketFor(hostname: string): HostBucket<Rule> {
    if (hostname === '') return this.anyHost;
    const wildcard = hostname.startsWith('*.');
    const map = wildcard ? this.wildcardHosts : this.exactHosts;
    const key = wildcard ? hostname.slice(1) : hostname;
    let bucket = map.get(key);
    if (!bucket) {
      bucket = new HostBucket<Rule>();
      map.set(key, bucket);
    }
    return bucket;
  }

  route(req: RouteRequest): RouteResult<Rule> {
    let query: URLSearchParams | undefined;
    const visit = (m: RuntimeMatch<Rule>): RouteResult<Rule> | undefined => {
      if (m.method !== undefined && m.method !== req.method) return undefined;
      if (m.headers.length > 0 && !headersMatch(m.headers, req.headers)) return undefined;
      if (m.query.length > 0) {
        query ??= new URLSearchParams(req.query);
        if (!queryMatches(m.query, query)) return undefined;
      }
      if (m.model !== undefined) {
        if (req.model === undefined) return { kind: 'needs-model', match: m };
        if (req.model === null || !modelMatches(m.model, req.model)) return undefined;
      }
      return { kind: 'matched', match: m };
    };
    const exact = this.exactHosts.get(req.host);
    if (exact) {
      const r = exact.find(req.path, visit);
      if (r) return r;
    }
    if (this.wildcardHosts.size > 0) {
      // `*.example.com` is stored as `.example.com`; try the host's suffixes, longest first.
      let dot = req.host.indexOf('.');
      while (dot >= 0) {
        const bucket = this.wildcardHosts.get(req.host.slice(dot));
        if (bucket) {
          const r = bucket.find(req.path, visit);
          if (r) return r;
        }
        dot = req.host.indexOf('.', dot + 1);
      }
    }
    return this.anyHost.find(req.path, visit) ?? NONE;
  }

  /**
   * The rules `route` could choose for this request, whatever model it names (in precedence
   * order, each once): the rules of matches whose other conditions hold, up to and including the
   * first match without a model condition. Asked only when `route` said `needs-model` and the
   * model must come from the body: the proxy reads a body only for callers one of these admits.
   */
  candidates(req: RouteRequest): Rule[] {
    const out: Rule[] = [];
    let query: URLSearchParams | undefined;
    const visit = (m: RuntimeMatch<Rule>): true | undefined => {
      if (m.method !== undefined && m.method !== req.method) return undefined;
      if (m.headers.length > 0 && !headersMatch(m.headers, req.headers)) return undefined;
      if (m.query.length > 0) {
        query ??= new URLSearchParams(req.query);
        if (!queryMatches(m.query, query)) return undefined;
      }
      if (!out.includes(m.rule)) out.push(m.rule);
      // A match without a model condition takes every model the earlier ones did not.
      return m.model === undefined ? true : undefined;
    };
    const exact = this.exactHosts.get(req.host);
    if (exact?.find(req.path, visit)) return out;
    if (this.wildcardHosts.size > 0) {
      let dot = req.host.indexOf('.');
      while (dot >= 0) {
        const bucket = this.wildcardHosts.get(req.host.slice(dot));
        if (bucket?.find(req.path, visit)) return out;
        dot = req.host.indexOf('.', dot + 1);
      }
    }
    this.anyHost.find(req.path, visit);
    return out;
  }
}

/** `Host` header → lower-case host without port or trailing dot. */
export function hostOf(header: string | undefined): string {
  if (!header) return '';
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) {
    const close = header.indexOf(']');
    return (close > 0 ? header.slice(0, close + 1) : header).toLowerCase();
  }
  const colon = header.lastIndexOf(':');
  if (colon >= 0) end = colon;
  if (end > 0 && header.charCodeAt(end - 1) === 46 /* . */) end--;
  const host = end === header.length ? header : header.slice(0, end);
  return host.toLowerCase();
}
