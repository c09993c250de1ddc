/**
 * A tiny, deterministic fake inference server to put behind the gateway: the quickstart runs two
 * of them (v1 and v2), and users can start their own to try routes, splits and balancing without
 * a GPU. Node built-ins only, so it ships in the package as it is.
 *
 * It speaks just enough of two protocols for a gateway to be exercised realistically:
 *
 * - OpenAI-style chat: `POST /v1/chat/completions` (plain JSON or Server-Sent Events),
 *   `GET /v1/models`, `GET /v1/models/{id}`. The reply echoes the last user message, one word per
 *   token, and `usage` counts words.
 * - KServe v2 / Open Inference Protocol REST: `GET /v2`, `/v2/health/live`, `/v2/health/ready`,
 *   `GET /v2/models/{name}[/versions/{v}][/ready]`, `POST /v2/models/{name}[/versions/{v}]/infer`.
 *   The model returns `output0 = 2 × (element-wise sum of the inputs)`.
 *
 * plus `GET /health` for the gateway's active health checks. Every response carries
 * `x-model-server` and `x-model-revision`, so whoever calls through the gateway can see which
 * backend answered.
 *
 * Run it alone: `node src/examples/model-server.ts --port 8101 --name v1 --revision v1`.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';

export interface ModelServerOptions {
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** Port to bind; default 0 (any free port: read it from the returned `url`). */
  port?: number;
  /** Sent as `x-model-server` on every response. */
  name: string;
  /** Sent as `x-model-revision`; also the KServe model version and part of the reply text. */
  revision: string;
  /** Model names served on both protocols; default `['tiny-chat']`. */
  models?: string[];
  /** At most this many inference requests run at once, the rest wait in FIFO order; default unlimited. */
  concurrency?: number;
  /** Generation pace for chat completions; 0 (the default) generates without delay. */
  tokensPerSecond?: number;
  /** Observes inference requests (chat and infer): for logs, demos and tests. */
  onEvent?: (event: ModelServerEvent) => void;
}

/**
 * The life of one inference request: `queued` (only when it has to wait for a slot), `started`,
 * then `completed` or `aborted` (the client went away, whether it was waiting or generating).
 * `tokens` is how many completion tokens were written (chat only; 0 for infer).
 */
export interface ModelServerEvent {
  type: 'queued' | 'started' | 'completed' | 'aborted';
  id: number;
  kind: 'chat' | 'infer';
  tokens: number;
}

/** Counters over inference requests; `active` and `queued` are current, the rest cumulative. */
export interface ModelServerStats {
  active: number;
  queued: number;
  completed: number;
  aborted: number;
  /** Completion tokens written, over all chat requests. */
  tokens: number;
  /** Every HTTP request received, inference or not. */
  requests: number;
}

export interface ModelServer {
  /** `http://host:port`, with the port actually bound. */
  url: string;
  stats(): ModelServerStats;
  /**
   * Makes `/health` and the KServe readiness endpoints answer 503 (false) or 200 (true), to show
   * the gateway's active health checks taking a backend out and putting it back.
   */
  setReady(ready: boolean): void;
  /** Stops listening and drops every connection, in-flight streams included. */
  close(): Promise<void>;
}

/** Larger request bodies get 413: generous for prompts, small enough to bound memory. */
const BODY_LIMIT = 16 * 1024 * 1024;

