/**
 * Reads how many model tokens a response used, as its bytes pass through to the client.
 *
 * - A JSON (non-streamed) body is forwarded chunk by chunk unchanged; a copy of up to
 *   `maxBufferBytes` is kept and its top-level `usage` read at the end. A larger body is not kept:
 *   the `"usage"` object is looked for in its last 64 KiB, where servers put it.
 * - An event stream is framed into events (see sse-framer.ts), each forwarded as soon as it is
 *   complete. Events that may matter are parsed: a `usage` (or Responses `response.usage`,
 *   Anthropic-like `message.usage`) is exact usage, the last one winning (vLLM's
 *   `continuous_usage_stats` sends a running total on every chunk); events carrying generated
 *   text are counted, for a client that leaves before the usage arrives. With `stripUsageChunk`,
 *   the usage-only chunk (`choices: []`) that the gateway asked for is not forwarded.
 *
 * The body must be readable as sent: identity content-encoding (ask upstream for
 * `accept-encoding: identity`, or do not meter compressed responses).
 */
import { SseFramer } from './sse-framer.ts';
import {
  generatedIn,
  isObject,
  isUsageOnlyChunk,
  mayMatter,
  mergeUsage,
  TailWindow,
  toCounts,
  type UsageFields,
  usageInText,
  usageOfBody,
  usageOfEvent,
} from './usage-fields.ts';

const DEFAULT_MAX_BUFFER_BYTES = 4 * 1024 * 1024;
const TAIL_BYTES = 64 * 1024;
const USAGE_KEY = Buffer.from('"usage"');

export interface UsageMeterOptions {
  /** The response is an event stream (`text/event-stream`). */
  streaming: boolean;
  /** Remove the usage-only chunk from the stream (the gateway injected `stream_options.include_usage`). */
  stripUsageChunk: boolean;
  /** The most bytes kept of a JSON body, or held of one event. Default 4 MiB. */
  maxBufferBytes?: number;
}

export interface UsageResult {
  /** The response reported its usage; otherwise the counts are what was seen generated. */
  exact: boolean;
  /** 0 when not exact (the caller adds its own prompt estimate). */
  promptTokens: number;
  /** The reported count; when not exact, `generatedChunks`. */
  completionTokens: number;
  totalTokens: number;
  /** Streamed pieces of generated output seen (about one token each). */
  generatedChunks: number;
}

