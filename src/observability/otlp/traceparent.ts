/**
 * W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/), parsed without a regular
 * expression or a result object: the tracer checks the header once and slices the fields it needs,
 * so a request with a valid header costs a character scan and two substrings.
 *
 *   version "-" trace-id "-" parent-id "-" trace-flags     e.g. 00-<32 hex>-<16 hex>-01
 */

const DASH = 0x2d;

function isLowerHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
}

function allLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isLowerHex(s.charCodeAt(i))) return false;
  return true;
}

function allZero(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 0x30) return false;
  return true;
}

/**
 * Whether `h` is a traceparent this proxy may join. Version 00 must be exactly 55 characters;
 * a higher version (not ff) is parsed for the fields version 00 defines, as the spec asks, and
 * whatever follows them must start with "-". Upper-case hex, all-zero ids and version ff are
 * invalid: the caller then starts a new trace.
 */
export function isValidTraceparent(h: string): boolean {
  if (h.length < 55) return false;
  if (
    h.charCodeAt(2) !== DASH ||
    h.charCodeAt(35) !== DASH ||
    h.charCodeAt(52) !== DASH ||
    !allLowerHex(h, 0, 2) ||
    !allLowerHex(h, 3, 35) ||
    !allLowerHex(h, 36, 52) ||
    !allLowerHex(h, 53, 55)
  ) {
    return false;
  }
  const v0 = h.charCodeAt(0);
  const v1 = h.charCodeAt(1);
  if (v0 === 0x30 && v1 === 0x30) {
    if (h.length !== 55) return false;
  } else if (v0 === 0x66 && v1 === 0x66) {
    return false; // ff is forbidden
  } else if (h.length > 55 && h.charCodeAt(55) !== DASH) {
    return false;
  }
  return !allZero(h, 3, 35) && !allZero(h, 36, 52);
}

/** The trace-flags byte of a valid traceparent (read from the char codes: no slice, no parseInt). */
export function traceFlagsOf(h: string): number {
  return (hexValue(h.charCodeAt(53)) << 4) | hexValue(h.charCodeAt(54));
}

/** The value of a lower-case hex digit's char code. */
function hexValue(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57;
}

export function traceIdOf(h: string): string {
  return h.slice(3, 35);
}

export function parentIdOf(h: string): string {
  return h.slice(36, 52);
}

/** Bit 0 of trace-flags. */
export const FLAG_SAMPLED = 0x01;
/** Bit 1 (Trace Context Level 2): the trace id's right 7 bytes are random. Passed on when set. */
export const FLAG_RANDOM = 0x02;

/** The flags this proxy sends on, as two hex digits; unknown bits are not propagated. */
const FLAGS_HEX = ['00', '01', '02', '03'];

export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${FLAGS_HEX[flags & 0x03]}`;
}
