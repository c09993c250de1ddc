/**
 * Filling the cache from a miss: an observer whose body transformer copies the upstream's bytes as
 * they pass (unchanged, bounded by the rule's maxEntrySize), and which stores the answer once the
 * exchange has ended well. It is put first among the exchange's observers, so it sees the
 * upstream's own answer: what is stored is what the upstream sent, and a hit is replayed through
 * the same response path (response transforms, the filters' headers, compression) as a miss.
 *
 * What is stored: a complete 200 from the backend the key was made for (not the rule's fallback),
 * not an event stream, in identity encoding (the cache asks the upstream for it), without
 * Set-Cookie, whose Cache-Control allows it (cache-control.ts), and whose Vary names only headers
 * in the key (`Vary: *` never). Why each other answer was not stored is counted
 * (modelgate_cache_not_stored_total). Waiters of a coalesced flight are told as soon as nothing
 * will be stored, so they need not wait for an answer they cannot use.
 */
import type { BodyTransformer, ExchangeEnd, ExchangeObserver } from '../filters/filter.ts';
import { HOP_BY_HOP } from '../upstream/headers.ts';
import { responseTtlMs } from './cache-control.ts';
import type { NotStoredReason } from './cache-metrics.ts';
import type { Flight } from './coalescer.ts';
import { type CacheEntry, makeEntry } from './entry.ts';

/** What a fill needs of its rule. */
export interface FillTarget {
  readonly maxEntryBytes: number;
  readonly ttlMs: number;
  readonly shared: boolean;
  /** Lower-case names of the headers in the key (an answer may Vary on these). */
  readonly keyHeaders: ReadonlySet<string>;
  now(): number;
  /** Keeps the entry (the store decides where). */
  keep(key: string, entry: CacheEntry): void;
  notStored(reason: NotStoredReason): void;
  settle(flight: Flight, entry: CacheEntry | undefined): void;
}

type Headers = Record<string, string | string[] | undefined>;

function text(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Why an answer with this head cannot be stored, or its TTL in ms. */
export function storability(
  status: number,
  headers: Headers,
  t: Pick<FillTarget, 'maxEntryBytes' | 'ttlMs' | 'shared' | 'keyHeaders'>,
): NotStoredReason | number {
  if (status !== 200) return 'status';
  const type = text(headers['content-type']);
  if (type?.toLowerCase().startsWith('text/event-stream')) return 'streamed';
  const encoding = text(headers['content-encoding']);
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') return 'encoded';
  if (headers['set-cookie'] !== undefined) return 'set_cookie';
  const vary = text(headers.vary);
  if (vary !== undefined) {
    for (const part of vary.split(',')) {
      const name = part.trim().toLowerCase();
      // The cache asks for identity encoding, so answers never differ by accept-encoding.
      if (name === '' || name === 'accept-encoding' || t.keyHeaders.has(name)) continue;
      return 'vary';
    }
  }
  const ttl = responseTtlMs(headers['cache-control'], t.ttlMs, t.shared);
  if (ttl <= 0) return 'cache_control';
  const length = headers['content-length'];
  if (length !== undefined && Number(length) > t.maxEntryBytes) return 'too_large';
  return ttl;
}

/** Headers of this exchange's only (its request id, its age, its framing) are not kept. */
const NOT_KEPT: ReadonlySet<string> = new Set(['x-request-id', 'age', 'content-length', 'x-cache']);

/** The upstream's headers as they are stored: without hop-by-hop and per-exchange ones. */
export function storedHeaders(headers: Headers, bodyLength: number): Record<string, string | string[]> {
  const connection = text(headers.connection);
  const named =
    connection === undefined ? undefined : new Set(connection.split(',').map((s) => s.trim().toLowerCase()));
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || HOP_BY_HOP.has(name) || NOT_KEPT.has(name) || named?.has(name)) continue;
    out[name] = v;
  }
  out['content-length'] = String(bodyLength);
  return out;
}

export class Fill implements ExchangeObserver, BodyTransformer {
  readonly changesLength = false;
  private readonly target: FillTarget;
  private readonly key: string;
  private readonly group: string;
  private readonly backend: string;
  private flight: Flight | undefined;
  /** The answer's bytes so far; undefined when it is not being kept. */
  private chunks: Buffer[] | undefined;
  private size = 0;
  private status = 0;
  private ttlMs = 0;
  private headers: Headers | undefined;

  constructor(target: FillTarget, key: string, group: string, backend: string, flight: Flight | undefined) {
    this.target = target;
    this.key = key;
    this.group = group;
    this.backend = backend;
    this.flight = flight;
  }

  onResponseStart(status: number, headers: Headers): BodyTransformer | undefined {
    const s = storability(status, headers, this.target);
    if (typeof s !== 'number') {
      this.skip(s);
      return undefined;
    }
    this.status = status;
    this.ttlMs = s;
    this.headers = headers;
    this.chunks = [];
    return this;
  }

  data(chunk: Buffer): Buffer {
    const chunks = this.chunks;
    if (chunks !== undefined) {
      this.size += chunk.length;
      if (this.size > this.target.maxEntryBytes) {
        this.chunks = undefined;
        this.skip('too_large');
      } else chunks.push(chunk);
    }
    return chunk;
  }

  end(): undefined {
    return undefined;
  }

  onEnd(end: ExchangeEnd): void {
    const chunks = this.chunks;
    this.chunks = undefined;
    if (chunks === undefined) {
      // Refused, failed, or not storable (already counted): waiters go upstream themselves.
      if (this.flight) this.release(undefined);
      return;
    }
    if (end.status !== this.status || end.incomplete || end.clientAborted) {
      this.skip('incomplete');
      return;
    }
    if (end.backend !== this.backend) {
      this.skip('fallback');
      return;
    }
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.size);
    const now = this.target.now();
    const entry = makeEntry(
      this.status,
      storedHeaders(this.headers!, body.length),
      body,
      now,
      now + this.ttlMs,
      this.group,
    );
    this.headers = undefined;
    this.target.keep(this.key, entry);
    this.release(entry);
  }

  private skip(reason: NotStoredReason): void {
    this.target.notStored(reason);
    this.release(undefined);
  }

  private release(entry: CacheEntry | undefined): void {
    const flight = this.flight;
    if (flight === undefined) return;
    this.flight = undefined;
    this.target.settle(flight, entry);
  }
}
