/**
 * Response compression at the gateway, for routes that ask for it: br or gzip as the client
 * prefers, only for responses the upstream sent uncompressed, of a compressible type, and never for
 * event streams (each event must reach the client when it is written; a compressor would hold it).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type BrotliCompress, constants, createBrotliCompress, createGzip, type Gzip } from 'node:zlib';

const COMPRESSIBLE = /^(application\/(json|.*\+json|x-ndjson|xml|javascript)|text\/(?!event-stream))/i;

export type Coding = 'br' | 'gzip';

/** The coding to use for this response, or undefined to send it as it is. */
export function chooseCoding(
  acceptEncoding: string | undefined,
  upstream: Record<string, string | string[] | undefined>,
  minBytes: number,
  method: string | undefined,
): Coding | undefined {
  if (!acceptEncoding || method === 'HEAD') return undefined;
  if (upstream['content-encoding'] !== undefined) return undefined;
  const type = upstream['content-type'];
  if (typeof type !== 'string' || !COMPRESSIBLE.test(type)) return undefined;
  const length = upstream['content-length'];
  if (typeof length === 'string' && Number(length) < minBytes) return undefined;
  const accepted = parseAccept(acceptEncoding);
  if ((accepted.get('br') ?? 0) > 0 && (accepted.get('br') ?? 0) >= (accepted.get('gzip') ?? 0)) return 'br';
  if ((accepted.get('gzip') ?? 0) > 0) return 'gzip';
  return undefined;
}

function parseAccept(header: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    let q = 1;
    for (const p of params) {
      const m = /^\s*q=([0-9.]+)\s*$/.exec(p);
      if (m) q = Number(m[1]);
    }
    out.set(name, q);
  }
  if (out.has('*')) {
    for (const c of ['br', 'gzip']) if (!out.has(c)) out.set(c, out.get('*')!);
  }
  return out;
}

/** A compressor tuned for latency (inference responses are read as they arrive). */
export function createCompressor(coding: Coding): Gzip | BrotliCompress {
  return coding === 'br'
    ? createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } })
    : createGzip({ level: 5 });
}

/** Response headers for a compressed body: the length is unknown now, and caches must vary. */
export function compressedHeaders(headers: Record<string, string | string[]>, coding: Coding): void {
  headers['content-encoding'] = coding;
  delete headers['content-length'];
  const vary = headers.vary;
  headers.vary = vary
    ? `${Array.isArray(vary) ? vary.join(', ') : vary}, Accept-Encoding`
    : 'Accept-Encoding';
}

export type { IncomingHttpHeaders };
