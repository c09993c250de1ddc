import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  eventData,
  UsageMeter,
  type UsageResult,
} from '../../../../../src/dataplane/ratelimit/usage/usage-meter.ts';

/** Feeds the chunks, then ends; returns every forwarded byte and the result. */
function run(
  chunks: Buffer[],
  opts: { streaming: boolean; stripUsageChunk: boolean; maxBufferBytes?: number },
): { out: Buffer; result: UsageResult } {
  const meter = new UsageMeter(opts);
  const out: Buffer[] = [];
  for (const c of chunks) {
    const o = meter.data(c);
    if (o !== undefined) out.push(o);
  }
  const rest = meter.end();
  if (rest !== undefined) out.push(rest);
  return { out: Buffer.concat(out), result: meter.result() };
}

const split = (b: Buffer, at: number): Buffer[] => [b.subarray(0, at), b.subarray(at)];
const splits = (b: Buffer, a: number, c: number): Buffer[] => [
  b.subarray(0, a),
  b.subarray(a, c),
  b.subarray(c),
];
const bytes = (s: string): Buffer => Buffer.from(s);
const exact = (p: number, c: number, t: number, g = 0): UsageResult => ({
  exact: true,
  promptTokens: p,
  completionTokens: c,
  totalTokens: t,
  generatedChunks: g,
});

const JSON_OPTS = { streaming: false, stripUsageChunk: false };
const SSE = { streaming: true, stripUsageChunk: false };
const SSE_STRIP = { streaming: true, stripUsageChunk: true };

// --- JSON bodies -------------------------------------------------------------------------------

const chatBody = bytes(
  JSON.stringify({
    id: 'chatcmpl-1',
    object: 'chat.completion',
    choices: [
      { index: 0, message: { role: 'assistant', content: 'Hi "usage" there' }, finish_reason: 'stop' },
    ],
    usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: null },
  }),
);

test('JSON: OpenAI, Responses API and Anthropic-like usage shapes', () => {
  assert.deepEqual(run([chatBody], JSON_OPTS).result, exact(12, 5, 17));
  const responses = bytes(
    JSON.stringify({
      object: 'response',
      output: [{ type: 'message', content: [{ type: 'output_text', text: 'hello' }] }],
      usage: {
        input_tokens: 30,
        input_tokens_details: { cached_tokens: 10 },
        output_tokens: 7,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: 37,
      },
    }),
  );
  assert.deepEqual(run([responses], JSON_OPTS).result, exact(30, 7, 37));
  const anthropic = bytes('{"type":"message","content":[],"usage":{"input_tokens":9,"output_tokens":4}}');
  assert.deepEqual(run([anthropic], JSON_OPTS).result, exact(9, 4, 13));
  // Anthropic's input_tokens excludes the prompt cache.
  const cached = bytes(
    '{"usage":{"input_tokens":9,"cache_read_input_tokens":100,"cache_creation_input_tokens":1,"output_tokens":4}}',
  );
  assert.deepEqual(run([cached], JSON_OPTS).result, exact(110, 4, 114));
  // total_tokens missing: prompt + completion; embeddings: no completion.
  assert.deepEqual(
    run([bytes('{"usage":{"prompt_tokens":3,"completion_tokens":2}}')], JSON_OPTS).result,
    exact(3, 2, 5),
  );
  assert.deepEqual(
    run([bytes('{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}')], JSON_OPTS).result,
    exact(8, 0, 8),
  );
  // A UTF-8 BOM and surrounding whitespace.
  assert.deepEqual(
    run([Buffer.concat([bytes('\ufeff\n'), chatBody, bytes('\n')])], JSON_OPTS).result,
    exact(12, 5, 17),
  );
});

test('JSON: no usage, null usage, bad counts, not JSON: not exact, nothing generated', () => {
  const none = { exact: false, promptTokens: 0, completionTokens: 0, totalTokens: 0, generatedChunks: 0 };
  for (const body of [
    '{"choices":[]}',
    '{"usage":null}',
    '{"usage":{"prompt_tokens":-1,"completion_tokens":"5"}}',
    '<html>"usage"</html>',
    '',
    '{"usage":{"prompt_tokens":1,',
  ]) {
    assert.deepEqual(run([bytes(body)], JSON_OPTS).result, none, body);
  }
});

test('JSON: split at every byte offset, every chunk is forwarded unchanged at once', () => {
  for (let a = 0; a <= chatBody.length; a++) {
    const meter = new UsageMeter(JSON_OPTS);
    const [x, y] = split(chatBody, a) as [Buffer, Buffer];
    const ox = meter.data(x);
    const oy = meter.data(y);
    // The same Buffer, not a copy (empty chunks forward nothing).
    assert.equal(ox, x.length > 0 ? x : undefined);
    assert.equal(oy, y.length > 0 ? y : undefined);
    assert.equal(meter.end(), undefined);
    assert.deepEqual(meter.result(), exact(12, 5, 17), `split at ${a}`);
  }
  for (let a = 0; a <= chatBody.length; a += 7) {
    for (let c = a; c <= chatBody.length; c += 5) {
      assert.deepEqual(run(splits(chatBody, a, c), JSON_OPTS).result, exact(12, 5, 17));
    }
  }
});

