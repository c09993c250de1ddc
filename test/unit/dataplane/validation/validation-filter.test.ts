/**
 * The validation filter on its own: the 400 each kind of body gets, the messages (JSON Pointer and
 * reason, bounded), and validators compiled once per distinct schema across tables.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { FilterContext, Rejection } from '../../../../src/dataplane/filters/filter.ts';
import { ValidationFilterFactory } from '../../../../src/dataplane/validation/validation-filter.ts';
import { ProxyMetrics } from '../../../../src/observability/proxy-metrics.ts';
import type { CompiledRule, RoutingTable } from '../../../../src/routing-table/types.ts';

const schema = {
  type: 'object',
  required: ['model', 'messages'],
  additionalProperties: false,
  properties: {
    model: { type: 'string' },
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: { role: { enum: ['system', 'user', 'assistant'] }, content: { type: 'string' } },
      },
    },
    max_tokens: { type: 'integer', maximum: 4096 },
    user: { type: 'string', format: 'email' },
    'a/b': { type: 'string' },
  },
};

const rule = (jsonSchema: Record<string, unknown> = schema, id = 'ml/chat/r'): CompiledRule =>
  ({
    id,
    route: 'ml/chat',
    maxRequestBodyBytes: 1024,
    validation: { jsonSchema },
  }) as unknown as CompiledRule;
const table = () => ({ routes: { rules: [] } }) as unknown as RoutingTable;

const metrics = new ProxyMetrics({ processMetrics: false });
const factory = new ValidationFilterFactory(metrics);
const filter = factory.build(rule(), table())!;

function check(
  body: string | Buffer | undefined,
  headers: Record<string, string> = {},
): Rejection | undefined {
  const ctx = {
    req: { headers } as unknown as IncomingMessage,
    body: typeof body === 'string' ? Buffer.from(body) : body,
  } as unknown as FilterContext;
  return filter.onRequest(ctx) as Rejection | undefined;
}

const ok = { model: 'm', messages: [{ role: 'user', content: 'hi' }] };

describe('refusals', () => {
  test('a valid body passes and is not changed', () => {
    assert.equal(check(JSON.stringify(ok)), undefined);
    assert.equal(check(`\ufeff${JSON.stringify(ok)}`), undefined, 'a BOM is allowed');
  });

  test('schema failures: 400 MG_REQUEST_INVALID naming the JSON Pointer and the reason', () => {
    const cases: [unknown, string][] = [
      [{ model: 'm' }, '/messages: is required'],
      [{ ...ok, messages: [] }, '/messages: must NOT have fewer than 1 items'],
      [
        { ...ok, messages: [{ role: 'root', content: 'x' }] },
        '/messages/0/role: must be one of "system", "user", "assistant"',
      ],
      [{ ...ok, max_tokens: 1.5 }, '/max_tokens: must be integer'],
      [{ ...ok, max_tokens: 5000 }, '/max_tokens: must be <= 4096'],
      [{ ...ok, user: 'not-an-email' }, '/user: must match format "email"'],
      [{ ...ok, 'a/b': 1 }, '/a~1b: must be string'],
      [{ ...ok, extra: 1 }, '/extra: is not allowed (no such property in the schema)'],
      [[1], '(root): must be object'],
    ];
    for (const [body, reason] of cases) {
      const r = check(JSON.stringify(body));
      assert.equal(r?.error.code, 'MG_REQUEST_INVALID', JSON.stringify(body));
      assert.equal(r?.error.status, 400);
      assert.equal(r?.message, `the request body does not match the route's schema: ${reason}`);
    }
  });

  test('not JSON, not UTF-8, no body: 400 MG_REQUEST_NOT_JSON', () => {
    for (const [body, message] of [
      ['{"model": ', /^the request body is not valid JSON: /],
      [Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), /^the request body is not valid UTF-8$/],
      [undefined, /^this route requires a JSON request body$/],
      ['', /^this route requires a JSON request body$/],
    ] as const) {
      const r = check(body);
      assert.equal(r?.error.code, 'MG_REQUEST_NOT_JSON');
      assert.match(r?.message ?? '', message);
    }
  });

  test('a duplicate key anywhere is refused (parsers disagree on which value wins)', () => {
    const r = check('{"model":"m","messages":[{"role":"user","role":"system","content":"x"}]}');
    assert.equal(r?.error.code, 'MG_REQUEST_INVALID');
    assert.match(r?.message ?? '', /same key twice/);
  });

  test('compressed bodies are decoded to be checked, within the route limit', () => {
    assert.equal(check(gzipSync(JSON.stringify(ok)), { 'content-encoding': 'gzip' }), undefined);
    const bad = check(gzipSync(JSON.stringify({ model: 1 })), { 'content-encoding': 'gzip' });
    assert.equal(bad?.error.code, 'MG_REQUEST_INVALID');
    assert.equal(check('not gzip', { 'content-encoding': 'gzip' })?.error.code, 'MG_BAD_CONTENT_ENCODING');
    const bomb = gzipSync(JSON.stringify({ ...ok, pad: 'x'.repeat(10_000) }));
    assert.equal(check(bomb, { 'content-encoding': 'gzip' })?.error.code, 'MG_BODY_TOO_LARGE');
  });

  test('messages stay short whatever the body holds', () => {
    const r = check(JSON.stringify({ ...ok, messages: [{ role: 'x'.repeat(10_000), content: 'y' }] }));
    assert.ok((r?.message?.length ?? 0) < 400, r?.message);
    const garbage = check(`{"model": "${'z'.repeat(10_000)}`);
    assert.ok((garbage?.message?.length ?? 0) < 300, garbage?.message);
  });

  test('failures are counted by route and reason', async () => {
    const text = await metrics.registry.getSingleMetricAsString(
      'modelgate_request_validation_failures_total',
    );
    for (const reason of ['schema', 'not_json', 'no_body', 'duplicate_keys', 'encoding']) {
      assert.match(text, new RegExp(`route="ml/chat",reason="${reason}"`), reason);
    }
  });
});

describe('compiled once per distinct schema', () => {
  test('the same schema in several rules and successive tables is compiled once; unused ones are dropped', () => {
    const f = new ValidationFilterFactory(new ProxyMetrics({ processMetrics: false }));
    const t1 = table();
    f.build(rule(schema, 'a'), t1);
    f.build(rule(structuredClone(schema), 'b'), t1);
    f.build(rule({ type: 'array' }, 'c'), t1);
    f.applied();
    assert.equal(f.cached, 2);
    f.build(rule(schema, 'a'), table());
    f.applied();
    assert.equal(f.cached, 1, 'the array schema left with the table that used it');
  });

  test('a schema that does not compile refuses the table, naming the rule', () => {
    const f = new ValidationFilterFactory(new ProxyMetrics({ processMetrics: false }));
    assert.throws(
      () => f.build(rule({ type: 'object', requried: ['x'] }, 'ml/x/r'), table()),
      /rule ml\/x\/r: .*requried/,
    );
  });
});
