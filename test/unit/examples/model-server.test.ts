/**
 * The example model server over real sockets. Nothing sleeps or measures time: where a request
 * must still be running (disconnects, the queue), the server paces tokens a thousand seconds
 * apart, so the test decides when things end, and waits for the server's events.
 */
import assert from 'node:assert/strict';
import { type IncomingMessage, request } from 'node:http';
import { type TestContext, test } from 'node:test';
import {
  type ModelServer,
  type ModelServerEvent,
  type ModelServerOptions,
  startModelServer,
} from '../../../src/examples/model-server.ts';

/** Generous: only reached when something is broken, and it beats hanging forever. */
const TIMEOUT = { timeout: 60_000 };
/** One token per thousand seconds: a stream that only ends when the test ends it. */
const FOREVER = 0.001;

function recorder() {
  const events: ModelServerEvent[] = [];
  const wake: (() => void)[] = [];
  return {
    events,
    onEvent(e: ModelServerEvent) {
      events.push(e);
      for (const w of wake.splice(0)) w();
    },
    async until(ok: (events: ModelServerEvent[]) => boolean) {
      while (!ok(events)) await new Promise<void>((r) => wake.push(r));
    },
    has: (type: ModelServerEvent['type'], id: number) => (es: ModelServerEvent[]) =>
      es.some((e) => e.type === type && e.id === id),
  };
}

async function start(
  t: TestContext,
  opts: Partial<ModelServerOptions> = {},
): Promise<ModelServer & { rec: ReturnType<typeof recorder> }> {
  const rec = recorder();
  const server = await startModelServer({ name: 'srv-a', revision: 'v1', onEvent: rec.onEvent, ...opts });
  t.after(() => server.close());
  return Object.assign(server, { rec });
}

async function call(url: string, init: { method?: string; body?: unknown; raw?: string } = {}) {
  const hasBody = init.body !== undefined || init.raw !== undefined;
  const res = await fetch(url, {
    method: init.method ?? (hasBody ? 'POST' : 'GET'),
    headers: hasBody ? { 'content-type': 'application/json' } : {},
    ...(hasBody ? { body: init.raw ?? JSON.stringify(init.body) } : {}),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
  return { status: res.status, headers: res.headers, body: JSON.parse(text) as any };
}

const chat = (content: string, extra: Record<string, unknown> = {}) => ({
  model: 'tiny-chat',
  messages: [{ role: 'user', content }],
  ...extra,
});

/** A streamed request read event by event, so the test can stop reading or hang up mid-stream. */
async function openStream(url: string, body: unknown) {
  const req = request(`${url}/v1/chat/completions`, { method: 'POST' });
  req.setHeader('content-type', 'application/json');
  const response = new Promise<IncomingMessage>((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
  req.end(JSON.stringify(body));
  const res = await response;
  res.setEncoding('utf8');
  async function* events(): AsyncGenerator<string> {
    let buf = '';
    for await (const chunk of res as AsyncIterable<string>) {
      buf += chunk;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        assert.match(frame, /^data: /);
        yield frame.slice('data: '.length);
      }
    }
    assert.equal(buf, '', 'nothing after the last event');
  }
  return { req, res, events: events() };
}

// biome-ignore lint/suspicious/noExplicitAny: SSE chunks are inspected field by field
type Chunk = any;

async function readAll(events: AsyncGenerator<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const e of events) all.push(e);
  return all;
}

test(
  'a non-streamed completion echoes the last user message, counts words, names the server',
  TIMEOUT,
  async (t) => {
    const s = await start(t);
    const r = await call(`${s.url}/v1/chat/completions`, {
      body: {
        model: 'tiny-chat',
        messages: [
          { role: 'system', content: 'be brief' },
          { role: 'user', content: 'first question' },
          { role: 'assistant', content: null },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'hello   there' },
              { type: 'image_url', image_url: {} },
            ],
          },
        ],
      },
    });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-model-server'), 'srv-a');
    assert.equal(r.headers.get('x-model-revision'), 'v1');
    assert.equal(r.body.object, 'chat.completion');
    assert.equal(r.body.model, 'tiny-chat');
    assert.equal(r.body.id, 'chatcmpl-srv-a-1');
    assert.deepEqual(r.body.choices, [
      {
        index: 0,
        message: { role: 'assistant', content: '[tiny-chat v1] you said: hello there' },
        logprobs: null,
        finish_reason: 'stop',
      },
    ]);
    // Prompt: 2 + 2 + 0 + 2 words; completion: 6 words.
    assert.deepEqual(r.body.usage, { prompt_tokens: 6, completion_tokens: 6, total_tokens: 12 });
    assert.deepEqual(
      { ...s.stats(), requests: undefined },
      { active: 0, queued: 0, completed: 1, aborted: 0, tokens: 6, requests: undefined },
    );
  },
);

