/**
 * Header handling at the proxy hop (RFC 9110 §7.6.1): hop-by-hop headers and every header named in
 * `Connection` are dropped in both directions; the forwarding headers are set for the upstream.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { newSpanId, newTraceId } from '../../observability/otlp/ids.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1): never passed on by a proxy. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Names listed in a Connection header, lower-cased. */
function connectionNamed(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (text === 'keep-alive' || text === 'close') return undefined; // the common cases name nothing else
  const names = new Set<string>();
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase();
    if (name) names.add(name);
  }
  return names;
}

export type OutgoingHeaders = Record<string, string | string[]>;

export interface ForwardingInfo {
  clientAddress: string;
  proto: 'http' | 'https';
  host: string | undefined;
  requestId: string;
  traceparent: string;
  /** Replaces the Host header (static URL backends name their own host). */
  upstreamHost: string | undefined;
  /**
   * Whether the peer is a trusted proxy: then its x-forwarded-* headers are kept (the chain grows
   * by the peer); otherwise they are replaced, so a client cannot forge them.
   */
  trustForwarded: boolean;
}

/** Request headers for the upstream: a copy without hop-by-hop ones, plus forwarding headers. */
export function upstreamRequestHeaders(incoming: IncomingHttpHeaders, f: ForwardingInfo): OutgoingHeaders {
  const out: OutgoingHeaders = {};
  const named = connectionNamed(incoming.connection);
  for (const name in incoming) {
    // HTTP/2 pseudo-headers (`:path`, `:authority`…) describe this hop only.
    if (HOP_BY_HOP.has(name) || named?.has(name) || name.charCodeAt(0) === 58) continue;
    const v = incoming[name];
    if (v !== undefined) out[name] = v;
  }
  // `te: trailers` is the one TE value that must reach gRPC servers.
  if (incoming.te !== undefined && /\btrailers\b/i.test(String(incoming.te))) out.te = 'trailers';
  const prior = f.trustForwarded ? incoming['x-forwarded-for'] : undefined;
  out['x-forwarded-for'] = prior
    ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${f.clientAddress}`
    : f.clientAddress;
  const proto = f.trustForwarded ? incoming['x-forwarded-proto'] : undefined;
  out['x-forwarded-proto'] = typeof proto === 'string' ? proto : f.proto;
  const fwdHost = f.trustForwarded ? incoming['x-forwarded-host'] : undefined;
  if (typeof fwdHost === 'string') out['x-forwarded-host'] = fwdHost;
  else if (f.host !== undefined) out['x-forwarded-host'] = f.host;
  else delete out['x-forwarded-host'];
  out['x-request-id'] = f.requestId;
  out.traceparent = f.traceparent;
  if (f.upstreamHost !== undefined) out.host = f.upstreamHost;
  else if (out.host === undefined && f.host !== undefined) out.host = f.host; // HTTP/2: from :authority
  return out;
}

/** Response headers for the client, from undici's header object, without hop-by-hop ones. */
export function clientResponseHeaders(
  upstream: Record<string, string | string[] | undefined>,
  requestId: string,
): OutgoingHeaders {
  const out: OutgoingHeaders = {};
  const named = connectionNamed(upstream.connection);
  for (const name in upstream) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    const v = upstream[name];
    if (v !== undefined) out[name] = v;
  }
  out['x-request-id'] ??= requestId;
  return out;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * W3C trace context: a valid incoming `traceparent` is passed on unchanged (the proxy records no
 * span of its own unless tracing is on, so re-parenting would point at a span nobody has); when
 * there is none, or it is malformed, a new sampled-out trace is started so the backend and the
 * access log still share a trace id.
 */
export function traceparentFor(incoming: string | string[] | undefined): { header: string; traceId: string } {
  if (typeof incoming === 'string') {
    const m = TRACEPARENT.exec(incoming);
    if (m && m[1] !== '00000000000000000000000000000000' && m[2] !== '0000000000000000') {
      return { header: incoming, traceId: m[1]! };
    }
  }
  // Ids from a pool of randomness drawn in bulk: a randomBytes call per request cost ~2 µs.
  const traceId = newTraceId();
  return { header: `00-${traceId}-${newSpanId()}-00`, traceId };
}

let counter = 0;
const prefix = randomBytes(6).toString('hex');

/**
 * A request id unique to this process run: a random prefix chosen at start and a counter. Cheaper
 * than a UUID per request; an incoming `x-request-id` is kept when it is sane.
 */
export function requestIdFor(incoming: string | string[] | undefined): string {
  if (
    typeof incoming === 'string' &&
    incoming.length > 0 &&
    incoming.length <= 200 &&
    /^[\x21-\x7e]+$/.test(incoming)
  ) {
    return incoming;
  }
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}
