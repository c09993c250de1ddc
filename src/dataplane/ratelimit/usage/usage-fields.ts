/**
 * The fields of model responses that say how many tokens were used or generated, in the shapes
 * that OpenAI-compatible servers (vLLM, OpenAI, and the like) send them:
 *
 * - Chat Completions / Completions / Embeddings: `usage: {prompt_tokens, completion_tokens, total_tokens}`.
 * - Responses API: `usage: {input_tokens, output_tokens, total_tokens}`; when streamed, in the
 *   `response.completed` (or `response.incomplete` / `response.failed`) event's `response.usage`.
 * - Anthropic-like Messages: `usage: {input_tokens, output_tokens, cache_*_input_tokens}`; when
 *   streamed, `message_start` carries `message.usage` and `message_delta` a running `usage`
 *   that may hold only `output_tokens`.
 */

/** Token counts read from one `usage` object; a field is undefined when the object lacks it. */
export interface UsageFields {
  prompt: number | undefined;
  completion: number | undefined;
  total: number | undefined;
}

/** Final counts, with the gaps filled in. */
export interface TokenCounts {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

type JsonObject = Record<string, unknown>;

export const isObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const count = (v: unknown): number | undefined =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;

const nonEmpty = (v: unknown): boolean => typeof v === 'string' && v.length > 0;

/** Reads a usage object in any known shape; undefined when `v` is not one (null, no counts). */
export function readUsage(v: unknown): UsageFields | undefined {
  if (!isObject(v)) return undefined;
  let prompt = count(v.prompt_tokens);
  if (prompt === undefined) {
    prompt = count(v.input_tokens);
    // Anthropic-like: input_tokens excludes the tokens read from or written to the prompt cache
    // (OpenAI's prompt_tokens / input_tokens include them, counted again in *_details).
    if (prompt !== undefined) {
      prompt += (count(v.cache_creation_input_tokens) ?? 0) + (count(v.cache_read_input_tokens) ?? 0);
    }
  }
  const completion = count(v.completion_tokens) ?? count(v.output_tokens);
  const total = count(v.total_tokens);
  if (prompt === undefined && completion === undefined && total === undefined) return undefined;
  return { prompt, completion, total };
}

/**
 * A later usage report over an earlier one: its fields win, the earlier fill its gaps (an
 * Anthropic-like `message_delta` with only `output_tokens` keeps `message_start`'s input count).
 * A total is never inherited: it would not match the new parts.
 */
export function mergeUsage(prev: UsageFields | undefined, next: UsageFields): UsageFields {
  if (prev === undefined) return next;
  return {
    prompt: next.prompt ?? prev.prompt,
    completion: next.completion ?? prev.completion,
    total: next.total,
  };
}

/** Fills the gaps: total = total_tokens ?? prompt + completion; a missing part is total minus the other. */
export function toCounts(u: UsageFields): TokenCounts {
  const totalTokens = u.total ?? (u.prompt ?? 0) + (u.completion ?? 0);
  const promptTokens = u.prompt ?? (u.completion === undefined ? 0 : Math.max(0, totalTokens - u.completion));
  const completionTokens = u.completion ?? Math.max(0, totalTokens - promptTokens);
  return { promptTokens, completionTokens, totalTokens };
}

/** The usage of a whole (non-streamed) JSON response body: its top-level `usage`. */
export function usageOfBody(body: unknown): UsageFields | undefined {
  return isObject(body) ? readUsage(body.usage) : undefined;
}

const RESPONSES_FINAL = new Set(['response.completed', 'response.incomplete', 'response.failed']);

/** Responses API stream events whose `delta` string is newly generated text (about one token each). */
const RESPONSES_DELTAS = new Set([
  'response.output_text.delta',
  'response.refusal.delta',
  'response.reasoning_text.delta',
  'response.reasoning_summary_text.delta',
  'response.function_call_arguments.delta',
]);

/** The usage reported by one streamed event's JSON data, if any. */
export function usageOfEvent(ev: JsonObject): UsageFields | undefined {
  if (ev.usage !== undefined && ev.usage !== null) return readUsage(ev.usage);
  const type = ev.type;
  if (typeof type !== 'string') return undefined;
  if (RESPONSES_FINAL.has(type)) return isObject(ev.response) ? readUsage(ev.response.usage) : undefined;
  if (type === 'message_start') return isObject(ev.message) ? readUsage(ev.message.usage) : undefined;
  return undefined;
}

/**
 * The usage-only chunk that `stream_options.include_usage` adds to a Chat Completions / Completions
 * stream: `choices` is an empty array and `usage` is set. Chunks carrying both (vLLM's
 * `continuous_usage_stats`) are not usage-only.
 */
export function isUsageOnlyChunk(ev: JsonObject): boolean {
  return Array.isArray(ev.choices) && ev.choices.length === 0 && isObject(ev.usage);
}

/**
 * How many pieces of generated output a streamed event carries; in vLLM and OpenAI streams each is
 * about one token. Counted per choice with non-empty generated text (`delta.content`, reasoning,
 * refusal or tool-call arguments; Completions' `text`), per Responses API text/arguments delta
 * event, and per Anthropic-like `content_block_delta`.
 */
export function generatedIn(ev: JsonObject): number {
  const choices = ev.choices;
  if (Array.isArray(choices)) {
    let n = 0;
    for (const choice of choices) {
      if (!isObject(choice)) continue;
      if (nonEmpty(choice.text)) {
        n++;
        continue;
      }
      const d = choice.delta;
      if (
        isObject(d) &&
        (nonEmpty(d.content) ||
          nonEmpty(d.reasoning_content) ||
          nonEmpty(d.reasoning) ||
          nonEmpty(d.refusal) ||
          hasToolArguments(d.tool_calls))
      ) {
        n++;
      }
    }
    return n;
  }
  const type = ev.type;
  if (typeof type !== 'string') return 0;
  if (RESPONSES_DELTAS.has(type)) return nonEmpty(ev.delta) ? 1 : 0;
  if (type === 'content_block_delta' && isObject(ev.delta)) {
    const d = ev.delta;
    return nonEmpty(d.text) || nonEmpty(d.thinking) || nonEmpty(d.partial_json) ? 1 : 0;
  }
  return 0;
}

function hasToolArguments(calls: unknown): boolean {
  if (!Array.isArray(calls)) return false;
  for (const call of calls) {
    if (isObject(call) && isObject(call.function) && nonEmpty(call.function.arguments)) return true;
  }
  return false;
}

/**
 * The data of events worth parsing contains one of these (`"delta"`, `"usage"`, `"text"`,
 * `"response.`); anything else (`[DONE]`, comments, keep-alives) is forwarded without a JSON.parse.
 * The patterns leave out the leading quote: searching for a frequent first character is several
 * times slower, and a few more events parsed is harmless.
 */
export function mayMatter(data: string): boolean {
  return (
    data.includes('delta"') || data.includes('usage"') || data.includes('text"') || data.includes('response.')
  );
}

// `"usage"` then an object with at most one level of nested objects (the *_details).
const USAGE_IN_TEXT = /"usage"\s*:\s*(\{(?:[^{}]|\{[^{}]*\})*\})/g;

/**
 * The last `"usage": {...}` object in a piece of JSON text: the fallback for a body or event too large
 * to keep whole, applied to its tail (where servers put usage: after the generated output). A
 * literal `"usage"` followed by `:` cannot occur inside a JSON string (its quotes would be escaped),
 * so a match is a key, though possibly a nested one.
 */
export function usageInText(text: string): UsageFields | undefined {
  let last: string | undefined;
  for (const m of text.matchAll(USAGE_IN_TEXT)) last = m[1];
  if (last === undefined) return undefined;
  try {
    return readUsage(JSON.parse(last));
  } catch {
    return undefined;
  }
}

/** Keeps the last `limit` bytes of a byte stream (for usageInText). */
export class TailWindow {
  readonly #limit: number;
  #parts: Buffer[] = [];
  #length = 0;

  constructor(limit: number) {
    this.#limit = limit;
  }

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (bytes.length >= this.#limit) {
      this.#parts = [Buffer.from(bytes.subarray(bytes.length - this.#limit))];
      this.#length = this.#limit;
      return;
    }
    this.#parts.push(Buffer.from(bytes));
    this.#length += bytes.length;
    while (this.#length - this.#parts[0]!.length >= this.#limit) this.#length -= this.#parts.shift()!.length;
  }

  /** The kept bytes as latin1 text (numbers and keys are ASCII; a cut UTF-8 sequence cannot throw). */
  text(): string {
    const all = Buffer.concat(this.#parts, this.#length);
    return all.toString('latin1', Math.max(0, all.length - this.#limit));
  }

  clear(): void {
    this.#parts = [];
    this.#length = 0;
  }
}