test('max_tokens cuts the reply and says so in finish_reason', TIMEOUT, async (t) => {
  const s = await start(t, { revision: 'v2' });
  const r = await call(`${s.url}/v1/chat/completions`, { body: chat('a b c d', { max_tokens: 3 }) });
  assert.equal(r.status, 200);
  assert.equal(r.body.choices[0].message.content, '[tiny-chat v2] you');
  assert.equal(r.body.choices[0].finish_reason, 'length');
  assert.deepEqual(r.body.usage, { prompt_tokens: 4, completion_tokens: 3, total_tokens: 7 });
});

test(
  'a streamed completion: role, one chunk per token, finish, [DONE]; no usage unless asked',
  TIMEOUT,
  async (t) => {
    const s = await start(t);
    const { res, events } = await openStream(s.url, chat('hi you', { stream: true }));
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['x-model-revision'], 'v1');
    const all = await readAll(events);
    assert.equal(all.at(-1), '[DONE]');
    const chunks: Chunk[] = all.slice(0, -1).map((e) => JSON.parse(e));
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, 'chatcmpl-srv-a-1');
      assert.equal('usage' in c, false);
    }
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
    const deltas = chunks.slice(1, -1).map((c) => c.choices[0].delta.content);
    assert.deepEqual(deltas, ['[tiny-chat', ' v1]', ' you', ' said:', ' hi', ' you']);
    for (const c of chunks.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
    assert.deepEqual(chunks.at(-1).choices[0], {
      index: 0,
      delta: {},
      logprobs: null,
      finish_reason: 'stop',
    });
    await s.rec.until(s.rec.has('completed', 1));
    assert.equal(s.rec.events.find((e) => e.type === 'completed')?.tokens, 6);
  },
);

test(
  'stream_options.include_usage adds usage: null to chunks and a final usage chunk',
  TIMEOUT,
  async (t) => {
    const s = await start(t);
    const body = chat('count me', { stream: true, stream_options: { include_usage: true }, max_tokens: 4 });
    const { events } = await openStream(s.url, body);
    const all = await readAll(events);
    assert.equal(all.at(-1), '[DONE]');
    const chunks: Chunk[] = all.slice(0, -1).map((e) => JSON.parse(e));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.deepEqual(last.usage, { prompt_tokens: 2, completion_tokens: 4, total_tokens: 6 });
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'length');
    assert.equal(chunks.slice(1, -2).length, 4, 'four token chunks');
  },
);

test(
  'a client hanging up mid-stream stops generation, and the server counts it aborted',
  TIMEOUT,
  async (t) => {
    const s = await start(t, { tokensPerSecond: FOREVER });
    const { req, events } = await openStream(s.url, chat('one two three', { stream: true }));
    assert.deepEqual(JSON.parse((await events.next()).value).choices[0].delta.role, 'assistant');
    assert.equal(JSON.parse((await events.next()).value).choices[0].delta.content, '[tiny-chat');
    // The second token is a thousand seconds away: the only way this finishes is the hang-up.
    req.destroy();
    await s.rec.until(s.rec.has('aborted', 1));
    assert.equal(s.rec.events.find((e) => e.type === 'aborted')?.tokens, 1);
    const stats = s.stats();
    assert.equal(stats.aborted, 1);
    assert.equal(stats.completed, 0);
    assert.equal(stats.active, 0);
    assert.equal(stats.tokens, 1);
  },
);

test('close() does not wait for streams in flight', TIMEOUT, async (t) => {
  const s = await start(t, { tokensPerSecond: FOREVER });
  const { res, events } = await openStream(s.url, chat('x y', { stream: true }));
  await events.next();
  const ended = new Promise<void>((resolve) => res.once('close', resolve));
  await s.close();
  await ended;
  await s.rec.until(s.rec.has('aborted', 1));
});

