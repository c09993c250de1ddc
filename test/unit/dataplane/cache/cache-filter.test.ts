/**
 * The cache filter without sockets: keys (caller, revision, key headers, body, method, path and
 * query), lookups on a fake clock, coalescing in lock step (N identical requests, one leader), and
 * what happens to waiters when the leader's answer cannot be stored or its client goes away.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  ALICE,
  answerText,
  BOB,
  context,
  END_OK,
  harness,
  outcome,
  type RequestSpec,
  respond,
} from './fixtures.ts';

const JSON_HEAD = { 'content-type': 'application/json' };

/** Stores an answer for `spec` (a miss played to its end) and returns the text stored. */
async function fill(h: ReturnType<typeof harness>, spec: RequestSpec, text: string): Promise<void> {
  const ctx = context(h, spec);
  assert.equal(await outcome(h.filter.onRequest(ctx)), undefined);
  assert.equal(ctx.responseHeaders?.['x-cache'], 'MISS');
  respond(ctx, 200, JSON_HEAD, text);
}

async function lookup(h: ReturnType<typeof harness>, spec: RequestSpec): Promise<string | undefined> {
  const ctx = context(h, spec);
  const o = await outcome(h.filter.onRequest(ctx));
  // A miss leaves its fill observer; end it so a coalescing flight does not linger.
  if (o === undefined) for (const ob of ctx.observers ?? []) ob.onEnd({ ...END_OK, status: 0 });
  return answerText(o);
}

