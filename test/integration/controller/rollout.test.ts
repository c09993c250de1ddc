/**
 * Automated rollouts end to end: a fake API server, the controller (leader), a proxy fed by its
 * push stream and reporting its counters every 100 ms, and real upstreams. A healthy canary is
 * stepped up and promoted; one answering 500 to one request in 20 (5%) is rolled back within one
 * analysis interval, with a Warning Event. Load is a bounded loop (count and time) that runs while
 * the test waits for the status the engine writes.
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
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

interface RolloutStatus {
  phase?: string;
  stepWeight?: number;
  servedWeight?: number;
  currentStep?: number;
  message?: string;
  lastAnalysis?: { verdict: string; canaryErrorRate?: number };
  history?: { weight: number; reason: string }[];
}

async function scenario(canaryFailsOneIn: number) {
  const api = await startFakeApiServer();
  const stable = await startUpstream('stable');
  let canaryCalls = 0;
  const canary: TestUpstream = await startUpstream('canary', (_req, res) => {
    canaryCalls++;
    const fail = canaryFailsOneIn > 0 && canaryCalls % canaryFailsOneIn === 0;
    res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: 'canary' }));
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-rollout-'));
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
    proxyId: 'proxy-0',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    reportIntervalMs: 100,
    logger: quiet(),
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          backends: [
            { name: 'stable', urls: [stable.url] },
            { name: 'canary', urls: [canary.url] },
          ],
        },
      ],
    },
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      steps: [
        { setWeight: 50 },
        { analysis: { interval: '1500ms', minRequests: 30, maxErrorRate: 0.01 } },
        { setWeight: 80 },
      ],
    },
  });
  const status = () => api.get<{ status?: RolloutStatus }>('CanaryRollout', 'ml', 'chat-v2')?.status;
  // Load until the rollout ends: at most 20,000 requests or 40 s.
  let stop = false;
  let sent = 0;
  const proxyUrl = proxy.listener.url;
  const load = (async () => {
    const deadline = Date.now() + 40_000;
    while (!stop && sent < 20_000 && Date.now() < deadline) {
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          sent++;
          await send(proxyUrl, { path: '/v1/chat' }).catch(() => undefined);
        }),
      );
    }
  })();
  const cleanup = async () => {
    stop = true;
    await load;
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await stable.close();
    await canary.close();
    await rm(stateDir, { recursive: true, force: true });
  };
  return { api, status, cleanup, sentCount: () => sent };
}

const ended = (s: RolloutStatus | undefined) =>
  s && (s.phase === 'Promoted' || s.phase === 'RolledBack' || s.phase === 'Failed') ? s : undefined;

test('a healthy canary is stepped through its analysis and promoted', async (t) => {
  const run = await scenario(0);
  t.after(run.cleanup);
  const s = await run.api.waitFor(() => ended(run.status()), {
    timeoutMs: 45_000,
    message: 'the rollout did not end',
  });
  assert.equal(s.phase, 'Promoted', s.message);
  assert.equal(s.stepWeight, 100);
  assert.equal(s.lastAnalysis?.verdict, 'Pass');
  assert.deepEqual(
    s.history?.map((h) => h.weight),
    [0, 50, 80, 100],
  );
  // The table follows the status: servedWeight is what proxies serve.
  await run.api.waitFor(() => run.status()?.servedWeight === 100 || undefined, { timeoutMs: 10_000 });
  // Events are written after the status they follow: wait for it rather than look once.
  const reasons = () => run.api.recordedEvents('ml').map((e) => (e as { reason?: string }).reason);
  await run.api.waitFor(() => reasons().includes('Promoted') || undefined, {
    timeoutMs: 10_000,
    message: 'no Promoted event',
  });
});

test('a canary failing 5% of its requests is rolled back within one analysis interval', async (t) => {
  const run = await scenario(20);
  t.after(run.cleanup);
  const s = await run.api.waitFor(() => ended(run.status()), {
    timeoutMs: 45_000,
    message: 'the rollout did not end',
  });
  assert.equal(s.phase, 'RolledBack', s.message);
  assert.equal(s.stepWeight, 0);
  assert.equal(s.currentStep, 1, 'rolled back during the analysis step, after one interval');
  assert.equal(s.lastAnalysis?.verdict, 'Fail');
  assert.ok((s.lastAnalysis?.canaryErrorRate ?? 0) > 0.01);
  assert.match(s.message ?? '', /rolled back: canary error rate/);
  await run.api.waitFor(() => run.status()?.servedWeight === 0 || undefined, { timeoutMs: 10_000 });
  const warning = (await run.api.waitFor(
    () => run.api.recordedEvents('ml').find((e) => (e as { reason?: string }).reason === 'RolledBack'),
    { timeoutMs: 10_000, message: 'no RolledBack event' },
  )) as { type?: string };
  assert.equal(warning.type, 'Warning');
});

test('a controller restarted mid-pause resumes the rollout where it was, never from zero', async (t) => {
  const api = await startFakeApiServer();
  const options = {
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
  };
  let controller = await startController(options);
  t.after(async () => {
    await controller.shutdown();
    await api.close();
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          backends: [
            { name: 'stable', urls: ['http://127.0.0.1:9'] },
            { name: 'canary', urls: ['http://127.0.0.1:9'] },
          ],
        },
      ],
    },
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      steps: [{ setWeight: 30 }, { pause: { duration: '3s' } }, { setWeight: 60 }],
    },
  });
  const status = () =>
    api.get<{ status?: RolloutStatus & { stepStartedAt?: string } }>('CanaryRollout', 'ml', 'chat-v2')
      ?.status;
  const paused = await api.waitFor(() => (status()?.phase === 'Paused' ? status() : undefined), {
    message: 'the rollout did not reach its pause',
  });
  assert.equal(paused.stepWeight, 30);
  const reasons = () => api.recordedEvents('ml').map((e) => (e as { reason?: string }).reason);
  // Events follow the status write: let them land before stopping (they are best effort).
  await api.waitFor(() => reasons().includes('PauseStarted'), { message: 'no PauseStarted event' });
  await controller.shutdown();
  controller = await startController({ ...options, identity: 'controller-1' });
  const done = await api.waitFor(() => (status()?.phase === 'Promoted' ? status() : undefined), {
    timeoutMs: 30_000,
    message: 'the restarted controller did not finish the rollout',
  });
  // One start, one 30, then on: the new controller continued the pause instead of starting over.
  assert.deepEqual(
    done.history?.map((h) => h.weight),
    [0, 30, 60, 100],
  );
  const starts = api
    .recordedEvents('ml')
    .filter((e) => (e as { reason?: string }).reason === 'RolloutStarted');
  assert.equal(starts.length, 1, `the rollout was started once: ${reasons().join(', ')}`);
  const pauseBegan = Date.parse(String(paused.stepStartedAt));
  const sixty = done.history?.find((h) => h.weight === 60) as { at?: string } | undefined;
  assert.ok(
    Date.parse(String(sixty?.at)) - pauseBegan >= 3000,
    'the pause lasted its 3 s, counted from when it began before the restart',
  );
});