test('an unknown model is a 404 model_not_found, in the OpenAI error shape', TIMEOUT, async (t) => {
  const s = await start(t);
  const r = await call(`${s.url}/v1/chat/completions`, { body: { ...chat('hi'), model: 'gpt-9' } });
  assert.equal(r.status, 404);
  assert.equal(r.headers.get('x-model-server'), 'srv-a');
  assert.deepEqual(r.body, {
    error: {
      message: 'The model `gpt-9` does not exist.',
      type: 'invalid_request_error',
      param: 'model',
      code: 'model_not_found',
    },
  });
  assert.equal((await call(`${s.url}/v1/models/gpt-9`)).status, 404);
  assert.equal(s.stats().completed, 0, 'refused requests never reach the model');
});

test('bad input is a 400 invalid_request_error naming the parameter', TIMEOUT, async (t) => {
  const s = await start(t);
  const url = `${s.url}/v1/chat/completions`;
  const bad = async (init: { body?: unknown; raw?: string }, param: string | null) => {
    const r = await call(url, init);
    assert.equal(r.status, 400, JSON.stringify(init));
    assert.equal(r.body.error.type, 'invalid_request_error');
    assert.equal(r.body.error.param, param);
    assert.equal(typeof r.body.error.message, 'string');
  };
  await bad({ raw: '{"model": "tiny-chat", ' }, null);
  await bad({ body: [1, 2] }, null);
  await bad({ body: { messages: [{ role: 'user', content: 'x' }] } }, 'model');
  await bad({ body: { model: 'tiny-chat', messages: [] } }, 'messages');
  await bad({ body: { model: 'tiny-chat', messages: [{ content: 'x' }] } }, 'messages[0]');
  await bad(
    { body: { model: 'tiny-chat', messages: [{ role: 'user', content: 3 }] } },
    'messages[0].content',
  );
  await bad({ body: chat('x', { stream: 'yes' }) }, 'stream');
  await bad({ body: chat('x', { stream_options: { include_usage: true } }) }, 'stream_options');
  await bad({ body: chat('x', { max_tokens: 0 }) }, 'max_tokens');
  const get = await call(url);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
});

test('GET /v1/models lists the served models', TIMEOUT, async (t) => {
  const s = await start(t, { models: ['tiny-chat', 'tiny-embed'] });
  const r = await call(`${s.url}/v1/models`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, {
    object: 'list',
    data: [
      { id: 'tiny-chat', object: 'model', created: 0, owned_by: 'srv-a' },
      { id: 'tiny-embed', object: 'model', created: 0, owned_by: 'srv-a' },
    ],
  });
  assert.deepEqual((await call(`${s.url}/v1/models/tiny-embed`)).body.id, 'tiny-embed');
  const c = await call(`${s.url}/v1/chat/completions`, { body: { ...chat('yo'), model: 'tiny-embed' } });
  assert.equal(c.body.choices[0].message.content, '[tiny-embed v1] you said: yo');
});