test('JSON: a body over maxBufferBytes is not kept; usage is found in its tail', () => {
  const content = 'x'.repeat(200_000);
  const body = bytes(
    JSON.stringify({
      choices: [{ message: { content } }],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3, completion_tokens_details: { a: 1 } },
    }),
  );
  const chunks: Buffer[] = [];
  for (let i = 0; i < body.length; i += 16_384) chunks.push(body.subarray(i, i + 16_384));
  const r = run(chunks, { ...JSON_OPTS, maxBufferBytes: 50_000 });
  assert.deepEqual(r.out, body);
  assert.deepEqual(r.result, exact(1, 2, 3));
  // Usage only at the start of a too-large body is out of reach.
  const early = bytes(JSON.stringify({ usage: { total_tokens: 3 }, choices: [{ message: { content } }] }));
  assert.equal(run([early], { ...JSON_OPTS, maxBufferBytes: 50_000 }).result.exact, false);
});

// --- Event streams -----------------------------------------------------------------------------

const chunk = (delta: object, finish: string | null = null, extra: object = {}): string =>
  `data: ${JSON.stringify({
    id: 'chatcmpl-abc',
    object: 'chat.completion.chunk',
    created: 1730000000,
    model: 'gpt-4o-mini',
    system_fingerprint: 'fp_1',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...extra,
  })}\n\n`;

const usageEvent = `data: ${JSON.stringify({
  id: 'chatcmpl-abc',
  object: 'chat.completion.chunk',
  created: 1730000000,
  model: 'gpt-4o-mini',
  system_fingerprint: 'fp_1',
  choices: [],
  usage: {
    prompt_tokens: 19,
    completion_tokens: 3,
    total_tokens: 22,
    prompt_tokens_details: { cached_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0 },
  },
})}\n\n`;

/** An OpenAI Chat Completions stream with include_usage: every chunk has `usage: null`. */
const openAiEvents = [
  chunk({ role: 'assistant', content: '', refusal: null }, null, { usage: null }),
  chunk({ content: 'Hello' }, null, { usage: null }),
  chunk({ content: ' wor' }, null, { usage: null }),
  chunk({ content: 'ld "usage": {' }, null, { usage: null }),
  chunk({}, 'stop', { usage: null }),
  usageEvent,
  'data: [DONE]\n\n',
];
const openAi = bytes(openAiEvents.join(''));
const openAiWithoutUsage = bytes(openAiEvents.filter((e) => e !== usageEvent).join(''));

test('SSE: OpenAI transcript split at every byte offset, usage chunk stripped or kept', () => {
  for (let a = 0; a <= openAi.length; a++) {
    const stripped = run(split(openAi, a), SSE_STRIP);
    assert.deepEqual(stripped.out.toString(), openAiWithoutUsage.toString(), `strip, split at ${a}`);
    assert.deepEqual(stripped.result, exact(19, 3, 22, 3));
    const kept = run(split(openAi, a), SSE);
    assert.deepEqual(kept.out, openAi, `keep, split at ${a}`);
    assert.deepEqual(kept.result, exact(19, 3, 22, 3));
  }
});

test('SSE: three-way splits and byte-by-byte feeding', () => {
  for (let a = 0; a <= openAi.length; a += 3) {
    for (let c = a; c <= openAi.length; c += 11) {
      assert.deepEqual(run(splits(openAi, a, c), SSE_STRIP).out, openAiWithoutUsage, `${a}/${c}`);
    }
  }
  const oneByOne = [...openAi].map((b) => Buffer.from([b]));
  const r = run(oneByOne, SSE_STRIP);
  assert.deepEqual(r.out, openAiWithoutUsage);
  assert.deepEqual(r.result, exact(19, 3, 22, 3));
});

test('SSE: whole events are forwarded at once, the same Buffer when nothing is held or removed', () => {
  const meter = new UsageMeter(SSE_STRIP);
  const first = bytes(openAiEvents.slice(0, 3).join(''));
  assert.equal(meter.data(first), first);
  // A partial event is held until its end arrives.
  const e = bytes(openAiEvents[3]!);
  assert.equal(meter.data(e.subarray(0, 40)), undefined);
  assert.deepEqual(meter.data(e.subarray(40)), e);
  // The finish chunk is forwarded, the usage chunk after it removed; the usage chunk alone: nothing.
  assert.equal(meter.data(bytes(openAiEvents[4]! + usageEvent))?.toString(), openAiEvents[4]);
  assert.equal(meter.data(bytes(usageEvent)), undefined);
  const done = bytes('data: [DONE]\n\n');
  assert.equal(meter.data(done), done);
  assert.equal(meter.end(), undefined);
  assert.deepEqual(meter.result(), exact(19, 3, 22, 3));
});

