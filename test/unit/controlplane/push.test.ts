/**
 * The push channel end to end on real sockets (127.0.0.1:0): PushServers in node:http servers,
 * PushClients whose `apply` records what it gets. Tests wait on events; reconnect timers are manual.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { TableVersion } from '../../../src/controlplane/push-server.ts';
import {
  changePart,
  closeServer,
  listen,
  makeClient,
  makeTable,
  next,
  partKey,
  type RunningPush,
  startPush,
  TOKEN,
} from './push-support.ts';

type Msg = { url: string; type: string; bytes: number; version?: TableVersion };
const at = (term: number, seq: number) => (e: { version: TableVersion }) =>
  e.version.term === term && e.version.seq === seq;
const portOf = (url: string) => Number(new URL(url).port);

async function leaderWith(id: string, term: number): Promise<RunningPush> {
  const r = await startPush({ controllerId: id });
  r.push.setLeader(true, term);
  return r;
}

test('a proxy that connects late gets the current table at once, and its ACK reaches the replica', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  const t1 = makeTable(3, 2);
  const t2 = makeTable(3, 2, 'routes-changed');
  assert.deepEqual(a.push.publish(t1), { term: 1, seq: 1 });
  assert.deepEqual(a.push.publish(t2), { term: 1, seq: 2 });

  const { client, recorder } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const applied = next(client, 'applied');
  const acked = next(a.push, 'ack');
  client.start();
  const [e] = await applied;
  assert.deepEqual(e.version, { term: 1, seq: 2 });
  assert.equal(recorder.calls.length, 1);
  assert.equal(recorder.last?.version, '1.2');
  assert.equal(recorder.last?.table.hash, t2.hash);
  const [ack] = await acked;
  assert.deepEqual(
    { ...ack, at: 0 },
    { proxy: 'proxy-a', version: { term: 1, seq: 2 }, hash: t2.hash, ok: true, at: 0 },
  );
  const [view] = a.push.proxies();
  assert.equal(view?.id, 'proxy-a');
  assert.equal(view?.connected, true);
  assert.deepEqual(view?.applied, { term: 1, seq: 2 });
  assert.deepEqual(client.status(), {
    source: 'controller',
    version: { term: 1, seq: 2 },
    hash: t2.hash,
    leader: 'ctl-a',
    connected: 1,
    lastError: null,
  });
});

test('at 50,000 endpoints one changed part is a message of a few KiB and yields the identical table', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  const big = makeTable(5000, 10);
  a.push.publish(big);
  const { client, recorder } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const messages: Msg[] = [];
  client.on('message', (m) => messages.push(m));
  const first = next(client, 'applied');
  client.start();
  await first;
  const full = messages.find((m) => m.type === 'table');
  assert.ok(full && full.bytes > 2 * 1024 * 1024, `a whole table is MBs (${full?.bytes} bytes)`);

  const changed = changePart(big, 1234, 10);
  const second = next(client, 'applied', at(1, 2));
  assert.deepEqual(a.push.publish(changed), { term: 1, seq: 2 });
  await second;
  const parts = messages.filter((m) => m.type === 'endpoints');
  assert.equal(parts.length, 1);
  assert.equal(messages.filter((m) => m.type === 'table').length, 1, 'no whole table resent');
  assert.ok(parts[0]!.bytes < 8 * 1024, `one part is small (${parts[0]!.bytes} bytes)`);
  t.diagnostic(`whole table ${full.bytes} bytes; one changed part ${parts[0]!.bytes} bytes`);
  assert.equal(recorder.last?.table.hash, changed.hash);
  assert.equal(
    JSON.stringify(recorder.last?.table),
    JSON.stringify(changed),
    'byte-identical to the server table',
  );
});

test('several changed parts (changed, added, removed) arrive as chained part messages', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  const t1 = makeTable(10, 3);
  a.push.publish(t1);
  const { client, recorder } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const messages: Msg[] = [];
  client.on('message', (m) => messages.push(m));
  const first = next(client, 'applied');
  const acked = next(a.push, 'ack', at(1, 1));
  client.start();
  await first;
  await acked;
  const t2 = changePart(changePart(changePart(t1, 2, 5), 7, -1), 12, 2);
  assert.ok(partKey(12) in t2.endpoints && !(partKey(7) in t2.endpoints));
  const done = next(client, 'applied', at(1, 4));
  const lastAck = next(a.push, 'ack', at(1, 4));
  assert.deepEqual(a.push.publish(t2), { term: 1, seq: 4 });
  await done;
  await lastAck;
  const parts = messages.filter((m) => m.type === 'endpoints').map((m) => m.version);
  assert.deepEqual(parts, [
    { term: 1, seq: 2 },
    { term: 1, seq: 3 },
    { term: 1, seq: 4 },
  ]);
  assert.equal(JSON.stringify(recorder.last?.table), JSON.stringify(t2));
  // Parts that arrive together are applied together: at most one apply per part, usually one.
  assert.ok(recorder.calls.length <= 4);
  assert.deepEqual(a.push.proxies()[0]?.applied, { term: 1, seq: 4 });
});

test('a NACK (apply fails once) makes the leader resend the whole table', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  const t1 = makeTable(4, 2);
  a.push.publish(t1);
  const { client, recorder } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const messages: Msg[] = [];
  client.on('message', (m) => messages.push(m));
  const first = next(client, 'applied');
  client.start();
  await first;

  recorder.failNext('runtime build failed');
  const nack = next(a.push, 'ack', (r) => !r.ok);
  const resend = next(a.push, 'resend');
  const rejected = next(client, 'rejected');
  const applied = next(client, 'applied', at(1, 2));
  const t2 = changePart(t1, 1, 4);
  a.push.publish(t2);
  const [r] = await rejected;
  assert.equal(r.reason, 'runtime build failed');
  const [n] = await nack;
  assert.deepEqual(n.version, { term: 1, seq: 2 });
  assert.equal(n.ok === false && n.reason, 'runtime build failed');
  const [rs] = await resend;
  assert.deepEqual(rs, { proxy: 'proxy-a', version: { term: 1, seq: 2 }, nacked: { term: 1, seq: 2 } });
  await applied;
  assert.deepEqual(
    messages
      .filter((m) => m.type !== 'hello' && m.type !== 'peers')
      .map((m) => `${m.type} ${m.version?.term}.${m.version?.seq}`),
    ['table 1.1', 'endpoints 1.2', 'table 1.2'],
  );
  assert.deepEqual(
    recorder.calls.map((c) => c.version),
    ['1.1', '1.2', '1.2'],
  );
  assert.equal(recorder.last?.table.hash, t2.hash);
  const ok = next(a.push, 'ack', (x) => x.ok && x.version.seq === 2);
  await ok;
  const view = a.push.proxies()[0];
  assert.deepEqual(view?.applied, { term: 1, seq: 2 });
  assert.equal(view?.refused, undefined, 'the later ACK clears the refusal');
});

test('two replicas: only the leader streams tables, the proxy applies them, and ACKs reach both', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  const b = await startPush({ controllerId: 'ctl-b' });
  b.push.setLeader(false, 1);
  t.after(() => Promise.all([a.close(), b.close()]));
  const t1 = makeTable(4, 2);
  a.push.publish(t1);
  assert.equal(b.push.publish(t1), undefined, 'a follower assigns no version');

  const { client, recorder } = makeClient({ controllers: [a.url, b.url] });
  t.after(() => client.close());
  const messages: Msg[] = [];
  client.on('message', (m) => messages.push(m));
  const ackA = next(a.push, 'ack', at(1, 1));
  const ackB = next(b.push, 'ack', at(1, 1));
  client.start();
  await Promise.all([ackA, ackB]);
  assert.deepEqual(
    messages.filter((m) => m.url === b.url && m.type !== 'peers').map((m) => m.type),
    ['hello'],
    'the follower sends no table',
  );
  assert.deepEqual(
    recorder.calls.map((c) => c.version),
    ['1.1'],
  );

  const t2 = changePart(t1, 3, 1);
  const ackA2 = next(a.push, 'ack', at(1, 2));
  const ackB2 = next(b.push, 'ack', at(1, 2));
  a.push.publish(t2);
  b.push.publish(t2);
  await Promise.all([ackA2, ackB2]);
  assert.equal(recorder.last?.table.hash, t2.hash);
  assert.deepEqual(b.push.proxies()[0]?.applied, { term: 1, seq: 2 }, 'the follower knows the proxy state');
  assert.equal(client.status().leader, 'ctl-a');
  assert.equal(client.status().connected, 2);
});

test('failover: the proxy follows the higher term and never goes back to the deposed leader', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  const b = await startPush({ controllerId: 'ctl-b' });
  b.push.setLeader(false, 1);
  t.after(() => Promise.all([a.close(), b.close()]));
  const t1 = makeTable(4, 2);
  a.push.publish(t1);
  b.push.publish(t1);
  const { client, recorder } = makeClient({ controllers: [a.url, b.url] });
  t.after(() => client.close());
  const connectedB = next(client, 'connected', (e) => e.url === b.url);
  const first = next(client, 'applied', at(1, 1));
  client.start();
  await Promise.all([first, connectedB]);

  // B takes the Lease (term 2); A was paused and still believes it leads term 1.
  const tookOver = next(client, 'applied', at(2, 1));
  b.push.setLeader(true, 2);
  await tookOver;
  assert.equal(client.status().leader, 'ctl-b');
  assert.equal(recorder.last?.version, '2.1');

  // The deposed leader's tables are ignored (it is not the leader with the highest term) ...
  const ignored = next(client, 'ignored', (e) => e.url === a.url);
  const deposed = changePart(t1, 0, 7);
  a.push.publish(deposed);
  const [ig] = await ignored;
  assert.equal(ig.why, 'not leader');
  assert.deepEqual(ig.version, { term: 1, seq: 2 });

  // ... the new leader's are applied ...
  const t2 = changePart(t1, 2, 5);
  const second = next(client, 'applied', at(2, 2));
  b.push.publish(t2);
  await second;
  assert.equal(recorder.last?.table.hash, t2.hash);

  // ... and with the new leader gone, the old one (now the only one claiming to lead) still cannot
  // move the proxy backwards: its versions are lower than the one in use.
  const gone = next(client, 'disconnected', (e) => e.url === b.url);
  await b.close();
  await gone;
  assert.equal(client.status().leader, 'ctl-a');
  const notNewer = next(client, 'ignored', (e) => e.url === a.url && e.why === 'not newer');
  const told = next(a.push, 'ack', at(2, 2));
  a.push.publish(changePart(deposed, 1, 9));
  await notNewer;
  const [ack] = await told;
  assert.equal(ack.hash, t2.hash, 'the proxy tells the deposed leader what it runs');
  assert.deepEqual(client.status().version, { term: 2, seq: 2 });
  assert.deepEqual(
    recorder.calls.map((c) => c.version),
    ['1.1', '2.1', '2.2'],
  );
});

test('wrong token: the stream is refused with 401 and the client reports it', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  a.push.publish(makeTable(1, 1));
  const { client, recorder, timers } = makeClient({ controllers: [a.url], token: 'not-the-token' });
  t.after(() => client.close());
  const failed = next(client, 'disconnected');
  const scheduled = next(client, 'reconnectScheduled');
  client.start();
  const [e] = await failed;
  assert.equal(e.statusCode, 401);
  assert.match(e.reason, /HTTP 401: unauthorized: a valid push token is required/);
  await scheduled;
  assert.equal(timers.pending.size, 1, 'it retries later (the token may be rotated)');
  const s = client.status();
  assert.equal(s.connected, 0);
  assert.equal(s.source, 'none');
  assert.match(s.lastError ?? '', /401/);
  assert.equal(recorder.calls.length, 0);
  assert.equal(a.push.proxies().length, 0);
});

test('the controller restarts: the client redials and follows it', async (t) => {
  let a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  const t1 = makeTable(3, 2);
  a.push.publish(t1);
  const { client, recorder, timers } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const first = next(client, 'applied', at(1, 1));
  client.start();
  await first;

  const lost = next(client, 'disconnected');
  await a.close();
  const [d] = await lost;
  assert.equal(d.url, a.url);
  assert.equal(timers.pending.size, 1);
  assert.equal(client.status().connected, 0);
  assert.equal(client.status().source, 'controller', 'it keeps serving its table');

  a = await startPush({ controllerId: 'ctl-a' }, portOf(a.url));
  a.push.setLeader(true, 2);
  const t2 = makeTable(3, 2, 'after-restart');
  a.push.publish(t2);
  const again = next(client, 'applied', at(2, 1));
  timers.fire();
  await again;
  assert.equal(recorder.last?.table.hash, t2.hash);
  assert.equal(client.status().connected, 1);
});

test('a restarted controller that kept its term catches up above the versions proxies have', async (t) => {
  let a = await leaderWith('ctl-a', 3);
  t.after(() => a.close());
  const t1 = makeTable(3, 2);
  a.push.publish(t1);
  const t2 = changePart(t1, 1, 3);
  a.push.publish(t2);
  assert.deepEqual(a.push.publish(changePart(t2, 0, 3)), { term: 3, seq: 3 });
  const { client, recorder, timers } = makeClient({ controllers: [a.url] });
  t.after(() => client.close());
  const first = next(client, 'applied', at(3, 3));
  client.start();
  await first;
  const lost = next(client, 'disconnected');
  await a.close();
  await lost;

  // The new process re-took its own Lease without a transition: same term, seq starting over.
  a = await startPush({ controllerId: 'ctl-a' }, portOf(a.url));
  a.push.setLeader(true, 3);
  const t3 = makeTable(3, 2, 'new-process');
  assert.deepEqual(a.push.publish(t3), { term: 3, seq: 1 });
  const caughtUp = next(client, 'applied', at(3, 4));
  timers.fire();
  await caughtUp;
  assert.equal(recorder.last?.table.hash, t3.hash);
  assert.deepEqual(a.push.state.version, { term: 3, seq: 4 });
});

test('persistence: the last table is written atomically and served when no controller answers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'push-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const a = await leaderWith('ctl-a', 4);
  const t1 = makeTable(5, 3);
  a.push.publish(t1);
  const t2 = changePart(changePart(t1, 4, 1), 2, 2);
  assert.deepEqual(a.push.publish(changePart(t1, 4, 1)), { term: 4, seq: 2 });
  assert.deepEqual(a.push.publish(t2), { term: 4, seq: 3 });
  const one = makeClient({ controllers: [a.url], stateDir: dir });
  const persisted = next(one.client, 'persisted', at(4, 3));
  one.client.start();
  await persisted;
  await one.client.close();
  const port = portOf(a.url);
  await a.close();

  const file = JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8'));
  assert.deepEqual(file.version, { term: 4, seq: 3 });
  assert.equal(file.table.hash, t2.hash);
  assert.deepEqual(readdirSync(dir), ['table.json'], 'no temporary file left behind');

  // A new proxy process: the controller is down.
  const two = makeClient({ controllers: [`http://127.0.0.1:${port}`], stateDir: dir });
  t.after(() => two.client.close());
  const refused = next(two.client, 'disconnected');
  two.client.start();
  const [d] = await refused;
  assert.match(d.reason, /ECONNREFUSED/);
  assert.equal(two.client.status().source, 'none');
  const loaded = await two.client.loadPersisted();
  assert.deepEqual(loaded, { ok: true, version: { term: 4, seq: 3 } });
  assert.equal(two.recorder.last?.version, '4.3');
  assert.equal(JSON.stringify(two.recorder.last?.table), JSON.stringify(t2));
  assert.deepEqual(two.client.status(), {
    source: 'persisted',
    version: { term: 4, seq: 3 },
    hash: t2.hash,
    leader: null,
    connected: 0,
    lastError: `http://127.0.0.1:${port}: ${d.reason}`,
  });
  assert.deepEqual(await two.client.loadPersisted(), { ok: false, reason: 'a table is already in use' });

  // The controller comes back with a newer term: its table replaces the persisted one.
  const back = await startPush({ controllerId: 'ctl-a' }, port);
  t.after(() => back.close());
  back.push.setLeader(true, 5);
  const t3 = makeTable(5, 3, 'back');
  back.push.publish(t3);
  const fresh = next(two.client, 'applied', at(5, 1));
  two.timers.fire();
  const [e] = await fresh;
  assert.equal(e.source, 'controller');
  assert.equal(two.client.status().source, 'controller');
});

test('loadPersisted without a file or a state directory says why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'push-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = (await import('node:http')).createServer();
  const url = await listen(server);
  await closeServer(server);
  const none = makeClient({ controllers: [url], stateDir: dir });
  assert.deepEqual(await none.client.loadPersisted(), { ok: false, reason: 'no persisted table' });
  const noDir = makeClient({ controllers: [url] });
  assert.deepEqual(await noDir.client.loadPersisted(), { ok: false, reason: 'no state directory' });
  const { writeFileSync } = await import('node:fs');
  writeFileSync(
    join(dir, 'table.json'),
    '{"version":{"term":1,"seq":1},"table":{"schemaVersion":1,"hash":"x","routes":{"hash":"y"},"endpoints":{}}}',
  );
  const bad = await none.client.loadPersisted();
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /does not match its hash/);
  assert.equal(none.recorder.calls.length, 0);
});

test('proxies learn how many proxies share the traffic (splitAcrossProxies divides by it)', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  a.push.publish(makeTable(2, 1));
  const first = makeClient({ controllers: [a.url], proxyId: 'proxy-1' });
  t.after(() => first.client.close());
  const seen: number[] = [];
  first.client.on('peers', (p) => seen.push(p.proxies));
  const two = new Promise<void>((resolve) =>
    first.client.on('peers', (p) => {
      if (p.proxies === 2) resolve();
    }),
  );
  first.client.start();
  const second = makeClient({ controllers: [a.url], proxyId: 'proxy-2' });
  t.after(() => second.client.close());
  second.client.start();
  await two;
  assert.equal(first.client.peerCount(), 2);
  // One proxy alone is the default and is not announced as a change.
  assert.deepEqual(seen, [2]);
});

test('proxies report their rollout counters; the replica validates them and hands them on', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  a.push.publish(makeTable(2, 1));
  const report = {
    proxy: 'proxy-a',
    epoch: 1000,
    backends: [
      {
        rollout: 'ml/chat-v2',
        backend: 'canary',
        requests: 3,
        errors: 1,
        clientErrors: 0,
        latency: { bounds: [0.1, 1], counts: [1, 2, 0] },
        ttfb: { bounds: [0.1, 1], counts: [3, 0, 0] },
        tokens: 0,
      },
    ],
  };
  const { client } = makeClient({ controllers: [a.url], stats: () => report, reportIntervalMs: 0 });
  t.after(() => client.close());
  const connected = new Promise((r) => client.once('connected', r));
  client.start();
  await connected;
  const received = new Promise<unknown>((r) => a.push.once('report', r));
  client.sendReport();
  assert.deepEqual(await received, report);
  // A malformed report is refused with 400 and not handed on.
  const bad = await fetch(`${a.url}/v1/report`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...report, backends: [{ ...report.backends[0], requests: -1 }] }),
  });
  assert.equal(bad.status, 400);
});

test('proxies report the endpoints they took out of service; the replica keeps the newest list per known proxy', async (t) => {
  const a = await leaderWith('ctl-a', 1);
  t.after(() => a.close());
  a.push.publish(makeTable(2, 1));
  let down = [{ origin: 'http://10.0.0.1:8000', unhealthy: false, ejected: true }];
  const { client } = makeClient({
    controllers: [a.url],
    stats: () => ({ proxy: 'proxy-a', epoch: 1000, backends: [], endpointsDown: down }),
    reportIntervalMs: 0,
  });
  t.after(() => client.close());
  const connected = new Promise((r) => client.once('connected', r));
  client.start();
  await connected;
  const view = () => a.push.proxies().find((p) => p.id === 'proxy-a')?.endpointsDown?.down;
  // A report is not sent while the previous one to that replica is in flight, so send until the
  // replica shows the list (each attempt waits for the POST in flight to finish).
  const reportUntil = async (want: unknown) => {
    for (let i = 0; i < 200 && !isDeepStrictEqual(view(), want); i++) {
      client.sendReport();
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.deepEqual(view(), want);
  };
  await reportUntil(down);
  down = []; // recovered: the next report says so
  await reportUntil([]);

  const post = (body: unknown) =>
    fetch(`${a.url}/v1/report`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  // Malformed lists are refused and change nothing.
  const bad = await post({
    proxy: 'proxy-a',
    epoch: 1000,
    backends: [],
    endpointsDown: [{ origin: 'http://x:1', unhealthy: 'yes', ejected: false }],
  });
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /unhealthy and ejected must be booleans/);
  assert.deepEqual(view(), []);
  // A proxy id the replica never saw gets no record (reports cannot grow the proxy list).
  const stranger = await post({ proxy: 'nobody', epoch: 1, backends: [], endpointsDown: [] });
  assert.equal(stranger.status, 204);
  assert.equal(
    a.push.proxies().some((p) => p.id === 'nobody'),
    false,
  );
});

test('a proxy serving a persisted table of a higher term says so as it connects; the leader moving above it reaches it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'push-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The fleet reached term 9 before the Lease was recreated.
  const old = await leaderWith('ctl-a', 9);
  old.push.publish(makeTable(3, 2, 'term-9'));
  const first = makeClient({ controllers: [old.url], stateDir: dir });
  const persisted = next(first.client, 'persisted', at(9, 1));
  first.client.start();
  await persisted;
  await first.client.close();
  const port = portOf(old.url);
  await old.close();

  // A new controller process leads term 1 of a fresh Lease; a new proxy process starts from its
  // state directory.
  const a = await startPush({ controllerId: 'ctl-a' }, port);
  t.after(() => a.close());
  a.push.setLeader(true, 1);
  const t1 = makeTable(3, 2, 'after-reinstall');
  assert.deepEqual(a.push.publish(t1), { term: 1, seq: 1 });
  const { client, recorder } = makeClient({ controllers: [a.url], stateDir: dir });
  t.after(() => client.close());
  assert.deepEqual(await client.loadPersisted(), { ok: true, version: { term: 9, seq: 1 } });
  const stale = next(a.push, 'staleTerm');
  const connected = next(a.push, 'connect');
  const ignored = next(client, 'ignored', (e) => e.why === 'not newer');
  client.start();
  // The stream request itself carries the version: known before any ACK.
  await connected;
  assert.deepEqual(await Promise.race([stale, Promise.resolve('not yet')]), [
    { proxy: 'proxy-a', version: { term: 9, seq: 1 }, term: 1 },
  ]);
  const [skipped] = await ignored;
  assert.deepEqual(skipped.version, { term: 1, seq: 1 }, 'term 1 is below what the proxy runs');

  // What the controller role does on 'staleTerm': the elector writes a higher term to the Lease,
  // then the table goes out again in it.
  const applied = next(client, 'applied', at(10, 1));
  a.push.setLeader(true, 10);
  await applied;
  assert.equal(recorder.last?.table.hash, t1.hash);
  assert.equal(client.status().source, 'controller');
  const acked = next(a.push, 'ack', (ack) => ack.version.term === 10 && ack.version.seq === 2);
  const t2 = makeTable(3, 2, 'next-change');
  assert.deepEqual(a.push.publish(t2), { term: 10, seq: 2 });
  await acked;
  assert.equal(recorder.last?.table.hash, t2.hash);
});
