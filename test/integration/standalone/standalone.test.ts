/** Standalone mode: files in, traffic out, hot reload, and bad edits that lose nothing. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { type Standalone, startStandalone } from '../../../src/roles/standalone.ts';
import { send } from '../../support/client.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

let dir: string;
let v1: TestUpstream;
let v2: TestUpstream;
let gw: Standalone;
const logs: Record<string, unknown>[] = [];

const manifest = (upstream: string, extra = '') => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: demo}
spec:
  rules:
    - matches: [{path: {value: /v1}}]
      backends: [{name: main, urls: ["${upstream}"]}]
${extra}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-standalone-'));
  [v1, v2] = await Promise.all([startUpstream('v1'), startUpstream('v2')]);
  await writeFile(join(dir, 'routes.yaml'), manifest(v1.url));
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  gw = await startStandalone({
    paths: [dir],
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    logger: createLogger({ destination }).logger,
    debounceMs: 20,
  });
});

after(async () => {
  await gw.close();
  await Promise.all([v1.close(), v2.close()]);
  await rm(dir, { recursive: true, force: true });
});

const upstreamOf = async () => (await send(gw.listener.url, { path: '/v1/x' })).headers['x-upstream'];

/** Writes the file and waits until the gateway has applied what it read. */
async function edit(text: string): Promise<void> {
  const applied = gw.nextApply();
  await writeFile(join(dir, 'routes.yaml'), text);
  await applied;
}

test('serves the files and reports status as Programmed', async () => {
  assert.equal(await upstreamOf(), 'v1');
  const status = await send(gw.adminUrl, { path: '/status' });
  const chat =
    status.json<{ name: string; status: { conditions: { type: string; status: string }[] } }[]>()[0]!;
  assert.equal(chat.name, 'chat');
  assert.deepEqual(
    chat.status.conditions.map((c) => `${c.type}=${c.status}`),
    ['Accepted=True', 'ResolvedRefs=True', 'Programmed=True'],
  );
  assert.equal((await send(gw.adminUrl, { path: '/readyz' })).status, 200);
});

test('an edit is picked up without a restart', async () => {
  await edit(manifest(v2.url));
  assert.equal(await upstreamOf(), 'v2');
});

test('an invalid edit keeps the last good version and says why', async () => {
  await edit(manifest(v1.url, '      timeouts: {connect: soon}\n'));
  assert.equal(await upstreamOf(), 'v2', 'still the last good version');
  assert.ok(
    logs.some(
      (l) => String(l.msg).includes('serving the last good one') && l.resource === 'ModelRoute/demo/chat',
    ),
  );
});

test('a file that stops parsing keeps what it held', async () => {
  await edit(`${manifest(v1.url)}\tbroken: [`);
  assert.equal(await upstreamOf(), 'v2');
  assert.ok(logs.some((l) => String(l.msg).includes('YAML syntax error')));
});

test('fixing the file applies it, and deleting the route removes it', async () => {
  await edit(manifest(v1.url));
  assert.equal(await upstreamOf(), 'v1');
  await edit('# nothing here\n');
  assert.equal((await send(gw.listener.url, { path: '/v1/x' })).status, 404);
});