describe('keys', () => {
  const body = JSON.stringify({ model: 'm', temperature: 0, prompt: 'hi' });

  test('method, path, query, body and key headers each make another entry; other headers do not', async () => {
    const h = harness('{shared: true, keyHeaders: [X-Tenant]}');
    const base: RequestSpec = { body, headers: { 'x-tenant': 'acme' } };
    await fill(h, base, 'A');
    assert.equal(await lookup(h, { ...base, headers: { 'x-tenant': 'acme', 'x-other': '1' } }), 'A');
    assert.equal(await lookup(h, { ...base, url: '/v1/chat?x=1' }), undefined);
    assert.equal(await lookup(h, { ...base, url: '/v1/other' }), undefined);
    assert.equal(await lookup(h, { ...base, body: body.replace('hi', 'ho') }), undefined);
    assert.equal(await lookup(h, { ...base, headers: { 'x-tenant': 'other' } }), undefined);
    assert.equal(await lookup(h, { ...base, headers: {} }), undefined);
    assert.equal(await lookup(h, { ...base, method: 'GET' }), undefined);
    assert.equal(
      await lookup(h, { ...base, headers: { 'x-tenant': 'acme', 'content-type': 'text/plain' } }),
      undefined,
    );
    assert.equal(
      await lookup(h, { ...base, headers: { 'x-tenant': 'acme', host: 'other.test' } }),
      undefined,
    );
  });

  test('HEAD reads the GET entry, and never stores', async () => {
    const h = harness('{shared: true}');
    const head = context(h, { method: 'HEAD' });
    assert.equal(await outcome(h.filter.onRequest(head)), undefined);
    assert.equal(head.observers, undefined, 'no fill for HEAD');
    await fill(h, { method: 'GET' }, 'G');
    assert.equal(await lookup(h, { method: 'HEAD' }), 'G');
  });

  test('the caller is part of the key unless the rule is shared; the anonymous caller is none', async () => {
    const h = harness('{}', { auth: true });
    await fill(h, { body, identity: ALICE }, 'alice');
    assert.equal(await lookup(h, { body, identity: ALICE }), 'alice');
    assert.equal(await lookup(h, { body, identity: BOB }), undefined);
    assert.equal(
      await lookup(h, { body, identity: { ...ALICE, method: 'jwt', provider: 'idp' } }),
      undefined,
    );
    const anon = context(h, { body, identity: { ...ALICE, method: 'anonymous', consumer: 'anonymous' } });
    assert.equal(await outcome(h.filter.onRequest(anon)), undefined);
    assert.equal(anon.responseHeaders?.['x-cache'], 'BYPASS');
    const nobody = context(h, { body });
    await outcome(h.filter.onRequest(nobody));
    assert.equal(nobody.responseHeaders?.['x-cache'], 'BYPASS');

    const shared = harness('{shared: true}');
    await fill(shared, { body, identity: ALICE }, 'everyone');
    assert.equal(await lookup(shared, { body, identity: BOB }), 'everyone');
    assert.equal(await lookup(shared, { body }), 'everyone');
  });

  test('the model revision of the chosen backend is part of the key; same revision, same entries', async () => {
    const h = harness('{shared: true}', {
      backends: `[{name: a, urls: ["http://127.0.0.1:9"], modelRevision: v1},
                  {name: a2, urls: ["http://127.0.0.1:10"], modelRevision: v1},
                  {name: c, urls: ["http://127.0.0.1:11"], modelRevision: v2},
                  {name: d, urls: ["http://127.0.0.1:12"]}]`,
    });
    const on = (name: string): RequestSpec => ({ body, backend: { name, modelRevision: undefined } });
    const ctx = context(h, on('a'));
    await outcome(h.filter.onRequest(ctx));
    assert.equal(ctx.chosen, 1, 'the backend was chosen once, during the filter');
    respond(ctx, 200, JSON_HEAD, 'v1 answer', { backend: 'a' });
    assert.equal(await lookup(h, on('a')), 'v1 answer');
    assert.equal(await lookup(h, on('a2')), 'v1 answer', 'a2 serves the same revision');
    assert.equal(await lookup(h, on('c')), undefined);
    assert.equal(await lookup(h, on('d')), undefined);
  });

  test('a fallback backend’s answer is not stored under the chosen backend’s revision', async () => {
    const h = harness('{shared: true}');
    const ctx = context(h, { body });
    await outcome(h.filter.onRequest(ctx));
    respond(ctx, 200, JSON_HEAD, 'from the fallback', { backend: 'small-model' });
    assert.equal(await lookup(h, { body }), undefined);
    assert.match(
      await h.metrics.registry.metrics(),
      /modelgate_cache_not_stored_total\{route="ml\/chat",reason="fallback"\} 1/,
    );
  });

  test('no backend (every weight 0), a WebSocket upgrade or gRPC: bypass', async () => {
    const h = harness('{shared: true}');
    for (const spec of [
      { body, backend: undefined },
      { method: 'GET', headers: { upgrade: 'websocket' } },
      { body, headers: { 'content-type': 'application/grpc' } },
      { method: 'PUT', body },
      { body, headers: { 'cache-control': 'no-store' } },
    ] as RequestSpec[]) {
      const ctx = context(h, spec);
      assert.equal(await outcome(h.filter.onRequest(ctx)), undefined);
      assert.equal(ctx.responseHeaders?.['x-cache'], 'BYPASS', JSON.stringify(spec));
    }
  });
});

