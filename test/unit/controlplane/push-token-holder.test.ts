/**
 * PushTokenHolder: the current token, the previous one within the grace period after a change,
 * and nothing else; an injected clock.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PushTokenHolder } from '../../../src/controlplane/push/token-holder.ts';
import { openRaw, startPush } from './push-support.ts';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('before any change only the initial token is accepted', () => {
  const c = clock();
  const h = new PushTokenHolder('a', { graceMs: 600_000, now: c.now });
  assert.equal(h.current, 'a');
  assert.deepEqual(h.accepted(), ['a']);
  assert.equal(h.previousUntil, undefined);
  assert.equal(h.changes, 0);
  assert.equal(h.set('a'), false, 'the same token is no change');
  assert.equal(h.changes, 0);
  assert.deepEqual(h.accepted(), ['a']);
});

test('after a change: new and previous accepted until the grace period ends, then only the new', () => {
  const c = clock();
  const h = new PushTokenHolder('a', { graceMs: 600_000, now: c.now });
  assert.equal(h.set('b'), true);
  assert.equal(h.current, 'b');
  assert.equal(h.changes, 1);
  assert.deepEqual(h.accepted(), ['b', 'a']);
  assert.equal(h.previousUntil, 1_000_000 + 600_000);
  c.advance(599_999);
  assert.deepEqual(h.accepted(), ['b', 'a'], 'still within the grace period');
  c.advance(1);
  assert.deepEqual(h.accepted(), ['b'], 'the grace period is over');
  assert.equal(h.previousUntil, undefined);
  c.advance(-10);
  assert.deepEqual(h.accepted(), ['b'], 'an expired token does not come back');
});

test('two changes in a row: only the latest previous token stays, with a fresh grace period', () => {
  const c = clock();
  const h = new PushTokenHolder('a', { graceMs: 1000, now: c.now });
  h.set('b');
  c.advance(600);
  h.set('c');
  assert.deepEqual(h.accepted(), ['c', 'b'], 'a is gone at once');
  c.advance(999);
  assert.deepEqual(h.accepted(), ['c', 'b']);
  c.advance(1);
  assert.deepEqual(h.accepted(), ['c']);
  // Going back to an old token is a change like any other.
  assert.equal(h.set('a'), true);
  assert.deepEqual(h.accepted(), ['a', 'c']);
  assert.equal(h.changes, 3);
});

test('PushServer accepts every token of a list and refuses the rest', async (t) => {
  const c = clock();
  const h = new PushTokenHolder('first', { graceMs: 1000, now: c.now });
  const p = await startPush({ controllerId: 'ctl', token: () => h.accepted() });
  t.after(() => p.close());
  let refused = 0;
  p.push.on('unauthorized', () => refused++);
  const status = async (token: string) => {
    const s = await openRaw(p.url, { token, proxy: `p-${token}` });
    s.close();
    return s.status;
  };
  assert.equal(await status('first'), 200);
  h.set('second');
  assert.equal(await status('second'), 200);
  assert.equal(await status('first'), 200, 'the previous token within the grace period');
  assert.equal(await status('third'), 401);
  assert.equal(refused, 1);
  c.advance(1000);
  assert.equal(await status('first'), 401, 'the previous token after the grace period');
  assert.equal(await status('second'), 200);
  assert.equal(refused, 2);
});
