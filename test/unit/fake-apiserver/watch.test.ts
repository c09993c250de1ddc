/**
 * Watches over raw HTTP: initial state, replay from a resourceVersion, selectors, 410 after
 * compaction, bookmarks, timeoutSeconds, pause/resume. Every wait is on a stream event.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type FakeApiServer, WatchReader } from '../../support/fake-apiserver/index.ts';
import { MR_PATH, route, server, TIMEOUT } from './helpers.ts';

function open(s: FakeApiServer, query: string, path = MR_PATH): Promise<WatchReader> {
  return WatchReader.open(`${s.url}${path}?watch=true${query ? `&${query}` : ''}`);
}

test('without a resourceVersion: the current state as ADDED, then live changes', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  s.apply(route('other', 'elsewhere'));
  const w = await open(s, '');
  t.after(() => w.close());
  assert.equal(w.status, 200);
  const first = await w.next();
  assert.equal(first.type, 'ADDED');
  assert.equal(first.object.metadata.name, 'a');
  assert.equal(first.object.kind, 'ModelRoute');

  s.apply(route('b'));
  s.apply(route('a', 'ml', { spec: { hostnames: ['x'] } }));
  s.remove('ModelRoute', 'ml', 'b');
  s.apply(route('c', 'elsewhere')); // another namespace: not on this watch
  s.apply(route('d'));
  const seen = [await w.next(), await w.next(), await w.next(), await w.next()].map(
    (e) => `${e.type} ${e.object.metadata.name} ${e.object.metadata.generation}`,
  );
  assert.deepEqual(seen, ['ADDED b 1', 'MODIFIED a 2', 'DELETED b 1', 'ADDED d 1']);
});

test('from a resourceVersion: replays what happened after it, in order', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const rv = s.resourceVersion;
  s.apply(route('b'));
  s.setStatus('ModelRoute', 'ml', 'a', { observedGeneration: 1 });
  s.remove('ModelRoute', 'ml', 'b');
  const w = await open(s, `resourceVersion=${rv}`);
  t.after(() => w.close());
  const replay = [await w.next(), await w.next(), await w.next()];
  assert.deepEqual(
    replay.map((e) => `${e.type} ${e.object.metadata.name}`),
    ['ADDED b', 'MODIFIED a', 'DELETED b'],
  );
  const rvs = replay.map((e) => Number(e.object.metadata.resourceVersion));
  assert.deepEqual(rvs, [Number(rv) + 1, Number(rv) + 2, Number(rv) + 3]);
  s.apply(route('e'));
  assert.equal((await w.next()).object.metadata.name, 'e');

  // All namespaces, from the same point.
  const all = await open(s, `resourceVersion=${rv}`, '/apis/modelgate.dev/v1alpha1/modelroutes');
  t.after(() => all.close());
  assert.equal((await all.next()).object.metadata.name, 'b');
});

test('with a label selector: objects entering and leaving the selection', TIMEOUT, async (t) => {
  const s = await server(t);
  const labelled = (name: string, labels: Record<string, string>) => ({
    ...route(name),
    metadata: { name, namespace: 'ml', labels },
  });
  const w = await open(s, `labelSelector=${encodeURIComponent('tier=gold')}&fieldSelector=metadata.name%3Da`);
  t.after(() => w.close());
  s.apply(labelled('b', { tier: 'gold' })); // wrong name
  s.apply(labelled('a', { tier: 'silver' }));
  s.apply(labelled('a', { tier: 'gold' }));
  s.apply(labelled('a', { tier: 'gold', more: 'x' }));
  s.apply(labelled('a', { tier: 'bronze' }));
  const seen = [await w.next(), await w.next(), await w.next()].map(
    (e) => `${e.type} ${e.object.metadata.labels?.tier}`,
  );
  assert.deepEqual(seen, ['ADDED gold', 'MODIFIED gold', 'DELETED bronze']);
});

test(
  'a watch from a compacted resourceVersion gets one ERROR 410 Expired event and ends',
  TIMEOUT,
  async (t) => {
    const s = await server(t);
    s.apply(route('a'));
    const rv = s.resourceVersion;
    s.apply(route('b'));
    s.compact();
    const w = await open(s, `resourceVersion=${rv}`);
    t.after(() => w.close());
    assert.equal(w.status, 200, 'the real server answers 200 and reports the error in the stream');
    const e = await w.next();
    assert.equal(e.type, 'ERROR');
    assert.equal(e.object.kind, 'Status');
    assert.equal(e.object.code, 410);
    assert.equal(e.object.reason, 'Expired');
    assert.match(e.object.message ?? '', /too old resource version/);
    assert.deepEqual(await w.ended, { clean: true });

    // The compacted resourceVersion itself is still fine: nothing after it was lost.
    const fine = await open(s, `resourceVersion=${s.resourceVersion}`);
    t.after(() => fine.close());
    s.apply(route('c'));
    assert.equal((await fine.next()).object.metadata.name, 'c');
  },
);

test('a bounded history drops old events like compaction does', TIMEOUT, async (t) => {
  const s = await server(t, { historyLimit: 2 });
  s.apply(route('a'));
  const rv = s.resourceVersion;
  s.apply(route('b'));
  s.apply(route('c'));
  s.apply(route('d'));
  const w = await open(s, `resourceVersion=${rv}`);
  t.after(() => w.close());
  assert.equal((await w.next()).object.code, 410);
});

test('bookmarks: on demand, periodically, and only when allowed', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const rv = s.resourceVersion;
  const withBookmarks = await open(s, `resourceVersion=${rv}&allowWatchBookmarks=true`);
  const without = await open(s, `resourceVersion=${rv}`);
  t.after(() => {
    withBookmarks.close();
    without.close();
  });
  await s.waitFor(() => s.openWatches('modelroutes') === 2);
  s.apply(route('b'));
  s.bookmark();
  s.apply(route('c'));
  assert.equal((await withBookmarks.next()).object.metadata.name, 'b');
  const bm = await withBookmarks.next();
  assert.equal(bm.type, 'BOOKMARK');
  assert.equal(bm.object.kind, 'ModelRoute');
  assert.equal(bm.object.metadata.resourceVersion, String(Number(rv) + 1));
  assert.equal((await withBookmarks.next()).object.metadata.name, 'c');
  assert.deepEqual(
    [(await without.next()).type, (await without.next()).type],
    ['ADDED', 'ADDED'],
    'no bookmark between the two without allowWatchBookmarks',
  );

  const periodic = await server(t, { bookmarkIntervalMs: 20 });
  const p = await open(periodic, `resourceVersion=${periodic.resourceVersion}&allowWatchBookmarks=true`);
  t.after(() => p.close());
  const tick = await p.next();
  assert.equal(tick.type, 'BOOKMARK');
  assert.equal(tick.object.metadata.resourceVersion, periodic.resourceVersion);
});

test('sendInitialEvents: the state, then a bookmark marking its end', TIMEOUT, async (t) => {
  const s = await server(t);
  s.apply(route('a'));
  const w = await open(
    s,
    'sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan',
  );
  t.after(() => w.close());
  assert.equal((await w.next()).type, 'ADDED');
  const end = await w.next();
  assert.equal(end.type, 'BOOKMARK');
  assert.equal(end.object.metadata.annotations?.['k8s.io/initial-events-end'], 'true');
});

test('timeoutSeconds ends the stream cleanly', TIMEOUT, async (t) => {
  const s = await server(t);
  const w = await open(s, `resourceVersion=${s.resourceVersion}&timeoutSeconds=1`);
  t.after(() => w.close());
  assert.deepEqual(await w.ended, { clean: true });
  await s.waitFor(() => s.openWatches() === 0);
});

test('pause holds events (and stream ends) until resume', TIMEOUT, async (t) => {
  const s = await server(t);
  const w = await open(s, `resourceVersion=${s.resourceVersion}`);
  t.after(() => w.close());
  await s.waitFor(() => s.openWatches() === 1);
  s.pause();
  s.apply(route('a'));
  s.dropWatches({ graceful: true });
  assert.equal(s.openWatches(), 1, 'the end is held back too');
  s.resume();
  assert.equal((await w.next()).object.metadata.name, 'a');
  assert.deepEqual(await w.ended, { clean: true });

  // A watch cut while paused never sees what was held: the stream ends before any event.
  const cut = await open(s, `resourceVersion=${s.resourceVersion}`);
  await s.waitFor(() => s.openWatches() === 1);
  s.pause();
  s.apply(route('b'));
  s.dropWatches();
  s.resume();
  const end = await cut.ended;
  assert.equal(end.clean, false);
  assert.equal(cut.buffered, 0);
});

test('a watch with a bad selector or resourceVersion is a 400, not a stream', TIMEOUT, async (t) => {
  const s = await server(t);
  const bad = await open(s, 'labelSelector=a%20b');
  assert.equal(bad.status, 400);
  const badRv = await open(s, 'resourceVersion=x');
  assert.equal(badRv.status, 400);
  assert.equal(s.openWatches(), 0);
});