describe('lookups', () => {
  test('an entry is served until its TTL; the hit carries its Age', async () => {
    const h = harness('{shared: true, ttl: 10s}');
    await fill(h, {}, 'X');
    h.clock.now += 4_200;
    const ctx = context(h);
    assert.equal(answerText(await outcome(h.filter.onRequest(ctx))), 'X');
    assert.deepEqual(ctx.responseHeaders, { 'x-cache': 'HIT', age: '4' });
    h.clock.now += 5_800;
    assert.equal(await lookup(h, {}), undefined);
    assert.match(await h.metrics.registry.metrics(), /modelgate_cache_evictions_total\{reason="expired"\} 1/);
  });

  test('the client’s max-age: an older entry is refreshed', async () => {
    const h = harness('{shared: true}');
    await fill(h, {}, 'old');
    h.clock.now += 30_000;
    assert.equal(await lookup(h, { headers: { 'cache-control': 'max-age=60' } }), 'old');
    const ctx = context(h, { headers: { 'cache-control': 'max-age=10' } });
    assert.equal(await outcome(h.filter.onRequest(ctx)), undefined);
    respond(ctx, 200, JSON_HEAD, 'new');
    assert.equal(await lookup(h, {}), 'new');
  });

  test('stored headers: hop-by-hop and per-exchange ones dropped, content-length set', async () => {
    const h = harness('{shared: true}');
    const ctx = context(h);
    await outcome(h.filter.onRequest(ctx));
    respond(
      ctx,
      200,
      {
        ...JSON_HEAD,
        connection: 'x-hop',
        'x-hop': '1',
        'x-request-id': 'leader',
        'keep-alive': 't',
        'x-model': 'm',
      },
      'body',
    );
    const hit = await outcome(h.filter.onRequest(context(h)));
    assert.ok(hit && 'answer' in hit);
    assert.deepEqual(hit.answer.headers, {
      'content-type': 'application/json',
      'x-model': 'm',
      'content-length': '4',
    });
  });

  test('answers larger than maxEntrySize are not stored, by declared or counted length', async () => {
    const h = harness('{shared: true, maxEntrySize: "8"}');
    const declared = context(h);
    await outcome(h.filter.onRequest(declared));
    respond(declared, 200, { ...JSON_HEAD, 'content-length': '9' }, '123456789');
    const counted = context(h);
    await outcome(h.filter.onRequest(counted));
    respond(counted, 200, JSON_HEAD, '123456789');
    assert.equal(await lookup(h, {}), undefined);
    assert.match(await h.metrics.registry.metrics(), /reason="too_large"\} 2/);
  });

  test('an answer cut short, or whose client left, is not stored', async () => {
    const h = harness('{shared: true}');
    for (const end of [{ incomplete: true }, { clientAborted: true }]) {
      const ctx = context(h);
      await outcome(h.filter.onRequest(ctx));
      respond(ctx, 200, JSON_HEAD, 'partial', end);
    }
    assert.equal(await lookup(h, {}), undefined);
  });
});

