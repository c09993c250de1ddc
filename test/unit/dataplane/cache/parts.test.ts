/**
 * The cache's parts on their own: Cache-Control both ways, the deterministic conditions, the
 * byte-bounded LRU store on a fake clock, the Redis value format, key namespaces per revision.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { parseGatewayConfig } from '../../../../src/config/gateway-config.ts';
import { requestDirectives, responseTtlMs } from '../../../../src/dataplane/cache/cache-control.ts';
import type { CacheFilterFactory } from '../../../../src/dataplane/cache/cache-filter.ts';
import { cacheKey, type KeyParts } from '../../../../src/dataplane/cache/cache-key.ts';
import { Determinism, jsonEquals } from '../../../../src/dataplane/cache/conditions.ts';
import { decodeEntry, encodeEntry, makeEntry } from '../../../../src/dataplane/cache/entry.ts';
import { storability } from '../../../../src/dataplane/cache/fill.ts';
import { groupsOf, liveGroups, servingBackends } from '../../../../src/dataplane/cache/groups.ts';
import { type EvictionReason, LocalCacheStore } from '../../../../src/dataplane/cache/local-store.ts';
import { GatewayProxy } from '../../../../src/dataplane/proxy.ts';
import type { CompiledRule } from '../../../../src/routing-table/types.ts';
import { compileYaml } from '../../../support/gateway.ts';

describe('Cache-Control', () => {
  test('requests: no-store, no-cache, max-age, Pragma', () => {
    assert.equal(requestDirectives(undefined, undefined), undefined);
    assert.deepEqual(requestDirectives('no-store', undefined), {
      noStore: true,
      refresh: false,
      maxAgeS: undefined,
    });
    assert.deepEqual(requestDirectives('No-Cache', undefined), {
      noStore: false,
      refresh: true,
      maxAgeS: undefined,
    });
    assert.deepEqual(requestDirectives('max-age=0', undefined), {
      noStore: false,
      refresh: true,
      maxAgeS: 0,
    });
    assert.deepEqual(requestDirectives('max-age="30", max-age=20', undefined), {
      noStore: false,
      refresh: false,
      maxAgeS: 20,
    });
    assert.deepEqual(requestDirectives('max-age=x', undefined), {
      noStore: false,
      refresh: false,
      maxAgeS: undefined,
    });
    assert.deepEqual(requestDirectives(undefined, 'no-cache'), {
      noStore: false,
      refresh: true,
      maxAgeS: undefined,
    });
    assert.equal(requestDirectives(undefined, 'x-other'), undefined);
    // Cache-Control wins over Pragma.
    assert.deepEqual(requestDirectives('max-age=5', 'no-cache'), {
      noStore: false,
      refresh: false,
      maxAgeS: 5,
    });
  });

  test('answers: only shorter, never stored when told not to', () => {
    assert.equal(responseTtlMs(undefined, 60_000, true), 60_000);
    assert.equal(responseTtlMs('max-age=10', 60_000, true), 10_000);
    assert.equal(responseTtlMs('max-age=600', 60_000, true), 60_000);
    assert.equal(responseTtlMs('max-age=600, s-maxage=5', 60_000, true), 5_000);
    assert.equal(responseTtlMs('max-age=0', 60_000, true), 0);
    assert.equal(responseTtlMs('max-age=soon', 60_000, true), 0, 'malformed is stale');
    assert.equal(responseTtlMs('no-store', 60_000, false), 0);
    assert.equal(responseTtlMs('no-cache="set-cookie"', 60_000, false), 0);
    assert.equal(responseTtlMs('private', 60_000, true), 0);
    assert.equal(
      responseTtlMs('private, max-age=30', 60_000, false),
      30_000,
      'per-caller entries are private',
    );
    assert.equal(responseTtlMs('public, must-revalidate', 60_000, true), 60_000);
  });

  test('what is storable: 200, not streamed, identity, no Set-Cookie, Vary within the key, small enough', () => {
    const t = { maxEntryBytes: 100, ttlMs: 1000, shared: true, keyHeaders: new Set(['x-tenant']) };
    const ok = { 'content-type': 'application/json' };
    assert.equal(storability(200, ok, t), 1000);
    assert.equal(storability(201, ok, t), 'status');
    assert.equal(storability(206, ok, t), 'status');
    assert.equal(storability(200, { 'content-type': 'text/event-stream; charset=utf-8' }, t), 'streamed');
    assert.equal(storability(200, { ...ok, 'content-encoding': 'gzip' }, t), 'encoded');
    assert.equal(storability(200, { ...ok, 'content-encoding': 'identity' }, t), 1000);
    assert.equal(storability(200, { ...ok, 'set-cookie': ['a=1'] }, t), 'set_cookie');
    assert.equal(storability(200, { ...ok, vary: 'Accept-Encoding, X-Tenant' }, t), 1000);
    assert.equal(storability(200, { ...ok, vary: 'origin' }, t), 'vary');
    assert.equal(storability(200, { ...ok, vary: '*' }, t), 'vary');
    assert.equal(storability(200, { ...ok, 'cache-control': 'no-store' }, t), 'cache_control');
    assert.equal(storability(200, { ...ok, 'content-length': '101' }, t), 'too_large');
  });
});

describe('deterministic conditions', () => {
  const d = new Determinism(
    [
      {
        bodyFields: [
          { path: ['temperature'], equals: 0 },
          { path: ['options', 'stop'], equals: ['a', 'b'] },
        ],
        headers: [],
      },
      { bodyFields: [], headers: [{ name: 'x-deterministic', value: 'true' }] },
    ],
    1 << 20,
  );
  const body = (v: unknown) => Buffer.from(JSON.stringify(v));
  const on = (b: Buffer | undefined, headers: Record<string, string> = {}) => d.holds({ headers, body: b });

  test('any entry may hold; within one, every condition; values compare as JSON', () => {
    assert.equal(on(body({ temperature: 0, options: { stop: ['a', 'b'] } })), true);
    assert.equal(on(body({ temperature: 0.0, options: { stop: ['a', 'b'] } })), true);
    assert.equal(on(body({ temperature: 0, options: { stop: ['b', 'a'] } })), false);
    assert.equal(on(body({ temperature: 0 })), false, 'every field of the entry');
    assert.equal(on(body({ temperature: '0', options: { stop: ['a', 'b'] } })), false);
    assert.equal(on(body({ options: { stop: ['a', 'b'] } })), false, 'a missing temperature is not 0');
    assert.equal(on(body({ temperature: 0.7 }), { 'x-deterministic': 'true' }), true);
    assert.equal(on(undefined, { 'x-deterministic': 'TRUE' }), false, 'values are exact');
    assert.equal(on(Buffer.from('not json')), false);
    assert.equal(on(undefined), false);
  });

  test('compressed bodies are decoded for the check', () => {
    const gz = gzipSync(body({ temperature: 0, options: { stop: ['a', 'b'] } }));
    assert.equal(on(gz, { 'content-encoding': 'gzip' }), true);
    assert.equal(on(gz), false);
  });

  test('no conditions: every request; array tokens are indexes', () => {
    assert.equal(new Determinism([], 10).holds({ headers: {}, body: undefined }), true);
    const arr = new Determinism([{ bodyFields: [{ path: ['n', '1'], equals: null }], headers: [] }], 1 << 20);
    assert.equal(arr.holds({ headers: {}, body: body({ n: [1, null] }) }), true);
    assert.equal(arr.holds({ headers: {}, body: body({ n: [1] }) }), false);
    assert.equal(arr.holds({ headers: {}, body: body({ n: { 1: null } }) }), true);
    assert.equal(jsonEquals({ a: 1, b: [2] }, { b: [2], a: 1 }), true);
    assert.equal(jsonEquals({ a: 1 }, { a: 1, b: undefined }), false);
  });
});

describe('keys', () => {
  const base: KeyParts = {
    group: 'g',
    method: 'POST',
    host: 'chat.test',
    path: '/v1/chat',
    query: '',
    model: undefined,
    headers: { 'content-type': 'application/json', 'x-tenant': 'a' },
    keyHeaders: ['x-tenant'],
    caller: '',
    body: Buffer.from('{}'),
  };
  test('every part counts, and parts cannot run into each other', () => {
    const k = cacheKey(base);
    assert.match(k, /^[\w-]{43}$/);
    assert.equal(cacheKey({ ...base }), k);
    for (const change of [
      { group: 'h' },
      { method: 'GET' },
      { host: 'other.test' },
      { path: '/v1/chat2' },
      { query: '?a=1' },
      { model: 'm' },
      { caller: 'apiKey\u0000\u0000alice' },
      { body: Buffer.from('{ }') },
      { body: undefined },
      { headers: { ...base.headers, 'x-tenant': 'b' } },
      { headers: { ...base.headers, 'content-encoding': 'gzip' } },
    ] as Partial<KeyParts>[]) {
      assert.notEqual(cacheKey({ ...base, ...change }), k, JSON.stringify(change));
    }
    assert.equal(cacheKey({ ...base, headers: { ...base.headers, 'x-other': '1' } }), k);
    assert.notEqual(
      cacheKey({ ...base, path: '/a', query: '?b' }),
      cacheKey({ ...base, path: '/a?', query: 'b' }),
    );
  });
});

describe('local store', () => {
  const entry = (bytes: number, expiresAt = 1e12, group = 'g') =>
    makeEntry(200, {}, Buffer.alloc(bytes), 0, expiresAt, group);

  test('bounded by bytes: the least recently used entries go first, counted', () => {
    const evicted: [EvictionReason, number][] = [];
    const one = entry(700).size;
    const store = new LocalCacheStore(one * 3, (r, n) => evicted.push([r, n]));
    for (const k of ['a', 'b', 'c']) assert.ok(store.set(k, entry(700), 0));
    assert.equal(store.bytes, one * 3);
    store.get('a', 0); // a is now the most recently used
    store.set('d', entry(700), 0);
    assert.deepEqual(
      [...['a', 'b', 'c', 'd']].map((k) => store.get(k, 0) !== undefined),
      [true, false, true, true],
    );
    assert.deepEqual(evicted, [['size', 1]]);
    assert.equal(store.set('huge', entry(one * 4), 0), false, 'larger than the whole store');
    store.set('c', entry(100), 0);
    assert.equal(store.bytes, one * 2 + entry(100).size, 'a replaced entry gives its bytes back');
  });

  test('TTL on the injected clock; purge by group', () => {
    const evicted: [EvictionReason, number][] = [];
    const store = new LocalCacheStore(1 << 20, (r, n) => evicted.push([r, n]));
    store.set('a', entry(10, 5_000, 'v1'), 0);
    store.set('b', entry(10, 50_000, 'v1'), 0);
    store.set('c', entry(10, 50_000, 'v2'), 0);
    assert.ok(store.get('a', 4_999));
    assert.equal(store.get('a', 5_000), undefined);
    assert.deepEqual(evicted, [['expired', 1]]);
    assert.equal(
      store.purge((g) => g === 'v2', 10_000),
      1,
    );
    assert.deepEqual([store.get('b', 0), store.get('c', 0) !== undefined], [undefined, true]);
    assert.equal(store.size, 1);
  });
});

describe('Redis values', () => {
  test('an entry round-trips: status, headers, body, times', () => {
    const e = makeEntry(
      200,
      { 'content-type': 'application/json', 'x-list': ['a', 'b'] },
      Buffer.from('{"a":1}'),
      1.5e12,
      1.6e12,
      'g',
    );
    const back = decodeEntry(encodeEntry(e), 'g')!;
    assert.deepEqual(back.outcome, e.outcome);
    assert.equal(back.storedAt, e.storedAt);
    assert.equal(back.expiresAt, e.expiresAt);
    assert.equal(decodeEntry(Buffer.from('garbage'), 'g'), undefined);
    const wrongVersion = encodeEntry(e);
    wrongVersion[0] = 9;
    assert.equal(decodeEntry(wrongVersion, 'g'), undefined);
  });
});

describe('namespaces per model revision', () => {
  const table = (canary: string, extra = '') =>
    compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  rules:
    - backends:
        - {name: stable, urls: ["http://10.0.0.1:1"], modelRevision: v1, weight: 1}
        - {name: canary, urls: ["http://10.0.0.2:1"], modelRevision: ${canary}, weight: 0}
        - {name: twin, urls: ["http://10.0.0.3:1"], modelRevision: v1, weight: 1}
        - {name: bare, urls: ["http://10.0.0.4:1"], weight: 1}
      cache: {shared: true}
---
${extra}`);
  const rule = (t: ReturnType<typeof table>): CompiledRule => t.routes.rules[0]!;

  test('one group per revision; a backend without one is its own', () => {
    const g = groupsOf(rule(table('v2')));
    assert.equal(g.get('stable'), g.get('twin'));
    assert.notEqual(g.get('stable'), g.get('canary'));
    assert.notEqual(g.get('stable'), g.get('bare'));
    assert.equal(groupsOf(rule(table('v2'))).get('stable'), g.get('stable'), 'stable across tables');
    assert.equal(groupsOf(rule(table('v1'))).get('canary'), g.get('stable'));
  });

  test('serving backends: weight > 0, plus a canary that previews or overrides reach', () => {
    assert.deepEqual([...servingBackends(rule(table('v2')))].sort(), ['bare', 'stable', 'twin']);
    const rollout = (spec: string) =>
      table(
        'v2',
        `apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: {name: r, namespace: ml}
spec:
  routeRef: {name: chat}
  stableBackend: stable
  canaryBackend: canary
  ${spec}
`,
      );
    assert.ok(!servingBackends(rule(rollout('weight: 0'))).has('canary'));
    assert.ok(
      servingBackends(rule(rollout('weight: 0\n  override: {header: {name: x-canary, always: "1"}}'))).has(
        'canary',
      ),
    );
    const promoted = rule(rollout('weight: 100'));
    assert.ok(servingBackends(promoted).has('canary'));
    assert.ok(!servingBackends(promoted).has('stable'));
    const live = liveGroups([promoted]);
    const g = groupsOf(promoted);
    assert.ok(live.has(g.get('canary')!));
    assert.ok(live.has(g.get('twin')!), 'twin still serves v1');
  });
});

describe('the proxy-wide budget', () => {
  test('GatewayConfig cache.maxBytes defaults to 256Mi and reaches the local store', async () => {
    const parsed = parseGatewayConfig({ apiVersion: 'modelgate.dev/v1alpha1', kind: 'GatewayConfig' });
    assert.ok(parsed.ok);
    assert.equal(parsed.config.cache.maxBytes, '256Mi');
    const proxy = new GatewayProxy({ logger: pino({ level: 'silent' }), cacheMaxBytes: 1234 });
    const factory = (proxy as unknown as { filters: { name: string }[] }).filters.find(
      (f) => f.name === 'cache',
    );
    assert.equal((factory as CacheFilterFactory).local.maxBytes, 1234);
    await proxy.close();
  });
});
