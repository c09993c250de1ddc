/**
 * Random trace and span ids as lower-case hex, as W3C trace context and OTLP/JSON both spell them.
 *
 * Why a pool: `randomBytes(8).toString('hex')` per span is a call into C++ and two allocations on
 * the request path (~80 ns). Here 8 KiB of randomness is drawn and hex-encoded at once, and each
 * id is a substring of that (V8 makes it a cheap slice), so an id costs ~10 ns amortised. The ids
 * stay cryptographically random, which W3C asks of trace ids (other systems sample on their bits).
 * A slice keeps its 16 KiB pool string alive while the id lives; with a bounded span queue that
 * is a few pool strings at most.
 */
import { randomBytes } from 'node:crypto';

const POOL_BYTES = 8192;
const POOL_CHARS = POOL_BYTES * 2;
let pool = '';
let pos = POOL_CHARS; // empty: the first take fills it

const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

function take(chars: number): string {
  if (pos + chars > POOL_CHARS) {
    pool = randomBytes(POOL_BYTES).toString('hex');
    pos = 0;
  }
  const hex = pool.slice(pos, pos + chars);
  pos += chars;
  return hex;
}

/** 16 random bytes as 32 hex digits; never all zeros (W3C calls that id invalid). */
export function newTraceId(): string {
  let id = take(32);
  while (id === ZERO_TRACE_ID) id = take(32);
  return id;
}

/** 8 random bytes as 16 hex digits; never all zeros. */
export function newSpanId(): string {
  let id = take(16);
  while (id === ZERO_SPAN_ID) id = take(16);
  return id;
}
