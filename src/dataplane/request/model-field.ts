/**
 * Finds the top-level `"model"` of an OpenAI-style JSON request body without building the body's
 * object tree. Bodies can be tens of MB with `model` after a multi-MB `messages` field, so the
 * scanner is an incremental byte-level state machine: chunks are pushed as they arrive, and state
 * (inside a string, after a backslash, halfway through `\u12`, a number or `true`, the nesting
 * stack) carries across chunk boundaries. Memory is O(nesting depth + size of the model value).
 *
 * What it checks. The whole body is checked against the JSON grammar (RFC 8259): structure,
 * `,`/`:` placement, numbers, literals, escapes, raw control characters in strings, nothing but
 * whitespace after the top-level value. The gateway routes on the model it finds and forwards the
 * body unchanged, so its reading must be the one every conforming parser would make; accepting
 * anything beyond the grammar (comments, trailing commas, NaN) would open a gap between what the
 * gateway saw and what a lenient backend parser sees. UTF-8 validity is checked only in the model
 * value and the top-level keys: bytes >= 0x80 never equal a structural character, so bad UTF-8
 * elsewhere cannot move a boundary, and checking it would cost a second pass over the bulk.
 *
 * Decisions:
 *  - Only keys of the top-level object count; `"model"` inside `messages` or `metadata` is
 *    ignored. Keys are compared after unescaping, so `"mod\u0065l"` is the model key (it is to
 *    every JSON parser).
 *  - Duplicate top-level `model` keys give `ambiguous`, whatever their values: parsers disagree
 *    on which one wins (most take the last, some the first, some refuse), so the proxy answers
 *    400 rather than pick. This is why scanning always runs to the end of the body.
 *  - The top level must be an object; anything else, or a truncated or invalid body, is
 *    `not-json`. An optional UTF-8 BOM (EF BB BF) is skipped at the very start (RFC 8259 §8.1
 *    allows it), before any whitespace.
 *  - The model value's escapes are decoded (`\"`, `\\`, `\uXXXX` including surrogate pairs). A
 *    value that is not valid UTF-8 is `not-json` (RFC 8259 §8.1); a value with an unpaired
 *    surrogate escape is `not-string`, since no model name is such a string.
 *  - Result precedence: not-json, then ambiguous, then not-string, then found/absent.
 *
 * `scanModel` adds Content-Encoding handling with node:zlib, bounded by `maxOutputLength` so a
 * small compressed body cannot inflate past the limit (zip bomb). It only reads; the proxy
 * forwards the original bytes.
 */
