/**
 * `modelgate status` against a real controller (fake API server): one proxy role that ACKs and a
 * scripted proxy that NACKs the table; the command shows one SYNCED and one NACKED proxy and exits
 * 1, and its JSON output is the /api/v1/status document.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { status } from '../../../src/cli/commands/status.ts';
import type { StatusApiResponse } from '../../../src/controlplane/status-api.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { TABLE_SCHEMA_VERSION } from '../../../src/routing-table/types.ts';
import { send } from '../../support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { openRaw, postAck } from '../../unit/controlplane/push-support.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('one proxy SYNCED, one NACKED: the tables say so and the exit code is 1', async (t) => {
  const api = await startFakeApiServer();
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-status-'));
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: quiet(),
  });
  const token = Buffer.from(
    String(api.get<{ data: { token: string } }>('Secret', 'modelgate', 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const proxy = await startProxyRole({
    proxyId: 'proxy-good',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    logger: quiet(),
  });
  const streams: { close(): void }[] = [];
  t.after(async () => {
    for (const s of streams) s.close();
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'llama', namespace: 'ml' },
    spec: { ports: [{ name: 'http', port: 8000, targetPort: 8000 }] },
  });
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'llama-1', namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8000 }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          matches: [{ path: { value: '/v1' } }],
          backends: [{ name: 'llama', service: { name: 'llama', port: 8000 } }],
        },
      ],
    },
  });
  await api.waitFor((s) =>
    s
      .get<{ status?: { conditions?: { type: string; status: string }[] } }>('ModelRoute', 'ml', 'chat')
      ?.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'True'),
  );

  // All in sync so far: exit 0.
  const fetchDoc = async () =>
    (await send(controller.adminUrl, { path: '/api/v1/status' })).json<StatusApiResponse>();
  const ok = await until('proxy-good in sync', async () => {
    const r = await status({ controller: controller.adminUrl, output: 'table' });
    return r.code === 0 ? r : undefined;
  });
  assert.match(ok.stdout, /proxy-good {2}SYNCED/);

  // A scripted proxy that refuses the table it is sent.
  const bad = await openRaw(controller.pushUrl, {
    token,
    proxy: 'proxy-bad',
    schema: String(TABLE_SCHEMA_VERSION),
  });
  streams.push(bad);
  let table: Record<string, unknown>;
  do table = await bad.lines.next();
  while (table.type !== 'table');
  const refusedVersion = table.version as { term: number; seq: number };
  const nack = await postAck(
    controller.pushUrl,
    {
      proxy: 'proxy-bad',
      version: refusedVersion,
      hash: (table.table as { hash: string }).hash,
      ok: false,
      reason: 'scripted refusal',
    },
    token,
  );
  assert.equal(nack.status, 204);
  const doc = await until('proxy-bad NACKed', async () => {
    const d = await fetchDoc();
    return d.proxies.find((p) => p.id === 'proxy-bad')?.refused ? d : undefined;
  });
  const label = `${refusedVersion.term}.${refusedVersion.seq}`;
  assert.equal(doc.controller.leader, true);
  assert.equal(doc.table.version, label);
  assert.match(String(doc.table.publishedAt), /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(
    doc.proxies.map((p) => [p.id, p.connected, p.inSync, p.refused]),
    [
      ['proxy-bad', true, false, { version: label, reason: 'scripted refusal' }],
      ['proxy-good', true, true, null],
    ],
  );
  assert.equal(doc.routes.length, 1);
  assert.equal(doc.routes[0]?.rules, 1);
  assert.equal(doc.routes[0]?.conditions.Accepted?.status, 'True');

  const out = await status({ controller: controller.adminUrl, output: 'table' });
  assert.equal(out.code, 1);
  assert.match(out.stdout, /^CONTROLLER controller-0 \(leader, term \d+\)/);
  assert.match(out.stdout, /\nproxy-bad +NACKED +- +yes/);
  assert.match(out.stdout, /\nproxy-good +SYNCED +\d+\.\d+ +yes/);
  assert.match(out.stdout, new RegExp(`proxy-bad refused ${label.replace('.', '\\.')}: scripted refusal`));
  assert.match(out.stdout, /\nml\/chat +1 +True +True/);
  assert.match(out.stdout, /No CanaryRollouts\./);

  const json = await status({ controller: controller.adminUrl, output: 'json' });
  assert.equal(json.code, 1);
  const parsed = JSON.parse(json.stdout) as StatusApiResponse;
  assert.deepEqual(
    parsed.proxies.map((p) => p.id),
    ['proxy-bad', 'proxy-good'],
  );

  // The old /status stays as it was.
  const old = (await send(controller.adminUrl, { path: '/status' })).json();
  assert.deepEqual(Object.keys(old).sort(), ['leader', 'proxies', 'resources', 'term']);
});
