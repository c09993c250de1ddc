/**
 * Random trace and span ids as lower-case hex, as W3C trace context and OTLP/JSON both spell them.
 *
 * Why a pool: `randomBytes(8)` per span is a syscall-backed allocation on the request path. One
 * `randomFillSync` of 8 KiB serves ~340 trace+span id pairs, so the per-id cost is a hex slice.
 * The ids stay cryptographically random, which W3C asks of trace ids (other systems sample on
 * their bits).
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 8192;
const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let pos = POOL_BYTES; // empty: the first take fills it

const ZERO_TRACE_ID = '00000000000000000000000000000000';
const ZERO_SPAN_ID = '0000000000000000';

function take(bytes: number): string {
  if (pos + bytes > POOL_BYTES) {
    randomFillSync(pool);
    pos = 0;
  }
  const hex = pool.toString('hex', pos, pos + bytes);
  pos += bytes;
  return hex;
}

/** 16 random bytes as 32 hex digits; never all zeros (W3C calls that id invalid). */
export function newTraceId(): string {
  let id = take(16);
  while (id === ZERO_TRACE_ID) id = take(16);
  return id;
}

/** 8 random bytes as 16 hex digits; never all zeros. */
export function newSpanId(): string {
  let id = take(8);
  while (id === ZERO_SPAN_ID) id = take(8);
  return id;
}
