/**
 * JWKS key sources: static documents, and the registry's refresh policy against a local JWKS
 * server (127.0.0.1, port 0) or an injected fetch. Clocks are injected; tests wait on fetches and
 * events, never on elapsed time.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK } from 'jose';
import {
  type FetchedJwks,
  type JwksEvent,
  JwksRegistry,
  type KeyResult,
  staticJwks,
} from '../../../../src/dataplane/auth/jwks-cache.ts';
import { startJwksServer, unreachableUrl } from '../../../support/jwks-server.ts';

async function publicJwk(
  alg: 'RS256' | 'ES256' | 'EdDSA',
  kid: string,
  extra: Partial<JWK> = {},
): Promise<JWK> {
  const { publicKey } = await generateKeyPair(alg);
  return { ...(await exportJWK(publicKey)), kid, ...extra };
}

const rsaA = await publicJwk('RS256', 'rsa-a', { alg: 'RS256', use: 'sig' });
const rsaB = await publicJwk('RS256', 'rsa-b');
const ecA = await publicJwk('ES256', 'ec-a');
const edA = await publicJwk('EdDSA', 'ed-a');

function isPromise(v: unknown): boolean {
  return v instanceof Promise;
}

function assertKey(r: KeyResult): CryptoKey {
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`);
  return r.key;
}

function assertFailure(r: KeyResult, reason: string): void {
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, reason, r.message);
}

/** A clock the test moves. */
function fakeClock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance(ms: number) {
      t += ms;
    },
  };
}

/** Resolves on the next event of `kind`. */
function eventWaiter(events: JwksEvent[]) {
  const waiters: { kind: string; resolve: (e: JwksEvent) => void }[] = [];
  return {
    onEvent(e: JwksEvent) {
      events.push(e);
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.kind === e.kind) waiters.splice(i, 1)[0]!.resolve(e);
      }
    },
    next(kind: JwksEvent['kind']): Promise<JwksEvent> {
      return new Promise((resolve) => waiters.push({ kind, resolve }));
    },
  };
}

test('static JWKS: keys by kid, the only fitting key without kid, sync once imported', async () => {
  const source = staticJwks(JSON.stringify({ keys: [rsaA, ecA, edA] }));
  const first = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(isPromise(first), 'the first lookup imports the key');
  const key = assertKey(await first);
  assert.equal(key.type, 'public');
  const again = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(!isPromise(again), 'an imported key is returned synchronously');
  assert.equal(assertKey(again as KeyResult), key);
  // No kid: the only key fitting the alg.
  assertKey(await source.getKey({ alg: 'ES256' }));
  assertKey(await source.getKey({ alg: 'EdDSA' }));
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'nope' }), 'unknown_kid');
  // The kid exists but its key does not fit the alg.
  assertFailure(await source.getKey({ alg: 'ES256', kid: 'rsa-a' }), 'unknown_kid');
  // The key names RS256: a PS256 header may not use it.
  assertFailure(await source.getKey({ alg: 'PS256', kid: 'rsa-a' }), 'unknown_kid');
});

test('static JWKS: a token without kid is refused when several keys fit', async () => {
  const source = staticJwks(JSON.stringify({ keys: [rsaA, rsaB] }));
  assertFailure(await source.getKey({ alg: 'RS256' }), 'unknown_kid');
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-b' }));
});

test('static JWKS: skips encryption, symmetric and malformed keys; imports public members only', async () => {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid: 'with-private-part' };
  assert.ok(typeof privateJwk.d === 'string');
  const source = staticJwks(
    JSON.stringify({
      keys: [
        { ...rsaB, kid: 'enc', use: 'enc' },
        { kty: 'oct', k: 'c2VjcmV0', kid: 'hmac' },
        { kty: 'RSA', kid: 'no-modulus', e: 'AQAB' },
        { ...ecA, kid: 'no-verify', key_ops: ['encrypt'] },
        { ...ecA, kid: 42 },
        'not an object',
        privateJwk,
      ],
    }),
  );
  for (const kid of ['enc', 'hmac', 'no-modulus', 'no-verify']) {
    assertFailure(await source.getKey({ alg: kid === 'hmac' ? 'HS256' : 'RS256', kid }), 'unknown_kid');
  }
  assertFailure(await source.getKey({ alg: 'ES256', kid: 'no-verify' }), 'unknown_kid');
  const key = assertKey(await source.getKey({ alg: 'RS256', kid: 'with-private-part' }));
  assert.equal(key.type, 'public');
});

