/**
 * The CanaryRollout state machine, one rule of state-machine.ts's header per test, with an injected
 * clock. Every evaluation also checks the invariants: the state round-trips through JSON unchanged,
 * the caller's state is not mutated, history is bounded, and calling again with the same `now`
 * (with or without the same judgement) changes nothing and emits nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AdvanceResult,
  advance,
  initialState,
  intervalEndsAt,
} from '../../../../src/controlplane/rollout/state-machine.ts';
import {
  type AnalysisResult,
  type AnalysisSpec,
  HISTORY_LIMIT,
  type RolloutInput,
  type RolloutState,
  type RolloutStep,
} from '../../../../src/controlplane/rollout/types.ts';

const T0 = Date.parse('2030-01-01T00:00:00Z');
const SEC = 1000;
const MIN = 60 * SEC;

function input(steps: RolloutStep[], over: Partial<RolloutInput> = {}): RolloutInput {
  return { revision: 'r1', steps, paused: false, actions: {}, ...over };
}

function analysisStep(over: Partial<AnalysisSpec> = {}): RolloutStep {
  return {
    analysis: {
      intervalMs: MIN,
      minRequests: 100,
      maxErrorRate: 0.01,
      failureLimit: 0,
      intervals: 2,
      ...over,
    },
  };
}

const pass: AnalysisResult = {
  verdict: 'Pass',
  message: 'all within bounds',
  canaryRequests: 500,
  stableRequests: 5000,
};
const fail: AnalysisResult = {
  verdict: 'Fail',
  message: 'canary error rate 0.05 > 0.01',
  canaryRequests: 500,
  stableRequests: 5000,
  canaryErrorRate: 0.05,
  stableErrorRate: 0.001,
};
const inconclusive: AnalysisResult = {
  verdict: 'Inconclusive',
  message: '12 canary requests < 100',
  canaryRequests: 12,
  stableRequests: 5000,
};
const unavailable: AnalysisResult = {
  verdict: 'Inconclusive',
  message: 'prometheus: connection refused',
  canaryRequests: 0,
  stableRequests: 0,
  error: true,
};

const reasons = (r: AdvanceResult) => r.events.map((e) => e.reason);
const roundTrip = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** advance, plus the invariants every evaluation must keep. */
function step(
  inp: RolloutInput,
  state: RolloutState | undefined,
  now: number,
  analysis?: AnalysisResult,
): AdvanceResult {
  const before = state === undefined ? undefined : structuredClone(state);
  const r = advance(inp, state, now, analysis);
  assert.deepEqual(state, before, 'the given state is not mutated');
  assert.deepEqual(roundTrip(r.state), r.state, 'the state round-trips through JSON');
  assert.ok(r.state.history.length <= HISTORY_LIMIT);
  assert.ok(r.state.stepWeight >= 0 && r.state.stepWeight <= 100);
  assert.ok(r.state.message.length > 0 && !r.state.message.includes('\n'));
  for (const again of [advance(inp, r.state, now), advance(inp, r.state, now, analysis)]) {
    assert.deepEqual(again.state, r.state, 'same now again: same state');
    assert.deepEqual(again.events, [], 'same now again: no events');
    assert.equal(again.startInterval, false);
    assert.equal(again.wakeAt, r.wakeAt);
  }
  return r;
}

test('start: step 0 runs at once, history records the start, RolloutStarted', () => {
  const inp = input([{ setWeight: 10 }, { pause: { durationMs: 5 * MIN } }, { setWeight: 50 }]);
  const r = step(inp, undefined, T0);
  assert.deepEqual(r.state, {
    revision: 'r1',
    phase: 'Paused',
    currentStep: 1,
    stepWeight: 10,
    stepStartedAt: T0,
    passed: 0,
    failed: 0,
    errors: 0,
    handled: {},
    message: 'step 2/3: pause until 2030-01-01T00:05:00Z',
    history: [
      { weight: 0, at: T0, reason: 'rollout of revision r1 started' },
      { weight: 10, at: T0, reason: 'step 1/3: weight 0 → 10' },
    ],
  });
  assert.deepEqual(r.events, [
    { type: 'Normal', reason: 'RolloutStarted', message: 'rollout of revision r1 started' },
    { type: 'Normal', reason: 'WeightChanged', message: 'step 1/3: weight 0 → 10' },
    { type: 'Normal', reason: 'PauseStarted', message: 'step 2/3: pause for 5m' },
  ]);
  assert.equal(r.wakeAt, T0 + 5 * MIN);
  assert.equal(r.startInterval, false);
  assert.deepEqual(initialState(inp, T0), r.state);
});

