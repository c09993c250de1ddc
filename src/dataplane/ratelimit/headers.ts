/**
 * Response header values for rate limits, per draft-ietf-httpapi-ratelimit-headers-09
 * (March 2025). Both fields are Structured Field Lists (RFC 8941) of sf-string policy names with
 * parameters:
 *
 *   RateLimit-Policy: "<name>";q=<quota>[;qu="<unit>"][;w=<window s>], …
 *   RateLimit: "<name>";r=<remaining>;t=<seconds until reset>
 *
 * `pk` (partition key) is omitted: the key is built from the caller's identity and echoing it adds
 * nothing the caller does not know, while a hashed form would be noise.
 *
 * Choices the draft leaves open:
 * - Quota unit: requests are the draft's default unit, so `qu` is omitted for them. Model-token
 *   limits say `qu="tokens"`. "tokens" is not among -09's registered units (requests,
 *   content-bytes, concurrent-requests), but omitting `qu` would tell clients the quota counts
 *   requests, which is wrong by orders of magnitude; an unregistered unit is the honest option.
 * - Window `w` is whole seconds (no sub-second precision in the draft), rounded up and at least 1:
 *   a longer window advertises a lower rate, the safe direction.
 * - `q` is the caller's effective amount (after overrides); for a TokenBucket it is the refill
 *   amount per window, and `r` is capped at `q` so that burst headroom never shows as more than the
 *   advertised quota.
 * - RateLimit names one limit. When a request is refused it names the refusing limit with the
 *   longest wait, and its `t` equals Retry-After (the draft asks that they reference the same
 *   moment). Otherwise it names the most restrictive limit: the least remaining relative to its
 *   quota, ties to the longer reset, then to the first listed.
 * - Retry-After is delay-seconds rounded up. A request that can never be admitted (cost above the
 *   limit's capacity, or amount 0) gets no Retry-After: retrying would fail the same way.
 */
import type { Decision } from './types.ts';

/** The static part of a limit, as advertised in RateLimit-Policy. */
export interface PolicyDescription {
  /** The limit's name. */
  name: string;
  /** The caller's effective amount (after overrides). */
  quota: number;
  periodMs: number;
  cost: 'Requests' | 'ModelTokens';
}

/** A limit and what it decided for this request. */
export interface LimitReport extends PolicyDescription {
  decision: Decision;
}

export interface RateLimitHeaderValues {
  'ratelimit-policy': string;
  ratelimit: string;
  'retry-after'?: string;
}

/** RFC 8941 sf-integer bound. */
const SF_INTEGER_MAX = 999_999_999_999_999;

/**
 * RFC 8941 §4.1.6: printable ASCII only, with `"` and `\` escaped. Anything else cannot be an
 * sf-string at all, so serialisation fails (limit names are DNS labels, so this never happens
 * for a validated policy).
 */
export function sfString(value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new TypeError(`not representable as a structured-field string: ${value}`);
    if (c === 0x22 || c === 0x5c) out += '\\';
    out += value[i];
  }
  return out + '"';
}

/** A non-negative sf-integer: floored and clamped to the range RFC 8941 allows. */
export function sfInteger(n: number): string {
  if (!(n > 0)) return '0';
  return String(Math.min(SF_INTEGER_MAX, Math.floor(n)));
}

function seconds(ms: number): number {
  return Math.ceil(ms / 1000);
}

/** One RateLimit-Policy list member. */
export function policyItem(p: PolicyDescription): string {
  const unit = p.cost === 'ModelTokens' ? ';qu="tokens"' : '';
  return `${sfString(p.name)};q=${sfInteger(p.quota)}${unit};w=${sfInteger(Math.max(1, seconds(p.periodMs)))}`;
}

/** The RateLimit-Policy value: every limit that applies. Constant per (policy, tier), so cacheable. */
export function rateLimitPolicyValue(limits: readonly PolicyDescription[]): string {
  return limits.map(policyItem).join(', ');
}

/** Index of the limit RateLimit reports (see the file comment), or -1 for an empty list. */
export function mostRestrictive(reports: readonly LimitReport[]): number {
  let best = -1;
  let bestRetry = -1;
  for (let i = 0; i < reports.length; i++) {
    const d = reports[i]!.decision;
    if (!d.allowed && d.retryAfterMs > bestRetry) {
      best = i;
      bestRetry = d.retryAfterMs;
    }
  }
  if (best >= 0) return best;
  let bestRatio = Infinity;
  let bestReset = -1;
  for (let i = 0; i < reports.length; i++) {
    const r = reports[i]!;
    const ratio = r.quota > 0 ? Math.min(r.decision.remaining, r.quota) / r.quota : 0;
    if (ratio < bestRatio || (ratio === bestRatio && r.decision.resetMs > bestReset)) {
      best = i;
      bestRatio = ratio;
      bestReset = r.decision.resetMs;
    }
  }
  return best;
}

/** One RateLimit list member for this limit's decision. */
export function rateLimitItem(r: LimitReport): string {
  const d = r.decision;
  const resetMs = !d.allowed && Number.isFinite(d.retryAfterMs) ? d.retryAfterMs : d.resetMs;
  return `${sfString(r.name)};r=${sfInteger(Math.min(d.remaining, r.quota))};t=${sfInteger(seconds(resetMs))}`;
}

/** Retry-After as delay-seconds (rounded up); undefined when there is nothing to wait for. */
export function retryAfterValue(retryAfterMs: number): string | undefined {
  if (!(retryAfterMs > 0) || !Number.isFinite(retryAfterMs)) return undefined;
  return sfInteger(Math.max(1, seconds(retryAfterMs)));
}

/** All three values for one response; undefined when no limit applies. */
export function rateLimitHeaders(reports: readonly LimitReport[]): RateLimitHeaderValues | undefined {
  const i = mostRestrictive(reports);
  if (i < 0) return undefined;
  const named = reports[i]!;
  const out: RateLimitHeaderValues = {
    'ratelimit-policy': rateLimitPolicyValue(reports),
    ratelimit: rateLimitItem(named),
  };
  const retry = named.decision.allowed ? undefined : retryAfterValue(named.decision.retryAfterMs);
  if (retry !== undefined) out['retry-after'] = retry;
  return out;
}