export async function startModelServer(opts: ModelServerOptions): Promise<ModelServer> {
  const { name, revision } = opts;
  if (typeof name !== 'string' || name === '') throw new TypeError('startModelServer: name is required');
  if (typeof revision !== 'string' || revision === '') {
    throw new TypeError('startModelServer: revision is required');
  }
  const models = opts.models ?? ['tiny-chat'];
  if (models.length === 0) throw new RangeError('startModelServer: models must not be empty');
  const concurrency = opts.concurrency ?? Number.POSITIVE_INFINITY;
  if (!(concurrency >= 1) || (Number.isFinite(concurrency) && !Number.isInteger(concurrency))) {
    throw new RangeError('startModelServer: concurrency must be a positive integer');
  }
  const tokensPerSecond = opts.tokensPerSecond ?? 0;
  if (!(tokensPerSecond >= 0) || !Number.isFinite(tokensPerSecond)) {
    throw new RangeError('startModelServer: tokensPerSecond must be a finite number >= 0');
  }
  const host = opts.host ?? '127.0.0.1';
  const onEvent = opts.onEvent ?? (() => {});

  const counters: ModelServerStats = {
    active: 0,
    queued: 0,
    completed: 0,
    aborted: 0,
    tokens: 0,
    requests: 0,
  };
  let ready = true;
  let nextId = 1;
  // FIFO of requests waiting for a slot; a waiter whose client leaves removes itself.
  const waiting: (() => void)[] = [];

  /** Resolves true once a slot is held, false if the client went away while waiting. */
  function acquire(signal: AbortSignal, emitQueued: () => void): Promise<boolean> {
    // An already-aborted signal fires no 'abort' event: such a waiter would never leave the queue.
    if (signal.aborted) return Promise.resolve(false);
    if (counters.active < concurrency) {
      counters.active++;
      return Promise.resolve(true);
    }
    counters.queued++;
    emitQueued();
    return new Promise((resolve) => {
      const grant = () => {
        signal.removeEventListener('abort', leave);
        counters.queued--;
        counters.active++;
        resolve(true);
      };
      const leave = () => {
        const i = waiting.indexOf(grant);
        if (i >= 0) waiting.splice(i, 1);
        counters.queued--;
        resolve(false);
      };
      waiting.push(grant);
      signal.addEventListener('abort', leave, { once: true });
    });
  }

  function release(): void {
    counters.active--;
    // The freed slot goes straight to the oldest waiter, so a newcomer cannot overtake it.
    waiting.shift()?.();
  }

  /**
   * Runs `work` under the concurrency limit. The signal aborts when the client disconnects before
   * the response is finished, which is what stops generation.
   */
  async function inference(
    kind: ModelServerEvent['kind'],
    res: ServerResponse,
    work: (signal: AbortSignal, id: number) => Promise<number>,
  ): Promise<void> {
    const id = nextId++;
    const ac = new AbortController();
    if (res.destroyed) ac.abort();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    const emit = (type: ModelServerEvent['type'], tokens = 0) => onEvent({ type, id, kind, tokens });
    if (!(await acquire(ac.signal, () => emit('queued')))) {
      counters.aborted++;
      emit('aborted');
      return;
    }
    emit('started');
    let tokens = 0;
    try {
      tokens = await work(ac.signal, id);
    } finally {
      // Also when `work` throws: the slot must come back, and the request still ended somehow.
      release();
      if (ac.signal.aborted) counters.aborted++;
      else counters.completed++;
      emit(ac.signal.aborted ? 'aborted' : 'completed', tokens);
    }
  }

  const ctx: Context = {
    name,
    revision,
    models,
    tokensPerSecond,
    ready: () => ready,
    inference,
    countTokens: (n) => {
      counters.tokens += n;
    },
  };

  const server = createServer((req, res) => {
    counters.requests++;
    res.setHeader('x-model-server', name);
    res.setHeader('x-model-revision', revision);
    route(ctx, req, res).catch((e: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${(e as Error).message}` });
      else res.destroy();
    });
  });

  server.listen({ host, port: opts.port ?? 0 });
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  const { port } = server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    stats: () => ({ ...counters }),
    setReady: (r) => {
      ready = r;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Streams would otherwise hold close() open until they finish (or forever if paced slowly).
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

interface Context {
  name: string;
  revision: string;
  models: string[];
  tokensPerSecond: number;
  ready: () => boolean;
  inference: (
    kind: ModelServerEvent['kind'],
    res: ServerResponse,
    work: (signal: AbortSignal, id: number) => Promise<number>,
  ) => Promise<void>;
  countTokens: (n: number) => void;
}

// ---------------------------------------------------------------------------------------------
// Routing

const KSERVE_MODEL = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?\/?$/;

async function route(ctx: Context, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const method = req.method ?? 'GET';

  if (path === '/health') {
    if (!allow(req, res, 'GET', 'HEAD')) return;
    return sendJson(res, ctx.ready() ? 200 : 503, { status: ctx.ready() ? 'ok' : 'unavailable' });
  }

  if (path === '/v1/chat/completions') {
    if (method !== 'POST') return openAiError(res, 405, `Method ${method} not allowed`, { allow: 'POST' });
    return chatCompletions(ctx, req, res);
  }
  if (path === '/v1/models' || path.startsWith('/v1/models/')) {
    if (method !== 'GET') return openAiError(res, 405, `Method ${method} not allowed`, { allow: 'GET' });
    if (path === '/v1/models') {
      return sendJson(res, 200, { object: 'list', data: ctx.models.map((m) => openAiModel(ctx, m)) });
    }
    const id = decode(path.slice('/v1/models/'.length));
    if (id === undefined || !ctx.models.includes(id)) return modelNotFound(res, id ?? '');
    return sendJson(res, 200, openAiModel(ctx, id));
  }
  if (path.startsWith('/v1/')) return openAiError(res, 404, `Unknown request URL: ${method} ${path}`);

  if (path === '/v2' || path === '/v2/') {
    if (!allow(req, res, 'GET')) return;
    return sendJson(res, 200, { name: ctx.name, version: ctx.revision, extensions: [] });
  }
  if (path === '/v2/health/live') {
    if (!allow(req, res, 'GET')) return;
    return sendJson(res, 200, { live: true });
  }
  if (path === '/v2/health/ready') {
    if (!allow(req, res, 'GET')) return;
    return sendJson(res, ctx.ready() ? 200 : 503, { ready: ctx.ready() });
  }
  const m = KSERVE_MODEL.exec(path);
  if (m) {
    const model = decode(m[1]!);
    const version = m[2] === undefined ? undefined : decode(m[2]);
    if (model === undefined || (m[2] !== undefined && version === undefined)) {
      return sendJson(res, 400, { error: 'malformed percent-encoding in the path' });
    }
    if (!ctx.models.includes(model))
      return sendJson(res, 404, { error: `Model with name ${model} does not exist.` });
    if (version !== undefined && version !== ctx.revision) {
      return sendJson(res, 404, { error: `Model with name ${model} and version ${version} does not exist.` });
    }
    const action = m[3];
    if (action === '/infer') {
      if (method !== 'POST')
        return sendJson(res, 405, { error: `Method ${method} not allowed` }, { allow: 'POST' });
      return infer(ctx, model, req, res);
    }
    if (!allow(req, res, 'GET')) return;
    if (action === '/ready')
      return sendJson(res, ctx.ready() ? 200 : 503, { name: model, ready: ctx.ready() });
    return sendJson(res, 200, kserveMetadata(ctx, model));
  }
  return sendJson(res, 404, { error: `Not found: ${method} ${path}` });
}

function allow(req: IncomingMessage, res: ServerResponse, ...methods: string[]): boolean {
  if (methods.includes(req.method ?? 'GET')) return true;
  sendJson(res, 405, { error: `Method ${req.method} not allowed` }, { allow: methods.join(', ') });
  return false;
}

function decode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads and parses the body. On failure it has already answered (413 or 400, in the shape
 * `fail` gives) or the client is gone, and returns undefined.
 */
async function readJson(
  req: IncomingMessage,
  res: ServerResponse,
  fail: (status: number, message: string) => void,
): Promise<{ value: Json } | undefined> {
  const raw = await readBody(req);
  if (raw === 'gone') return undefined; // the client went away mid-body: nobody to answer
  if (raw === 'too-large') {
    // The rest of the body stays unread; closing the connection after the reply discards it.
    res.setHeader('connection', 'close');
    fail(413, `Request body larger than ${BODY_LIMIT} bytes`);
    return undefined;
  }
  try {
    return { value: JSON.parse(raw.toString('utf8')) as Json };
  } catch (e) {
    fail(400, `Could not parse the JSON body of the request: ${(e as Error).message}`);
    return undefined;
  }
}

/**
 * Collects the body with listeners rather than `for await`: leaving a `for await` early destroys
 * the request, and with it the socket the 413 has to go out on.
 */
function readBody(req: IncomingMessage): Promise<Buffer | 'too-large' | 'gone'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | 'too-large' | 'gone') => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onGone);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= BODY_LIMIT) return void chunks.push(chunk);
      req.pause();
      done('too-large');
    };
    const onEnd = () => done(Buffer.concat(chunks));
    // 'close' before 'end' means the client disconnected (no 'error' listener: Node then emits none).
    const onGone = () => done('gone');
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onGone);
  });
}

// ---------------------------------------------------------------------------------------------
// OpenAI-style chat completions

function openAiError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
  param: string | null = null,
  code: string | null = null,
): void {
  const type = status >= 500 ? 'server_error' : 'invalid_request_error';
  sendJson(res, status, { error: { message, type, param, code } }, headers);
}

function modelNotFound(res: ServerResponse, model: string): void {
  openAiError(res, 404, `The model \`${model}\` does not exist.`, {}, 'model', 'model_not_found');
}

function openAiModel(ctx: Context, id: string): JsonObject {
  // `created` is fixed so that responses stay deterministic.
  return { id, object: 'model', created: 0, owned_by: ctx.name };
}

interface ChatRequest {
  model: string;
  messages: { role: string; text: string }[];
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number | undefined;
}

/** Checks the fields this server uses, as the OpenAI API would; returns a problem or the request. */
function parseChat(body: Json): ChatRequest | { problem: string; param: string | null } {
  if (!isObject(body)) return { problem: 'The request body must be a JSON object.', param: null };
  const { model, messages, stream, stream_options: streamOptions } = body;
  if (typeof model !== 'string' || model === '') {
    return { problem: 'You must provide a model parameter (a string).', param: 'model' };
  }
  if (!Array.isArray(messages) || messages.length === 0) {
    return { problem: "'messages' must be a non-empty array.", param: 'messages' };
  }
  const parsed: ChatRequest['messages'] = [];
  for (const [i, msg] of messages.entries()) {
    const param = `messages[${i}]`;
    if (!isObject(msg) || typeof msg.role !== 'string') {
      return { problem: `${param} must be an object with a string 'role'.`, param };
    }
    const text = messageText(msg.content);
    if (text === undefined) {
      return {
        problem: `${param}.content must be a string, an array of content parts, or null.`,
        param: `${param}.content`,
      };
    }
    parsed.push({ role: msg.role, text });
  }
  if (stream !== undefined && stream !== null && typeof stream !== 'boolean') {
    return { problem: "'stream' must be a boolean.", param: 'stream' };
  }
  let includeUsage = false;
  if (streamOptions !== undefined && streamOptions !== null) {
    if (stream !== true) {
      return {
        problem: "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        param: 'stream_options',
      };
    }
    const inc = isObject(streamOptions) ? streamOptions.include_usage : undefined;
    if (!isObject(streamOptions) || (inc !== undefined && inc !== null && typeof inc !== 'boolean')) {
      return {
        problem: "'stream_options' must be an object; include_usage a boolean.",
        param: 'stream_options',
      };
    }
    includeUsage = inc === true;
  }
  let maxTokens: number | undefined;
  for (const key of ['max_tokens', 'max_completion_tokens'] as const) {
    const v = body[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      return { problem: `'${key}' must be an integer >= 1.`, param: key };
    }
    maxTokens = Math.min(maxTokens ?? v, v);
  }
  return { model, messages: parsed, stream: stream === true, includeUsage, maxTokens };
}

/** Text of a message's content; non-text parts (images, audio) contribute nothing. */
function messageText(content: Json | undefined): string | undefined {
  if (content === undefined || content === null) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const texts: string[] = [];
  for (const part of content) {
    if (!isObject(part) || typeof part.type !== 'string') return undefined;
    if (part.type === 'text') {
      if (typeof part.text !== 'string') return undefined;
      texts.push(part.text);
    }
  }
  return texts.join(' ');
}

/** "Tokens" are whitespace-separated words: simple, deterministic, and easy to check by eye. */
const words = (text: string): string[] => text.split(/\s+/).filter((w) => w !== '');

async function chatCompletions(ctx: Context, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req, res, (status, message) => openAiError(res, status, message));
  if (!body) return;
  const chat = parseChat(body.value);
  if ('problem' in chat) return openAiError(res, 400, chat.problem, {}, chat.param);
  if (!ctx.models.includes(chat.model)) return modelNotFound(res, chat.model);

  const lastUser = chat.messages.findLast((m) => m.role === 'user')?.text ?? '';
  const all = words(`[${chat.model} ${ctx.revision}] you said: ${lastUser}`);
  const tokens = chat.maxTokens === undefined ? all : all.slice(0, chat.maxTokens);
  const finishReason = tokens.length < all.length ? 'length' : 'stop';
  const promptTokens = chat.messages.reduce((n, m) => n + words(m.text).length, 0);
  const usage = (completion: number) => ({
    prompt_tokens: promptTokens,
    completion_tokens: completion,
    total_tokens: promptTokens + completion,
  });
  // Like a real server after prefill: the first token at once, each next one a pace later.
  const gap = ctx.tokensPerSecond > 0 ? 1000 / ctx.tokensPerSecond : 0;

  await ctx.inference('chat', res, async (signal, seq) => {
    // Numbered per server, so replies are reproducible run to run.
    const id = `chatcmpl-${ctx.name}-${seq}`;
    const created = Math.floor(Date.now() / 1000);

    if (!chat.stream) {
      if (gap > 0 && tokens.length > 1 && !(await pause(gap * (tokens.length - 1), signal))) return 0;
      if (signal.aborted) return 0;
      sendJson(res, 200, {
        id,
        object: 'chat.completion',
        created,
        model: chat.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: tokens.join(' ') },
            logprobs: null,
            finish_reason: finishReason,
          },
        ],
        usage: usage(tokens.length),
      });
      ctx.countTokens(tokens.length);
      return tokens.length;
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // With include_usage every chunk carries `usage: null` and one last chunk the totals, as OpenAI does.
    const chunk = (delta: JsonObject, finish: string | null): string =>
      event({
        id,
        object: 'chat.completion.chunk',
        created,
        model: chat.model,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        ...(chat.includeUsage ? { usage: null } : {}),
      });
    if (!(await send(res, chunk({ role: 'assistant', content: '' }, null), signal))) return 0;
    let sent = 0;
    for (const [i, token] of tokens.entries()) {
      if (i > 0 && gap > 0 && !(await pause(gap, signal))) return sent;
      if (!(await send(res, chunk({ content: i === 0 ? token : ` ${token}` }, null), signal))) return sent;
      sent++;
      ctx.countTokens(1);
    }
    if (!(await send(res, chunk({}, finishReason), signal))) return sent;
    if (chat.includeUsage) {
      const last = {
        id,
        object: 'chat.completion.chunk',
        created,
        model: chat.model,
        choices: [],
        usage: usage(sent),
      };
      if (!(await send(res, event(last), signal))) return sent;
    }
    if (!(await send(res, 'data: [DONE]\n\n', signal))) return sent;
    res.end();
    return sent;
  });
}

