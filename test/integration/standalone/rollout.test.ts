/**
 * Rollouts in standalone mode: the engine runs in the one process, keeps its state in
 * `<stateDir>/rollouts.json`, and a restarted gateway resumes each rollout where it was, serving
 * the resumed weight from its first table. Actions are edits of the manifests. An analysis step
 * judges this process's own counters and rolls a failing canary back.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { type Standalone, startStandalone } from '../../../src/roles/standalone.ts';
import { send } from '../../support/client.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

interface RolloutStatus {
  phase?: string;
  currentStep?: number;
  stepWeight?: number;
  servedWeight?: number;
  stepStartedAt?: string;
  message?: string;
  history?: { weight: number; reason: string }[];
}

const route = (stable: string, canary: string) => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  rules:
    - backends:
        - {name: stable, urls: ["${stable}"]}
        - {name: canary, urls: ["${canary}"]}
`;

const rollout = (steps: string, annotations = '') => `apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata:
  name: chat-v2
  namespace: ml
  annotations: {${annotations}}
spec:
  routeRef: {name: chat}
  stableBackend: stable
  canaryBackend: canary
  steps:
${steps}`;

function start(dir: string, stateDir: string): Promise<Standalone> {
  return startStandalone({
    paths: [join(dir, 'manifests')],
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    logger: quiet(),
    debounceMs: 20,
    stateDir,
  });
}

function statusOf(gw: Standalone): RolloutStatus | undefined {
  return gw.statuses().find((s) => s.kind === 'CanaryRollout' && s.name === 'chat-v2')?.status as
    | RolloutStatus
    | undefined;
}

/** Polls (5 ms steps, at most 15 s) until `pick` returns a value. */
async function until<T>(what: string, pick: () => T | undefined): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const v = pick();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function stored(stateDir: string): Promise<Record<string, RolloutStatus>> {
  return JSON.parse(await readFile(join(stateDir, 'rollouts.json'), 'utf8')).rollouts;
}

