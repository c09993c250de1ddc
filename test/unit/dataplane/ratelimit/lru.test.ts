import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lru, LruNode } from '../../../../src/dataplane/ratelimit/lru.ts';

function order(lru: Lru<LruNode>): string[] {
  const out: string[] = [];
  for (let n = lru.coldest(); n !== null; n = lru.newerThan(n)) out.push(n.key);
  return out;
}

test('lru: insertion order, get makes most recent, peek does not', () => {
  const lru = new Lru<LruNode>();
  for (const k of ['a', 'b', 'c']) lru.add(new LruNode(k));
  assert.deepEqual(order(lru), ['a', 'b', 'c']);
  assert.equal(lru.get('a')?.key, 'a');
  assert.deepEqual(order(lru), ['b', 'c', 'a']);
  assert.equal(lru.peek('b')?.key, 'b');
  assert.deepEqual(order(lru), ['b', 'c', 'a']);
  assert.equal(lru.get('a')?.key, 'a'); // already newest
  assert.deepEqual(order(lru), ['b', 'c', 'a']);
  assert.equal(lru.get('missing'), undefined);
});

test('lru: delete from either end or the middle, and clear', () => {
  const lru = new Lru<LruNode>();
  const nodes = ['a', 'b', 'c', 'd'].map((k) => new LruNode(k));
  for (const n of nodes) lru.add(n);
  lru.delete(nodes[1]!);
  assert.deepEqual(order(lru), ['a', 'c', 'd']);
  lru.delete(nodes[0]!);
  lru.delete(nodes[3]!);
  assert.deepEqual(order(lru), ['c']);
  assert.equal(lru.size, 1);
  // Deleting a node that is no longer in the map is a no-op.
  lru.delete(nodes[0]!);
  assert.equal(lru.size, 1);
  lru.delete(nodes[2]!);
  assert.equal(lru.coldest(), null);
  lru.add(new LruNode('e'));
  lru.clear();
  assert.equal(lru.size, 0);
  assert.equal(lru.coldest(), null);
  lru.add(new LruNode('f'));
  assert.deepEqual(order(lru), ['f']);
});