test('static JWKS: invalid JSON or a document that is not a JWKS throws; an empty set is accepted', async () => {
  assert.throws(() => staticJwks('{"keys": ['), /JWKS is not valid JSON/);
  assert.throws(() => staticJwks('[]'), /not a JWKS document/);
  assert.throws(() => staticJwks('{}'), /not a JWKS document: no "keys" array/);
  assert.throws(() => staticJwks('{"keys": {}}'), /not a JWKS document/);
  assert.throws(() => staticJwks('null'), /not a JWKS document/);
  const empty = staticJwks('{"keys":[]}');
  assertFailure(await empty.getKey({ alg: 'RS256', kid: 'x' }), 'unknown_kid');
});

test('registry: one source per URI; the first request waits for the fetch; later ones are sync', async (t) => {
  const server = await startJwksServer({ keys: [rsaA, ecA] });
  const clock = fakeClock();
  const registry = new JwksRegistry({ now: clock.now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  assert.equal(registry.source(server.url), source);
  assert.notEqual(registry.source(server.url + '?other'), source);
  assert.equal(server.requests, 0, 'no fetch before the first request');
  const first = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(isPromise(first));
  assertKey(await first);
  assert.equal(server.requests, 1);
  const second = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(!isPromise(second));
  assertKey(second as KeyResult);
  assertKey(await source.getKey({ alg: 'ES256', kid: 'ec-a' }));
  assert.equal(server.requests, 1);
});

test('registry: concurrent first requests share one fetch', async (t) => {
  const server = await startJwksServer({ keys: [rsaA] });
  const registry = new JwksRegistry({ now: fakeClock().now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const release = server.hold();
  const source = registry.source(server.url);
  const pending = Array.from({ length: 50 }, () => source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
  release();
  for (const r of await Promise.all(pending)) assertKey(r);
  assert.equal(server.requests, 1);
});

test('registry: refetches in the background after max-age, honouring Cache-Control within bounds', async (t) => {
  const server = await startJwksServer({ keys: [rsaA] });
  server.setCacheControl('public, max-age=60');
  const clock = fakeClock();
  const events: JwksEvent[] = [];
  const waiter = eventWaiter(events);
  const registry = new JwksRegistry({ now: clock.now, onEvent: waiter.onEvent });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
  assert.equal(server.requests, 1);

  clock.advance(59_000);
  assert.ok(!isPromise(source.getKey({ alg: 'RS256', kid: 'rsa-a' })));
  assert.equal(server.requests, 1, 'younger than max-age: no refetch');

  clock.advance(1_000);
  const fetched = waiter.next('fetched');
  const during = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(!isPromise(during), 'the request is served from the cached set while the refetch runs');
  assertKey(during as KeyResult);
  await fetched;
  assert.equal(server.requests, 2);
  // The imported key survived the refetch (same material): still synchronous.
  assert.ok(!isPromise(source.getKey({ alg: 'RS256', kid: 'rsa-a' })));

  // max-age=1 is raised to minRefreshIntervalMs (10 s).
  server.setCacheControl('max-age=1');
  clock.advance(60_000);
  const fetched2 = waiter.next('fetched');
  source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  await fetched2;
  assert.equal(server.requests, 3);
  clock.advance(9_000);
  source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.equal(server.requests, 3);
  clock.advance(1_000);
  const fetched3 = waiter.next('fetched');
  source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  await fetched3;
  assert.equal(server.requests, 4);

  // No Cache-Control: defaultMaxAgeMs (5 min).
  server.setCacheControl(undefined);
  clock.advance(10_000);
  const fetched4 = waiter.next('fetched');
  source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  await fetched4;
  assert.equal(server.requests, 5);
  clock.advance(299_000);
  source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.equal(server.requests, 5);
  assert.ok(events.every((e) => e.kind === 'fetched'));
});

test('registry: 1,000 lookups of random unknown kids cost at most one refetch per interval', async (t) => {
  const server = await startJwksServer({ keys: [rsaA] });
  const clock = fakeClock();
  const registry = new JwksRegistry({ now: clock.now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
  clock.advance(10_000);
  const release = server.hold();
  const pending = Array.from({ length: 1000 }, () =>
    source.getKey({ alg: 'RS256', kid: crypto.randomUUID() }),
  );
  release();
  for (const r of await Promise.all(pending)) assertFailure(r, 'unknown_kid');
  assert.equal(server.requests, 2, 'the storm shared one refetch');
  // Within the interval, unknown kids are refused at once, without a fetch.
  for (let i = 0; i < 1000; i++) {
    const r = source.getKey({ alg: 'RS256', kid: crypto.randomUUID() });
    assert.ok(!isPromise(r));
    assertFailure(r as KeyResult, 'unknown_kid');
  }
  assert.equal(server.requests, 2);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
});

test('registry: a new kid is found after one refetch (key rotation)', async (t) => {
  const server = await startJwksServer({ keys: [rsaA] });
  const clock = fakeClock();
  const registry = new JwksRegistry({ now: clock.now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
  server.setKeys({ keys: [rsaB] });
  clock.advance(10_000);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-b' }));
  assert.equal(server.requests, 2);
  // The old key is gone with the refetch.
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }), 'unknown_kid');
  assert.equal(server.requests, 2);
});

test('registry: when the server fails, the last good set is served until maxStale, then unavailable', async (t) => {
  const server = await startJwksServer({ keys: [rsaA] });
  const clock = fakeClock();
  const events: JwksEvent[] = [];
  const waiter = eventWaiter(events);
  const registry = new JwksRegistry({ now: clock.now, onEvent: waiter.onEvent });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));

  server.setMode('error500');
  clock.advance(300_000);
  const failed = waiter.next('fetch_failed');
  assertKey(source.getKey({ alg: 'RS256', kid: 'rsa-a' }) as KeyResult);
  assert.match((await failed).error ?? '', /HTTP 500/);
  assertKey(source.getKey({ alg: 'RS256', kid: 'rsa-a' }) as KeyResult);
  assert.equal(events.filter((e) => e.kind === 'served_stale').length, 1);

  server.setMode('reset');
  clock.advance(3_300_000 - 1);
  const failed2 = waiter.next('fetch_failed');
  assertKey(source.getKey({ alg: 'RS256', kid: 'rsa-a' }) as KeyResult);
  await failed2;
  const before = server.requests;

  clock.advance(1); // now exactly maxStale old
  assertKey(source.getKey({ alg: 'RS256', kid: 'rsa-a' }) as KeyResult);
  clock.advance(1); // older than maxStale; the last attempt was within the interval: no fetch
  const r = source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assert.ok(!isPromise(r));
  assertFailure(r as KeyResult, 'unavailable');
  assert.equal(server.requests, before);

  clock.advance(10_000); // a new attempt is allowed, and fails
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }), 'unavailable');
  assert.equal(server.requests, before + 1);

  server.setMode('ok');
  clock.advance(10_000);
  assertKey(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }));
});