function headerText(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

/**
 * Whether an upstream answer can be metered, and how: a 2xx JSON body or event stream whose bytes
 * are readable as sent (identity content-encoding). Undefined: do not meter it.
 */
export function meterable(
  status: number,
  headers: Record<string, string | string[] | undefined>,
): { streaming: boolean } | undefined {
  if (status < 200 || status >= 300) return undefined;
  const enc = headerText(headers['content-encoding']).toLowerCase();
  if (enc !== '' && enc !== 'identity') return undefined;
  const type = headerText(headers['content-type']).toLowerCase();
  const streaming = type.startsWith('text/event-stream');
  if (!streaming && !type.includes('json')) return undefined;
  return { streaming };
}

/** Tokens a metered answer used: its reported total, else the generated pieces seen. */
export function tokensOf(r: UsageResult): number {
  return r.exact ? r.totalTokens : r.generatedChunks;
}

export class UsageMeter {
  readonly #max: number;
  readonly #framer: SseFramer | undefined;
  readonly #strip: boolean;
  #usage: UsageFields | undefined;
  #generated = 0;
  // JSON bodies: the copy kept, or past the limit the tail.
  #parts: Buffer[] = [];
  #length = 0;
  #tail: TailWindow | undefined;
  #ended = false;

  constructor(opts: UsageMeterOptions) {
    this.#max = opts.maxBufferBytes ?? DEFAULT_MAX_BUFFER_BYTES;
    this.#strip = opts.stripUsageChunk;
    if (opts.streaming) {
      this.#framer = new SseFramer({
        maxEventBytes: this.#max,
        onEvent: (text) => this.#event(text),
        onOversized: (tail) => this.#record(usageInText(tail)),
      });
    }
  }

  /**
   * Feeds one upstream body chunk; returns the bytes to forward to the client now: the same
   * Buffer when nothing is held back or removed, undefined when there is nothing to forward yet.
   */
  data(chunk: Buffer): Buffer | undefined {
    if (this.#framer) return this.#framer.push(chunk);
    if (this.#tail) {
      this.#tail.push(chunk);
    } else if (this.#length + chunk.length <= this.#max) {
      this.#parts.push(Buffer.from(chunk));
      this.#length += chunk.length;
    } else {
      this.#tail = new TailWindow(TAIL_BYTES);
      for (const p of this.#parts) this.#tail.push(p);
      this.#tail.push(chunk);
      this.#parts = [];
      this.#length = 0;
    }
    return chunk.length > 0 ? chunk : undefined;
  }

  /** Upstream ended: returns the bytes still held (a trailing partial event), if any. */
  end(): Buffer | undefined {
    if (this.#ended) return undefined;
    this.#ended = true;
    if (this.#framer) return this.#framer.end();
    if (this.#tail) {
      this.#record(usageInText(this.#tail.text()));
      this.#tail = undefined;
      return undefined;
    }
    const body = Buffer.concat(this.#parts, this.#length);
    this.#parts = [];
    this.#length = 0;
    if (body.indexOf(USAGE_KEY) === -1) return undefined;
    try {
      const bom = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
      this.#record(usageOfBody(JSON.parse(body.toString('utf8', bom))));
    } catch {
      // Not JSON: no usage.
    }
    return undefined;
  }

  /** What was learned: exact usage when the response reported it, else what was generated so far. */
  result(): UsageResult {
    const generatedChunks = this.#generated;
    if (this.#usage) return { exact: true, ...toCounts(this.#usage), generatedChunks };
    return {
      exact: false,
      promptTokens: 0,
      completionTokens: generatedChunks,
      totalTokens: generatedChunks,
      generatedChunks,
    };
  }

  #record(u: UsageFields | undefined): void {
    if (u) this.#usage = mergeUsage(this.#usage, u);
  }

  /** One complete event's text; true to drop it. */
  #event(text: string): boolean {
    if (!mayMatter(text)) return false;
    const data = eventData(text);
    if (data === undefined || data.charCodeAt(0) !== 0x7b /* { */) return false;
    let ev: unknown;
    try {
      ev = JSON.parse(data);
    } catch {
      return false;
    }
    if (!isObject(ev)) return false;
    this.#record(usageOfEvent(ev));
    this.#generated += generatedIn(ev);
    return this.#strip && isUsageOnlyChunk(ev);
  }
}

/**
 * An event's data: its `data` field lines' values (after `data:` and one optional space) joined by
 * `\n`; undefined when it has none. Other fields and comments are ignored.
 */
export function eventData(text: string): string | undefined {
  const hasCR = text.includes('\r');
  // The usual event: one `data: ...` line and the blank line.
  if (text.startsWith('data:')) {
    const first = hasCR ? lineEnd(text, 5) : text.indexOf('\n', 5);
    if (first === -1) return text.slice(text.charCodeAt(5) === 0x20 ? 6 : 5);
    if (isTerminators(text, first)) return text.slice(text.charCodeAt(5) === 0x20 ? 6 : 5, first);
  }
  let data: string | undefined;
  let pos = 0;
  while (pos < text.length) {
    let end = hasCR ? lineEnd(text, pos) : text.indexOf('\n', pos);
    if (end === -1) end = text.length;
    if (text.startsWith('data', pos) && (end === pos + 4 || text.charCodeAt(pos + 4) === 0x3a)) {
      let from = Math.min(pos + 5, end);
      if (from < end && text.charCodeAt(from) === 0x20) from++;
      const value = text.slice(from, end);
      data = data === undefined ? value : `${data}\n${value}`;
    }
    pos = end + 1;
    // CRLF is one terminator.
    if (text.charCodeAt(end) === 0x0d && text.charCodeAt(pos) === 0x0a) pos++;
  }
  return data;
}

/** Where the line starting at `from` ends: its first CR or LF, or the text's end. */
function lineEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a || c === 0x0d) return i;
  }
  return text.length;
}

function isTerminators(text: string, from: number): boolean {
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x0a && c !== 0x0d) return false;
  }
  return true;
}
