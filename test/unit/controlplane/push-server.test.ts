/**
 * PushServer on a real socket, read and answered by hand: authentication, request checks, schema
 * negotiation, what each stream is sent, NACK handling, the proxies view.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { PushServer } from '../../../src/controlplane/push-server.ts';
import { changePart, makeTable, next, openRaw, postAck, startPush, TOKEN } from './push-support.ts';

const v = (term: number, seq: number) => ({ term, seq });

test('401 without a token or with a wrong one, on the stream and on ACKs', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  for (const token of [undefined, 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
    const s = await openRaw(a.url, { token });
    assert.equal(s.status, 401, `stream with token ${token}`);
    assert.equal(JSON.parse(s.body).error, 'unauthorized');
    const ack = await postAck(a.url, { proxy: 'p', version: v(1, 1), hash: 'h', ok: true }, token ?? null);
    assert.equal(ack.status, 401);
  }
  assert.equal(a.push.proxies().length, 0, 'nothing recorded from unauthenticated requests');
  // The token may be a function (read on every request, so it can be rotated).
  let current = 'first';
  const b = await startPush({ controllerId: 'ctl-b', token: () => current });
  t.after(() => b.close());
  assert.equal((await openRaw(b.url, { token: 'first' })).status, 200);
  current = 'second';
  assert.equal((await openRaw(b.url, { token: 'first' })).status, 401);
});

test('bad requests: missing proxy id or schema header, wrong method, bad ACK bodies, other paths', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  const noProxy = await openRaw(a.url, { proxy: undefined });
  assert.equal(noProxy.status, 400);
  assert.match(JSON.parse(noProxy.body).message, /proxy/);
  const noSchema = await openRaw(a.url, { schema: undefined });
  assert.equal(noSchema.status, 400);
  assert.match(JSON.parse(noSchema.body).message, /x-modelgate-table-schema/);
  assert.equal((await openRaw(a.url, { schema: 'one' })).status, 400);
  assert.equal((await postAck(a.url, 'not json')).status, 400);
  const bad = await postAck(a.url, { proxy: 'p', version: { term: -1, seq: 0 }, hash: 'h', ok: true });
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).message, /version/);
  assert.equal((await postAck(a.url, { proxy: 'p', version: v(1, 1), hash: 'h', ok: 'yes' })).status, 400);
  const res = await fetch(`${a.url}/v1/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(res.status, 405);
  assert.equal((await fetch(`${a.url}/v1/ack`)).status, 405);
  assert.equal((await fetch(`${a.url}/elsewhere`)).status, 404);
  const handled = new PushServer({ controllerId: 'x', token: TOKEN, pingIntervalMs: 0 });
  assert.equal(handled.handle({ url: '/metrics', method: 'GET' } as never, {} as never), false);
  handled.close();
});

test('schema negotiation: a proxy declaring an older schema gets an error line and the stream ends', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  a.push.setLeader(true, 1);
  a.push.publish(makeTable(2, 1));
  const old = await openRaw(a.url, { schema: '0' });
  assert.equal(old.status, 200);
  const line = await old.lines.next();
  assert.equal(line.type, 'error');
  assert.match(String(line.message), /table schema 1.*only up to 0.*upgrade the proxy/);
  await old.ended;
  assert.equal(old.lines.size, 0, 'nothing after the error');
  assert.equal(a.push.proxies().length, 0);

  const newer = await openRaw(a.url, { schema: '7' });
  t.after(() => newer.close());
  assert.equal((await newer.lines.next()).type, 'hello');
  const table = await newer.lines.next();
  assert.equal(table.type, 'table');
  assert.equal(
    (table.table as { schemaVersion: number }).schemaVersion,
    1,
    'the newest schema this controller has',
  );
});

test('a follower sends hello and pings only; gaining and losing leadership is announced', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a', pingIntervalMs: 5 });
  t.after(() => a.close());
  a.push.setLeader(false, 4);
  const t1 = makeTable(3, 2);
  assert.equal(a.push.publish(t1), undefined);
  const s = await openRaw(a.url);
  t.after(() => s.close());
  const { bytes: _b, ...hello } = await s.lines.next();
  assert.deepEqual(hello, { type: 'hello', controller: 'ctl-a', leader: false, term: 4 });
  assert.equal((await s.lines.next()).type, 'ping');

  a.push.setLeader(true, 5);
  let m = await s.lines.next();
  while (m.type === 'ping') m = await s.lines.next();
  assert.deepEqual({ ...m, bytes: 0 }, { type: 'leader', leader: true, term: 5, bytes: 0 });
  m = await s.lines.next();
  while (m.type === 'ping') m = await s.lines.next();
  assert.equal(m.type, 'table');
  assert.deepEqual(m.version, v(5, 1));
  assert.equal((m.table as { hash: string }).hash, t1.hash);

  a.push.setLeader(false, 6);
  m = await s.lines.next();
  while (m.type === 'ping') m = await s.lines.next();
  assert.deepEqual({ ...m, bytes: 0 }, { type: 'leader', leader: false, term: 6, bytes: 0 });
  assert.deepEqual(a.push.state, { leader: false, term: 6, version: undefined });
  // A term that went backwards (the Lease was recreated) is not taken: versions keep increasing.
  a.push.setLeader(true, 2);
  m = await s.lines.next();
  while (m.type === 'ping') m = await s.lines.next();
  assert.deepEqual({ ...m, bytes: 0 }, { type: 'leader', leader: true, term: 6, bytes: 0 });
  assert.deepEqual((await s.lines.next()).version, v(6, 1));
  assert.deepEqual(a.push.state, { leader: true, term: 6, version: v(6, 1) });
});

test('what a stream is sent: parts when it has the base, the whole table otherwise; no-op republish', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a', maxEndpointsMessages: 3 });
  t.after(() => a.close());
  a.push.setLeader(true, 2);
  const early = await openRaw(a.url, { proxy: 'early' });
  t.after(() => early.close());
  assert.equal((await early.lines.next()).type, 'hello');

  const t1 = makeTable(8, 2);
  assert.deepEqual(a.push.publish(t1), v(2, 1));
  const first = await early.lines.next();
  assert.equal(first.type, 'table', 'a stream that had nothing gets the whole table');
  assert.deepEqual(a.push.publish(JSON.parse(JSON.stringify(t1))), v(2, 1), 'same hash: nothing new');

  const t2 = changePart(changePart(t1, 1, 3), 5, -1);
  assert.deepEqual(a.push.publish(t2), v(2, 3));
  const p1 = await early.lines.next();
  const p2 = await early.lines.next();
  assert.deepEqual(
    [p1.type, p1.key, p1.version, p1.base, p2.type, p2.key, p2.version, p2.base, p2.part],
    [
      'endpoints',
      'service/ml/model-00001:8000',
      v(2, 2),
      v(2, 1),
      'endpoints',
      'service/ml/model-00005:8000',
      v(2, 3),
      v(2, 2),
      null,
    ],
  );
  assert.equal(p2.hash, t2.hash, 'the last part message carries the resulting table hash');

  // A stream opened now has 2.3 and gets parts from there.
  const late = await openRaw(a.url, { proxy: 'late' });
  t.after(() => late.close());
  await late.lines.next();
  assert.deepEqual((await late.lines.next()).version, v(2, 3));

  // More changed parts than maxEndpointsMessages (3): the whole table.
  const t3 = changePart(changePart(changePart(changePart(t2, 0, 1), 2, 1), 3, 1), 4, 1);
  assert.deepEqual(a.push.publish(t3), v(2, 4));
  const whole = await early.lines.next();
  assert.equal(whole.type, 'table');
  assert.deepEqual(whole.version, v(2, 4));

  // A routes change: the whole table.
  const t4 = makeTable(8, 2, 'other-routes');
  assert.deepEqual(a.push.publish(t4), v(2, 5));
  assert.equal((await early.lines.next()).type, 'table');
  for (let i = 0; i < 2; i++) await late.lines.next();
});

test('NACKs: a part NACK gets one whole table, NACKs it already answers and refused tables are not resent', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  a.push.setLeader(true, 1);
  const t1 = makeTable(6, 2);
  a.push.publish(t1);
  const s = await openRaw(a.url, { proxy: 'p1' });
  t.after(() => s.close());
  await s.lines.next(); // hello
  await s.lines.next(); // table 1.1
  const resends: unknown[] = [];
  a.push.on('resend', (r) => resends.push(r));

  // The proxy refused the whole table it was sent: sending it again would loop.
  assert.equal(
    (await postAck(a.url, { proxy: 'p1', version: v(1, 1), hash: t1.hash, ok: false, reason: 'bad' })).status,
    204,
  );
  assert.equal(resends.length, 0);
  assert.deepEqual(a.push.proxies()[0]?.refused, { version: v(1, 1), reason: 'bad' });

  const t2 = changePart(changePart(changePart(t1, 0, 1), 1, 1), 2, 1);
  assert.deepEqual(a.push.publish(t2), v(1, 4));
  for (let i = 0; i < 3; i++) assert.equal((await s.lines.next()).type, 'endpoints');
  await postAck(a.url, { proxy: 'p1', version: v(1, 2), hash: 'x', ok: false, reason: 'base' });
  const resent = await s.lines.next();
  assert.equal(resent.type, 'table');
  assert.deepEqual(resent.version, v(1, 4));
  assert.deepEqual(resends, [{ proxy: 'p1', version: v(1, 4), nacked: v(1, 2) }]);
  // The rest of the chain fails too; the table already sent answers those NACKs.
  await postAck(a.url, { proxy: 'p1', version: v(1, 3), hash: 'x', ok: false, reason: 'base' });
  await postAck(a.url, { proxy: 'p1', version: v(1, 4), hash: 'x', ok: false, reason: 'base' });
  assert.equal(resends.length, 1);
  await postAck(a.url, { proxy: 'p1', version: v(1, 4), hash: t2.hash, ok: true });
  const [view] = a.push.proxies();
  assert.deepEqual(view?.applied, v(1, 4));
  assert.equal(view?.refused, undefined);
  // NACKs from a proxy without a stream, or of another term, change nothing but the record.
  await postAck(a.url, { proxy: 'ghost', version: v(1, 4), hash: 'x', ok: false, reason: 'r' });
  await postAck(a.url, { proxy: 'p1', version: v(0, 9), hash: 'x', ok: false, reason: 'r' });
  assert.equal(resends.length, 1);
  assert.deepEqual(
    a.push.proxies().map((p) => [p.id, p.connected]),
    [
      ['ghost', false],
      ['p1', true],
    ],
  );
});

test('proxies(): connect, disconnect, a reconnecting proxy replaces its old stream, gone proxies are forgotten', async (t) => {
  let now = 1000;
  const a = await startPush({ controllerId: 'ctl-a', now: () => now, forgetAfterMs: 60_000 });
  t.after(() => a.close());
  const connected = next(a.push, 'connect');
  const s1 = await openRaw(a.url, { proxy: 'p1' });
  await connected;
  const s2 = await openRaw(a.url, { proxy: 'p1' });
  t.after(() => s2.close());
  await s1.ended; // the older stream of the same proxy is ended
  assert.deepEqual(
    a.push.proxies().map((p) => [p.id, p.connected]),
    [['p1', true]],
  );
  const gone = next(a.push, 'disconnect');
  s2.close();
  const [d] = await gone;
  assert.equal(d.proxy, 'p1');
  assert.equal(a.push.proxies()[0]?.connected, false);
  now += 60_001;
  assert.deepEqual(a.push.proxies(), []);
});

test('a proxy that does not read its stream is disconnected once its buffer passes the bound', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a', maxBufferedBytes: 256 * 1024 });
  t.after(() => a.close());
  a.push.setLeader(true, 1);
  // A raw socket that sends the request and never reads.
  const connected = next(a.push, 'connect');
  const sock = connect(Number(new URL(a.url).port), '127.0.0.1');
  t.after(() => sock.destroy());
  sock.pause();
  sock.write(
    `GET /v1/stream?proxy=stuck HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\nx-modelgate-table-schema: 1\r\n\r\n`,
  );
  await connected;
  const dropped = next(a.push, 'disconnect');
  let gone = false;
  void dropped.then(() => {
    gone = true;
  });
  for (let i = 0; i < 200 && !gone; i++) {
    a.push.publish(makeTable(500, 10, `v${i}`)); // ~450 KB each
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert.ok(gone, 'the stream was closed');
  assert.equal(a.push.proxies()[0]?.connected, false);
});

test('every proxy is told how many proxies are connected, as they come and go', async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  a.push.setLeader(false, 1);
  const peersOf = async (s: Awaited<ReturnType<typeof openRaw>>): Promise<unknown> => {
    let m = await s.lines.next();
    while (m.type !== 'peers') m = await s.lines.next();
    return m.proxies;
  };
  const one = await openRaw(a.url, { proxy: 'p1', keepPeers: true });
  t.after(() => one.close());
  assert.equal(await peersOf(one), 1);
  const two = await openRaw(a.url, { proxy: 'p2', keepPeers: true });
  assert.equal(await peersOf(two), 2);
  assert.equal(await peersOf(one), 2);
  two.close();
  assert.equal(await peersOf(one), 1);
});

test("staleTerm: proxies running a term at or above the leader's, said in the stream request or an ACK/NACK", async (t) => {
  const a = await startPush({ controllerId: 'ctl-a' });
  t.after(() => a.close());
  const stale: { proxy: string; version: { term: number; seq: number }; term: number }[] = [];
  a.push.on('staleTerm', (s) => stale.push(s));
  const t1 = makeTable(2, 1);

  // A follower only keeps the highest term proxies report (a new leadership must go above it).
  a.push.setLeader(false, 0);
  a.push.publish(t1);
  assert.equal(a.push.highestProxyTerm, 0);
  assert.equal((await postAck(a.url, { proxy: 'old', version: v(7, 2), hash: 'h7', ok: true })).status, 204);
  assert.equal(a.push.highestProxyTerm, 7);
  assert.equal(stale.length, 0);

  // Told to lead a term at or below it (the Lease was recreated): said at once.
  a.push.setLeader(true, 1);
  assert.deepEqual(stale, [{ proxy: 'old', version: v(7, 2), term: 1 }]);

  // A proxy that says what it runs in its stream request (x-modelgate-table-version): said as the
  // stream opens, before any ACK. Malformed values are ignored.
  const bad = await openRaw(a.url, { proxy: 'garbled', headers: { 'x-modelgate-table-version': '9' } });
  t.after(() => bad.close());
  assert.equal(bad.status, 200);
  const s = await openRaw(a.url, { proxy: 'new', headers: { 'x-modelgate-table-version': '9.4' } });
  t.after(() => s.close());
  assert.equal((await s.lines.next()).type, 'hello');
  assert.deepEqual(stale.slice(1), [{ proxy: 'new', version: v(9, 4), term: 1 }]);
  assert.equal(a.push.highestProxyTerm, 9);

  // Once per term seen: the same or a lower term again says nothing; a proxy that does not send the
  // header (older) is heard through its ACK; a NACK of a higher term counts too.
  await postAck(a.url, { proxy: 'new', version: v(9, 4), hash: 'h9', ok: true });
  await postAck(a.url, { proxy: 'old', version: v(8, 1), hash: 'h8', ok: true });
  assert.equal(stale.length, 2);
  await postAck(a.url, { proxy: 'older', version: v(10, 3), hash: 'h10', ok: true });
  await postAck(a.url, { proxy: 'old', version: v(11, 1), hash: 'h11', ok: false, reason: 'no' });
  assert.deepEqual(
    stale.slice(2).map((e) => [e.proxy, e.version.term, e.term]),
    [
      ['older', 10, 1],
      ['old', 11, 1],
    ],
  );

  // In a term above everything proxies run: its own versions are not stale; a version of the same
  // term it did not publish (another process led it) is.
  a.push.setLeader(true, 12);
  assert.deepEqual(a.push.state.version, v(12, 1));
  assert.equal(stale.length, 4);
  await postAck(a.url, { proxy: 'new', version: v(12, 1), hash: t1.hash, ok: true });
  await postAck(a.url, { proxy: 'old', version: v(11, 1), hash: 'h11', ok: true });
  assert.equal(stale.length, 4);
  await postAck(a.url, { proxy: 'older', version: v(12, 1), hash: 'another table', ok: true });
  assert.deepEqual(stale.at(-1), { proxy: 'older', version: v(12, 1), term: 12 });
  await postAck(a.url, { proxy: 'older', version: v(12, 9), hash: 'h', ok: true });
  assert.equal(stale.length, 5, 'once per term seen');
  assert.equal(a.push.highestProxyTerm, 12);
});