test('setWeight and pause-0 steps chain in one call; the same weight again records nothing', () => {
  const inp = input([
    { setWeight: 0 },
    { setWeight: 10 },
    { pause: { durationMs: 0 } },
    { setWeight: 20 },
    { setWeight: 20 },
    { setWeight: 30 },
    { pause: {} },
  ]);
  const r = step(inp, undefined, T0);
  assert.equal(r.state.currentStep, 6);
  assert.equal(r.state.phase, 'Paused');
  assert.equal(r.state.stepWeight, 30);
  assert.deepEqual(reasons(r), [
    'RolloutStarted',
    'WeightChanged',
    'PauseStarted',
    'WeightChanged',
    'WeightChanged',
    'PauseStarted',
  ]);
  assert.deepEqual(
    r.state.history.map((h) => h.weight),
    [0, 10, 20, 30],
  );
  assert.equal(r.state.message, 'step 7/7: paused until resumed');
  assert.equal(r.wakeAt, undefined);
});

test('after the last step: Promoted at weight 100; no steps promotes at once; terminal', () => {
  const r = step(input([{ setWeight: 50 }]), undefined, T0);
  assert.equal(r.state.phase, 'Promoted');
  assert.equal(r.state.stepWeight, 100);
  assert.equal(r.state.currentStep, 1);
  assert.equal(r.state.message, 'promoted');
  assert.deepEqual(reasons(r), ['RolloutStarted', 'WeightChanged', 'Promoted']);
  assert.deepEqual(r.state.history.at(-1), { weight: 100, at: T0, reason: 'promoted' });
  assert.equal(r.wakeAt, undefined);

  const empty = step(input([]), undefined, T0);
  assert.equal(empty.state.phase, 'Promoted');
  assert.deepEqual(reasons(empty), ['RolloutStarted', 'Promoted']);

  const later = step(input([{ setWeight: 50 }]), r.state, T0 + 60 * MIN, pass);
  assert.deepEqual(later.state, r.state);
  assert.deepEqual(later.events, []);
});

