/** Metrics: bounded labels, the admin endpoints, and a format promtool accepts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { buildAdmin } from '../../../src/dataplane/admin.ts';
import { seededRandom } from '../../../src/dataplane/balancers/random.ts';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream('up', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', authorization: 'Bearer upstream-secret' });
    res.end('{}');
  });
  gw = await startGateway(
    route(
      'chat',
      `{rules: [
        {name: llama, matches: [{path: {value: /v1}, model: {value: llama}}], backends: [{name: b, urls: ["${up.url}"]}]},
        {name: qwen, matches: [{path: {value: /v1}, model: {type: Glob, value: "qwen-*"}}], backends: [{name: b, urls: ["${up.url}"]}]},
        {name: rest, matches: [{path: {value: /v1}}], backends: [{name: b, urls: ["${up.url}"]}]}]}`,
    ) +
      route(
        'plain',
        `{rules: [{matches: [{path: {value: /plain}}], backends: [{name: b, urls: ["${up.url}"]}]}]}`,
      ),
  );
});
after(async () => {
  await gw.close();
  await up.close();
});

async function scrape(): Promise<string> {
  const admin = await buildAdmin(gw.proxy, {});
  const r = await admin.inject({ method: 'GET', url: '/metrics' });
  await admin.close();
  return r.body;
}

test('the model label only takes configured names, globs, other, or empty', async () => {
  const random = seededRandom(3);
  const models = ['llama', 'qwen-7b', 'qwen-72b'];
  for (let i = 0; i < 60; i++) models.push(`random-${Math.floor(random() * 1e9).toString(36)}`);
  for (const m of models) await send(gw.url, { path: '/v1/chat', body: JSON.stringify({ model: m }) });
  await send(gw.url, { path: '/plain' });
  const text = await scrape();
  const labels = new Set(
    [...text.matchAll(/modelgate_requests_total\{[^}]*model="([^"]*)"/g)].map((m) => m[1]),
  );
  assert.deepEqual([...labels].sort(), ['', 'llama', 'other', 'qwen-*']);
  const other =
    /modelgate_requests_total\{route="test\/chat",rule="rest",backend="b",model="other",code_class="2xx"\} (\d+)/.exec(
      text,
    );
  assert.equal(other?.[1], '60');
});

test('the exposition passes promtool check metrics, where promtool is installed', async (t) => {
  const which = spawnSync('promtool', ['--version']);
  if (which.error) {
    t.skip('promtool not installed (Debian package prometheus)');
    return;
  }
  const text = await scrape();
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

test('admin: health, readiness, config, and a dump without secrets', async () => {
  const admin = await buildAdmin(gw.proxy, {});
  try {
    assert.equal((await admin.inject({ url: '/healthz' })).statusCode, 200);
    const ready = await admin.inject({ url: '/readyz' });
    assert.equal(ready.statusCode, 200);
    assert.equal(ready.json().version, gw.proxy.table?.version);
    const config = (await admin.inject({ url: '/config' })).json();
    assert.equal(config.rules, 4);
    assert.deepEqual(config.models, ['llama', 'qwen-*']);
    const dump = await admin.inject({ url: '/config/dump' });
    assert.equal(dump.json().table.hash, gw.proxy.table?.table.hash);
    assert.ok(!dump.body.includes('upstream-secret'));
  } finally {
    await admin.close();
  }
});

test('readiness fails until a table is loaded', async () => {
  const { GatewayProxy } = await import('../../../src/dataplane/proxy.ts');
  const empty = new GatewayProxy({ logger: gw.proxy.logger });
  const admin = await buildAdmin(empty, {});
  const r = await admin.inject({ url: '/readyz' });
  assert.equal(r.statusCode, 503);
  await admin.close();
});

test('table swaps are counted and the table gauge names only the current table', async () => {
  gw.apply(route('x', `{rules: [{backends: [{name: b, urls: ["${up.url}"]}]}]}`));
  const text = await scrape();
  const infos = text.split('\n').filter((l) => l.startsWith('modelgate_table_info{'));
  assert.equal(infos.length, 1);
  assert.ok(infos[0]!.includes(`hash="${gw.proxy.table?.table.hash}"`));
  assert.match(text, /modelgate_table_swaps_total 2/);
  assert.ok(!text.includes('route="test/chat"'), 'series of routes that left the table are dropped');
});
