/**
 * Request-target normalisation. The gateway matches routes on the normalised path AND forwards
 * that same path upstream, so the backend always sees exactly the path that was matched: there is
 * no second interpretation for an attacker to aim at (`/public/..%2Fadmin` cannot pass a `/public`
 * rule and then reach `/admin` on a backend that decodes and resolves it itself).
 *
 * Rules, in order:
 *
 *  1. Form. Origin-form (`/path?query`) is the normal case. Absolute-form (`http://host/path`,
 *     scheme `http` or `https`, any case) is reduced to its path and query; the authority is
 *     dropped (routing uses the Host header) and a missing path becomes `/`. Anything else
 *     (`*`, authority-form `host:443`, other schemes, the empty string) is rejected.
 *  2. Query. The query starts at the first `?` and is returned untouched, `?` included, so
 *     `path + query` is the target to forward. A `#` anywhere is rejected: a fragment is never
 *     part of a request-target (RFC 9112 §3.2). Control characters, space, DEL and characters above
 *     U+00FF are rejected in the query as well as in the path.
 *  3. Percent-decoding of the path:
 *     - a `%` not followed by two hex digits (`%zz`, a truncated `%4` or `%`) is rejected;
 *     - `%00` is rejected (NUL truncates strings in C-based backends);
 *     - escapes of unreserved characters (ALPHA / DIGIT / `-` `.` `_` `~`) are decoded, as
 *       RFC 3986 §6.2.2.2 allows: `/%61dmin` is `/admin`, and `%2e%2e` is a real dot-segment;
 *     - `%2F` and `%5C` (encoded `/` and `\`) are decoded to `/`, so `..%2F` cannot hide a
 *       dot-segment. The price: a backend can no longer tell `a%2Fb` from `a/b`; model-serving APIs
 *       do not rely on that, and routing must not depend on a distinction the backend may erase;
 *     - every other escape is kept, with its hex in upper case (`%c3%a9` becomes `%C3%A9`), so
 *       the two spellings match the same routes.
 *  4. Raw characters. A backslash is a `/` (several servers and frameworks treat it as one).
 *     Raw control characters (U+0000–U+001F), space and DEL are rejected. Characters
 *     U+0080–U+00FF are percent-encoded as one byte each, upper-case hex (see "Non-ASCII" below).
 *     Other printable ASCII is kept as it is.
 *  5. Runs of `/` are merged into one (`//admin` is `/admin`).
 *  6. Dot-segments are removed as in RFC 3986 §5.2.4, after decoding (so `%2e` counts), and never
 *     above the root (`/../x` is `/x`). A final `.` or `..` leaves a trailing slash, as in the RFC
 *     (`/a/b/..` is `/a/`).
 *  7. A segment that is `.` or `..` followed by `;` (`/..;/admin`) is rejected: some servers
 *     (Tomcat, Jetty) strip path parameters before resolving dot-segments, which would make it a
 *     dot-segment the gateway did not see.
 *  8. A trailing slash is kept (`/a/` stays `/a/`; `/a` stays `/a`).
 *
 * Non-ASCII: node:http hands us the request-target as a latin1 string, one character per byte.
 * Its parser (llhttp) rejects raw bytes >= 0x80 in the target with HPE_INVALID_URL, even with
 * `insecureHTTPParser`, so on HTTP/1 they never get here. node:http2 does pass them: raw UTF-8
 * `/café` arrives as `/caf\u00c3\u00a9`. Encoding each such character as one byte makes it
 * `/caf%C3%A9`, the same as the percent-encoded spelling. A character above U+00FF cannot come
 * from either parser (it is not a byte) and is rejected rather than guessed at.
 *
 * Fast path: a target that starts with `/` and has no `%`, `\`, `//`, `/.`, `#`, space, control or
 * non-ASCII character in its path is already normal; it returns after one scan with no allocation
 * beyond the query split (bench/normalize.ts).
 */

export type NormalizedTarget = { ok: true; path: string; query: string } | { ok: false; reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const QUESTION = 0x3f;
const HASH = 0x23;

const HEX_DIGITS = '0123456789ABCDEF';

/** `%XX` for every byte, upper-case hex. */
const PCT: readonly string[] = Array.from(
  { length: 256 },
  (_, b) => '%' + HEX_DIGITS[b >> 4] + HEX_DIGITS[b & 15],
);

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
const UNRESERVED = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) UNRESERVED[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) UNRESERVED[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) UNRESERVED[c] = 1;
for (const ch of '-._~') UNRESERVED[ch.charCodeAt(0)] = 1;

