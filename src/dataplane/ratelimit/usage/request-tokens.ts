/**
 * What a model request body says about the tokens it will use, for limits that count model tokens:
 * an estimate reserved at admission (reconciled later with the response's real `usage`), and the
 * body rewritten so that a streamed Chat Completions / Completions response reports its usage.
 *
 * The prompt estimate is the common rule of thumb of about 4 characters per token for English
 * text with BPE tokenizers: ceil(characters / 4), over the text the model reads. It is only an
 * estimate (code, non-Latin scripts and chat-template overhead count differently): the real count
 * replaces it once the response reports usage. Characters are UTF-16 code units.
 */

export interface TokenRequest {
  /** Tokens reserved at admission: estimated prompt tokens + the completion bound. */
  estimate: number;
  /** Estimated prompt tokens alone (used to charge an aborted stream). */
  promptEstimate: number;
  /** The request asks for a streamed response (`"stream": true`). */
  stream: boolean;
  /** The client itself asked for usage in the stream (`stream_options.include_usage: true`). */
  clientAskedUsage: boolean;
  /** The body to send upstream: the original Buffer, or a rewritten one when usage was injected. */
  body: Buffer;
  /** True when the gateway added `stream_options.include_usage` (so the usage chunk must be removed for the client). */
  injectedUsage: boolean;
}

export interface TokenRequestOptions {
  /** The completion bound when the request sets none. */
  defaultCompletionTokens: number;
}

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

const CHARS_PER_TOKEN = 4;
/** Deeper nesting than any real request has; keeps a hostile body from exhausting the stack. */
const MAX_DEPTH = 32;
const INCLUDE_USAGE = Buffer.from(',"stream_options":{"include_usage":true}');

/**
 * Reads a request body (raw bytes, identity content-encoding). Undefined when it is not a JSON
 * object; the caller then charges its fixed default.
 *
 * - Completion bound: `max_completion_tokens` ?? `max_tokens` ?? `max_output_tokens` (the first
 *   that is a non-negative integer), else `defaultCompletionTokens`; times `n` when it asks for
 *   several choices.
 * - Prompt estimate: ceil(chars / 4) over `messages[].content` (strings, or parts' `text`) and the
 *   arguments of tool calls in the history; `prompt` and `input` (strings, arrays of them,
 *   Responses API input items' text/content/arguments/output); `instructions`; the strings of
 *   `tools` / `functions` definitions. Token-id arrays (`prompt: [1, 2, 3]`) count one per id.
 *   Images, audio and files count nothing.
 * - Usage injection: for a streamed request with `messages` or `prompt` (Chat Completions,
 *   Completions) that does not already ask for `stream_options.include_usage`. Without
 *   `stream_options`, the field is spliced in before the closing brace and every other byte is
 *   kept; with one, the body is re-serialized with `stream_options: {...existing, include_usage: true}`.
 *   The Responses API always reports usage (in `response.completed`) and is left alone.
 */
export function inspectTokenRequest(body: Buffer, opts: TokenRequestOptions): TokenRequest | undefined {
  const bom = body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  // Cheap rejection before decoding a large non-JSON body.
  const first = firstNonSpace(body, bom);
  if (first === -1 || body[first] !== 0x7b /* { */) return undefined;
  let req: unknown;
  try {
    req = JSON.parse(body.toString('utf8', bom));
  } catch {
    return undefined;
  }
  if (!isObject(req)) return undefined;

  const count = { chars: 0, ids: 0 };
  if (Array.isArray(req.messages)) {
    for (const m of req.messages) if (isObject(m)) addMessage(m, count);
  }
  addText(req.prompt, count, 0);
  addText(req.input, count, 0);
  addText(req.instructions, count, 0);
  addAllStrings(req.tools, count, 0);
  addAllStrings(req.functions, count, 0);
  const promptEstimate = Math.ceil(count.chars / CHARS_PER_TOKEN) + count.ids;

  const bound =
    nonNegativeInt(req.max_completion_tokens) ??
    nonNegativeInt(req.max_tokens) ??
    nonNegativeInt(req.max_output_tokens) ??
    opts.defaultCompletionTokens;
  const choices = positiveInt(req.n) ?? 1;
  const estimate = promptEstimate + bound * choices;

  const stream = req.stream === true;
  const streamOptions = req.stream_options;
  const clientAskedUsage = isObject(streamOptions) && streamOptions.include_usage === true;
  const chatOrCompletions = req.messages !== undefined || req.prompt !== undefined;
  if (!stream || clientAskedUsage || !chatOrCompletions) {
    return { estimate, promptEstimate, stream, clientAskedUsage, body, injectedUsage: false };
  }

  let rewritten: Buffer;
  const close = lastNonSpace(body);
  if (!Object.hasOwn(req, 'stream_options') && close > first && body[close] === 0x7d /* } */) {
    // The object has members (messages or prompt), so the new one follows a comma.
    rewritten = Buffer.concat([body.subarray(0, close), INCLUDE_USAGE, body.subarray(close)]);
  } else {
    const existing = isObject(streamOptions) ? streamOptions : {};
    req.stream_options = { ...existing, include_usage: true };
    rewritten = Buffer.from(JSON.stringify(req));
  }
  return { estimate, promptEstimate, stream, clientAskedUsage, body: rewritten, injectedUsage: true };
}

function addMessage(m: JsonObject, count: { chars: number; ids: number }): void {
  addText(m.content, count, 0);
  if (Array.isArray(m.tool_calls)) {
    for (const call of m.tool_calls) {
      if (isObject(call) && isObject(call.function)) addText(call.function.arguments, count, 0);
    }
  }
}

/**
 * Text the model reads: a string; an integer (a token id); an array of those or of parts / items,
 * whose `text`, `content`, `arguments` and `output` are read (image, audio and file parts have
 * none of these as text).
 */
function addText(v: unknown, count: { chars: number; ids: number }, depth: number): void {
  if (typeof v === 'string') {
    count.chars += v.length;
  } else if (typeof v === 'number') {
    if (Number.isInteger(v)) count.ids++;
  } else if (depth < MAX_DEPTH) {
    if (Array.isArray(v)) {
      for (const item of v) addText(item, count, depth + 1);
    } else if (isObject(v)) {
      if (typeof v.text === 'string') count.chars += v.text.length;
      if (v.content !== undefined) addText(v.content, count, depth + 1);
      if (typeof v.arguments === 'string') count.chars += v.arguments.length;
      if (typeof v.output === 'string') count.chars += v.output.length;
    }
  }
}

/** Every key and string value (tool definitions: names, descriptions, JSON schemas). */
function addAllStrings(v: unknown, count: { chars: number; ids: number }, depth: number): void {
  if (typeof v === 'string') {
    count.chars += v.length;
  } else if (depth < MAX_DEPTH && typeof v === 'object' && v !== null) {
    if (Array.isArray(v)) {
      for (const item of v) addAllStrings(item, count, depth + 1);
    } else {
      for (const [key, value] of Object.entries(v)) {
        count.chars += key.length;
        addAllStrings(value, count, depth + 1);
      }
    }
  }
}

const nonNegativeInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;

const positiveInt = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 1 ? v : undefined;

const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

function firstNonSpace(body: Buffer, from: number): number {
  for (let i = from; i < body.length; i++) if (!isSpace(body[i])) return i;
  return -1;
}

function lastNonSpace(body: Buffer): number {
  for (let i = body.length - 1; i >= 0; i--) if (!isSpace(body[i])) return i;
  return -1;
}
