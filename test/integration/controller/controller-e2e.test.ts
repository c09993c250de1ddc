/**
 * The controller against a fake API server, with a proxy fed by its push stream and a real
 * upstream: a route applied with kubectl-like calls starts carrying traffic, its status says
 * Programmed, and endpoint changes follow.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { send } from '../../support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { startUpstream } from '../../support/upstream.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

test('apply a route: traffic flows through the proxy and the status says Programmed', async (t) => {
  const api = await startFakeApiServer();
  const up = await startUpstream('model');
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-proxy-state-'));
  const kc = kubeConfigFor(api.url);
  const controller = await startController({
    kc,
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
    proxyId: 'proxy-0',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    logger: quiet(),
  });
  t.after(async () => {
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await up.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  const port = Number(new URL(up.url).port);
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'llama', namespace: 'ml' },
    spec: { ports: [{ name: 'http', port: 8000, targetPort: port }] },
  });
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'llama-1', namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port }],
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

  // The status is written once the proxy has ACKed a table with this generation.
  const programmed = await api.waitFor((s) => {
    const r = s.get<{ status?: { conditions?: { type: string; status: string; message: string }[] } }>(
      'ModelRoute',
      'ml',
      'chat',
    );
    return r?.status?.conditions?.find((c) => c.type === 'Programmed' && c.status === 'True');
  });
  assert.match(programmed.message, /1\/1 proxies/);
  const metrics = (await send(controller.adminUrl, { path: '/metrics' })).text;
  assert.match(metrics, /modelgate_controller_push_latency_seconds_count [1-9]/);
  assert.match(metrics, /modelgate_controller_leader\{term="\d+"\} 1/);
  assert.match(metrics, /modelgate_informer_staleness_seconds\{kind="ModelRoute"/);
  const r = await send(proxy.listener.url, { path: '/v1/chat' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-upstream'], 'model');

  // An endpoint that stops being ready: the proxy follows (503, nothing else to send to).
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'llama-1', namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: false, serving: false } }],
  });
  await new Promise<void>((resolve) => {
    const check = async () =>
      (await send(proxy.listener.url, { path: '/v1/chat' })).status === 503 ? resolve() : setImmediate(check);
    void check();
  });
  const ready = await send(proxy.adminUrl, { path: '/readyz' });
  assert.equal(ready.json<{ source: string }>().source, 'controller');
});

test('the push stream can run over TLS, verified with the proxy CA bundle', async (t) => {
  const { readFileSync } = await import('node:fs');
  const pem = (name: string) => readFileSync(new URL(`../../fixtures/tls/${name}`, import.meta.url), 'utf8');
  const api = await startFakeApiServer();
  const up = await startUpstream('model');
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-proxy-state-'));
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    pushTls: { cert: pem('server.crt'), key: pem('server.key') },
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: quiet(),
  });
  assert.match(controller.pushUrl, /^https:/);
  const token = Buffer.from(
    String(api.get<{ data: { token: string } }>('Secret', 'modelgate', 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const proxy = await startProxyRole({
    proxyId: 'proxy-tls',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    pushCa: pem('ca.crt'),
    logger: quiet(),
  });
  t.after(async () => {
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await up.close();
    await rm(stateDir, { recursive: true, force: true });
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: { rules: [{ backends: [{ name: 'b', urls: [up.url] }] }] },
  });
  await new Promise<void>((resolve) => {
    const check = async () =>
      (await send(proxy.listener.url, { path: '/' })).status === 200 ? resolve() : setImmediate(check);
    void check();
  });
  assert.equal(proxy.push.status().connected, 1);
});