test('KServe infer doubles an FP32 tensor (flat or nested data), keeping its shape', TIMEOUT, async (t) => {
  const s = await start(t);
  const r = await call(`${s.url}/v2/models/tiny-chat/infer`, {
    body: {
      id: 'req-7',
      inputs: [
        {
          name: 'input0',
          shape: [2, 2],
          datatype: 'FP32',
          data: [
            [1, 2.5],
            [-3, 0.1],
          ],
        },
      ],
    },
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('x-model-revision'), 'v1');
  assert.deepEqual(r.body, {
    model_name: 'tiny-chat',
    model_version: 'v1',
    id: 'req-7',
    // FP32 arithmetic: 0.2 is not exactly representable.
    outputs: [{ name: 'output0', datatype: 'FP32', shape: [2, 2], data: [2, 5, -6, Math.fround(0.2)] }],
  });
  const versioned = await call(`${s.url}/v2/models/tiny-chat/versions/v1/infer`, {
    body: { inputs: [{ name: 'input0', shape: [3], datatype: 'FP32', data: [1, 2, 3] }] },
  });
  assert.deepEqual(versioned.body.outputs[0].data, [2, 4, 6]);
  assert.equal('id' in versioned.body, false);
  assert.equal(s.stats().completed, 2);
});

test('KServe infer sums INT64 inputs element-wise, then doubles', TIMEOUT, async (t) => {
  const s = await start(t);
  const big = 2 ** 50;
  const r = await call(`${s.url}/v2/models/tiny-chat/infer`, {
    body: {
      inputs: [
        { name: 'a', shape: [1, 3], datatype: 'INT64', data: [1, -2, big] },
        { name: 'b', shape: [1, 3], datatype: 'INT64', data: [10, 20, 1] },
      ],
    },
  });
  assert.equal(r.status, 200);
  assert.deepEqual(r.body.outputs, [
    { name: 'output0', datatype: 'INT64', shape: [1, 3], data: [22, 36, 2 * (big + 1)] },
  ]);
});

test('KServe refuses shape mismatches and bad tensors with 400 {error}', TIMEOUT, async (t) => {
  const s = await start(t);
  const url = `${s.url}/v2/models/tiny-chat/infer`;
  const bad = async (body: unknown, pattern: RegExp) => {
    const r = await call(url, { body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.deepEqual(Object.keys(r.body), ['error']);
    assert.match(r.body.error, pattern);
  };
  const fp32 = (shape: number[], data: unknown[], name = 'input0', datatype = 'FP32') => ({
    name,
    shape,
    datatype,
    data,
  });
  await bad({ inputs: [fp32([2, 2], [1, 2, 3])] }, /shape \[2, 2\] needs 4 elements, data has 3/);
  await bad(
    {
      inputs: [
        fp32(
          [3],
          [
            [1, 2],
            [3, 4],
          ],
        ),
      ],
    },
    /needs 3 elements, data has 4/,
  );
  await bad({ inputs: [fp32([2], [1, 2]), fp32([3], [1, 2, 3], 'b')] }, /Input 'b' must match 'input0'/);
  await bad({ inputs: [fp32([2], [1, 2.5], 'i', 'INT64')] }, /2\.5 is not a valid INT64 value/);
  await bad({ inputs: [fp32([1], [200], 'i', 'INT8')] }, /200 is not a valid INT8 value/);
  await bad({ inputs: [fp32([1], [100], 'i', 'INT8')] }, /output0 overflows INT8/);
  await bad({ inputs: [fp32([1], ['x'], 'i', 'BYTES')] }, /unsupported datatype BYTES/);
  await bad({ inputs: [fp32([-1], [1])] }, /shape must be an array of non-negative integers/);
  await bad({ inputs: [] }, /'inputs' must be a non-empty array/);
  await bad({ inputs: [fp32([1], [1])], outputs: [{ name: 'logits' }] }, /one output, 'output0'/);
  const garbled = await call(url, { raw: 'nope' });
  assert.equal(garbled.status, 400);
  assert.match(garbled.body.error, /Could not parse the JSON body/);
  const unknown = await call(`${s.url}/v2/models/other/infer`, { body: { inputs: [fp32([1], [1])] } });
  assert.equal(unknown.status, 404);
  assert.deepEqual(unknown.body, { error: 'Model with name other does not exist.' });
  const version = await call(`${s.url}/v2/models/tiny-chat/versions/v9/infer`, { body: { inputs: [] } });
  assert.equal(version.status, 404);
});

test('health, readiness and model metadata; setReady(false) turns readiness to 503', TIMEOUT, async (t) => {
  const s = await start(t, { revision: 'r3' });
  assert.equal((await call(`${s.url}/health`)).status, 200);
  assert.deepEqual((await call(`${s.url}/v2/health/live`)).body, { live: true });
  assert.deepEqual((await call(`${s.url}/v2/health/ready`)).body, { ready: true });
  assert.deepEqual((await call(`${s.url}/v2/models/tiny-chat/ready`)).body, {
    name: 'tiny-chat',
    ready: true,
  });
  assert.deepEqual((await call(`${s.url}/v2`)).body, { name: 'srv-a', version: 'r3', extensions: [] });
  const meta = await call(`${s.url}/v2/models/tiny-chat`);
  assert.equal(meta.status, 200);
  assert.equal(meta.headers.get('x-model-revision'), 'r3');
  assert.deepEqual(meta.body, {
    name: 'tiny-chat',
    versions: ['r3'],
    platform: 'modelgate-example',
    inputs: [{ name: 'input0', datatype: 'FP32', shape: [-1] }],
    outputs: [{ name: 'output0', datatype: 'FP32', shape: [-1] }],
  });
  assert.equal((await call(`${s.url}/v2/models/tiny-chat/versions/r3`)).status, 200);
  assert.equal((await call(`${s.url}/v2/models/nope`)).status, 404);
  assert.equal((await call(`${s.url}/v2/models/nope/ready`)).status, 404);

  s.setReady(false);
  assert.equal((await call(`${s.url}/health`)).status, 503);
  assert.equal((await call(`${s.url}/v2/health/ready`)).status, 503);
  assert.equal((await call(`${s.url}/v2/models/tiny-chat/ready`)).status, 503);
  assert.equal((await call(`${s.url}/v2/health/live`)).status, 200, 'not ready is still live');
  s.setReady(true);
  assert.equal((await call(`${s.url}/health`)).status, 200);

  const missing = await call(`${s.url}/nowhere`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('x-model-server'), 'srv-a');
});

test(
  'with concurrency 1, requests wait their turn in FIFO order; a waiter that leaves is dropped',
  TIMEOUT,
  async (t) => {
    const s = await start(t, { concurrency: 1, tokensPerSecond: FOREVER });
    const { rec } = s;
    const infer = (n: number) => ({ inputs: [{ name: 'x', shape: [1], datatype: 'INT64', data: [n] }] });

    // 1 holds the only slot: its stream stalls after the first token.
    const holder = await openStream(s.url, chat('hold the slot', { stream: true }));
    await holder.events.next();
    // 2, 3 and 4 arrive one after another, each waiting until the previous one is queued.
    const second = call(`${s.url}/v2/models/tiny-chat/infer`, { body: infer(2) });
    await rec.until(rec.has('queued', 2));
    const leaver = request(`${s.url}/v2/models/tiny-chat/infer`, { method: 'POST' });
    leaver.on('error', () => {});
    leaver.end(JSON.stringify(infer(3)));
    await rec.until(rec.has('queued', 3));
    const fourth = call(`${s.url}/v2/models/tiny-chat/infer`, { body: infer(4) });
    await rec.until(rec.has('queued', 4));
    assert.deepEqual({ active: s.stats().active, queued: s.stats().queued }, { active: 1, queued: 3 });

    leaver.destroy();
    await rec.until(rec.has('aborted', 3));
    assert.equal(s.stats().queued, 2);

    holder.req.destroy();
    const [r2, r4] = await Promise.all([second, fourth]);
    assert.deepEqual(r2.body.outputs[0].data, [4]);
    assert.deepEqual(r4.body.outputs[0].data, [8]);
    await rec.until(rec.has('completed', 4));

    const order = rec.events.filter((e) => e.type !== 'queued').map((e) => `${e.type} ${e.id}`);
    assert.deepEqual(order, [
      'started 1',
      'aborted 3',
      'aborted 1',
      'started 2',
      'completed 2',
      'started 4',
      'completed 4',
    ]);
    assert.deepEqual(
      { ...s.stats(), requests: undefined },
      { active: 0, queued: 0, completed: 2, aborted: 2, tokens: 1, requests: undefined },
    );
  },
);

test('health and metadata bypass the concurrency limit', TIMEOUT, async (t) => {
  const s = await start(t, { concurrency: 1, tokensPerSecond: FOREVER });
  const holder = await openStream(s.url, chat('busy', { stream: true }));
  await holder.events.next();
  assert.equal((await call(`${s.url}/health`)).status, 200);
  assert.equal((await call(`${s.url}/v1/models`)).status, 200);
  assert.equal((await call(`${s.url}/v2/models/tiny-chat/ready`)).status, 200);
  assert.equal(s.stats().queued, 0);
  holder.req.destroy();
});

test('options are checked', async () => {
  await assert.rejects(startModelServer({ name: '', revision: 'v1' }), /name is required/);
  await assert.rejects(startModelServer({ name: 'a', revision: '' }), /revision is required/);
  await assert.rejects(startModelServer({ name: 'a', revision: 'v1', concurrency: 0 }), /concurrency/);
  await assert.rejects(startModelServer({ name: 'a', revision: 'v1', concurrency: 1.5 }), /concurrency/);
  await assert.rejects(
    startModelServer({ name: 'a', revision: 'v1', tokensPerSecond: -1 }),
    /tokensPerSecond/,
  );
  await assert.rejects(startModelServer({ name: 'a', revision: 'v1', models: [] }), /models/);
});
