/**
 * Response body operations: a BodyTransformer that holds a JSON answer (up to the rule's bound),
 * then rewrites it at the end. Which answers qualify is decided from the head, before a byte is
 * held: 2xx (not 204), a JSON media type, no Content-Encoding (the filter asks upstream for
 * identity), and a declared length within the bound. An event stream, a compressed answer or one
 * declared too large passes through as it comes; one without a declared length that grows past
 * the bound is released as it is; one that does not parse is forwarded unchanged. Each of these is
 * counted (modelgate_transform_skipped_total), since the rule's author expected a rewrite.
 *
 * The client gets no Content-Length for a rewritten answer (the head leaves before the body is
 * complete): HTTP/1.1 answers are chunked.
 */
import type { CompiledBodyOp } from '../../routing-table/types.ts';
import type { BodyTransformer } from '../filters/filter.ts';
import { applyBodyOps } from './body-ops.ts';
import { isJsonType, jsonText, parseForRewrite, serialize } from './json-text.ts';

export type SkipReason = 'streamed' | 'too_large' | 'not_json' | 'encoded';

/** Why an answer with this head cannot be rewritten, or undefined when it can. */
export function unrewritable(
  headers: Record<string, string | string[] | undefined>,
  maxBytes: number,
): SkipReason | undefined {
  const type = headers['content-type'];
  if (typeof type === 'string' && type.toLowerCase().startsWith('text/event-stream')) return 'streamed';
  if (!isJsonType(type)) return 'not_json';
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && String(encoding).toLowerCase() !== 'identity') return 'encoded';
  const length = headers['content-length'];
  if (length !== undefined && Number(length) > maxBytes) return 'too_large';
  return undefined;
}

export class JsonResponseRewrite implements BodyTransformer {
  readonly changesLength = true;
  private readonly ops: readonly CompiledBodyOp[];
  private readonly maxBytes: number;
  private readonly skipped: (reason: SkipReason) => void;
  private chunks: Buffer[] = [];
  private size = 0;
  /** Past the bound: everything from here on goes straight through. */
  private passing = false;

  constructor(ops: readonly CompiledBodyOp[], maxBytes: number, skipped: (reason: SkipReason) => void) {
    this.ops = ops;
    this.maxBytes = maxBytes;
    this.skipped = skipped;
  }

  data(chunk: Buffer): Buffer | undefined {
    if (this.passing) return chunk;
    this.size += chunk.length;
    if (this.size <= this.maxBytes) {
      this.chunks.push(chunk);
      return undefined;
    }
    this.passing = true;
    this.skipped('too_large');
    const held = this.chunks;
    this.chunks = [];
    held.push(chunk);
    return held.length === 1 ? chunk : Buffer.concat(held);
  }

  end(): Buffer | undefined {
    if (this.passing) return undefined;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    const rewritten = rewriteJson(body, this.ops);
    if (rewritten === undefined) {
      this.skipped('not_json');
      return body;
    }
    return rewritten;
  }
}

/**
 * `body` with `ops` applied: the same buffer when no operation changed anything, undefined when
 * it is not JSON.
 */
export function rewriteJson(body: Buffer, ops: readonly CompiledBodyOp[]): Buffer | undefined {
  const text = jsonText(body);
  if (text === undefined) return undefined;
  let doc: unknown;
  try {
    doc = parseForRewrite(text);
  } catch {
    return undefined;
  }
  const result = applyBodyOps(doc, ops);
  return result.changed ? serialize(result.doc) : body;
}
