/**
 * Cache-Control (RFC 9111 §5.2) as the response cache reads it.
 *
 * Requests: `no-store` keeps the request out of the cache both ways (not served from it, its answer
 * not stored); `no-cache`, `max-age=0` and, without a Cache-Control, `Pragma: no-cache` skip the
 * lookup but store the fresh answer (a refresh); `max-age=N` serves only entries at most N seconds
 * old (an older one is refreshed). Other directives (`only-if-cached`, `max-stale`, `min-fresh`)
 * are ignored: the gateway never serves stale entries anyway.
 *
 * Answers: `no-store` and `no-cache` are not stored (the gateway does not revalidate), nor
 * `private` on a shared cache (a rule with `shared: true`: per-caller entries are private already);
 * `s-maxage`, else `max-age`, can only shorten the rule's ttl (0 means not stored). The
 * field-name forms (`no-cache="set-cookie"`) count as the plain directive: stricter, never wrong.
 * `Expires` is not read: model servers send Cache-Control or nothing.
 */

export interface RequestDirectives {
  /** Neither served from the cache nor stored. */
  noStore: boolean;
  /** Not served from the cache; the answer may be stored. */
  refresh: boolean;
  /** Serve only entries at most this old, seconds. */
  maxAgeS: number | undefined;
}

/** One directive at a time: name lower-cased, the value unquoted (undefined when it has none). */
function forEachDirective(header: string, fn: (name: string, value: string | undefined) => void): void {
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    let value = eq < 0 ? undefined : part.slice(eq + 1).trim();
    if (value !== undefined && value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
      value = value.slice(1, -1);
    }
    fn(name, value);
  }
}

/** Delta-seconds (RFC 9111 §1.2.2): digits only; anything else is undefined (ignored). */
function seconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,10}$/.test(value)) return undefined;
  return Number(value);
}

function text(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** The request's directives; undefined for a request that says nothing (the common case). */
export function requestDirectives(
  cacheControl: string | string[] | undefined,
  pragma: string | string[] | undefined,
): RequestDirectives | undefined {
  const cc = text(cacheControl);
  if (cc === undefined) {
    const p = text(pragma);
    return p !== undefined && /(^|,)\s*no-cache\s*(,|$)/i.test(p)
      ? { noStore: false, refresh: true, maxAgeS: undefined }
      : undefined;
  }
  const out: RequestDirectives = { noStore: false, refresh: false, maxAgeS: undefined };
  forEachDirective(cc, (name, value) => {
    if (name === 'no-store') out.noStore = true;
    else if (name === 'no-cache') out.refresh = true;
    else if (name === 'max-age') {
      const s = seconds(value);
      if (s !== undefined) out.maxAgeS = out.maxAgeS === undefined ? s : Math.min(out.maxAgeS, s);
    }
  });
  if (out.maxAgeS === 0) out.refresh = true;
  return out;
}

/**
 * How long an answer with this Cache-Control may be kept, ms: at most `ttlMs`, 0 when it must not
 * be stored.
 */
export function responseTtlMs(
  cacheControl: string | string[] | undefined,
  ttlMs: number,
  shared: boolean,
): number {
  const cc = text(cacheControl);
  if (cc === undefined) return ttlMs;
  let store = true;
  let maxAge: number | undefined;
  let sMaxAge: number | undefined;
  forEachDirective(cc, (name, value) => {
    if (name === 'no-store' || name === 'no-cache' || (name === 'private' && shared)) store = false;
    else if (name === 'max-age') maxAge = seconds(value) ?? 0;
    else if (name === 's-maxage') sMaxAge = seconds(value) ?? 0;
  });
  if (!store) return 0;
  // A malformed max-age is treated as 0 (stale), as RFC 9111 §4.2.1 advises.
  const limit = sMaxAge ?? maxAge;
  return limit === undefined ? ttlMs : Math.min(ttlMs, limit * 1000);
}
