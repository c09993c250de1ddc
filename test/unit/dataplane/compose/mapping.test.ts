/** A step's body built from its mapping (compose/mapping.ts): sources, placement, isolation, numbers. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePointer } from '../../../../src/compiler/transform.ts';
import { buildBody, copyJson, missing, readsRequest } from '../../../../src/dataplane/compose/mapping.ts';
import { parseForRewrite, serialize } from '../../../../src/dataplane/transform/json-text.ts';
import type { CompiledMapping } from '../../../../src/routing-table/types.ts';

const p = parsePointer;
const fromRequest = (from: string, to: string): CompiledMapping => ({ from: { path: p(from) }, to: p(to) });
const fromStep = (step: string, from: string, to: string): CompiledMapping => ({
  from: { step, path: p(from) },
  to: p(to),
});
const constant = (value: unknown, to: string): CompiledMapping => ({ value, to: p(to) });

function sources(request: unknown, steps: Record<string, unknown> = {}) {
  return {
    request: () => request,
    step: (name: string) => (Object.hasOwn(steps, name) ? steps[name] : missing),
  };
}

describe('buildBody', () => {
  test('starts from {} and puts each value at its pointer, in order', () => {
    const body = buildBody(
      [
        fromStep('tokenize', '/tokens', '/input_ids'),
        fromRequest('/model', '/model'),
        constant({ top_k: 1 }, '/options'),
        fromRequest('/messages/1/content', '/last'),
      ],
      sources(
        { model: 'm', messages: [{ content: 'a' }, { content: 'b' }] },
        { tokenize: { tokens: [1, 2, 3] } },
      ),
    );
    assert.deepEqual(body, { input_ids: [1, 2, 3], model: 'm', options: { top_k: 1 }, last: 'b' });
  });

  test('missing parents are created as objects, as Set does; arrays take an index or -', () => {
    assert.deepEqual(buildBody([fromRequest('/a', '/x/y/z')], sources({ a: 1 })), { x: { y: { z: 1 } } });
    assert.deepEqual(
      buildBody(
        [constant([], '/list'), fromRequest('/a', '/list/-'), fromRequest('/b', '/list/1')],
        sources({ a: 1, b: 2 }),
      ),
      { list: [1, 2] },
    );
  });

  test('"" takes the whole source; `to: ""` replaces the whole body, later entries add to it', () => {
    assert.deepEqual(
      buildBody(
        [fromStep('prev', '', ''), fromRequest('/id', '/id')],
        sources({ id: 7 }, { prev: { a: 1 } }),
      ),
      { a: 1, id: 7 },
    );
    assert.equal(buildBody([fromStep('prev', '/n', '')], sources({}, { prev: { n: 3 } })), 3);
  });

  test('a value that is not there sets nothing (nor does a request without a body)', () => {
    assert.deepEqual(
      buildBody(
        [fromRequest('/nope', '/a'), fromStep('prev', '/x/0', '/b'), constant(1, '/c')],
        sources({}, { prev: { x: [] } }),
      ),
      { c: 1 },
    );
    assert.deepEqual(buildBody([fromRequest('/a', '/a')], sources(missing)), {});
    assert.deepEqual(buildBody([fromStep('never', '/a', '/a')], sources({})), {});
  });

  test('values are copies: writing inside one never changes the source or the table constant', () => {
    const prev = { obj: { k: 1 } };
    const table = { k: 1 };
    const body = buildBody(
      [
        fromStep('prev', '/obj', '/a'),
        fromStep('prev', '/obj', '/b'),
        constant(table, '/c'),
        constant(2, '/a/k'),
        constant(3, '/c/k'),
      ],
      sources({}, { prev }),
    ) as Record<string, { k: number }>;
    assert.deepEqual(body, { a: { k: 2 }, b: { k: 1 }, c: { k: 3 } });
    assert.deepEqual(prev, { obj: { k: 1 } });
    assert.deepEqual(table, { k: 1 });
  });

  test('a __proto__ key is a member like any other, never the prototype', () => {
    const doc = JSON.parse('{"__proto__": {"polluted": true}}') as unknown;
    const body = buildBody([fromStep('prev', '', '/x')], sources({}, { prev: doc })) as Record<
      string,
      unknown
    >;
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(serialize(body).toString(), '{"x":{"__proto__":{"polluted":true}}}');
  });

  test('integers beyond 2^53 keep their digits through a mapping', () => {
    const answer = parseForRewrite('{"seed": 12345678901234567890, "ids": [9007199254740993]}');
    const body = buildBody(
      [fromStep('prev', '/seed', '/seed'), fromStep('prev', '/ids', '/ids')],
      sources({}, { prev: answer }),
    );
    assert.equal(serialize(body).toString(), '{"seed":12345678901234567890,"ids":[9007199254740993]}');
  });
});

describe('helpers', () => {
  test('copyJson copies containers deeply and keeps scalars', () => {
    const v = { a: [1, { b: 'x' }], c: null };
    const c = copyJson(v) as typeof v;
    assert.deepEqual(c, v);
    assert.notEqual(c.a, v.a);
    assert.notEqual(c.a[1], v.a[1]);
  });

  test('readsRequest: only entries without a step read the client body', () => {
    assert.equal(readsRequest(undefined), false);
    assert.equal(readsRequest([fromStep('a', '/x', '/x'), constant(1, '/y')]), false);
    assert.equal(readsRequest([constant(1, '/y'), fromRequest('/x', '/x')]), true);
  });
});
