/** Weighted splits with a seeded source, and table swaps under load. */
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { seededRandom } from '../../../src/dataplane/balancers/random.ts';
import { send } from '../../support/client.ts';
import { route, startGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

test('a 90/10 split follows the seeded source exactly', async (t) => {
  const [stable, canary] = await Promise.all([startUpstream('stable'), startUpstream('canary')]);
  const gw = await startGateway(
    route(
      'split',
      `{rules: [{backends: [{name: stable, weight: 90, urls: ["${stable.url}"]}, {name: canary, weight: 10, urls: ["${canary.url}"]}]}]}`,
    ),
    { seed: 7 },
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([stable.close(), canary.close()]);
  });
  const N = 1000;
  // With one endpoint per backend the backend choice is the only use of the random source.
  const replay = seededRandom(7);
  let expectedCanary = 0;
  for (let i = 0; i < N; i++) if (Math.floor(replay() * 10000) >= 9000) expectedCanary++;
  for (let i = 0; i < N; i++) assert.equal((await send(gw.url, { path: '/' })).status, 200);
  assert.equal(canary.received.length, expectedCanary);
  assert.equal(stable.received.length, N - expectedCanary);
  assert.ok(expectedCanary > 70 && expectedCanary < 130, `a 10% share, got ${expectedCanary}`);
});

test('swapping tables under load fails no request, and in-flight requests finish on their table', async (t) => {
  // The held upstream answers only when the test says so: a request can be kept in flight across swaps.
  const held: ServerResponse[] = [];
  let heldArrived: (() => void) | undefined;
  const slow = await startUpstream('slow', (req, res) => {
    if (req.url === '/hold') {
      held.push(res);
      heldArrived?.();
      return;
    }
    res.end('slow');
  });
  const [a, b] = await Promise.all([startUpstream('a'), startUpstream('b')]);
  const tableWith = (backends: string) => route('r', `{rules: [{backends: [${backends}]}]}`);
  const gw = await startGateway(tableWith(`{name: slow, urls: ["${slow.url}"]}`));
  const agent = new Agent({ connections: 16 });
  t.after(async () => {
    await agent.close();
    await gw.close();
    await Promise.all([slow.close(), a.close(), b.close()]);
  });

  const arrived = new Promise<void>((resolve) => {
    heldArrived = resolve;
  });
  const inFlight = request(`${gw.url}/hold`, { dispatcher: agent });
  await arrived;

  // Load: 8 clients, each a bounded loop; swaps happen while they run.
  let failures = 0;
  let done = 0;
  const clients = Array.from({ length: 8 }, async () => {
    for (let i = 0; i < 150; i++) {
      const r = await request(`${gw.url}/x`, { dispatcher: agent });
      await r.body.text();
      if (r.statusCode !== 200) failures++;
      done++;
    }
  });
  const tables = [
    tableWith(`{name: a, urls: ["${a.url}"]}`),
    tableWith(`{name: a, weight: 1, urls: ["${a.url}"]}, {name: b, weight: 3, urls: ["${b.url}"]}`),
    tableWith(`{name: b, urls: ["${b.url}"]}`),
  ];
  let swaps = 0;
  const swapper = (async () => {
    while (done < 8 * 150 && swaps < 300) {
      gw.apply(tables[swaps % tables.length]!);
      swaps++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  await Promise.all([...clients, swapper]);
  assert.equal(failures, 0);
  assert.ok(swaps >= 3, `swapped ${swaps} times`);
  assert.ok(a.received.length > 0 && b.received.length > 0);

  // The held request started on the first table, whose only endpoint has since left every table.
  held[0]!.end('finished on the old table');
  const r = await inFlight;
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'finished on the old table');
});