test('registry: a server never reached answers unavailable, retried at most once per interval', async (t) => {
  const url = await unreachableUrl();
  const clock = fakeClock();
  const events: JwksEvent[] = [];
  const registry = new JwksRegistry({ now: clock.now, onEvent: (e) => events.push(e) });
  t.after(() => registry.close());
  const source = registry.source(url);
  const r = await source.getKey({ alg: 'RS256', kid: 'rsa-a' });
  assertFailure(r, 'unavailable');
  assert.ok(!r.ok && r.message.includes(url));
  assert.deepEqual(
    events.map((e) => e.kind),
    ['fetch_failed'],
  );
  assertFailure(source.getKey({ alg: 'RS256', kid: 'rsa-a' }) as KeyResult, 'unavailable');
  assert.equal(events.length, 1, 'no second attempt within the interval');
  clock.advance(10_000);
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'rsa-a' }), 'unavailable');
  assert.equal(events.length, 2);
});

test('registry: non-JSON and non-JWKS answers are fetch failures', async (t) => {
  const clock = fakeClock();
  const bodies: unknown[] = [{ nokeys: true }, 'just a string'];
  const events: JwksEvent[] = [];
  const registry = new JwksRegistry({
    now: clock.now,
    fetchJwks: async () => ({ body: bodies.shift() }),
    onEvent: (e) => events.push(e),
  });
  t.after(() => registry.close());
  const source = registry.source('https://idp.example/jwks');
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'a' }), 'unavailable');
  clock.advance(10_000);
  assertFailure(await source.getKey({ alg: 'RS256', kid: 'a' }), 'unavailable');
  assert.deepEqual(
    events.map((e) => e.kind),
    ['fetch_failed', 'fetch_failed'],
  );
  assert.match(events[0]!.error ?? '', /not a JWKS/);

  const server = await startJwksServer({});
  t.after(() => server.close());
  const events2: JwksEvent[] = [];
  const registry2 = new JwksRegistry({ now: clock.now, onEvent: (e) => events2.push(e) });
  t.after(() => registry2.close());
  assertFailure(await registry2.source(server.url).getKey({ alg: 'RS256' }), 'unavailable');
  assert.match(events2[0]?.error ?? '', /not a JWKS/);
});