const event = (data: unknown): string => `data: ${JSON.stringify(data)}\n\n`;

/** Writes, waiting out back-pressure; false once the client has gone. */
async function send(res: ServerResponse, data: string, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (!res.write(data)) {
    try {
      await once(res, 'drain', { signal });
    } catch {
      return false;
    }
  }
  return !signal.aborted;
}

/** Waits `ms`, cut short when the client disconnects; false then. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// KServe v2 / Open Inference Protocol

/** Numeric datatypes and the values they hold; integers stay within what a JSON number keeps exactly. */
const DATATYPES: Record<string, { min: number; max: number; integer: boolean }> = {
  INT8: { min: -(2 ** 7), max: 2 ** 7 - 1, integer: true },
  INT16: { min: -(2 ** 15), max: 2 ** 15 - 1, integer: true },
  INT32: { min: -(2 ** 31), max: 2 ** 31 - 1, integer: true },
  INT64: { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER, integer: true },
  UINT8: { min: 0, max: 2 ** 8 - 1, integer: true },
  UINT16: { min: 0, max: 2 ** 16 - 1, integer: true },
  UINT32: { min: 0, max: 2 ** 32 - 1, integer: true },
  UINT64: { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true },
  FP32: { min: -3.4028234663852886e38, max: 3.4028234663852886e38, integer: false },
  FP64: { min: -Number.MAX_VALUE, max: Number.MAX_VALUE, integer: false },
};

