/**
 * `modelgate rollout` against the fake API server: each verb is the documented merge patch, and
 * status reads back what the engine wrote.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rollout } from '../../../src/cli/commands/rollout.ts';
import { UsageError } from '../../../src/cli/usage-error.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';

test('pause, resume, promote and abort are resource edits; status reads the engine state', async (t) => {
  const api = await startFakeApiServer();
  t.after(() => api.close());
  const kc = kubeConfigFor(api.url);
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'v1',
      canaryBackend: 'v2',
      steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }],
    },
  });
  type Stored = { spec: { paused?: boolean }; metadata: { annotations?: Record<string, string> } };
  const stored = () => api.get<Stored>('CanaryRollout', 'ml', 'chat-v2')!;

  assert.equal(await rollout(kc, 'pause', 'ml', 'chat-v2', 1000), 'ml/chat-v2: pause requested');
  assert.equal(stored().spec.paused, true);
  await rollout(kc, 'resume', 'ml', 'chat-v2', 2000);
  assert.equal(stored().spec.paused, false);
  assert.equal(stored().metadata.annotations?.['modelgate.dev/resume'], '2000');
  await rollout(kc, 'promote', 'ml', 'chat-v2', 3000);
  await rollout(kc, 'abort', 'ml', 'chat-v2', 4000);
  assert.equal(stored().metadata.annotations?.['modelgate.dev/promote'], '3000');
  assert.equal(stored().metadata.annotations?.['modelgate.dev/abort'], '4000');

  api.setStatus('CanaryRollout', 'ml', 'chat-v2', {
    phase: 'Paused',
    currentStep: 1,
    stepWeight: 20,
    servedWeight: 20,
    message: 'step 2/3: paused until resumed',
    lastAnalysis: {
      verdict: 'Pass',
      message: 'canary error rate 0.000',
      at: '2026-11-24T00:00:00Z',
      canaryRequests: 1,
      stableRequests: 1,
    },
  });
  assert.equal(
    await rollout(kc, 'status', 'ml', 'chat-v2'),
    [
      'ml/chat-v2: Paused',
      '  weight   20% canary',
      '  step     2/3',
      '  verdict  Pass: canary error rate 0.000',
      '  message  step 2/3: paused until resumed',
    ].join('\n'),
  );
  await assert.rejects(rollout(kc, 'status', 'ml', 'missing'), UsageError);
});
