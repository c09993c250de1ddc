/**
 * A cached answer, and its form in Redis: one value per entry, a small binary header then the
 * body, so a lookup is one GET and no second round trip.
 *
 *   u8 version (1) · u16 status · f64 storedAt · f64 expiresAt · u32 n · n bytes of headers (JSON) · body
 */
import type { Answer } from '../filters/filter.ts';

export interface CacheEntry {
  /** What the filter returns on a hit: made once per entry, so a hit allocates no answer. */
  readonly outcome: Answer;
  /** Wall-clock ms when the answer was stored (the Age header counts from it). */
  readonly storedAt: number;
  /** Wall-clock ms after which it is not served. */
  readonly expiresAt: number;
  /** Bytes it holds in memory, as the local store's budget counts them. */
  readonly size: number;
  /** Key namespace (rule, settings, model revision): entries of a revision leaving go together. */
  readonly group: string;
}

/** Counted per entry on top of its bytes: the map slot, the objects, the key. */
const ENTRY_OVERHEAD = 256;

export function makeEntry(
  status: number,
  headers: Record<string, string | string[]>,
  body: Buffer,
  storedAt: number,
  expiresAt: number,
  group: string,
): CacheEntry {
  let size = ENTRY_OVERHEAD + body.length + group.length;
  for (const name in headers) {
    const v = headers[name]!;
    size += name.length + (Array.isArray(v) ? v.reduce((n, s) => n + s.length, 0) : v.length);
  }
  return { outcome: { answer: { status, headers, body } }, storedAt, expiresAt, size, group };
}

const VERSION = 1;
const HEAD = 1 + 2 + 8 + 8 + 4;

export function encodeEntry(e: CacheEntry): Buffer {
  const a = e.outcome.answer;
  const headers = Buffer.from(JSON.stringify(a.headers), 'utf8');
  const out = Buffer.allocUnsafe(HEAD + headers.length + a.body.length);
  out.writeUInt8(VERSION, 0);
  out.writeUInt16BE(a.status, 1);
  out.writeDoubleBE(e.storedAt, 3);
  out.writeDoubleBE(e.expiresAt, 11);
  out.writeUInt32BE(headers.length, 19);
  headers.copy(out, HEAD);
  a.body.copy(out, HEAD + headers.length);
  return out;
}

/** The entry in a Redis value, or undefined when it is not one this version wrote. */
export function decodeEntry(value: Buffer, group: string): CacheEntry | undefined {
  if (value.length < HEAD || value.readUInt8(0) !== VERSION) return undefined;
  const n = value.readUInt32BE(19);
  if (HEAD + n > value.length) return undefined;
  let headers: Record<string, string | string[]>;
  try {
    headers = JSON.parse(value.toString('utf8', HEAD, HEAD + n)) as Record<string, string | string[]>;
  } catch {
    return undefined;
  }
  if (headers === null || typeof headers !== 'object') return undefined;
  return makeEntry(
    value.readUInt16BE(1),
    headers,
    value.subarray(HEAD + n),
    value.readDoubleBE(3),
    value.readDoubleBE(11),
    group,
  );
}