import { constants as bufferConstants } from 'node:buffer';
import { brotliDecompressSync, gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';

export type ModelScan =
  | { kind: 'found'; model: string }
  | { kind: 'absent' }
  | { kind: 'not-json' }
  | { kind: 'not-string' }
  | { kind: 'ambiguous' };

export type BodyScan = ModelScan | { kind: 'too-large' } | { kind: 'bad-encoding' };

// Scanner states (plain numbers: erasable syntax only, and V8 switches on small ints well).
const ST_INIT = 0; // very first byte: BOM or not
const ST_BOM2 = 1; // seen EF, want BB
const ST_BOM3 = 2; // seen EF BB, want BF
const ST_START = 3; // whitespace, then `{`
const ST_OBJECT_FIRST = 4; // after `{`: key or `}`
const ST_KEY = 5; // after `,` in an object: key
const ST_COLON = 6; // after a key: `:`
const ST_VALUE = 7; // after `:` or `,` in an array: a value
const ST_ARRAY_FIRST = 8; // after `[`: a value or `]`
const ST_AFTER = 9; // after a value: `,` or the container's closer
const ST_STRING = 10;
const ST_ESCAPE = 11; // after a backslash
const ST_UNICODE = 12; // in the hex digits of \uXXXX; `hexLeft` says how many remain
const ST_N_MINUS = 13; // `-`
const ST_N_ZERO = 14; // `0` or `-0`
const ST_N_INT = 15; // integer digits
const ST_N_DOT = 16; // `.`, want a digit
const ST_N_FRAC = 17; // fraction digits
const ST_N_E = 18; // `e`, want sign or digit
const ST_N_ESIGN = 19; // `e+`, want a digit
const ST_N_EXP = 20; // exponent digits
const ST_LITERAL = 21; // inside true/false/null
const ST_END = 22; // after the top-level object: whitespace only
const ST_ERROR = 23;

// What the string being scanned is: it decides where the scanner goes after the closing quote
// and whether the string's bytes are kept.
const ROLE_VALUE = 0;
const ROLE_KEY = 1; // key of a nested object
const ROLE_TOP_KEY = 2; // key of the top-level object: kept, compared with "model"
const ROLE_MODEL = 3; // value of a top-level "model": kept, decoded

const CONTAINER_OBJECT = 1;
const CONTAINER_ARRAY = 2;

/** Longest possible spelling of the key "model": five `\u00XX` escapes. */
const MAX_MODEL_KEY_BYTES = 30;

/** Bytes that end a run of ordinary string content: `"`, `\` and the control characters. */
const STRING_STOP = new Uint8Array(256);
STRING_STOP[0x22] = 1;
STRING_STOP[0x5c] = 1;
for (let c = 0; c < 0x20; c++) STRING_STOP[c] = 1;

/**
 * Whether any byte of a 32-bit word is `"`, `\` or below 0x20 (SWAR: a byte b < n sets its high
 * bit in (w - n*0x01010101) & ~w, exactly when some byte is below n <= 0x80; == is < 1 after XOR).
 * Which byte it is does not matter: the caller rescans that word bytewise.
 */
function hasStringStop(w: number): boolean {
  const q = w ^ 0x22222222;
  const b = w ^ 0x5c5c5c5c;
  const below = (w - 0x20202020) & ~w;
  const quote = (q - 0x01010101) & ~q;
  const backslash = (b - 0x01010101) & ~b;
  return ((below | quote | backslash) & 0x80808080) !== 0;
}

/**
 * The index of the first stop byte (`"`, `\`, control) at or after `i`, or the chunk's length.
 * Bytes up to a 4-byte boundary go one at a time, then whole words while none holds a stop
 * byte, then bytes again to find the exact stop in the word that has one (or in the tail).
 * `words` views the chunk's aligned middle from byte `wordBase`. A small function of its own:
 * V8 compiles this loop far better alone than inlined in push()'s state machine.
 */
function skipStringContent(chunk: Buffer, i: number, words: Int32Array, wordBase: number): number {
  const n = chunk.length;
  while (i < n && STRING_STOP[chunk[i]!] === 0 && ((i - wordBase) & 3) !== 0) i++;
  if (i === n || STRING_STOP[chunk[i]!] === 1) return i;
  let k = (i - wordBase) >> 2;
  const count = words.length;
  while (k < count && !hasStringStop(words[k]!)) k++;
  i = wordBase + (k << 2);
  while (i < n && STRING_STOP[chunk[i]!] === 0) i++;
  return i;
}

const NO_WORDS = new Int32Array(0);

const HEX = new Uint8Array(256);
for (const ch of '0123456789abcdefABCDEF') HEX[ch.charCodeAt(0)] = 1;

/** The single-character escapes after a backslash (`u` is handled separately). */
const SIMPLE_ESCAPE = new Uint8Array(256);
for (const ch of '"\\/bfnrt') SIMPLE_ESCAPE[ch.charCodeAt(0)] = 1;

const LITERALS: readonly Uint8Array[] = [
  new TextEncoder().encode('true'),
  new TextEncoder().encode('false'),
  new TextEncoder().encode('null'),
];

const MODEL_KEY = 'model';
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * Decodes the raw bytes between a string's quotes (already checked against the grammar). Returns
 * undefined for invalid UTF-8.
 */
function decodeJsonString(raw: Buffer): string | undefined {
  let text: string;
  try {
    text = fatalUtf8.decode(raw);
  } catch {
    return undefined;
  }
  // The grammar check guarantees the quoted text is a valid JSON string, so JSON.parse is a
  // correct (and native) unescaper, surrogate pairs included.
  return text.includes('\\') ? (JSON.parse('"' + text + '"') as string) : text;
}

export class ModelFieldScanner {
  private state = ST_INIT;
  private depth = 0;
  private stack = new Uint8Array(64);
  private role = ROLE_VALUE;
  private hexLeft = 0;
  private literal = 0; // index into LITERALS
  private literalPos = 0;
  /** Kept bytes of the current ROLE_TOP_KEY or ROLE_MODEL string, copied out of the chunks. */
  private captured: Buffer[] = [];
  private capturedBytes = 0;
  /** The key just read was a top-level "model": the next value is the model value. */
  private modelValueNext = false;
  private modelKeys = 0;
  private result: ModelScan = { kind: 'absent' };

  push(chunk: Buffer): void {
    if (this.state === ST_ERROR) return;
    // Hot state in locals; written back at the end.
    let state = this.state;
    let depth = this.depth;
    let stack = this.stack;
    const n = chunk.length;
    let i = 0;
    let captureFrom = 0; // where kept bytes of the current string start in this chunk
    // The chunk's 4-byte-aligned middle as 32-bit words, for the string loop. Socket chunks
    // start anywhere in a pooled ArrayBuffer, so the view starts at the first aligned byte.
    const wordBase = (4 - (chunk.byteOffset & 3)) & 3;
    const wordCount = n > wordBase ? (n - wordBase) >> 2 : 0;
    // (No view when there is no whole word: its offset could lie past the end of the buffer.)
    const words =
      wordCount === 0 ? NO_WORDS : new Int32Array(chunk.buffer, chunk.byteOffset + wordBase, wordCount);

    loop: while (i < n) {
      switch (state) {
        case ST_STRING: {
          // The hot loop: most of a large body is string content.
          // Escapes that lie wholly inside the chunk are checked and skipped here, without a
          // trip through the switch: chat text has one every few dozen bytes (\n, \").
          let c = 0;
          for (;;) {
            i = skipStringContent(chunk, i, words, wordBase);
            if (i === n) break loop;
            c = chunk[i]!;
            if (c !== 0x5c || i + 1 === n) break;
            const e = chunk[i + 1]!;
            if (SIMPLE_ESCAPE[e] === 1) i += 2;
            else if (
              e === 0x75 &&
              i + 5 < n &&
              (HEX[chunk[i + 2]!]! & HEX[chunk[i + 3]!]! & HEX[chunk[i + 4]!]! & HEX[chunk[i + 5]!]!) === 1
            )
              i += 6;
            else break; // split across chunks, or invalid: the escape states decide
          }
          if (c === 0x5c) {
            state = ST_ESCAPE;
            i++;
            break;
          }
          if (c !== 0x22) {
            state = ST_ERROR; // raw control character
            break loop;
          }
          const role = this.role;
          if (role === ROLE_VALUE) state = ST_AFTER;
          else if (role === ROLE_KEY) state = ST_COLON;
          else {
            this.capture(chunk, captureFrom, i);
            if (role === ROLE_TOP_KEY) {
              this.endTopKey();
              state = ST_COLON;
            } else if (this.endModelValue()) {
              state = ST_AFTER;
            } else {
              state = ST_ERROR;
              break loop;
            }
          }
          i++;
          break;
        }
        case ST_ESCAPE: {
          const c = chunk[i++]!;
          if (SIMPLE_ESCAPE[c] === 1) state = ST_STRING;
          else if (c === 0x75) {
            state = ST_UNICODE;
            this.hexLeft = 4;
          } else {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_UNICODE: {
          if (HEX[chunk[i++]!] !== 1) {
            state = ST_ERROR;
            break loop;
          }
          if (--this.hexLeft === 0) state = ST_STRING;
          break;
        }
        case ST_AFTER: {
          const c = chunk[i];
          if (c === 0x2c) {
            state = stack[depth - 1] === CONTAINER_OBJECT ? ST_KEY : ST_VALUE;
          } else if (c === 0x7d || c === 0x5d) {
            if (stack[depth - 1] !== (c === 0x7d ? CONTAINER_OBJECT : CONTAINER_ARRAY)) {
              state = ST_ERROR;
              break loop;
            }
            depth--;
            state = depth === 0 ? ST_END : ST_AFTER;
          } else if (!isWhitespace(c!)) {
            state = ST_ERROR;
            break loop;
          }
          i++;
          break;
        }
        case ST_VALUE:
        case ST_ARRAY_FIRST: {
          const c = chunk[i]!;
          if (isWhitespace(c)) {
            i++;
            break;
          }
          if (c === 0x5d && state === ST_ARRAY_FIRST) {
            depth--;
            state = depth === 0 ? ST_END : ST_AFTER;
            i++;
            break;
          }
          let role = ROLE_VALUE;
          if (this.modelValueNext) {
            this.modelValueNext = false;
            if (c === 0x22) role = ROLE_MODEL;
            else this.result = { kind: 'not-string' };
          }
          i++;
          if (c === 0x22) {
            state = ST_STRING;
            this.role = role;
            captureFrom = i;
          } else if (c === 0x7b || c === 0x5b) {
            if (depth === stack.length) stack = this.grow();
            stack[depth++] = c === 0x7b ? CONTAINER_OBJECT : CONTAINER_ARRAY;
            state = c === 0x7b ? ST_OBJECT_FIRST : ST_ARRAY_FIRST;
          } else if (c === 0x2d) state = ST_N_MINUS;
          else if (c === 0x30) state = ST_N_ZERO;
          else if (c >= 0x31 && c <= 0x39) state = ST_N_INT;
          else if (c === 0x74 || c === 0x66 || c === 0x6e) {
            this.literal = c === 0x74 ? 0 : c === 0x66 ? 1 : 2;
            this.literalPos = 1;
            state = ST_LITERAL;
          } else {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_OBJECT_FIRST:
        case ST_KEY: {
          const c = chunk[i++]!;
          if (c === 0x22) {
            state = ST_STRING;
            this.role = depth === 1 ? ROLE_TOP_KEY : ROLE_KEY;
            captureFrom = i;
          } else if (c === 0x7d && state === ST_OBJECT_FIRST) {
            depth--;
            state = depth === 0 ? ST_END : ST_AFTER;
          } else if (!isWhitespace(c)) {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_COLON: {
          const c = chunk[i++]!;
          if (c === 0x3a) state = ST_VALUE;
          else if (!isWhitespace(c)) {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_N_INT:
        case ST_N_FRAC:
        case ST_N_EXP: {
          while (i < n && isDigit(chunk[i]!)) i++;
          if (i === n) break loop;
          const c = chunk[i]!;
          if (c === 0x2e && state === ST_N_INT) {
            state = ST_N_DOT;
            i++;
          } else if ((c | 0x20) === 0x65 && state !== ST_N_EXP) {
            state = ST_N_E;
            i++;
          } else {
            state = ST_AFTER; // the number ended; this byte is handled by ST_AFTER
          }
          break;
        }
        case ST_N_ZERO: {
          const c = chunk[i]!;
          if (c === 0x2e) {
            state = ST_N_DOT;
            i++;
          } else if ((c | 0x20) === 0x65) {
            state = ST_N_E;
            i++;
          } else state = ST_AFTER; // leading zeros (`01`) fail there
          break;
        }
        case ST_N_MINUS: {
          const c = chunk[i++]!;
          if (c === 0x30) state = ST_N_ZERO;
          else if (c >= 0x31 && c <= 0x39) state = ST_N_INT;
          else {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_N_DOT:
        case ST_N_ESIGN: {
          if (!isDigit(chunk[i++]!)) {
            state = ST_ERROR;
            break loop;
          }
          state = state === ST_N_DOT ? ST_N_FRAC : ST_N_EXP;
          break;
        }
        case ST_N_E: {
          const c = chunk[i++]!;
          if (c === 0x2b || c === 0x2d) state = ST_N_ESIGN;
          else if (isDigit(c)) state = ST_N_EXP;
          else {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_LITERAL: {
          const lit = LITERALS[this.literal]!;
          if (chunk[i++] !== lit[this.literalPos]) {
            state = ST_ERROR;
            break loop;
          }
          if (++this.literalPos === lit.length) state = ST_AFTER;
          break;
        }
        case ST_START: {
          const c = chunk[i++]!;
          if (c === 0x7b) {
            stack[depth++] = CONTAINER_OBJECT;
            state = ST_OBJECT_FIRST;
          } else if (!isWhitespace(c)) {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        case ST_INIT: {
          if (chunk[i] === 0xef) {
            state = ST_BOM2;
            i++;
          } else state = ST_START;
          break;
        }
        case ST_BOM2:
        case ST_BOM3: {
          if (chunk[i++] !== (state === ST_BOM2 ? 0xbb : 0xbf)) {
            state = ST_ERROR;
            break loop;
          }
          state = state === ST_BOM2 ? ST_BOM3 : ST_START;
          break;
        }
        case ST_END: {
          if (!isWhitespace(chunk[i++]!)) {
            state = ST_ERROR;
            break loop;
          }
          break;
        }
        default:
          break loop;
      }
    }

    // A kept string that continues into the next chunk: copy its bytes out of this one.
    if (
      (state === ST_STRING || state === ST_ESCAPE || state === ST_UNICODE) &&
      this.role >= ROLE_TOP_KEY &&
      captureFrom < n
    ) {
      this.capture(chunk, captureFrom, n);
    }
    this.state = state;
    this.depth = depth;
    this.stack = stack;
  }

  finish(): ModelScan {
    // Only a complete top-level object counts; ST_ERROR and every mid-value state are not JSON.
    if (this.state !== ST_END) return { kind: 'not-json' };
    if (this.modelKeys > 1) return { kind: 'ambiguous' };
    return this.result;
  }

  private grow(): Uint8Array<ArrayBuffer> {
    const bigger = new Uint8Array(this.stack.length * 2);
    bigger.set(this.stack);
    this.stack = bigger;
    return bigger;
  }

  private capture(chunk: Buffer, from: number, to: number): void {
    const size = to - from;
    this.capturedBytes += size;
    // A key longer than any spelling of "model" is not it; stop keeping its bytes.
    if (this.role === ROLE_TOP_KEY && this.capturedBytes > MAX_MODEL_KEY_BYTES) return;
    // Copy: the caller may reuse the chunk's memory after push() returns.
    if (size > 0) this.captured.push(Buffer.from(chunk.subarray(from, to)));
  }

  private takeCaptured(): Buffer {
    const raw = this.captured.length === 1 ? this.captured[0]! : Buffer.concat(this.captured);
    this.captured = [];
    this.capturedBytes = 0;
    return raw;
  }

  private endTopKey(): void {
    const tooLong = this.capturedBytes > MAX_MODEL_KEY_BYTES;
    const raw = this.takeCaptured();
    if (tooLong || raw.length < MODEL_KEY.length) return;
    // The common spelling is compared byte for byte; only escaped spellings are decoded.
    const isModel =
      raw.length === MODEL_KEY.length
        ? raw.toString('latin1') === MODEL_KEY
        : decodeJsonString(raw) === MODEL_KEY;
    if (isModel) {
      this.modelKeys++;
      this.modelValueNext = true;
    }
  }

  /** False when the value is not valid UTF-8, which makes the whole body not JSON. */
  private endModelValue(): boolean {
    const value = decodeJsonString(this.takeCaptured());
    if (value === undefined) return false;
    this.result = value.isWellFormed() ? { kind: 'found', model: value } : { kind: 'not-string' };
    return true;
  }
}

/** Scans already-decoded bytes. */
export function scanModelBytes(chunks: readonly Buffer[]): ModelScan {
  const scanner = new ModelFieldScanner();
  for (const chunk of chunks) scanner.push(chunk);
  return scanner.finish();
}

export type DecodedBody =
  | { kind: 'ok'; body: Buffer; identity: boolean }
  | { kind: 'too-large' }
  | { kind: 'bad-encoding' };

/**
 * A whole request body given as received, decoded by its Content-Encoding. `identity` (or no
 * header) is the body as it is; `gzip`/`x-gzip`, `deflate` and `br` are decoded with node:zlib,
 * never past `maxDecodedBytes` (more is `too-large`, whatever the encoding, so the limit means the
 * same with and without compression). A list of codings (`gzip, br`) is refused as `bad-encoding`
 * like any unknown coding, as is a body that does not decode: clients do not stack codings, and
 * each extra layer would be another decompression to bound.
 */
export function decodeContent(
  chunks: readonly Buffer[],
  contentEncoding: string | undefined,
  maxDecodedBytes: number,
): DecodedBody {
  const coding = contentEncoding === undefined ? '' : contentEncoding.trim().toLowerCase();
  const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (coding === '' || coding === 'identity') {
    if (body.length > maxDecodedBytes) return { kind: 'too-large' };
    return { kind: 'ok', body, identity: true };
  }
  if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== 'deflate' && coding !== 'br') {
    return { kind: 'bad-encoding' };
  }
  // zlib wants 1 <= maxOutputLength <= buffer.constants.MAX_LENGTH; the check below the
  // decompression keeps the exact limit when it is clamped.
  const options = { maxOutputLength: Math.min(Math.max(1, maxDecodedBytes), bufferConstants.MAX_LENGTH) };
  let decoded: Buffer;
  try {
    if (coding === 'br') decoded = brotliDecompressSync(body, options);
    else if (coding === 'deflate') {
      // RFC 9110 `deflate` is zlib-wrapped, but some clients send a raw deflate stream; a zlib
      // header is two bytes with CM = 8 whose big-endian value is a multiple of 31.
      const zlibWrapped =
        body.length >= 2 && (body[0]! & 0x0f) === 8 && ((body[0]! << 8) | body[1]!) % 31 === 0;
      decoded = zlibWrapped ? inflateSync(body, options) : inflateRawSync(body, options);
    } else decoded = gunzipSync(body, options);
  } catch (err) {
    // maxOutputLength overruns throw RangeError ERR_BUFFER_TOO_LARGE; everything else is a body
    // that is not what its Content-Encoding says.
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') return { kind: 'too-large' };
    return { kind: 'bad-encoding' };
  }
  if (decoded.length > maxDecodedBytes) return { kind: 'too-large' };
  return { kind: 'ok', body: decoded, identity: false };
}

/** Scans a whole request body given as received, honouring Content-Encoding (see decodeContent). */
export function scanModel(
  chunks: readonly Buffer[],
  contentEncoding: string | undefined,
  maxDecodedBytes: number,
): BodyScan {
  const coding = contentEncoding === undefined ? '' : contentEncoding.trim().toLowerCase();
  if (coding === '' || coding === 'identity') {
    // Scanned chunk by chunk: no copy of a body that arrived in pieces.
    let total = 0;
    for (const chunk of chunks) total += chunk.length;
    if (total > maxDecodedBytes) return { kind: 'too-large' };
    return scanModelBytes(chunks);
  }
  const decoded = decodeContent(chunks, contentEncoding, maxDecodedBytes);
  if (decoded.kind !== 'ok') return decoded;
  return scanModelBytes([decoded.body]);
}