function kserveMetadata(ctx: Context, model: string): JsonObject {
  return {
    name: model,
    versions: [ctx.revision],
    platform: 'modelgate-example',
    // -1: any length. Any numeric datatype is accepted; FP32 is what the model "expects".
    inputs: [{ name: 'input0', datatype: 'FP32', shape: [-1] }],
    outputs: [{ name: 'output0', datatype: 'FP32', shape: [-1] }],
  };
}

interface Tensor {
  name: string;
  shape: number[];
  datatype: string;
  data: number[];
}

/** KServe accepts row-major data flat or nested; nesting is only a notation, so flatten it. */
function flatten(data: Json[], into: Json[] = []): Json[] {
  for (const v of data) {
    if (Array.isArray(v)) flatten(v, into);
    else into.push(v);
  }
  return into;
}

function parseTensor(input: Json, i: number): Tensor | string {
  if (!isObject(input)) return `inputs[${i}] must be an object`;
  const { name, shape, datatype, data } = input;
  if (typeof name !== 'string' || name === '') return `inputs[${i}].name must be a non-empty string`;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    return `Input '${name}': shape must be an array of non-negative integers`;
  }
  if (typeof datatype !== 'string') return `Input '${name}': datatype must be a string`;
  const type = DATATYPES[datatype];
  if (!type) {
    return `Input '${name}': unsupported datatype ${datatype} (supported: ${Object.keys(DATATYPES).join(', ')})`;
  }
  if (!Array.isArray(data)) return `Input '${name}': data must be an array`;
  const flat = flatten(data);
  const dims = shape as number[];
  const expected = dims.reduce((a, b) => a * b, 1);
  if (flat.length !== expected) {
    return `Input '${name}': shape [${dims.join(', ')}] needs ${expected} elements, data has ${flat.length}`;
  }
  for (const v of flat) {
    if (typeof v !== 'number' || (type.integer && !Number.isInteger(v)) || v < type.min || v > type.max) {
      return `Input '${name}': ${JSON.stringify(v)} is not a valid ${datatype} value`;
    }
  }
  return { name, shape: dims, datatype, data: flat as number[] };
}

