/**
 * PushClient against scripted controllers (real sockets, messages written by hand): which messages
 * it applies, what it NACKs and why, batching, reconnect backoff, the controller list, limits.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { backoffDelay } from '../../../src/dataplane/push/backoff.ts';
import { writePersisted } from '../../../src/dataplane/push/persist.ts';
import {
  changePart,
  closeServer,
  FakeController,
  listen,
  makeClient,
  makeTable,
  next,
  partKey,
  TOKEN,
} from './push-support.ts';

const v = (term: number, seq: number) => ({ term, seq });

async function fake(t: { after(fn: () => unknown): void }): Promise<FakeController> {
  const f = await new FakeController().start();
  t.after(() => f.close());
  return f;
}

test('applies only the leader, only newer versions, and NACKs parts it cannot apply', async (t) => {
  const f = await fake(t);
  const { client, recorder } = makeClient({ controllers: [f.url] });
  t.after(() => client.close());
  client.start();
  const s = await f.streams.next();
  assert.equal(s.req.headers.authorization, 'Bearer test-push-token-0123456789');
  assert.equal(s.req.headers['x-modelgate-table-schema'], '1');
  assert.match(s.req.url ?? '', /^\/v1\/stream\?proxy=proxy-a$/);
  const t1 = makeTable(4, 2);

  const hello = next(client, 'connected');
  s.send({ type: 'hello', controller: 'c1', leader: false, term: 1 });
  await hello;
  const ignored = next(client, 'ignored');
  s.send({ type: 'table', version: v(1, 1), leader: false, table: t1 });
  assert.equal((await ignored)[0].why, 'not leader');

  s.send({ type: 'leader', leader: true, term: 1 });
  s.send({ type: 'future-message', x: 1 }); // unknown types are skipped
  s.send({ type: 'table', version: v(1, 1), leader: true, table: t1 });
  assert.deepEqual(await f.acks.next(), { proxy: 'proxy-a', version: v(1, 1), hash: t1.hash, ok: true });
  assert.equal(recorder.calls.length, 1);

  // Not newer: ACKed with what the proxy runs, not applied.
  s.send({ type: 'table', version: v(1, 1), leader: true, table: makeTable(4, 2, 'other') });
  assert.deepEqual(await f.acks.next(), { proxy: 'proxy-a', version: v(1, 1), hash: t1.hash, ok: true });

  const t2 = changePart(t1, 0, 3);
  const part = t2.endpoints[partKey(0)];
  const base = { type: 'endpoints', leader: true, key: partKey(0), part };
  s.send({ ...base, version: v(1, 3), base: v(1, 2), hash: t2.hash });
  let ack = await f.acks.next();
  assert.deepEqual([ack.ok, ack.version, ack.hash], [false, v(1, 3), t2.hash]);
  assert.equal(ack.reason, 'endpoints change applies on 1.2, this proxy has 1.1');

  s.send({ ...base, version: v(1, 2), base: v(1, 1), hash: 'not-the-hash' });
  ack = await f.acks.next();
  assert.match(
    String(ack.reason),
    /table hash after the endpoints change is \w+, the controller says not-the-hash/,
  );

  s.send({ ...base, part: { ...part, hash: 'wrong' }, version: v(1, 2), base: v(1, 1), hash: t2.hash });
  ack = await f.acks.next();
  assert.match(String(ack.reason), /endpoints part service\/ml\/model-00000:8000 does not match its hash/);

  const forged = { ...t2, hash: 'forged' };
  s.send({ type: 'table', version: v(1, 2), leader: true, table: forged });
  ack = await f.acks.next();
  assert.deepEqual([ack.ok, ack.reason], [false, 'the table does not match its hash']);
  assert.equal(recorder.calls.length, 1, 'nothing refused reached apply');

  s.send({ ...base, version: v(1, 2), base: v(1, 1), hash: t2.hash });
  assert.deepEqual(await f.acks.next(), { proxy: 'proxy-a', version: v(1, 2), hash: t2.hash, ok: true });
  assert.equal(JSON.stringify(recorder.last?.table), JSON.stringify(t2));

  // A removed part (null).
  const t3 = changePart(t2, 3, -1);
  s.send({
    type: 'endpoints',
    leader: true,
    key: partKey(3),
    part: null,
    version: v(1, 3),
    base: v(1, 2),
    hash: t3.hash,
  });
  assert.deepEqual((await f.acks.next()).version, v(1, 3));
  assert.equal(recorder.last?.table.hash, t3.hash);
});

test('messages that arrive together are applied once and ACKed once', async (t) => {
  const f = await fake(t);
  const { client, recorder } = makeClient({ controllers: [f.url] });
  t.after(() => client.close());
  client.start();
  const s = await f.streams.next();
  const t1 = makeTable(5, 2);
  const t2 = changePart(t1, 1, 1);
  const t3 = changePart(t2, 2, 4);
  const lines = [
    { type: 'hello', controller: 'c1', leader: true, term: 2 },
    { type: 'table', version: v(2, 1), leader: true, table: t1 },
    {
      type: 'endpoints',
      version: v(2, 2),
      base: v(2, 1),
      leader: true,
      key: partKey(1),
      part: t2.endpoints[partKey(1)],
      hash: t2.hash,
    },
    {
      type: 'endpoints',
      version: v(2, 3),
      base: v(2, 2),
      leader: true,
      key: partKey(2),
      part: t3.endpoints[partKey(2)],
      hash: t3.hash,
    },
  ];
  s.sendRaw(lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  assert.deepEqual(await f.acks.next(), { proxy: 'proxy-a', version: v(2, 3), hash: t3.hash, ok: true });
  assert.deepEqual(
    recorder.calls.map((c) => c.version),
    ['2.3'],
  );
  assert.equal(f.acks.size, 0);
});

test('apply throwing is a NACK with the error', async (t) => {
  const f = await fake(t);
  const { client } = makeClient({
    controllers: [f.url],
    apply: () => {
      throw new Error('kaput');
    },
  });
  t.after(() => client.close());
  client.start();
  const s = await f.streams.next();
  s.send({ type: 'hello', controller: 'c1', leader: true, term: 1 });
  s.send({ type: 'table', version: v(1, 1), leader: true, table: makeTable(1, 1) });
  const ack = await f.acks.next();
  assert.deepEqual([ack.ok, ack.reason], [false, 'apply failed: kaput']);
  assert.equal(client.status().source, 'none');
});

test('reconnects with exponential backoff and jitter, reset after a successful hello', async (t) => {
  const f = await fake(t);
  const port = Number(new URL(f.url).port);
  const { client, timers } = makeClient({
    controllers: [f.url],
    backoff: { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.5 },
    random: () => 0.5,
  });
  t.after(() => client.close());
  client.start();
  const s = await f.streams.next();
  // The controller refuses the stream with an error line (say, a schema it cannot serve).
  const refused = next(client, 'disconnected');
  s.res.end(`${JSON.stringify({ type: 'error', message: 'cannot serve schema 1' })}\n`);
  const [d] = await refused;
  assert.match(d.reason, /controller refused the stream: cannot serve schema 1/);
  await f.close();

  const delays: number[] = [];
  client.on('reconnectScheduled', (e) => delays.push(e.delayMs));
  for (let i = 0; i < 5; i++) {
    const failed = next(client, 'disconnected');
    assert.equal(timers.fire(), 1);
    await failed;
  }
  assert.deepEqual(delays, [150, 300, 600, 750, 750], 'doubling, capped at 1000, jitter takes up to half');

  // The controller is back: after a hello the next failure starts from the first delay again.
  const back = new FakeController();
  back.url = await listen(back.server, port);
  t.after(() => back.close());
  timers.fire();
  const s2 = await back.streams.next();
  const hello = next(client, 'connected');
  s2.send({ type: 'hello', controller: 'c1', leader: true, term: 1 });
  await hello;
  const scheduled = next(client, 'reconnectScheduled');
  s2.res.destroy();
  assert.equal((await scheduled)[0].delayMs, 75);
});

test('backoffDelay: growth, cap and jitter bounds', () => {
  const o = { initialMs: 500, maxMs: 30_000 };
  assert.deepEqual(
    [0, 1, 2, 3, 10].map((a) => backoffDelay(a, o, () => 0)),
    [500, 1000, 2000, 4000, 30_000],
  );
  assert.equal(
    backoffDelay(0, o, () => 0.999999),
    250,
  );
  assert.equal(
    backoffDelay(2000, o, () => 0),
    30_000,
    'huge attempt counts do not overflow',
  );
  assert.equal(
    backoffDelay(3, { initialMs: 100, jitter: 0 }, () => 0.9),
    800,
  );
});

test('a resolver: re-resolved periodically and after failures; unlisted replicas are dropped when not open', async (t) => {
  const a = await fake(t);
  const b = await fake(t);
  let list = [a.url];
  let calls = 0;
  let fail = false;
  const { client, timers } = makeClient({
    controllers: async () => {
      calls++;
      if (fail) throw new Error('DNS timeout');
      return list;
    },
    resolveIntervalMs: 1234,
  });
  t.after(() => client.close());
  client.start();
  const sa = await a.streams.next();
  sa.send({ type: 'hello', controller: 'a', leader: true, term: 1 });
  assert.equal(calls, 1);

  list = [a.url, `${b.url}/`];
  const toB = b.streams.next();
  assert.equal(
    timers.fire((ms) => ms === 1234),
    1,
  );
  const sb = await toB;
  const helloB = next(client, 'connected', (e) => e.controller === 'b');
  sb.send({ type: 'hello', controller: 'b', leader: false, term: 1 });
  await helloB;
  assert.equal(client.status().connected, 2);

  // A failing resolver keeps the list it had.
  fail = true;
  timers.fire((ms) => ms === 1234);
  await new Promise<void>((resolve) => setImmediate(resolve)); // the resolver's rejection is handled
  assert.equal(client.status().lastError, 'resolving controllers: DNS timeout');
  assert.equal(client.status().connected, 2);
  // An open replica that DNS stops listing (a rollout) keeps its stream until it fails.
  fail = false;
  list = [a.url];
  const resolvedAgain = calls;
  timers.fire((ms) => ms === 1234);
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(calls, resolvedAgain + 1);
  assert.equal(client.status().connected, 2);

  // B fails while unlisted: it is forgotten, not redialled.
  const bGone = next(client, 'disconnected', (e) => e.url === b.url);
  sb.res.destroy();
  await bGone;
  assert.ok(calls > resolvedAgain, 'a failure triggers a resolve');
  assert.equal(
    [...timers.pending.values()].filter((p) => p.ms !== 1234).length,
    0,
    'no redial of an unlisted replica',
  );
});

test('a stream that goes silent, or a message over the size limit, is dropped', async (t) => {
  const f = await fake(t);
  const quiet = makeClient({ controllers: [f.url], idleTimeoutMs: 40 });
  t.after(() => quiet.client.close());
  quiet.client.start();
  const s = await f.streams.next();
  const silent = next(quiet.client, 'disconnected');
  s.send({ type: 'hello', controller: 'c1', leader: true, term: 1 });
  assert.match((await silent)[0].reason, /no message for 40 ms/);

  const small = makeClient({ controllers: [f.url], maxMessageBytes: 200 });
  t.after(() => small.client.close());
  small.client.start();
  const s2 = await f.streams.next();
  const tooBig = next(small.client, 'disconnected');
  s2.send({ type: 'table', version: v(1, 1), leader: true, table: makeTable(5, 5) });
  assert.match((await tooBig)[0].reason, /message larger than 200 bytes/);
});

test('a persisted table confirmed by the leader (same version and hash) counts as from the controller', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'push-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const t1 = makeTable(3, 1);
  await writePersisted(dir, { version: v(7, 3), table: t1 });
  const f = await fake(t);
  const { client, recorder } = makeClient({ controllers: [f.url], stateDir: dir });
  t.after(() => client.close());
  assert.deepEqual(await client.loadPersisted(), { ok: true, version: v(7, 3) });
  client.start();
  const s = await f.streams.next();
  s.send({ type: 'hello', controller: 'c1', leader: true, term: 7 });
  // On hello the proxy tells the replica what it runs.
  assert.deepEqual(await f.acks.next(), { proxy: 'proxy-a', version: v(7, 3), hash: t1.hash, ok: true });
  assert.equal(client.status().source, 'persisted');
  s.send({ type: 'table', version: v(7, 3), leader: true, table: t1 });
  await f.acks.next();
  assert.equal(client.status().source, 'controller');
  assert.equal(recorder.calls.length, 1, 'not applied again');
  // An older version (a Lease that went backwards) is not applied.
  s.send({ type: 'table', version: v(6, 9), leader: true, table: makeTable(3, 1, 'older') });
  assert.deepEqual((await f.acks.next()).version, v(7, 3));
  assert.equal(recorder.calls.length, 1);
});

test('close() stops redialling', async (t) => {
  const server = createServer();
  const url = await listen(server);
  await closeServer(server);
  const { client, timers } = makeClient({ controllers: [url] });
  const failed = next(client, 'disconnected');
  client.start();
  await failed;
  assert.equal(timers.pending.size, 1);
  await client.close();
  assert.equal(timers.pending.size, 0);
  t.diagnostic('closed');
});

test('a token that cannot be read yet is retried with backoff, not thrown; the stream opens once it can', async (t) => {
  const f = await fake(t);
  let readable = false;
  const { client, timers } = makeClient({
    controllers: [f.url],
    token: () => {
      if (!readable) throw new Error("ENOENT: no such file or directory, open '/var/run/modelgate/token'");
      return TOKEN;
    },
  });
  t.after(() => client.close());
  const failed = next(client, 'disconnected');
  client.start();
  const [d] = await failed;
  assert.match(d.reason, /push token unreadable: ENOENT/);
  assert.equal(f.streams.all.length, 0, 'nothing dialled without a token');
  // The Secret appears: the scheduled redial opens the stream.
  readable = true;
  assert.equal(timers.fire(), 1);
  const s = await f.streams.next();
  const hello = next(client, 'connected');
  s.send({ type: 'hello', controller: 'c1', leader: true, term: 1 });
  await hello;
});
