/**
 * The engine's state in a CanaryRollout's status: an exact round trip (what lets a new leader
 * resume), and status writes that are merge patches over the previous status, so a field a new
 * analysis lacks must be cleared, not left over from the one before.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stateOf, statusOf } from '../../../../src/controlplane/rollout/status-mapping.ts';
import type { RolloutState } from '../../../../src/controlplane/rollout/types.ts';
import { mergePatch } from '../../../support/fake-apiserver/patch.ts';

const T0 = Date.parse('2026-11-24T10:00:00.000Z');

const state = (over: Partial<RolloutState> = {}): RolloutState => ({
  revision: 'abc123',
  phase: 'Progressing',
  currentStep: 1,
  stepWeight: 20,
  stepStartedAt: T0 + 1,
  passed: 1,
  failed: 0,
  errors: 0,
  intervalStartedAt: T0 + 2_345,
  handled: { resume: 'r1' },
  message: 'analysing',
  history: [
    { weight: 0, at: T0, reason: 'started' },
    { weight: 20, at: T0 + 1, reason: 'step 0' },
  ],
  ...over,
});

/** What the API server holds after a status write: the old status merge-patched by the new. */
const written = (before: unknown, s: RolloutState) =>
  JSON.parse(JSON.stringify(mergePatch(before, statusOf(s)))) as Record<string, unknown>;

test('state → status → state is exact to the millisecond', () => {
  const s = state({
    pausedAt: T0 + 999,
    lastAnalysis: {
      verdict: 'Pass',
      message: 'ok',
      canaryRequests: 120,
      stableRequests: 480,
      canaryErrorRate: 0.001,
      stableErrorRate: 0,
      latencyP99Ratio: 1.05,
      ttftRatio: 0.98,
      at: T0 + 5_000,
    },
  });
  assert.deepEqual(stateOf(written(undefined, s)), s);
});

test('a later analysis without some figures clears them rather than keeping the old ones', () => {
  const errored = state({
    errors: 1,
    lastAnalysis: {
      verdict: 'Inconclusive',
      message: 'prometheus unreachable',
      canaryRequests: 0,
      stableRequests: 0,
      error: true,
      at: T0 + 5_000,
    },
  });
  const withRates = state({
    lastAnalysis: {
      verdict: 'Fail',
      message: 'error rate 0.05 > 0.01',
      canaryRequests: 100,
      stableRequests: 400,
      canaryErrorRate: 0.05,
      stableErrorRate: 0,
      at: T0 + 10_000,
    },
  });
  const tooFew = state({
    lastAnalysis: {
      verdict: 'Inconclusive',
      message: '3 canary requests < 100',
      canaryRequests: 3,
      stableRequests: 12,
      at: T0 + 15_000,
    },
  });
  let status = written(undefined, errored);
  status = written(status, withRates);
  assert.equal((status.lastAnalysis as Record<string, unknown>).error, undefined);
  assert.deepEqual(stateOf(status)?.lastAnalysis, withRates.lastAnalysis);
  status = written(status, tooFew);
  assert.deepEqual(stateOf(status)?.lastAnalysis, tooFew.lastAnalysis);
  // Leaving a pause and an interval clears their times too.
  const held = written(undefined, state({ pausedAt: T0 + 50 }));
  const running = written(held, state({ intervalStartedAt: undefined }));
  assert.equal(running.pausedAt, undefined);
  assert.equal(running.intervalStartedAt, undefined);
});

test('a status the engine never wrote, or a damaged one, is no state', () => {
  assert.equal(stateOf(undefined), undefined);
  assert.equal(stateOf({ servedWeight: 0, conditions: [] }), undefined);
  assert.equal(stateOf({ revision: 'abc', phase: 'Paused', stepStartedAt: 'yesterday' }), undefined);
});