test('timed pause: before, at and after its end; the next step starts when the end is noticed', () => {
  const inp = input([{ pause: { durationMs: 5 * MIN } }, { setWeight: 50 }, { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;

  const before = step(inp, s0, T0 + 5 * MIN - 1);
  assert.deepEqual(before.state, s0);
  assert.deepEqual(before.events, []);
  assert.equal(before.wakeAt, T0 + 5 * MIN);

  const at = step(inp, s0, T0 + 5 * MIN);
  assert.equal(at.state.currentStep, 2);
  assert.equal(at.state.stepWeight, 50);
  assert.equal(at.state.stepStartedAt, T0 + 5 * MIN);
  assert.deepEqual(reasons(at), ['WeightChanged', 'PauseStarted']);
  assert.equal(at.wakeAt, undefined);

  const after = step(inp, s0, T0 + 7 * MIN);
  assert.equal(after.state.currentStep, 2);
  assert.equal(after.state.stepStartedAt, T0 + 7 * MIN);
  assert.deepEqual(after.state.history.at(-1), {
    weight: 50,
    at: T0 + 7 * MIN,
    reason: 'step 2/3: weight 0 → 50',
  });
});

test('indefinite pause waits for resume; each resume value acts once and only on a pause step', () => {
  const inp = input([{ setWeight: 10 }, { pause: {} }, analysisStep(), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const waiting = step(inp, s0, T0 + 24 * 60 * MIN);
  assert.deepEqual(waiting.state, s0);
  assert.equal(waiting.wakeAt, undefined);

  const resumed = step({ ...inp, actions: { resume: 'a' } }, s0, T0 + 2 * MIN);
  assert.deepEqual(resumed.events, [
    { type: 'Normal', reason: 'Resumed', message: 'step 2/4: pause ended by resume' },
    { type: 'Normal', reason: 'AnalysisStarted', message: 'step 3/4: analysis, 2 intervals of 1m to pass' },
  ]);
  assert.equal(resumed.state.currentStep, 2);
  assert.equal(resumed.state.phase, 'Progressing');
  assert.equal(resumed.state.stepStartedAt, T0 + 2 * MIN);
  assert.deepEqual(resumed.state.handled, { resume: 'a' });
  assert.equal(resumed.startInterval, true);

  // A new value while the step is not a pause: recorded, and it does not skip the next pause.
  const early = step({ ...inp, actions: { resume: 'b' } }, resumed.state, T0 + 2 * MIN + 10 * SEC);
  assert.deepEqual(early.events, [
    { type: 'Normal', reason: 'ActionIgnored', message: 'resume ignored: step 3/4 is not a pause' },
  ]);
  assert.deepEqual(early.state.handled, { resume: 'b' });
  const a1 = step({ ...inp, actions: { resume: 'b' } }, early.state, T0 + 3 * MIN, pass);
  const a2 = step({ ...inp, actions: { resume: 'b' } }, a1.state, T0 + 4 * MIN, pass);
  assert.equal(a2.state.currentStep, 3);
  assert.equal(a2.state.phase, 'Paused');
  assert.deepEqual(reasons(a2), ['AnalysisPassed', 'PauseStarted']);
});

test('resume also ends a timed pause early', () => {
  const inp = input([{ pause: { durationMs: 60 * MIN } }, { setWeight: 20 }, { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const r = step({ ...inp, actions: { resume: 'now' } }, s0, T0 + MIN);
  assert.deepEqual(reasons(r), ['Resumed', 'WeightChanged', 'PauseStarted']);
  assert.equal(r.state.stepWeight, 20);
});

test('spec.paused freezes a timed pause: it continues with the time it had left', () => {
  const inp = input([{ pause: { durationMs: 10 * MIN } }, { setWeight: 40 }, { pause: {} }]);
  const held = { ...inp, paused: true };
  const s0 = step(inp, undefined, T0).state;

  const h = step(held, s0, T0 + 3 * MIN);
  assert.deepEqual(h.events, [
    { type: 'Normal', reason: 'Paused', message: 'step 1/3: paused by spec.paused' },
  ]);
  assert.equal(h.state.phase, 'Paused');
  assert.equal(h.state.pausedAt, T0 + 3 * MIN);
  assert.equal(h.state.message, 'step 1/3: paused by spec.paused at weight 0');
  assert.equal(h.wakeAt, undefined);

  // The pause's end passes while held: nothing moves.
  const still = step(held, h.state, T0 + 20 * MIN);
  assert.deepEqual(still.state, h.state);
  assert.deepEqual(still.events, []);

  const u = step(inp, h.state, T0 + 20 * MIN);
  assert.deepEqual(u.events, [
    { type: 'Normal', reason: 'Unpaused', message: 'step 1/3: going on after 17m paused by spec.paused' },
  ]);
  assert.equal(u.state.pausedAt, undefined);
  assert.equal(u.state.phase, 'Paused');
  assert.equal(u.state.stepStartedAt, T0 + 17 * MIN);
  assert.equal(u.wakeAt, T0 + 27 * MIN);
  assert.equal(u.state.message, 'step 1/3: pause until 2030-01-01T00:27:00Z');

  assert.equal(step(inp, u.state, T0 + 27 * MIN - 1).state.currentStep, 0);
  const done = step(inp, u.state, T0 + 27 * MIN);
  assert.equal(done.state.currentStep, 2);
  assert.equal(done.state.stepWeight, 40);
});

test('spec.paused at the start holds step 0 unrun; lifting it runs the steps', () => {
  const inp = input([{ setWeight: 10 }, { pause: {} }], { paused: true });
  const r = step(inp, undefined, T0);
  assert.equal(r.state.phase, 'Paused');
  assert.equal(r.state.stepWeight, 0);
  assert.equal(r.state.currentStep, 0);
  assert.deepEqual(reasons(r), ['RolloutStarted', 'Paused']);
  const u = step({ ...inp, paused: false }, r.state, T0 + MIN);
  assert.deepEqual(reasons(u), ['Unpaused', 'WeightChanged', 'PauseStarted']);
  assert.equal(u.state.stepWeight, 10);
});

test('spec.paused during analysis drops the running interval; lifting it starts a fresh one, counts kept', () => {
  const inp = input([analysisStep({ intervals: 3 }), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const p1 = step(inp, s0, T0 + MIN, pass).state;
  assert.equal(p1.passed, 1);

  const held = { ...inp, paused: true };
  const h = step(held, p1, T0 + MIN + 30 * SEC);
  assert.equal(h.state.intervalStartedAt, undefined);
  assert.equal(intervalEndsAt(held, h.state), undefined);
  assert.equal(h.wakeAt, undefined);
  // A judgement while held is ignored.
  const ignored = step(held, h.state, T0 + 2 * MIN, fail);
  assert.deepEqual(ignored.state, h.state);

  const u = step(inp, h.state, T0 + 10 * MIN);
  assert.deepEqual(reasons(u), ['Unpaused']);
  assert.equal(u.startInterval, true);
  assert.equal(u.state.intervalStartedAt, T0 + 10 * MIN);
  assert.equal(u.state.passed, 1);
  assert.equal(u.wakeAt, T0 + 11 * MIN);
  assert.equal(u.state.message, 'step 1/2: analysis 1/3 intervals passed');
});

test('resume while held by spec.paused waits, then acts when the hold is lifted', () => {
  const inp = input([{ pause: {} }, { setWeight: 30 }, { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const held = step({ ...inp, paused: true, actions: { resume: 'x' } }, s0, T0 + MIN);
  assert.deepEqual(reasons(held), ['Paused']);
  assert.deepEqual(held.state.handled, {});
  assert.equal(held.state.currentStep, 0);
  const u = step({ ...inp, actions: { resume: 'x' } }, held.state, T0 + 2 * MIN);
  assert.deepEqual(reasons(u), ['Unpaused', 'Resumed', 'WeightChanged', 'PauseStarted']);
  assert.deepEqual(u.state.handled, { resume: 'x' });
});

test('abort and promote act while held by spec.paused', () => {
  const inp = input([{ setWeight: 20 }, { pause: {} }], { paused: false });
  const s0 = step(inp, undefined, T0).state;
  const h = step({ ...inp, paused: true }, s0, T0 + MIN).state;
  const aborted = step({ ...inp, paused: true, actions: { abort: '1' } }, h, T0 + 2 * MIN);
  assert.equal(aborted.state.phase, 'RolledBack');
  assert.equal(aborted.state.pausedAt, undefined);
  assert.equal(aborted.state.stepWeight, 0);
  const promoted = step({ ...inp, paused: true, actions: { promote: '1' } }, h, T0 + 2 * MIN);
  assert.equal(promoted.state.phase, 'Promoted');
  assert.equal(promoted.state.stepWeight, 100);
});

test('analysis: intervals from the step start, Pass counts, enough passes go to the next step', () => {
  const inp = input([{ setWeight: 10 }, analysisStep(), { setWeight: 50 }, { pause: {} }]);
  const r0 = step(inp, undefined, T0);
  assert.deepEqual(reasons(r0), ['RolloutStarted', 'WeightChanged', 'AnalysisStarted']);
  assert.equal(r0.state.phase, 'Progressing');
  assert.equal(r0.startInterval, true);
  assert.equal(r0.state.intervalStartedAt, T0);
  assert.equal(r0.wakeAt, T0 + MIN);
  assert.equal(intervalEndsAt(inp, r0.state), T0 + MIN);
  assert.equal(r0.state.message, 'step 2/4: analysis 0/2 intervals passed');

  const r1 = step(inp, r0.state, T0 + MIN, pass);
  assert.deepEqual(r1.events, []);
  assert.equal(r1.state.passed, 1);
  assert.equal(r1.startInterval, true);
  assert.equal(r1.state.intervalStartedAt, T0 + MIN);
  assert.equal(r1.wakeAt, T0 + 2 * MIN);
  assert.deepEqual(r1.state.lastAnalysis, { ...pass, at: T0 + MIN });
  assert.equal(r1.state.message, 'step 2/4: analysis 1/2 intervals passed');

  const r2 = step(inp, r1.state, T0 + 2 * MIN, pass);
  assert.deepEqual(reasons(r2), ['AnalysisPassed', 'WeightChanged', 'PauseStarted']);
  assert.equal(r2.state.currentStep, 3);
  assert.equal(r2.state.stepWeight, 50);
  assert.equal(r2.state.passed, 0);
  assert.equal(r2.state.intervalStartedAt, undefined);
  assert.equal(r2.startInterval, false);
  assert.equal(intervalEndsAt(inp, r2.state), undefined);
});

test('analysis followed by analysis: the judgement is used once, the next step starts its own interval', () => {
  const inp = input([analysisStep({ intervals: 1 }), analysisStep({ intervals: 1 }), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const r = step(inp, s0, T0 + MIN, pass);
  assert.equal(r.state.currentStep, 1);
  assert.equal(r.state.passed, 0);
  assert.equal(r.state.intervalStartedAt, T0 + MIN);
  assert.equal(r.startInterval, true);
  assert.deepEqual(reasons(r), ['AnalysisPassed', 'AnalysisStarted']);
});

test('a failed interval beyond failureLimit rolls back; RolledBack is terminal', () => {
  const inp = input([{ setWeight: 25 }, analysisStep(), { setWeight: 50 }]);
  const s0 = step(inp, undefined, T0).state;
  const r = step(inp, s0, T0 + MIN, fail);
  assert.equal(r.state.phase, 'RolledBack');
  assert.equal(r.state.stepWeight, 0);
  assert.equal(r.state.failed, 1);
  assert.equal(r.state.message, 'rolled back: canary error rate 0.05 > 0.01');
  assert.deepEqual(r.events, [
    {
      type: 'Warning',
      reason: 'RolledBack',
      message: 'step 2/3: rolled back (canary error rate 0.05 > 0.01)',
    },
  ]);
  assert.deepEqual(r.state.history.at(-1), {
    weight: 0,
    at: T0 + MIN,
    reason: 'rolled back: canary error rate 0.05 > 0.01',
  });
  assert.equal(r.wakeAt, undefined);
  assert.equal(r.startInterval, false);
  assert.equal(intervalEndsAt(inp, r.state), undefined);

  const later = step(inp, r.state, T0 + 10 * MIN, pass);
  assert.deepEqual(later.state, r.state);
  assert.deepEqual(later.events, []);
  const acted = step({ ...inp, actions: { promote: 'p', resume: 'r' } }, r.state, T0 + 11 * MIN);
  assert.equal(acted.state.phase, 'RolledBack');
  assert.deepEqual(acted.state.handled, { promote: 'p', resume: 'r' });
  assert.deepEqual(reasons(acted), ['ActionIgnored', 'ActionIgnored']);
});

test('failureLimit tolerates that many failed intervals; one more rolls back', () => {
  const inp = input([analysisStep({ failureLimit: 1, intervals: 3 }), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const f1 = step(inp, s0, T0 + MIN, fail);
  assert.equal(f1.state.phase, 'Progressing');
  assert.equal(f1.state.failed, 1);
  assert.deepEqual(f1.events, [
    {
      type: 'Warning',
      reason: 'IntervalFailed',
      message: 'step 1/2: interval failed (1 of 1 tolerated): canary error rate 0.05 > 0.01',
    },
  ]);
  assert.equal(f1.startInterval, true);
  assert.equal(f1.state.message, 'step 1/2: analysis 0/3 intervals passed, 1 failed (1 tolerated)');
  const p1 = step(inp, f1.state, T0 + 2 * MIN, pass);
  assert.equal(p1.state.passed, 1);
  assert.equal(p1.state.failed, 1);
  const f2 = step(inp, p1.state, T0 + 3 * MIN, fail);
  assert.equal(f2.state.phase, 'RolledBack');
  assert.deepEqual(reasons(f2), ['RolledBack']);
});

test('an inconclusive interval counts nothing and restarts', () => {
  const inp = input([analysisStep(), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  // A result with an undefined-valued field (no latency samples) is stored without it: JSON-clean.
  const r = step(inp, s0, T0 + MIN, { ...inconclusive, latencyP99Ratio: undefined });
  assert.deepEqual(r.events, []);
  assert.equal(r.state.passed, 0);
  assert.equal(r.state.failed, 0);
  assert.equal(r.startInterval, true);
  assert.equal(r.state.intervalStartedAt, T0 + MIN);
  assert.equal(r.wakeAt, T0 + 2 * MIN);
  assert.deepEqual(r.state.lastAnalysis, { ...inconclusive, at: T0 + MIN });
});

test('provider errors beyond failureLimit in a row: Failed at weight 0; a non-error result resets the run', () => {
  const inp = input([{ setWeight: 30 }, analysisStep({ failureLimit: 1 }), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const e1 = step(inp, s0, T0 + MIN, unavailable);
  assert.equal(e1.state.errors, 1);
  assert.equal(e1.state.phase, 'Progressing');
  assert.deepEqual(e1.events, [
    {
      type: 'Warning',
      reason: 'AnalysisUnavailable',
      message: 'step 2/3: analysis unavailable (1 of 1 tolerated): prometheus: connection refused',
    },
  ]);
  assert.equal(e1.startInterval, true);
  assert.equal(e1.state.message, 'step 2/3: analysis 0/2 intervals passed, provider unavailable 1 in a row');

  // Inconclusive (not an error) resets the consecutive count.
  const i1 = step(inp, e1.state, T0 + 2 * MIN, inconclusive);
  assert.equal(i1.state.errors, 0);
  const e2 = step(inp, i1.state, T0 + 3 * MIN, unavailable);
  assert.equal(e2.state.errors, 1);
  const e3 = step(inp, e2.state, T0 + 4 * MIN, unavailable);
  assert.equal(e3.state.phase, 'Failed');
  assert.equal(e3.state.stepWeight, 0);
  assert.equal(e3.state.errors, 2);
  assert.equal(
    e3.state.message,
    'failed: analysis unavailable (2 intervals in a row): prometheus: connection refused',
  );
  assert.deepEqual(e3.state.history.at(-1), { weight: 0, at: T0 + 4 * MIN, reason: 'analysis unavailable' });
  assert.deepEqual(reasons(e3), ['Failed']);
  assert.equal(e3.events[0]?.type, 'Warning');
  assert.equal(e3.wakeAt, undefined);

  // Terminal: a later pass changes nothing.
  assert.deepEqual(step(inp, e3.state, T0 + 5 * MIN, pass).state, e3.state);

  // An error result with a Pass verdict still counts as an error.
  const weird = step(inp, s0, T0 + MIN, { ...pass, error: true });
  assert.equal(weird.state.passed, 0);
  assert.equal(weird.state.errors, 1);
});

test('a judgement before the interval end, or at a step that is not an analysis, is ignored', () => {
  const inp = input([analysisStep(), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const early = step(inp, s0, T0 + MIN - 1, fail);
  assert.deepEqual(early.state, s0);
  assert.deepEqual(early.events, []);
  assert.equal(early.startInterval, false);
  assert.equal(early.wakeAt, T0 + MIN);

  const pausing = input([{ pause: {} }, { setWeight: 10 }]);
  const p0 = step(pausing, undefined, T0).state;
  const r = step(pausing, p0, T0 + 5 * MIN, fail);
  assert.deepEqual(r.state, p0);
  assert.equal(r.state.lastAnalysis, undefined);
});

test('promote: weight 100 and Promoted now, remaining steps skipped', () => {
  const inp = input([{ setWeight: 10 }, { pause: {} }, analysisStep(), { setWeight: 50 }]);
  const s0 = step(inp, undefined, T0).state;
  const r = step({ ...inp, actions: { promote: 'go' } }, s0, T0 + MIN);
  assert.equal(r.state.phase, 'Promoted');
  assert.equal(r.state.stepWeight, 100);
  assert.equal(r.state.currentStep, 4);
  assert.equal(r.state.message, 'promoted by the user at step 2/4');
  assert.deepEqual(r.events, [
    { type: 'Normal', reason: 'Promoted', message: 'promoted by the user at step 2/4' },
  ]);
  assert.deepEqual(r.state.handled, { promote: 'go' });
  assert.deepEqual(r.state.history.at(-1), {
    weight: 100,
    at: T0 + MIN,
    reason: 'promoted by the user at step 2/4',
  });
  assert.equal(r.wakeAt, undefined);
});

test('abort: rolled back now; abort wins over a promote arriving with it', () => {
  const inp = input([{ setWeight: 10 }, analysisStep(), { setWeight: 50 }]);
  const s0 = step(inp, undefined, T0).state;
  const r = step({ ...inp, actions: { abort: 'stop' } }, s0, T0 + 30 * SEC);
  assert.equal(r.state.phase, 'RolledBack');
  assert.equal(r.state.stepWeight, 0);
  assert.equal(r.state.message, 'rolled back: aborted by the user');
  assert.deepEqual(r.events, [
    { type: 'Warning', reason: 'RolledBack', message: 'step 2/3: rolled back (aborted by the user)' },
  ]);
  assert.equal(r.state.intervalStartedAt, undefined);
  assert.equal(r.startInterval, false);

  const both = step({ ...inp, actions: { abort: 'a', promote: 'p' } }, s0, T0 + 30 * SEC);
  assert.equal(both.state.phase, 'RolledBack');
  assert.deepEqual(
    both.events.map((e) => [e.reason, e.message]),
    [
      ['RolledBack', 'step 2/3: rolled back (aborted by the user)'],
      ['ActionIgnored', 'promote ignored: the rollout is RolledBack'],
    ],
  );
  assert.deepEqual(both.state.handled, { abort: 'a', promote: 'p' });
});

test('action annotations already present at the start or at a revision change do not fire', () => {
  const steps: RolloutStep[] = [{ setWeight: 10 }, { pause: {} }, { setWeight: 50 }];
  const actions = { promote: 'old-p', abort: 'old-a', resume: 'old-r' };
  const r = step(input(steps, { actions }), undefined, T0);
  assert.equal(r.state.phase, 'Paused');
  assert.equal(r.state.currentStep, 1);
  assert.equal(r.state.stepWeight, 10);
  assert.deepEqual(r.state.handled, actions);
  assert.deepEqual(reasons(r), ['RolloutStarted', 'WeightChanged', 'PauseStarted']);

  // Revision r2 arrives with new values set at the same time: they are recorded, not acted on.
  const actions2 = { promote: 'new-p', abort: 'new-a', resume: 'new-r' };
  const r2 = step(input(steps, { revision: 'r2', actions: actions2 }), r.state, T0 + MIN);
  assert.equal(r2.state.phase, 'Paused');
  assert.equal(r2.state.revision, 'r2');
  assert.deepEqual(r2.state.handled, actions2);
  assert.deepEqual(reasons(r2), ['RolloutStarted', 'WeightChanged', 'PauseStarted']);

  // A removed annotation keeps its handled value: setting it back does not fire again.
  const removed = step(input(steps, { revision: 'r2' }), r2.state, T0 + 2 * MIN);
  assert.deepEqual(removed.state.handled, actions2);
  const back = step(
    input(steps, { revision: 'r2', actions: { promote: 'new-p' } }),
    removed.state,
    T0 + 3 * MIN,
  );
  assert.equal(back.state.phase, 'Paused');
  // A restart keeps handled values of annotations no longer present.
  const r3 = step(
    input(steps, { revision: 'r3', actions: { promote: undefined } }),
    back.state,
    T0 + 4 * MIN,
  );
  assert.deepEqual(r3.state.handled, actions2);
});

test('a revision change starts over at step 0 with weight 0, keeping history; also from a terminal phase', () => {
  const steps: RolloutStep[] = [{ setWeight: 20 }, analysisStep(), { setWeight: 60 }];
  const s0 = step(input(steps), undefined, T0).state;
  const s1 = step(input(steps), s0, T0 + MIN, pass).state;
  const steps2: RolloutStep[] = [{ pause: {} }, { setWeight: 5 }];
  const r = step(input(steps2, { revision: 'r2' }), s1, T0 + 90 * SEC);
  assert.equal(r.state.revision, 'r2');
  assert.equal(r.state.currentStep, 0);
  assert.equal(r.state.stepWeight, 0);
  assert.equal(r.state.phase, 'Paused');
  assert.equal(r.state.passed, 0);
  assert.equal(r.state.stepStartedAt, T0 + 90 * SEC);
  assert.equal(r.state.intervalStartedAt, undefined);
  assert.equal(r.state.lastAnalysis, undefined);
  assert.deepEqual(r.state.history, [
    ...s1.history,
    { weight: 0, at: T0 + 90 * SEC, reason: 'revision changed (r1 → r2): starting over' },
  ]);
  assert.deepEqual(r.events[0], {
    type: 'Normal',
    reason: 'RolloutStarted',
    message: 'revision changed (r1 → r2): starting over',
  });
  assert.equal(intervalEndsAt(input(steps), s1), T0 + 2 * MIN);
  assert.equal(intervalEndsAt(input(steps2, { revision: 'r2' }), s1), undefined, 'state of another revision');

  const rolledBack = step(input(steps), s0, T0 + MIN, fail).state;
  const again = step(input(steps, { revision: 'r3' }), rolledBack, T0 + 2 * MIN);
  assert.equal(again.state.phase, 'Progressing');
  assert.equal(again.state.currentStep, 1);
  assert.equal(again.state.stepWeight, 20);
  assert.equal(again.startInterval, true);
});

test('idempotence: the same now twice gives the same state and no events', () => {
  const inp = input([{ setWeight: 10 }, { pause: { durationMs: MIN } }, analysisStep(), { pause: {} }]);
  let state: RolloutState | undefined;
  for (const [now, analysis] of [
    [T0, undefined],
    [T0 + MIN, undefined],
    [T0 + 2 * MIN, pass],
    [T0 + 3 * MIN, pass],
  ] as const) {
    const first = advance(inp, state, now, analysis);
    const second = advance(inp, first.state, now, analysis);
    assert.deepEqual(second.state, first.state);
    assert.deepEqual(second.events, []);
    state = first.state;
  }
  assert.equal(state?.currentStep, 3);
});

test('a clock going backwards counts as no time passed: nothing moves back or is skipped', () => {
  const inp = input([{ setWeight: 10 }, { pause: { durationMs: 5 * MIN } }, analysisStep(), { pause: {} }]);
  const s0 = step(inp, undefined, T0 + 10 * MIN).state;
  const back = step(inp, s0, T0);
  assert.deepEqual(back.state, s0);
  assert.deepEqual(back.events, []);
  assert.equal(back.wakeAt, T0 + 15 * MIN);

  const a0 = step(inp, s0, T0 + 15 * MIN).state;
  assert.equal(a0.intervalStartedAt, T0 + 15 * MIN);
  // A judgement with an earlier clock: the interval has not ended, ignored.
  const early = step(inp, a0, T0 + 5 * MIN, pass);
  assert.deepEqual(early.state, a0);

  // Lifting a hold with an earlier clock shifts by nothing.
  const h = step({ ...inp, paused: true }, s0, T0 + 12 * MIN).state;
  const u = step(inp, h, T0 + 11 * MIN);
  assert.equal(u.state.stepStartedAt, T0 + 10 * MIN);
  assert.equal(u.wakeAt, T0 + 15 * MIN);

  // A revision change with an earlier clock starts at the state's latest time.
  const r2 = step(input([{ pause: {} }], { revision: 'r2' }), a0, T0);
  assert.equal(r2.state.stepStartedAt, T0 + 15 * MIN);
  assert.ok(r2.state.history.every((h, i, all) => i === 0 || h.at >= all[i - 1]!.at));
});

test('controller restart mid-pause: the persisted state resumes, the pause completes exactly once, never from zero', () => {
  const inp = input([
    { setWeight: 10 },
    { pause: { durationMs: 5 * MIN } },
    { setWeight: 50 },
    { pause: {} },
  ]);
  const persisted = roundTrip(step(inp, undefined, T0).state);

  // The new leader comes up before the end: it waits for the remaining time only.
  const early = step(inp, persisted, T0 + 4 * MIN);
  assert.equal(early.state.currentStep, 1);
  assert.equal(early.state.stepStartedAt, T0);
  assert.equal(early.wakeAt, T0 + 5 * MIN);
  assert.deepEqual(early.events, []);

  // Or after the end: the pause completes once.
  const late = step(inp, roundTrip(early.state), T0 + 9 * MIN);
  assert.deepEqual(reasons(late), ['WeightChanged', 'PauseStarted']);
  assert.equal(late.state.currentStep, 3);
  const persisted2 = roundTrip(late.state);
  for (const now of [T0 + 9 * MIN, T0 + 10 * MIN, T0 + 60 * MIN]) {
    const r = step(inp, persisted2, now);
    assert.deepEqual(r.events, []);
    assert.equal(r.state.currentStep, 3);
    assert.equal(r.state.history.filter((h) => h.weight === 50).length, 1);
  }
});

test('failover mid-analysis: an interval whose judgement was lost restarts without counting', () => {
  const inp = input([analysisStep({ intervals: 3 }), { pause: {} }]);
  const s0 = step(inp, undefined, T0).state;
  const s1 = roundTrip(step(inp, s0, T0 + MIN, pass).state);
  assert.equal(s1.passed, 1);

  const lost = step(inp, s1, T0 + 5 * MIN);
  assert.equal(lost.state.passed, 1);
  assert.equal(lost.state.failed, 0);
  assert.equal(lost.startInterval, true);
  assert.equal(lost.state.intervalStartedAt, T0 + 5 * MIN);
  assert.equal(lost.wakeAt, T0 + 6 * MIN);
  assert.deepEqual(lost.state.lastAnalysis, s1.lastAnalysis);
  assert.deepEqual(lost.events, [
    {
      type: 'Normal',
      reason: 'IntervalRestarted',
      message: 'step 1/2: an interval ended without a judgement; restarted',
    },
  ]);
  const next = step(inp, lost.state, T0 + 6 * MIN, pass);
  assert.equal(next.state.passed, 2);
});

test('history keeps the last HISTORY_LIMIT entries', () => {
  const steps: RolloutStep[] = Array.from({ length: 30 }, (_, i) => ({ setWeight: i + 1 }));
  const r = step(input(steps), undefined, T0);
  assert.equal(r.state.phase, 'Promoted');
  assert.equal(r.state.history.length, HISTORY_LIMIT);
  // 32 entries (start, 30 weights, promoted): the 12 oldest are dropped.
  assert.equal(r.state.history[0]?.weight, 12);
  assert.equal(r.state.history.at(-1)?.weight, 100);
  assert.equal(r.events.filter((e) => e.reason === 'WeightChanged').length, 30);
});

test('wakeAt: pause end, interval end, nothing while waiting for a person or when done', () => {
  const inp = input([
    { pause: { durationMs: 2 * MIN } },
    analysisStep({ intervals: 1, intervalMs: 30 * SEC }),
    { pause: {} },
  ]);
  const r0 = step(inp, undefined, T0);
  assert.equal(r0.wakeAt, T0 + 2 * MIN);
  const r1 = step(inp, r0.state, T0 + 2 * MIN);
  assert.equal(r1.wakeAt, T0 + 2 * MIN + 30 * SEC);
  assert.equal(intervalEndsAt(inp, r1.state), r1.wakeAt);
  const r2 = step(inp, r1.state, T0 + 3 * MIN, pass);
  assert.equal(r2.wakeAt, undefined);
  const held = step({ ...inp, paused: true }, r0.state, T0 + MIN);
  assert.equal(held.wakeAt, undefined);
  const done = step({ ...inp, actions: { promote: 'x' } }, r2.state, T0 + 4 * MIN);
  assert.equal(done.wakeAt, undefined);
});