const crlf = (b: Buffer, eol: string): Buffer => bytes(b.toString().replaceAll('\n', eol));

test('SSE: CRLF and CR framing, split at every byte offset', () => {
  for (const eol of ['\r\n', '\r']) {
    const all = crlf(openAi, eol);
    const expected = crlf(openAiWithoutUsage, eol);
    for (let a = 0; a <= all.length; a++) {
      const r = run(split(all, a), SSE_STRIP);
      assert.deepEqual(r.out, expected, `${JSON.stringify(eol)} split at ${a}`);
      assert.deepEqual(r.result, exact(19, 3, 22, 3));
      assert.deepEqual(run(split(all, a), SSE).out, all);
    }
    const oneByOne = run(
      [...all].map((b) => Buffer.from([b])),
      SSE_STRIP,
    );
    assert.deepEqual(oneByOne.out, expected);
  }
});

test('SSE: multi-line data, other fields, comments, a BOM and mixed line ends', () => {
  const usage = '{"choices":[],\n"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}';
  const text =
    '\ufeff: keep-alive\n\n' +
    'event: message\nid: 7\ndata: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n' +
    `retry: 100\ndata:${usage.split('\n')[0]}\r\ndata: ${usage.split('\n')[1]}\n\r` +
    'data: [DONE]\n\n';
  const expected =
    '\ufeff: keep-alive\n\nevent: message\nid: 7\ndata: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\ndata: [DONE]\n\n';
  const all = bytes(text);
  for (let a = 0; a <= all.length; a++) {
    const r = run(split(all, a), SSE_STRIP);
    assert.equal(r.out.toString(), expected, `split at ${a}`);
    assert.deepEqual(r.result, exact(2, 1, 3, 1));
  }
});

test('eventData: data lines joined, one leading space removed', () => {
  assert.equal(eventData('data: {"a":1}\n\n'), '{"a":1}');
  assert.equal(eventData('data:{"a":1}\r\n\r\n'), '{"a":1}');
  assert.equal(eventData('data:  x\n\n'), ' x');
  assert.equal(eventData('event: e\ndata: a\ndata\ndata:b\r\n\r\n'), 'a\n\nb');
  assert.equal(eventData(': comment\n\n'), undefined);
  assert.equal(eventData('\ndata: x\n\n'), 'x');
  assert.equal(eventData('dataX: y\n\n'), undefined);
  assert.equal(eventData('data: x'), 'x');
});

test('SSE: vLLM continuous usage stats: the last usage wins, nothing stripped', () => {
  const u = (p: number, c: number) => ({
    usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c },
  });
  const text = [
    chunk({ role: 'assistant', content: '' }, null, u(10, 0)),
    chunk({ content: 'One' }, null, u(10, 1)),
    chunk({ content: ' two' }, null, u(10, 2)),
    chunk({ content: '' }, 'stop', u(10, 2)),
    'data: [DONE]\n\n',
  ].join('');
  const all = bytes(text);
  for (let a = 0; a <= all.length; a += 2) {
    const r = run(split(all, a), SSE_STRIP);
    assert.deepEqual(r.out, all);
    assert.deepEqual(r.result, exact(10, 2, 12, 2));
  }
  // With include_usage as well, the final usage-only chunk is stripped and wins.
  const final = bytes(text.replace('data: [DONE]', usageEvent + 'data: [DONE]'));
  const r = run([final], SSE_STRIP);
  assert.deepEqual(r.out, all);
  assert.deepEqual(r.result, exact(19, 3, 22, 2));
});