async function infer(ctx: Context, model: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const fail = (status: number, message: string) => sendJson(res, status, { error: message });
  const body = await readJson(req, res, fail);
  if (!body) return;
  const request = body.value;
  if (!isObject(request)) return fail(400, 'The request body must be a JSON object');
  const { inputs, outputs, id } = request;
  if (!Array.isArray(inputs) || inputs.length === 0) return fail(400, "'inputs' must be a non-empty array");
  const tensors: Tensor[] = [];
  for (const [i, input] of inputs.entries()) {
    const t = parseTensor(input, i);
    if (typeof t === 'string') return fail(400, t);
    tensors.push(t);
  }
  const first = tensors[0]!;
  for (const t of tensors.slice(1)) {
    if (t.datatype !== first.datatype || t.shape.join() !== first.shape.join()) {
      return fail(
        400,
        `Input '${t.name}' must match '${first.name}' (${first.datatype} [${first.shape.join(', ')}]) ` +
          'to be summed element-wise',
      );
    }
  }
  if (outputs !== undefined && outputs !== null) {
    if (!Array.isArray(outputs) || !outputs.every((o) => isObject(o) && o.name === 'output0')) {
      return fail(400, "This model has one output, 'output0'");
    }
  }
  const type = DATATYPES[first.datatype]!;
  const result = first.data.map((_, k) => {
    const sum = tensors.reduce((acc, t) => acc + t.data[k]!, 0);
    return first.datatype === 'FP32' ? Math.fround(2 * sum) : 2 * sum;
  });
  // A real runtime would wrap or saturate; refusing keeps the fake's output exact and obvious.
  if (result.some((v) => !Number.isFinite(v) || v < type.min || v > type.max)) {
    return fail(400, `output0 overflows ${first.datatype}`);
  }

  await ctx.inference('infer', res, async (signal) => {
    if (signal.aborted) return 0;
    sendJson(res, 200, {
      model_name: model,
      model_version: ctx.revision,
      ...(id === undefined ? {} : { id }),
      outputs: [{ name: 'output0', datatype: first.datatype, shape: first.shape, data: result }],
    });
    return 0;
  });
}