describe('coalescing', () => {
  test('N concurrent identical requests: one leader goes upstream, the rest get its answer', async () => {
    const h = harness('{shared: true}');
    const leader = context(h);
    assert.equal(await outcome(h.filter.onRequest(leader)), undefined);
    const waiting = Array.from({ length: 19 }, () => {
      const ctx = context(h);
      const o = h.filter.onRequest(ctx);
      assert.ok(o instanceof Promise, 'a follower waits');
      return { ctx, o };
    });
    assert.equal(h.factory.coalescer.size, 1);
    respond(leader, 200, JSON_HEAD, 'the answer');
    const answers = await Promise.all(waiting.map((w) => w.o));
    assert.deepEqual(
      answers.map((a) => answerText(a)),
      Array(19).fill('the answer'),
    );
    assert.ok(waiting.every((w) => w.ctx.responseHeaders?.['x-cache'] === 'HIT'));
    assert.equal(h.factory.coalescer.size, 0);
    assert.match(await h.metrics.registry.metrics(), /result="coalesced"\} 19/);
    assert.match(await h.metrics.registry.metrics(), /result="miss"\} 1\b/);
  });

  test('the leader’s answer cannot be stored: waiters are released at its head and go upstream', async () => {
    const h = harness('{shared: true}');
    const leader = context(h);
    await outcome(h.filter.onRequest(leader));
    const followers = [context(h), context(h)];
    const waits = followers.map((c) => h.filter.onRequest(c));
    // The head alone says nothing will be stored: released before the leader's body ends.
    leader.observers![0]!.onResponseStart!(500, JSON_HEAD, { ...JSON_HEAD });
    assert.deepEqual(await Promise.all(waits), [undefined, undefined]);
    for (const c of followers) {
      assert.equal(c.responseHeaders?.['x-cache'], 'MISS');
      assert.equal(c.observers?.length, 1, 'each goes upstream with its own fill');
    }
  });

  test('the leader’s client goes away: waiters go upstream themselves, and the next may lead', async () => {
    const h = harness('{shared: true}');
    const leader = context(h);
    await outcome(h.filter.onRequest(leader));
    const wait = h.filter.onRequest(context(h));
    leader.observers![0]!.onEnd({
      status: 499,
      responseStarted: false,
      clientAborted: true,
      incomplete: false,
    });
    assert.equal(await wait, undefined);
    assert.equal(h.factory.coalescer.size, 0);
    const next = context(h);
    await outcome(h.filter.onRequest(next));
    assert.equal(h.factory.coalescer.size, 1, 'a new request leads a new flight');
  });

  test('bounded: maxWaiters wait, the rest go upstream; a waiter gives up after maxWait', async () => {
    const h = harness('{shared: true, coalescing: {maxWaiters: 2, maxWait: 30ms}}');
    await outcome(h.filter.onRequest(context(h)));
    const a = h.filter.onRequest(context(h));
    const b = h.filter.onRequest(context(h));
    const third = context(h);
    const c = h.filter.onRequest(third);
    assert.ok(a instanceof Promise && b instanceof Promise);
    assert.equal(c, undefined, 'the third goes upstream at once');
    assert.equal(third.responseHeaders?.['x-cache'], 'MISS');
    const started = performance.now();
    assert.deepEqual(await Promise.all([a, b]), [undefined, undefined]);
    assert.ok(performance.now() - started >= 25);
  });

  test('maxWaiters 0 turns coalescing off; a refresh never waits', async () => {
    const off = harness('{shared: true, coalescing: {maxWaiters: 0}}');
    await outcome(off.filter.onRequest(context(off)));
    assert.equal(off.filter.onRequest(context(off)), undefined);
    const h = harness('{shared: true}');
    await outcome(h.filter.onRequest(context(h)));
    assert.equal(h.filter.onRequest(context(h, { headers: { 'cache-control': 'no-cache' } })), undefined);
  });
});

describe('the store and table changes', () => {
  test('entries of a revision no backend serves any more are purged on apply', async () => {
    const h = harness('{shared: true}');
    await fill(h, {}, 'v1');
    assert.equal(h.factory.local.size, 1);
    const same = harness('{shared: true}').table;
    h.factory.applied(same);
    assert.equal(h.factory.local.size, 1, 'an identical table keeps it');
    const next = harness('{shared: true}', {
      backends: '[{name: b, urls: ["http://127.0.0.1:9"], modelRevision: v2}]',
    });
    h.factory.applied(next.table);
    assert.equal(h.factory.local.size, 0);
  });

  test('a fill that ends after its revision left is not stored', async () => {
    const h = harness('{shared: true}');
    const ctx = context(h);
    await outcome(h.filter.onRequest(ctx));
    const next = harness('{shared: true}', {
      backends: '[{name: b, urls: ["http://127.0.0.1:9"], modelRevision: v2}]',
    });
    h.factory.applied(next.table);
    respond(ctx, 200, JSON_HEAD, 'late');
    assert.equal(h.factory.local.size, 0);
    assert.match(await h.metrics.registry.metrics(), /reason="revision_gone"\} 1/);
  });

  test('a Redis store without a usable Secret: every lookup is a miss, counted', async () => {
    const h = harness('{shared: true, store: Redis, redis: {secretRef: {name: nowhere}}}');
    await fill(h, {}, 'x');
    assert.equal(await lookup(h, {}), undefined);
    assert.match(
      await h.metrics.registry.metrics(),
      /modelgate_cache_redis_errors_total\{route="ml\/chat"\} 2/,
    );
  });
});