test('SSE: Completions (text) stream', () => {
  const text =
    'data: {"object":"text_completion","choices":[{"index":0,"text":"Once","finish_reason":null}],"usage":null}\n\n' +
    'data: {"object":"text_completion","choices":[{"index":0,"text":" upon","finish_reason":"length"}],"usage":null}\n\n' +
    'data: {"object":"text_completion","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}\n\n' +
    'data: [DONE]\n\n';
  const r = run([bytes(text)], SSE_STRIP);
  assert.equal(r.out.toString(), text.replace(/data: \{[^\n]*"choices":\[\],[^\n]*\n\n/, ''));
  assert.deepEqual(r.result, exact(4, 2, 6, 2));
});

const responsesStream = [
  'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","status":"in_progress","usage":null}}\n\n',
  'event: response.output_item.added\ndata: {"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"type":"message","content":[]}}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi"}\n\n',
  'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":3,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" there"}\n\n',
  'event: response.output_text.done\ndata: {"type":"response.output_text.done","sequence_number":4,"text":"Hi there"}\n\n',
  'event: response.completed\ndata: {"type":"response.completed","sequence_number":5,"response":{"id":"resp_1","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hi there"}]}],"usage":{"input_tokens":11,"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":13}}}\n\n',
].join('');

test('SSE: Responses API stream: usage from response.completed, deltas counted, nothing stripped', () => {
  const all = bytes(responsesStream);
  for (let a = 0; a <= all.length; a += 3) {
    const r = run(split(all, a), SSE_STRIP);
    assert.deepEqual(r.out, all);
    assert.deepEqual(r.result, exact(11, 2, 13, 2));
  }
});

test('SSE: Anthropic-like stream: message_start input, message_delta output', () => {
  const text =
    'event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":25,"output_tokens":1}}}\n\n' +
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n' +
    'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}\n\n' +
    'event: message_stop\ndata: {"type":"message_stop"}\n\n';
  const r = run([bytes(text)], SSE_STRIP);
  assert.equal(r.out.toString(), text);
  assert.deepEqual(r.result, exact(25, 15, 40, 1));
});

test('SSE: abort mid-stream: not exact, completion = generated chunks', () => {
  const meter = new UsageMeter(SSE_STRIP);
  const partial = bytes(openAiEvents.slice(0, 3).join('') + openAiEvents[3]!.slice(0, 50));
  const out = meter.data(partial);
  // The content chunks so far, the role chunk (empty content) not counted; the partial 4th held.
  assert.equal(out?.toString(), openAiEvents.slice(0, 3).join(''));
  assert.deepEqual(meter.result(), {
    exact: false,
    promptTokens: 0,
    completionTokens: 2,
    totalTokens: 2,
    generatedChunks: 2,
  });
});

test('SSE: tool calls and reasoning deltas count as generated, one per choice', () => {
  const text =
    chunk({ reasoning_content: 'think' }) +
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"a"' } }] }) +
    chunk({
      tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'f', arguments: '' } }],
    }) +
    'data: {"choices":[{"index":0,"delta":{"content":"x"}},{"index":1,"delta":{"content":"y"}}]}\n\n';
  assert.equal(run([bytes(text)], SSE).result.generatedChunks, 4);
});

test('SSE: a trailing event without its blank line is forwarded (or stripped) at end', () => {
  const text = openAiEvents.slice(0, 5).join('') + usageEvent.trimEnd();
  const r = run([bytes(text)], SSE_STRIP);
  assert.equal(r.out.toString(), openAiEvents.slice(0, 5).join(''));
  assert.deepEqual(r.result, exact(19, 3, 22, 3));
  const partial = 'data: {"choices":[{"delta":{"content":"x"';
  const meter = new UsageMeter(SSE_STRIP);
  assert.equal(meter.data(bytes(partial)), undefined);
  assert.equal(meter.end()?.toString(), partial);
});

test('SSE: an event over maxBufferBytes is passed through unheld; usage read from its tail', () => {
  const big = `data: ${JSON.stringify({
    type: 'response.completed',
    response: {
      output: [{ text: 'y'.repeat(100_000) }],
      usage: { input_tokens: 5, output_tokens: 6, total_tokens: 11 },
    },
  })}\n\n`;
  const all = bytes(openAiEvents.slice(0, 2).join('') + big + 'data: [DONE]\n\n');
  const meter = new UsageMeter({ ...SSE_STRIP, maxBufferBytes: 10_000 });
  const out: Buffer[] = [];
  let maxLag = 0;
  let fed = 0;
  for (let i = 0; i < all.length; i += 4096) {
    const c = all.subarray(i, i + 4096);
    fed += c.length;
    const o = meter.data(c);
    if (o) out.push(o);
    maxLag = Math.max(maxLag, fed - Buffer.concat(out).length);
  }
  const rest = meter.end();
  if (rest) out.push(rest);
  assert.deepEqual(Buffer.concat(out), all);
  // Never more than the limit is held back.
  assert.ok(maxLag <= 10_000, `held ${maxLag}`);
  assert.deepEqual(meter.result(), exact(5, 6, 11, 1));
  // Arriving complete in one chunk, it is not parsed either, but its usage still is found.
  const one = run([all], { ...SSE_STRIP, maxBufferBytes: 10_000 });
  assert.deepEqual(one.out, all);
  assert.deepEqual(one.result, exact(5, 6, 11, 1));
});

test('SSE: empty chunks and end() twice', () => {
  const meter = new UsageMeter(SSE_STRIP);
  assert.equal(meter.data(Buffer.alloc(0)), undefined);
  assert.equal(meter.end(), undefined);
  assert.equal(meter.end(), undefined);
  assert.deepEqual(meter.result(), {
    exact: false,
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    generatedChunks: 0,
  });
});