// ---------------------------------------------------------------------------------------------
// Standalone use

const cliHelp = `Usage: node model-server.ts [options]

A fake model server (OpenAI-style chat and KServe v2) to try ModelGate with.

Options:
  --host HOST               address to bind (default 127.0.0.1)
  --port PORT               port to bind (default 8101)
  --name NAME               x-model-server header (default model-server)
  --revision REV            x-model-revision header and model version (default v1)
  --model NAME              a model to serve; repeatable (default tiny-chat)
  --concurrency N           inference requests at once; the rest queue (default unlimited)
  --tokens-per-second N     chat generation pace; 0 = no delay (default 0)
  -h, --help                show this help`;

async function cli(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8101' },
      name: { type: 'string', default: 'model-server' },
      revision: { type: 'string', default: 'v1' },
      model: { type: 'string', multiple: true },
      concurrency: { type: 'string' },
      'tokens-per-second': { type: 'string', default: '0' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${cliHelp}\n`);
    return;
  }
  const server = await startModelServer({
    host: values.host,
    port: Number(values.port),
    name: values.name,
    revision: values.revision,
    ...(values.model ? { models: values.model } : {}),
    ...(values.concurrency === undefined ? {} : { concurrency: Number(values.concurrency) }),
    tokensPerSecond: Number(values['tokens-per-second']),
  });
  process.stdout.write(`model server ${values.name} (${values.revision}) listening on ${server.url}\n`);
  const stop = () => void server.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (import.meta.main) {
  cli(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`model-server: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
