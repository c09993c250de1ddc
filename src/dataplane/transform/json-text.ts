/**
 * JSON bodies in and out, for validation and body transforms.
 *
 * - Text: the body must be UTF-8 (RFC 8259 §8.1); a leading byte order mark is dropped, as the
 *   model scanner does. Decoding bad UTF-8 would replace bytes with U+FFFD, so what was checked
 *   would differ from what a backend reads.
 * - Numbers: a rewrite parses and serialises again, and JSON.parse turns integers beyond 2^53
 *   into the nearest double (a `seed` of 12345678901234567890 would reach the backend changed).
 *   When the text has a run of 16 digits, such integers are kept as written (JSON.rawJSON);
 *   otherwise the plain, faster parse is exact. Other numbers keep their value, not their
 *   spelling (`1.0` becomes `1`).
 */
import { isUtf8 } from 'node:buffer';

/** The body as text for JSON.parse, or undefined when it is not UTF-8. */
export function jsonText(body: Buffer): string | undefined {
  if (!isUtf8(body)) return undefined;
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf;
  return body.toString('utf8', bom ? 3 : 0);
}

type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
const INTEGER = /^-?\d+$/;

const keepBigIntegers: Reviver = (_key, value, context) => {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    const source = context?.source;
    if (source !== undefined && INTEGER.test(source)) return rawJSON(source);
  }
  return value;
};

/** Parses for a rewrite (throws SyntaxError on a body that is not JSON). */
export function parseForRewrite(text: string): unknown {
  return /\d{16}/.test(text)
    ? JSON.parse(text, keepBigIntegers as Parameters<typeof JSON.parse>[1])
    : JSON.parse(text);
}

export function serialize(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value) ?? 'null', 'utf8');
}

/** `application/json` or any `application/*+json` media type, parameters aside. */
export function isJsonType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== 'string') return false;
  const semi = contentType.indexOf(';');
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}
