import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  inspectTokenRequest,
  type TokenRequest,
} from '../../../../../src/dataplane/ratelimit/usage/request-tokens.ts';

const OPTS = { defaultCompletionTokens: 100 };
const inspect = (body: unknown): TokenRequest | undefined =>
  inspectTokenRequest(Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), OPTS);
const ceil4 = (chars: number) => Math.ceil(chars / 4);

test('prompt estimate: chat messages, string content and text parts (images count nothing)', () => {
  const r = inspect({
    model: 'm',
    messages: [
      { role: 'system', content: 'You are terse.' }, // 14
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Describe this:' }, // 14
          { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(10_000)}` } },
          { type: 'text', text: 'briefly' }, // 7
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'c', function: { name: 'f', arguments: '{"x":1}' } }],
      }, // 7
      { role: 'tool', tool_call_id: 'c', content: 'ok' }, // 2
    ],
  });
  assert.equal(r?.promptEstimate, ceil4(14 + 14 + 7 + 7 + 2));
  assert.equal(r?.promptEstimate, 11);
  assert.equal(r?.estimate, 11 + 100);
});

test('prompt estimate: Completions prompt as a string, an array of strings, token ids', () => {
  assert.equal(inspect({ prompt: 'Once upon a time' })?.promptEstimate, 4); // 16 chars
  assert.equal(inspect({ prompt: 'Once upon a time!' })?.promptEstimate, 5); // 17 chars, rounded up
  assert.equal(inspect({ prompt: ['abcd', 'efgh', 'ij'] })?.promptEstimate, 3); // 10 chars
  assert.equal(inspect({ prompt: [1, 2, 3, 4, 5] })?.promptEstimate, 5); // one per token id
  assert.equal(inspect({ prompt: '' })?.promptEstimate, 0);
});

test('prompt estimate: Responses API input (string, items) with instructions; embeddings input', () => {
  assert.equal(inspect({ model: 'm', input: 'Tell me a joke.' })?.promptEstimate, 4); // 15
  const items = inspect({
    model: 'm',
    instructions: 'Be kind.', // 8
    input: [
      { role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] }, // 11
      { type: 'input_image', image_url: 'https://example.com/x.png' },
      { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' }, // 2
      { type: 'function_call_output', call_id: 'c', output: 'done' }, // 4
      { role: 'assistant', content: 'Hi' }, // 2
    ],
    max_output_tokens: 50,
  });
  assert.equal(items?.promptEstimate, ceil4(8 + 11 + 2 + 4 + 2));
  assert.equal(items?.estimate, 7 + 50);
  assert.equal(inspect({ model: 'e', input: ['first text', 'second'] })?.promptEstimate, 4); // 16
});

test('prompt estimate: tool definitions count their keys and strings', () => {
  const tools = [{ type: 'function', function: { name: 'get', parameters: { type: 'object' } } }];
  // type function function name get parameters type object: 4+8+8+4+3+10+4+6 = 47
  const r = inspect({ messages: [{ role: 'user', content: 'abcd' }], tools });
  assert.equal(r?.promptEstimate, ceil4(4 + 47));
});

test('completion bound: max_completion_tokens ?? max_tokens ?? max_output_tokens ?? default', () => {
  const m = [{ role: 'user', content: 'abcd' }]; // 1 token
  assert.equal(inspect({ messages: m, max_completion_tokens: 10, max_tokens: 20 })?.estimate, 11);
  assert.equal(inspect({ messages: m, max_tokens: 20 })?.estimate, 21);
  assert.equal(inspect({ input: 'abcd', max_output_tokens: 30 })?.estimate, 31);
  assert.equal(inspect({ messages: m })?.estimate, 101);
  assert.equal(inspect({ messages: m, max_tokens: 0 })?.estimate, 1);
  // Not a non-negative integer: the next field, then the default.
  assert.equal(inspect({ messages: m, max_completion_tokens: null, max_tokens: 20 })?.estimate, 21);
  assert.equal(inspect({ messages: m, max_completion_tokens: -1, max_tokens: 2.5 })?.estimate, 101);
  assert.equal(inspect({ messages: m, max_tokens: '20' })?.estimate, 101);
  // Several choices: the bound for each.
  assert.equal(inspect({ messages: m, max_tokens: 20, n: 3 })?.estimate, 61);
  assert.equal(inspect({ messages: m, max_tokens: 20, n: 0 })?.estimate, 21);
});

test('stream usage injection: spliced in, every other byte kept', () => {
  const original =
    '{"model":"m",\n "messages":[{"role":"user","content":"hi"}],"stream":true,"seed":12345678901234567890}\n';
  const r = inspect(original)!;
  assert.equal(r.stream, true);
  assert.equal(r.clientAskedUsage, false);
  assert.equal(r.injectedUsage, true);
  assert.equal(
    r.body.toString(),
    '{"model":"m",\n "messages":[{"role":"user","content":"hi"}],"stream":true,"seed":12345678901234567890,"stream_options":{"include_usage":true}}\n',
  );
  assert.deepEqual(JSON.parse(r.body.toString()).stream_options, { include_usage: true });
  // Completions too.
  const c = inspect({ prompt: 'x', stream: true })!;
  assert.deepEqual(JSON.parse(c.body.toString()), {
    prompt: 'x',
    stream: true,
    stream_options: { include_usage: true },
  });
});

test('stream usage injection: existing stream_options are kept', () => {
  const r = inspect({
    model: 'm',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
    stream_options: { continuous_usage_stats: true, include_usage: false },
    temperature: 0.5,
  })!;
  assert.equal(r.injectedUsage, true);
  assert.deepEqual(JSON.parse(r.body.toString()), {
    model: 'm',
    messages: [{ role: 'user', content: 'hi' }],
    stream: true,
    stream_options: { continuous_usage_stats: true, include_usage: true },
    temperature: 0.5,
  });
  const nullOptions = inspect({ prompt: 'x', stream: true, stream_options: null })!;
  assert.deepEqual(JSON.parse(nullOptions.body.toString()).stream_options, { include_usage: true });
});

test('no injection: client asked, not streaming, Responses API', () => {
  const asked = Buffer.from(
    JSON.stringify({ messages: [], stream: true, stream_options: { include_usage: true } }),
  );
  const a = inspectTokenRequest(asked, OPTS)!;
  assert.equal(a.injectedUsage, false);
  assert.equal(a.clientAskedUsage, true);
  assert.equal(a.body, asked); // the same Buffer
  for (const body of [
    { messages: [], stream: false },
    { messages: [] },
    { prompt: 'x', stream: 'true' },
    { model: 'm', input: 'hi', stream: true },
  ]) {
    const buf = Buffer.from(JSON.stringify(body));
    const r = inspectTokenRequest(buf, OPTS)!;
    assert.equal(r.injectedUsage, false, JSON.stringify(body));
    assert.equal(r.body, buf);
  }
  assert.equal(inspect({ model: 'm', input: 'hi', stream: true })?.stream, true);
});

test('a UTF-8 BOM is accepted, and kept in the rewritten body', () => {
  const buf = Buffer.concat([
    Buffer.from([0xef, 0xbb, 0xbf]),
    Buffer.from('{"prompt":"abcdefgh","stream":true}'),
  ]);
  const r = inspectTokenRequest(buf, OPTS)!;
  assert.equal(r.promptEstimate, 2);
  assert.equal(
    r.body.toString('utf8', 3),
    '{"prompt":"abcdefgh","stream":true,"stream_options":{"include_usage":true}}',
  );
});

test('not a JSON object: undefined', () => {
  for (const body of ['', '   ', 'hello', '[1,2]', '"x"', '42', 'null', '{"messages":', '\ufeff', '{]']) {
    assert.equal(inspect(body), undefined, JSON.stringify(body));
  }
  assert.equal(inspectTokenRequest(Buffer.from([0x1f, 0x8b, 0x08, 0x00]), OPTS), undefined); // gzip
});

test('deep nesting does not overflow the stack', () => {
  const deep = `{"prompt":${'['.repeat(5000)}"abcd"${']'.repeat(5000)}}`;
  assert.equal(inspect(deep)?.promptEstimate, 0);
});
