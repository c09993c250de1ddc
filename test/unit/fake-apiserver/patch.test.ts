/** The patch functions on their own: RFC 7386 and RFC 6902 examples. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonPatch, mergePatch } from '../../support/fake-apiserver/patch.ts';

test('merge patch follows the RFC 7386 examples', () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [
      ['a', 'b'],
      ['c', 'd'],
      ['c', 'd'],
    ],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, expected] of cases) {
    assert.deepEqual(mergePatch(target, patch), expected, JSON.stringify({ target, patch }));
  }
  const target = { a: { b: 1 } };
  mergePatch(target, { a: { b: 2 } });
  assert.deepEqual(target, { a: { b: 1 } }, 'the target is not modified');
});

test('JSON patch: add, remove, replace, move, copy, test', () => {
  const doc = { a: { b: [1, 2] }, 'x/y': 1, 'm~n': 2 };
  assert.deepEqual(
    jsonPatch(doc, [
      { op: 'add', path: '/a/b/1', value: 9 },
      { op: 'add', path: '/a/b/-', value: 3 },
      { op: 'remove', path: '/x~1y' },
      { op: 'replace', path: '/m~0n', value: 5 },
      { op: 'copy', from: '/a/b/0', path: '/first' },
      { op: 'move', from: '/first', path: '/moved' },
      { op: 'test', path: '/moved', value: 1 },
    ]),
    { a: { b: [1, 9, 2, 3] }, 'm~n': 5, moved: 1 },
  );
  assert.deepEqual(doc, { a: { b: [1, 2] }, 'x/y': 1, 'm~n': 2 }, 'the target is not modified');
  assert.throws(() => jsonPatch(doc, [{ op: 'test', path: '/a/b/0', value: 2 }]), /test failed/);
  assert.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/nope' }]), /nonexistent/);
  assert.throws(() => jsonPatch(doc, [{ op: 'add', path: '/no/such/path', value: 1 }]), /missing path/);
  assert.throws(() => jsonPatch(doc, [{ op: 'replace', path: '/a/b/7', value: 1 }]), /array index/);
  assert.throws(() => jsonPatch(doc, { op: 'add' }), /list of operations/);
  assert.throws(() => jsonPatch(doc, [{ op: 'frobnicate', path: '/a' }]), /unsupported/);
});
