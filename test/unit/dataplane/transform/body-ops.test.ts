/** JSON body operations: each op, and the JSON Pointer edge cases body-ops.ts defines. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parsePointer } from '../../../../src/compiler/transform.ts';
import { applyBodyOps } from '../../../../src/dataplane/transform/body-ops.ts';
import type { CompiledBodyOp } from '../../../../src/routing-table/types.ts';

const p = parsePointer;

function run(doc: unknown, ...ops: CompiledBodyOp[]): { doc: unknown; changed: boolean } {
  return applyBodyOps(structuredClone(doc), ops);
}

describe('JSON Pointer tokens (RFC 6901)', () => {
  test('"" is the whole document, "/" the empty key, ~1 is / and ~0 is ~ (in that order)', () => {
    assert.deepEqual(p(''), []);
    assert.deepEqual(p('/'), ['']);
    assert.deepEqual(p('/a~1b/c~0d'), ['a/b', 'c~d']);
    // ~01 is "~1" literally: ~1 is unescaped first, then ~0, so no double unescaping.
    assert.deepEqual(p('/~01'), ['~1']);
  });

  test('escaped keys address members with / and ~ in their names', () => {
    const doc = { 'a/b': 1, 'c~d': 2, '': 3 };
    assert.deepEqual(run(doc, { op: 'Remove', path: p('/a~1b') }).doc, { 'c~d': 2, '': 3 });
    assert.deepEqual(run(doc, { op: 'Remove', path: p('/c~0d') }).doc, { 'a/b': 1, '': 3 });
    assert.deepEqual(run(doc, { op: 'Remove', path: p('/') }).doc, { 'a/b': 1, 'c~d': 2 });
  });
});

describe('Remove', () => {
  test('removes a member, or an array element (later ones move up)', () => {
    assert.deepEqual(run({ a: { b: 1, c: 2 } }, { op: 'Remove', path: p('/a/b') }), {
      doc: { a: { c: 2 } },
      changed: true,
    });
    assert.deepEqual(run({ m: [0, 1, 2] }, { op: 'Remove', path: p('/m/1') }).doc, { m: [0, 2] });
  });

  test('a missing path is a no-op and says so', () => {
    for (const path of ['/x', '/a/x', '/a/b/c', '/m/3', '/m/-', '/m/01', '/m/-1', '/m/x']) {
      const r = run({ a: { b: 1 }, m: [0, 1, 2] }, { op: 'Remove', path: p(path) });
      assert.deepEqual(r, { doc: { a: { b: 1 }, m: [0, 1, 2] }, changed: false }, path);
    }
  });

  test('inherited properties are not members', () => {
    assert.equal(run({}, { op: 'Remove', path: p('/toString') }).changed, false);
    assert.equal(run({}, { op: 'Remove', path: p('/__proto__') }).changed, false);
  });
});

describe('Set', () => {
  test('replaces a member or creates it, with missing parent objects', () => {
    assert.deepEqual(run({ a: 1 }, { op: 'Set', path: p('/a'), value: 2 }).doc, { a: 2 });
    assert.deepEqual(run({}, { op: 'Set', path: p('/a/b/c'), value: true }).doc, { a: { b: { c: true } } });
  });

  test('"" replaces the whole body', () => {
    assert.deepEqual(run({ a: 1 }, { op: 'Set', path: [], value: [1] }), { doc: [1], changed: true });
  });

  test('on arrays: an index replaces, length or - appends, beyond does nothing', () => {
    const doc = { m: ['a', 'b'] };
    assert.deepEqual(run(doc, { op: 'Set', path: p('/m/0'), value: 'x' }).doc, { m: ['x', 'b'] });
    assert.deepEqual(run(doc, { op: 'Set', path: p('/m/2'), value: 'c' }).doc, { m: ['a', 'b', 'c'] });
    assert.deepEqual(run(doc, { op: 'Set', path: p('/m/-'), value: 'c' }).doc, { m: ['a', 'b', 'c'] });
    assert.equal(run(doc, { op: 'Set', path: p('/m/3'), value: 'c' }).changed, false);
    assert.equal(run(doc, { op: 'Set', path: p('/m/01'), value: 'c' }).changed, false);
    // A missing array element is never created as a parent.
    assert.equal(run(doc, { op: 'Set', path: p('/m/5/x'), value: 1 }).changed, false);
    assert.deepEqual(run(doc, { op: 'Set', path: p('/m/1/x'), value: 1 }), { doc, changed: false });
  });

  test('never replaces a scalar on the way (the body has another shape than expected)', () => {
    for (const doc of [{ a: 'text' }, { a: null }, { a: 3 }]) {
      assert.deepEqual(run(doc, { op: 'Set', path: p('/a/b'), value: 1 }), { doc, changed: false });
    }
  });

  test('the value is copied: a later op cannot change the table', () => {
    const value = { list: [1] };
    const ops: CompiledBodyOp[] = [
      { op: 'Set', path: p('/v'), value },
      { op: 'Set', path: p('/v/list/-'), value: 2 },
    ];
    assert.deepEqual(applyBodyOps({}, ops).doc, { v: { list: [1, 2] } });
    assert.deepEqual(value, { list: [1] });
  });

  test('__proto__ is a member like any other, never the prototype', () => {
    const r = run({}, { op: 'Set', path: p('/__proto__/polluted'), value: true });
    assert.equal(JSON.stringify(r.doc), '{"__proto__":{"polluted":true}}');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(r.doc), Object.prototype);
    const parsed = JSON.parse('{"__proto__": {"a": 1}}');
    assert.deepEqual(JSON.parse(JSON.stringify(run(parsed, { op: 'Remove', path: p('/__proto__/a') }).doc)), {
      ['__proto__']: {},
    });
  });
});

describe('Rename (a move)', () => {
  test('moves a member, across objects, creating parents as Set does', () => {
    assert.deepEqual(
      run(
        { max_tokens: 5, x: 1 },
        { op: 'Rename', from: p('/max_tokens'), path: p('/max_completion_tokens') },
      ).doc,
      { x: 1, max_completion_tokens: 5 },
    );
    assert.deepEqual(run({ a: { b: 1 } }, { op: 'Rename', from: p('/a/b'), path: p('/c/d') }).doc, {
      a: {},
      c: { d: 1 },
    });
  });

  test('overwrites the target; a missing source is a no-op', () => {
    assert.deepEqual(run({ a: 1, b: 2 }, { op: 'Rename', from: p('/a'), path: p('/b') }).doc, { b: 1 });
    assert.deepEqual(run({ b: 2 }, { op: 'Rename', from: p('/a'), path: p('/b') }), {
      doc: { b: 2 },
      changed: false,
    });
  });

  test('array elements: removed first, then placed (JSON Patch move)', () => {
    assert.deepEqual(run({ m: [1, 2, 3] }, { op: 'Rename', from: p('/m/0'), path: p('/m/-') }).doc, {
      m: [2, 3, 1],
    });
  });

  test('a target that cannot be reached puts the value back where it was', () => {
    const doc = { a: 1, s: 'text', m: [1, 2] };
    assert.deepEqual(run(doc, { op: 'Rename', from: p('/a'), path: p('/s/x') }), { doc, changed: false });
    assert.deepEqual(run(doc, { op: 'Rename', from: p('/m/0'), path: p('/s/x') }), { doc, changed: false });
  });
});

describe('Wrap and Unwrap', () => {
  test('Wrap "" puts the whole body under a member; Unwrap takes it out again', () => {
    const doc = { prompt: 'hi' };
    const wrapped = run(doc, { op: 'Wrap', path: [], under: 'input' });
    assert.deepEqual(wrapped, { doc: { input: { prompt: 'hi' } }, changed: true });
    assert.deepEqual(run(wrapped.doc, { op: 'Unwrap', path: p('/input') }).doc, doc);
  });

  test('Wrap a member or array element; Unwrap replaces the container holding the path', () => {
    assert.deepEqual(run({ a: [1, 2] }, { op: 'Wrap', path: p('/a/1'), under: 'v' }).doc, {
      a: [1, { v: 2 }],
    });
    assert.deepEqual(run({ r: { data: { x: 1 }, meta: 2 } }, { op: 'Unwrap', path: p('/r/data') }).doc, {
      r: { x: 1 },
    });
    assert.deepEqual(run({ items: ['only'] }, { op: 'Unwrap', path: p('/items/0') }).doc, { items: 'only' });
    assert.deepEqual(run({ data: 42 }, { op: 'Unwrap', path: p('/data') }).doc, 42);
  });

  test('missing paths are no-ops', () => {
    assert.deepEqual(run({ a: 1 }, { op: 'Wrap', path: p('/b'), under: 'x' }), {
      doc: { a: 1 },
      changed: false,
    });
    assert.deepEqual(run({ a: 1 }, { op: 'Unwrap', path: p('/b') }), { doc: { a: 1 }, changed: false });
    assert.deepEqual(run({ a: [] }, { op: 'Unwrap', path: p('/a/-') }), { doc: { a: [] }, changed: false });
  });

  test('under may be any member name, __proto__ included', () => {
    assert.equal(
      JSON.stringify(run({ a: 1 }, { op: 'Wrap', path: [], under: '__proto__' }).doc),
      '{"__proto__":{"a":1}}',
    );
  });
});

test('ops apply in order, each on the result of the one before', () => {
  const r = run(
    { model: 'm', max_tokens: 9, user: 'u' },
    { op: 'Remove', path: p('/user') },
    { op: 'Rename', from: p('/max_tokens'), path: p('/max_completion_tokens') },
    { op: 'Wrap', path: [], under: 'input' },
    { op: 'Set', path: p('/stream'), value: false },
  );
  assert.deepEqual(r.doc, { input: { model: 'm', max_completion_tokens: 9 }, stream: false });
});