test('progress survives a restart; resume and promote are edits of the manifest', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-standalone-rollout-'));
  const stateDir = join(dir, 'state');
  const [stable, canary] = await Promise.all([startUpstream('stable'), startUpstream('canary')]);
  t.after(async () => {
    await Promise.all([stable.close(), canary.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  const steps = `    - setWeight: 30
    - pause: {}
    - setWeight: 60
    - pause: {duration: 1h}
`;
  const manifests = join(dir, 'manifests');
  await mkdir(manifests);
  await writeFile(join(manifests, 'route.yaml'), route(stable.url, canary.url));
  await writeFile(join(manifests, 'rollout.yaml'), rollout(steps));

  let gw = await start(dir, stateDir);
  const first = await until('the indefinite pause at 30%', () => {
    const s = statusOf(gw);
    return s?.phase === 'Paused' && s.servedWeight === 30 ? s : undefined;
  });
  assert.equal(first.currentStep, 1);
  const file = await stored(stateDir);
  assert.equal(file['ml/chat-v2']?.phase, 'Paused');
  assert.equal(file['ml/chat-v2']?.stepStartedAt, first.stepStartedAt);
  assert.equal(gw.rolloutStateFile, join(stateDir, 'rollouts.json'));
  await gw.close();

  // A new process serves 30% from its first table: no moment back at 0%, the step not restarted.
  gw = await start(dir, stateDir);
  t.after(() => gw.close());
  const resumed = statusOf(gw);
  assert.equal(resumed?.phase, 'Paused');
  assert.equal(resumed?.currentStep, 1);
  assert.equal(resumed?.servedWeight, 30);
  assert.equal(resumed?.stepStartedAt, first.stepStartedAt);
  const dump = await send(gw.adminUrl, { path: '/config/dump' });
  assert.match(dump.body.toString(), /"weight":\s*30/);

  // Resume: an annotation with a new value, written to the file.
  await writeFile(join(manifests, 'rollout.yaml'), rollout(steps, '"modelgate.dev/resume": "r1"'));
  const second = await until('the timed pause at 60%', () => {
    const s = statusOf(gw);
    return s?.currentStep === 3 && s.servedWeight === 60 ? s : undefined;
  });
  assert.equal(second.phase, 'Paused');
  // Promote now.
  await writeFile(
    join(manifests, 'rollout.yaml'),
    rollout(steps, '"modelgate.dev/resume": "r1", "modelgate.dev/promote": "p1"'),
  );
  const promoted = await until('promotion', () => {
    const s = statusOf(gw);
    return s?.phase === 'Promoted' ? s : undefined;
  });
  assert.equal(promoted.servedWeight, 100);
  assert.deepEqual(
    promoted.history?.map((h) => h.weight),
    [0, 30, 60, 100],
  );
  for (let i = 0; i < 10; i++) {
    assert.equal((await send(gw.listener.url, { path: '/v1/chat' })).headers['x-upstream'], 'canary');
  }
  assert.equal((await stored(stateDir))['ml/chat-v2']?.phase, 'Promoted');

  // Deleting the rollout forgets its state.
  await rm(join(manifests, 'rollout.yaml'));
  const gone = await until('the entry to be forgotten', () =>
    gw.statuses().some((s) => s.kind === 'CanaryRollout') ? undefined : true,
  );
  assert.equal(gone, true);
  const deadline = Date.now() + 10_000;
  while ((await stored(stateDir))['ml/chat-v2'] && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal((await stored(stateDir))['ml/chat-v2'], undefined);
});

test('an analysis step judges this process’s counters and rolls a failing canary back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-standalone-rollout-'));
  const stable = await startUpstream('stable');
  let calls = 0;
  const canary: TestUpstream = await startUpstream('canary', (_req, res) => {
    calls++;
    res.writeHead(calls % 20 === 0 ? 500 : 200, { 'content-type': 'application/json' });
    res.end('{"upstream":"canary"}');
  });
  const manifests = join(dir, 'manifests');
  await mkdir(manifests);
  await writeFile(join(manifests, 'route.yaml'), route(stable.url, canary.url));
  await writeFile(
    join(manifests, 'rollout.yaml'),
    rollout(`    - setWeight: 50
    - analysis: {interval: 1500ms, minRequests: 30, maxErrorRate: 0.01}
    - setWeight: 80
`),
  );
  const gw = await start(dir, join(dir, 'state'));
  let stop = false;
  let sent = 0;
  // Load until the verdict: at most 20,000 requests or 40 s.
  const load = (async () => {
    const deadline = Date.now() + 40_000;
    while (!stop && sent < 20_000 && Date.now() < deadline) {
      await Promise.all(
        Array.from({ length: 4 }, () => {
          sent++;
          return send(gw.listener.url, { path: '/v1/chat' }).catch(() => undefined);
        }),
      );
    }
  })();
  t.after(async () => {
    stop = true;
    await load;
    await gw.close();
    await Promise.all([stable.close(), canary.close()]);
    await rm(dir, { recursive: true, force: true });
  });
  const rolledBack = await until('the rollback', () => {
    const s = statusOf(gw);
    return s?.phase === 'RolledBack' ? s : undefined;
  });
  stop = true;
  await load;
  assert.equal(rolledBack.servedWeight, 0);
  assert.match(rolledBack.message ?? '', /error rate/);
  assert.deepEqual(
    rolledBack.history?.map((h) => h.weight),
    [0, 50, 0],
  );
  const metrics = (await send(gw.adminUrl, { path: '/metrics' })).body.toString();
  assert.match(metrics, /modelgate_rollout_rollbacks_total\{rollout="ml\/chat-v2"\} 1/);
  assert.match(metrics, /modelgate_rollout_verdicts_total\{rollout="ml\/chat-v2",verdict="Fail"\} 1/);
  const before = calls;
  for (let i = 0; i < 10; i++) {
    assert.equal((await send(gw.listener.url, { path: '/v1/chat' })).headers['x-upstream'], 'stable');
  }
  assert.equal(calls, before);
});