test('registry: a fetch that does not answer times out', async (t) => {
  const registry = new JwksRegistry({
    now: fakeClock().now,
    timeoutMs: 50,
    fetchJwks: () => new Promise<FetchedJwks>(() => {}), // ignores the signal too
  });
  t.after(() => registry.close());
  const r = await registry.source('https://idp.example/jwks').getKey({ alg: 'RS256', kid: 'a' });
  assertFailure(r, 'unavailable');
  assert.ok(!r.ok && /timed out after 50 ms/.test(r.message), !r.ok ? r.message : '');
});

test('registry: close() aborts the fetch in flight', async () => {
  let signalSeen: AbortSignal | undefined;
  let started!: () => void;
  const startedP = new Promise<void>((resolve) => {
    started = resolve;
  });
  const registry = new JwksRegistry({
    now: fakeClock().now,
    fetchJwks: (_uri, signal) => {
      signalSeen = signal;
      started();
      return new Promise<FetchedJwks>((_resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
    },
  });
  const pending = registry.source('https://idp.example/jwks').getKey({ alg: 'RS256', kid: 'a' });
  await startedP;
  registry.close();
  const r = await pending;
  assertFailure(r, 'unavailable');
  assert.ok(signalSeen?.aborted);
  assert.ok(!r.ok && /closed/.test(r.message));
});

test('registry: prefetch warms a source so that the first request is served at once', async (t) => {
  const server = await startJwksServer({ keys: [ecA] });
  const events: JwksEvent[] = [];
  const waiter = eventWaiter(events);
  const registry = new JwksRegistry({ now: fakeClock().now, onEvent: waiter.onEvent });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const source = registry.source(server.url);
  const fetched = waiter.next('fetched');
  source.prefetch();
  source.prefetch();
  await fetched;
  assert.equal(server.requests, 1);
  assertKey(await source.getKey({ alg: 'ES256', kid: 'ec-a' }));
  assert.equal(server.requests, 1);
});