function fail(reason: string): NormalizedTarget {
  return { ok: false, reason };
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

export function normalizePath(target: string): NormalizedTarget {
  const len = target.length;
  let start = 0;
  if (target.charCodeAt(0) !== SLASH) {
    start = absoluteFormPathStart(target);
    if (start < 0) return fail('request-target is not origin-form or absolute-form');
  }

  // One scan of the path that both finds the query and decides whether any work is needed.
  // Every character that could change under normalisation or must be rejected sends us to the
  // slow path, so a clean path is returned as the very string we were given (or a slice of it).
  let end = start;
  let clean = true;
  for (; end < len; end++) {
    const c = target.charCodeAt(end);
    if (c === QUESTION) break;
    if (c <= 0x20 || c >= 0x7f || c === PERCENT || c === BACKSLASH || c === HASH) {
      clean = false;
    } else if (c === SLASH) {
      const next = target.charCodeAt(end + 1);
      if (next === SLASH || next === DOT) clean = false;
    }
  }

  const queryProblem = end < len ? checkQuery(target, end + 1) : undefined;
  if (queryProblem !== undefined) return fail(queryProblem);
  const query = end < len ? target.slice(end) : '';

  // Absolute-form with no path (`http://h` or `http://h?x`).
  if (start === end) return { ok: true, path: '/', query };
  if (clean) return { ok: true, path: start === 0 && end === len ? target : target.slice(start, end), query };

  const path = normalizeDirtyPath(target, start, end);
  if (path.charCodeAt(0) !== SLASH) return fail(path);
  return { ok: true, path, query };
}

/**
 * For `http://host/...` or `https://host/...` (scheme in any case) the index where the path (or
 * the query, or the end) begins; -1 for any other form.
 */
function absoluteFormPathStart(target: string): number {
  const sep = target.indexOf('://');
  if (sep !== 4 && sep !== 5) return -1;
  const scheme = target.slice(0, sep).toLowerCase();
  if (scheme !== 'http' && scheme !== 'https') return -1;
  let i = sep + 3;
  const authorityStart = i;
  for (; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === SLASH || c === QUESTION) break;
    // The authority is dropped, but it must not smuggle a fragment or bytes a parser would refuse.
    if (c <= 0x20 || c >= 0x7f || c === HASH || c === BACKSLASH) return -1;
  }
  return i === authorityStart ? -1 : i;
}

/** Why the query (from `from` to the end) is unacceptable, or undefined when it is fine. */
function checkQuery(target: string, from: number): string | undefined {
  for (let i = from; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c === HASH) return 'fragment in request-target';
    if (c <= 0x20 || c === 0x7f) return 'control character or space in query';
    if (c > 0xff) return 'character above U+00FF in query';
  }
  return undefined;
}

/**
 * The slow path: decode, split into segments, resolve dot-segments. Returns the path (always
 * starting with `/`) or a reason for rejection (never starting with `/`), which saves allocating
 * a result object per call.
 */
function normalizeDirtyPath(t: string, from: number, to: number): string {
  // Segments as they appear after decoding; segments[0] is the empty string before the leading
  // `/`. Separators are `/`, `\`, `%2F` and `%5C`, all equivalent by rules 3 and 4.
  const segments: string[] = [];
  let seg = '';
  let runStart = from; // start of the raw run not yet copied into seg
  for (let i = from; i < to; i++) {
    const c = t.charCodeAt(i);
    if (c === SLASH || c === BACKSLASH) {
      segments.push(seg + t.slice(runStart, i));
      seg = '';
      runStart = i + 1;
    } else if (c === PERCENT) {
      if (i + 2 >= to) return 'truncated percent-escape';
      const hi = hexValue(t.charCodeAt(i + 1));
      const lo = hexValue(t.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return 'invalid percent-escape';
      const byte = (hi << 4) | lo;
      if (byte === 0) return 'encoded NUL in path';
      seg += t.slice(runStart, i);
      if (byte === SLASH || byte === BACKSLASH) {
        segments.push(seg);
        seg = '';
      } else if (byte < 0x80 && UNRESERVED[byte] === 1) {
        seg += String.fromCharCode(byte);
      } else {
        seg += PCT[byte];
      }
      i += 2;
      runStart = i + 1;
    } else if (c <= 0x20 || c === 0x7f) {
      return 'control character or space in path';
    } else if (c === HASH) {
      return 'fragment in request-target';
    } else if (c > 0x7e) {
      if (c > 0xff) return 'character above U+00FF in path';
      seg += t.slice(runStart, i) + PCT[c];
      runStart = i + 1;
    }
  }
  segments.push(seg + t.slice(runStart, to));

  // RFC 3986 §5.2.4 over whole segments. Empty segments come from `//` runs and are dropped
  // (rule 5). `trailing` ends up true when the last segment is empty, `.` or `..`: each of those
  // leaves the output ending in `/`.
  const out: string[] = [];
  let trailing = false;
  for (let k = 1; k < segments.length; k++) {
    const s = segments[k]!;
    trailing = true;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      out.pop();
      continue;
    }
    if (s.charCodeAt(0) === DOT && (s.startsWith('.;') || s.startsWith('..;'))) {
      return 'dot-segment with path parameters';
    }
    out.push(s);
    trailing = false;
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailing ? '/' : '');
}
