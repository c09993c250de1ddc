/**
 * The CanaryRollout state machine: moves the canary weight through `spec.steps`. Pure: no I/O, no
 * clock, no timers — the controller passes `now` (Unix ms) and the interval judgements, persists
 * the returned state in the resource's status, emits the events and calls again at `wakeAt` or on
 * any change. Because all of the state is in the status, a restarted controller or a new leader
 * resumes exactly where the rollout was: never from zero, never ahead.
 *
 * Rules (each one is a test in test/unit/controlplane/rollout/state-machine.test.ts):
 *
 * Start. No state, or `state.revision !== input.revision` (backends, steps or strategy changed):
 * start over at step 0, phase Progressing, weight 0; history gets an entry for the (re)start even
 * when the weight already was 0; event RolloutStarted. Earlier history is kept (bounded). The
 * action annotation values present at that moment are recorded as handled and do not fire (an old
 * `promote` must not promote every new revision). `initialState` is the state this first `advance`
 * produces (its step 0 already run).
 *
 * Steps run in order; a step starts when the engine reaches it (`stepStartedAt` = that evaluation's
 * time, never a time in the past: a pause that ended while no controller ran starts the next step at
 * the evaluation that noticed it, so a following analysis gets whole intervals).
 * - setWeight: sets `stepWeight` and completes at once. A change of weight adds a history entry and
 *   emits WeightChanged; setting the weight it already has records nothing.
 * - pause {durationMs}: phase Paused until `stepStartedAt + durationMs` (wakeAt), then continues;
 *   0 completes at once. Without durationMs: Paused until a `resume` action. Entering emits
 *   PauseStarted.
 * - analysis: phase Progressing; entering emits AnalysisStarted. An interval starts when the step
 *   is first evaluated (`intervalStartedAt`, `startInterval: true`) and ends at
 *   `intervalStartedAt + intervalMs` (wakeAt, see `intervalEndsAt`). The controller judges the
 *   window [intervalStartedAt, end) and passes the result to the first `advance` at or after the end:
 *   - Pass: passed++; once passed >= intervals the step completes (AnalysisPassed) and the next step
 *     starts in the same call.
 *   - Fail: failed++; failed > failureLimit rolls back with the result's message as the reason;
 *     otherwise Warning IntervalFailed.
 *   - Inconclusive: nothing is counted.
 *   - `error: true` (whatever the verdict): errors++; errors > failureLimit ends in phase Failed with
 *     weight 0 (Warning Failed, reason "analysis unavailable"); otherwise Warning AnalysisUnavailable.
 *     Any non-error result resets errors to 0 (they count consecutive failures of the provider).
 *   Every judged result is kept in `lastAnalysis` (with `at`), and unless the step ended a new
 *   interval starts at once (`startInterval: true`).
 *   An interval that ended with no judgement passed (a new leader has no window data for it; the
 *   controller passes a judgement only for a window it watched from `intervalStartedAt`) restarts:
 *   nothing counted, `startInterval: true`, event IntervalRestarted. A judgement passed when the
 *   current step is not an analysis step, before the interval's end, while held by spec.paused or in
 *   a terminal phase is ignored.
 * - After the last step: phase Promoted, weight 100, history entry, event Promoted.
 * Several steps may complete in one call (setWeight, pause 0, ended pauses, passed analyses); the
 * loop is bounded by the number of steps, since each turn either completes a step or stops.
 *
 * Terminal. Promoted, RolledBack and Failed are terminal for the revision: nothing changes until
 * the revision changes (actions arriving then are recorded and answered by ActionIgnored).
 * Roll back: weight 0, phase RolledBack, message "rolled back: <reason>", history entry, Warning
 * RolledBack.
 *
 * spec.paused (`input.paused`): phase Paused (event Paused), nothing advances and the step's clock
 * stands still — `pausedAt` is recorded, and when the hold is lifted (event Unpaused)
 * `stepStartedAt` moves forward by the held time, so a timed pause continues with the time it had
 * left. An analysis step's running interval is dropped while held (no wakeAt, `intervalEndsAt`
 * undefined) and a fresh one starts when the hold is lifted: counts so far are kept, the held stretch
 * is not judged. `abort` and `promote` still act while held; `resume` waits until the hold is lifted
 * (it is not recorded meanwhile) and then acts.
 *
 * Actions (annotation values) act once per distinct value: a value differing from `state.handled`
 * acts and is recorded; the same value again, or a removed annotation, does nothing (use a new value,
 * e.g. a timestamp, to act again). `abort`: roll back now, reason "aborted by the user" (abort wins
 * over a `promote` arriving with it). `promote`: phase Promoted, weight 100 now, remaining steps
 * skipped. `resume`: ends the current pause step, timed or not (event Resumed), and the rollout goes
 * on; when the current step is not a pause it only is recorded (ActionIgnored) — it never skips a
 * later pause.
 *
 * Time. `advance` uses max(now, the latest time recorded in the state) as its clock: a `now` earlier
 * than before counts as no time passed (nothing moves back, nothing is skipped). Calling again with
 * the same `now` and no new input returns the same state and no events (a judgement passed twice is
 * ignored the second time: its interval has been replaced by one that ends later).
 *
 * The state is plain JSON data (no undefined-valued keys), so it round-trips through the status:
 * advancing a persisted state at a later `now` continues it (a pause that ended meanwhile completes
 * exactly once). history keeps the last HISTORY_LIMIT entries. `message` says in one sentence where
 * the rollout is ("step 2/5: pause until 2030-01-01T12:00:00Z", "step 3/5: analysis 1/3 intervals
 * passed", "promoted", "rolled back: canary error rate 0.05 > 0.01").
 */
import {
  type AnalysisResult,
  type AnalysisSpec,
  HISTORY_LIMIT,
  type Phase,
  type RolloutEvent,
  type RolloutInput,
  type RolloutState,
  type RolloutStep,
} from './types.ts';

export interface AdvanceResult {
  state: RolloutState;
  events: RolloutEvent[];
  /** When to call advance again at the latest (a pause or interval ends); undefined: only on a change. */
  wakeAt: number | undefined;
  /** The controller must start a new analysis interval window at `now` (a step began or an interval was judged). */
  startInterval: boolean;
}

type Action = 'abort' | 'promote' | 'resume';

/** The state of a rollout just started at `now` (what the first `advance` returns). */
export function initialState(input: RolloutInput, now: number): RolloutState {
  return advance(input, undefined, now).state;
}

/** When the current analysis interval ends (undefined when the current step is not an analysis). */
export function intervalEndsAt(input: RolloutInput, state: RolloutState): number | undefined {
  if (state.revision !== input.revision || isTerminal(state.phase) || state.pausedAt !== undefined) {
    return undefined;
  }
  const analysis = input.steps[state.currentStep]?.analysis;
  if (analysis === undefined || state.intervalStartedAt === undefined) return undefined;
  return state.intervalStartedAt + intervalOf(analysis);
}

/**
 * One evaluation. `analysis` is the judgement of the interval that ended, when the controller has
 * one for the current analysis step.
 */
export function advance(
  input: RolloutInput,
  state: RolloutState | undefined,
  now: number,
  analysis?: AnalysisResult,
): AdvanceResult {
  const restart = state === undefined || state.revision !== input.revision;
  const floor = state === undefined ? now : latestTime(state);
  const run: Run = {
    input,
    s: restart ? fresh(input, state) : structuredClone(state),
    // An earlier `now` than the state's latest time counts as no time passed (a NaN as well).
    clock: Number.isFinite(now) && now > floor ? now : floor,
    events: [],
    wakeAt: undefined,
    startInterval: false,
  };
  if (restart) begin(run, state);
  const resume = restart ? false : takeActions(run);

  if (!isTerminal(run.s.phase)) {
    if (input.paused) hold(run);
    else {
      if (run.s.pausedAt !== undefined) unhold(run);
      runSteps(run, resume, analysis);
    }
  }
  run.s.message = describe(run);
  return { state: run.s, events: run.events, wakeAt: run.wakeAt, startInterval: run.startInterval };
}

interface Run {
  input: RolloutInput;
  /** The state being built (a copy: the caller's object is never changed). */
  s: RolloutState;
  clock: number;
  events: RolloutEvent[];
  wakeAt: number | undefined;
  startInterval: boolean;
}

function isTerminal(phase: Phase): boolean {
  return phase === 'Promoted' || phase === 'RolledBack' || phase === 'Failed';
}

/** The latest time the state records: the engine's clock never goes below it. */
function latestTime(s: RolloutState): number {
  let t = s.stepStartedAt;
  for (const v of [s.intervalStartedAt, s.pausedAt, s.lastAnalysis?.at, s.history.at(-1)?.at]) {
    if (v !== undefined && v > t) t = v;
  }
  return t;
}

function intervalOf(a: AnalysisSpec): number {
  return Math.max(1, a.intervalMs);
}

/** The object without its undefined-valued keys (so the state round-trips through JSON unchanged). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function stepLabel(run: Run, index = run.s.currentStep): string {
  return `step ${Math.min(index + 1, run.input.steps.length)}/${run.input.steps.length}`;
}

function normal(run: Run, reason: string, message: string): void {
  run.events.push({ type: 'Normal', reason, message });
}

function warning(run: Run, reason: string, message: string): void {
  run.events.push({ type: 'Warning', reason, message });
}

function setWeight(run: Run, weight: number, reason: string): void {
  run.s.stepWeight = weight;
  run.s.history.push({ weight, at: run.clock, reason });
  if (run.s.history.length > HISTORY_LIMIT) run.s.history.splice(0, run.s.history.length - HISTORY_LIMIT);
}

/** A new run of the revision, before step 0 is entered. */
function fresh(input: RolloutInput, prev: RolloutState | undefined): RolloutState {
  return {
    revision: input.revision,
    phase: 'Progressing',
    currentStep: 0,
    stepWeight: 0,
    stepStartedAt: 0,
    passed: 0,
    failed: 0,
    errors: 0,
    // Values present now were set before this run: recorded, never acted on.
    handled: { ...prev?.handled, ...defined(input.actions) },
    message: '',
    history: prev === undefined ? [] : [...prev.history],
  };
}

function begin(run: Run, prev: RolloutState | undefined): void {
  const message =
    prev === undefined
      ? `rollout of revision ${run.input.revision} started`
      : `revision changed (${prev.revision} → ${run.input.revision}): starting over`;
  setWeight(run, 0, message);
  normal(run, 'RolloutStarted', message);
  enter(run, 0);
}

/** Makes step `index` the current one, starting now. */
function enter(run: Run, index: number): void {
  const s = run.s;
  s.currentStep = index;
  s.stepStartedAt = run.clock;
  s.passed = 0;
  s.failed = 0;
  s.errors = 0;
  delete s.intervalStartedAt;
  const step = run.input.steps[index];
  if (step === undefined || step.setWeight !== undefined) return;
  if (step.pause !== undefined) {
    const d = step.pause.durationMs;
    normal(
      run,
      'PauseStarted',
      `${stepLabel(run)}: pause ${d === undefined ? 'until resumed' : `for ${duration(d)}`}`,
    );
  } else if (step.analysis !== undefined) {
    const a = step.analysis;
    normal(
      run,
      'AnalysisStarted',
      `${stepLabel(run)}: analysis, ${a.intervals} interval${a.intervals === 1 ? '' : 's'} of ${duration(intervalOf(a))} to pass`,
    );
  }
}

/** Acts on new action values; returns whether a `resume` is to be applied to the current step. */
function takeActions(run: Run): boolean {
  const { input, s } = run;
  const isNew = (a: Action) => input.actions[a] !== undefined && input.actions[a] !== s.handled[a];
  const take = (a: Action) => {
    s.handled = { ...s.handled, [a]: input.actions[a] };
  };
  const ignored = (a: Action) => normal(run, 'ActionIgnored', `${a} ignored: the rollout is ${s.phase}`);

  if (isNew('abort')) {
    take('abort');
    if (isTerminal(s.phase)) ignored('abort');
    else rollBack(run, 'aborted by the user');
  }
  if (isNew('promote')) {
    take('promote');
    if (isTerminal(s.phase)) ignored('promote');
    else promote(run, `promoted by the user at ${stepLabel(run)}`);
  }
  if (!isNew('resume')) return false;
  if (isTerminal(s.phase)) {
    take('resume');
    ignored('resume');
    return false;
  }
  // Held by spec.paused: resume waits (unrecorded) for the hold to be lifted.
  if (input.paused) return false;
  take('resume');
  if (input.steps[s.currentStep]?.pause !== undefined) return true;
  normal(run, 'ActionIgnored', `resume ignored: ${stepLabel(run)} is not a pause`);
  return false;
}

function rollBack(run: Run, reason: string): void {
  const s = run.s;
  setWeight(run, 0, `rolled back: ${reason}`);
  s.phase = 'RolledBack';
  s.message = `rolled back: ${reason}`;
  settle(s);
  warning(run, 'RolledBack', `${stepLabel(run)}: rolled back (${reason})`);
}

function promote(run: Run, message: string): void {
  const s = run.s;
  setWeight(run, 100, message);
  s.phase = 'Promoted';
  s.currentStep = run.input.steps.length;
  s.message = message;
  settle(s);
  normal(run, 'Promoted', message);
}

function fail(run: Run, detail: string): void {
  const s = run.s;
  const message = `failed: analysis unavailable (${s.errors} intervals in a row): ${detail}`;
  setWeight(run, 0, 'analysis unavailable');
  s.phase = 'Failed';
  s.message = message;
  settle(s);
  warning(run, 'Failed', `${stepLabel(run)}: ${message}`);
}

/** Terminal: no interval runs, no hold is pending. */
function settle(s: RolloutState): void {
  delete s.intervalStartedAt;
  delete s.pausedAt;
}

function hold(run: Run): void {
  const s = run.s;
  if (s.pausedAt !== undefined) return;
  s.pausedAt = run.clock;
  s.phase = 'Paused';
  delete s.intervalStartedAt;
  normal(run, 'Paused', `${stepLabel(run)}: paused by spec.paused`);
}

function unhold(run: Run): void {
  const s = run.s;
  const held = run.clock - (s.pausedAt ?? run.clock);
  s.stepStartedAt += held;
  delete s.pausedAt;
  delete s.intervalStartedAt;
  normal(run, 'Unpaused', `${stepLabel(run)}: going on after ${duration(held)} paused by spec.paused`);
}

function runSteps(run: Run, resume: boolean, analysis: AnalysisResult | undefined): void {
  const { s, input } = run;
  const resumeStep = resume ? s.currentStep : -1;
  // Each turn completes a step or stops: steps.length + 1 turns reach the end.
  for (let turn = 0; turn <= input.steps.length; turn++) {
    const index = s.currentStep;
    const step: RolloutStep | undefined = input.steps[index];
    if (step === undefined) {
      promote(run, 'promoted');
      return;
    }
    if (step.setWeight !== undefined) {
      s.phase = 'Progressing';
      if (step.setWeight !== s.stepWeight) {
        const message = `${stepLabel(run)}: weight ${s.stepWeight} → ${step.setWeight}`;
        setWeight(run, step.setWeight, message);
        normal(run, 'WeightChanged', message);
      }
    } else if (step.pause !== undefined) {
      s.phase = 'Paused';
      const d = step.pause.durationMs;
      if (index === resumeStep) {
        normal(run, 'Resumed', `${stepLabel(run)}: pause ended by resume`);
      } else if (d === undefined) {
        return;
      } else if (run.clock < s.stepStartedAt + d) {
        run.wakeAt = s.stepStartedAt + d;
        return;
      }
    } else if (step.analysis !== undefined) {
      s.phase = 'Progressing';
      if (!analyse(run, step.analysis, analysis)) return;
      analysis = undefined; // consumed: never judges a later step's interval
    }
    enter(run, index + 1);
  }
}

/** One evaluation of an analysis step; true when the step has completed. */
function analyse(run: Run, spec: AnalysisSpec, result: AnalysisResult | undefined): boolean {
  const s = run.s;
  if (s.intervalStartedAt === undefined) {
    restartInterval(run, spec);
    return false;
  }
  const end = s.intervalStartedAt + intervalOf(spec);
  if (run.clock < end) {
    run.wakeAt = end;
    return false;
  }
  if (result === undefined) {
    normal(run, 'IntervalRestarted', `${stepLabel(run)}: an interval ended without a judgement; restarted`);
    restartInterval(run, spec);
    return false;
  }
  s.lastAnalysis = defined({ ...result, at: run.clock });
  if (result.error === true) {
    s.errors++;
    if (s.errors > spec.failureLimit) {
      fail(run, result.message);
      return false;
    }
    warning(
      run,
      'AnalysisUnavailable',
      `${stepLabel(run)}: analysis unavailable (${s.errors} of ${spec.failureLimit} tolerated): ${result.message}`,
    );
  } else {
    s.errors = 0;
    if (result.verdict === 'Pass') {
      s.passed++;
      if (s.passed >= spec.intervals) {
        normal(run, 'AnalysisPassed', `${stepLabel(run)}: analysis passed (${s.passed} intervals)`);
        return true;
      }
    } else if (result.verdict === 'Fail') {
      s.failed++;
      if (s.failed > spec.failureLimit) {
        rollBack(run, result.message);
        return false;
      }
      warning(
        run,
        'IntervalFailed',
        `${stepLabel(run)}: interval failed (${s.failed} of ${spec.failureLimit} tolerated): ${result.message}`,
      );
    }
  }
  restartInterval(run, spec);
  return false;
}

function restartInterval(run: Run, spec: AnalysisSpec): void {
  run.s.intervalStartedAt = run.clock;
  run.startInterval = true;
  run.wakeAt = run.clock + intervalOf(spec);
}

/** Where the rollout is, in one sentence. */
function describe(run: Run): string {
  const { s, input } = run;
  if (isTerminal(s.phase)) return s.message;
  const at = stepLabel(run);
  if (s.pausedAt !== undefined) return `${at}: paused by spec.paused at weight ${s.stepWeight}`;
  const step = input.steps[s.currentStep];
  if (step?.pause !== undefined) {
    const d = step.pause.durationMs;
    return d === undefined ? `${at}: paused until resumed` : `${at}: pause until ${iso(s.stepStartedAt + d)}`;
  }
  if (step?.analysis !== undefined) {
    const a = step.analysis;
    let m = `${at}: analysis ${s.passed}/${a.intervals} intervals passed`;
    if (s.failed > 0) m += `, ${s.failed} failed (${a.failureLimit} tolerated)`;
    if (s.errors > 0) m += `, provider unavailable ${s.errors} in a row`;
    return m;
  }
  return `${at}: weight ${s.stepWeight}`;
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace(/\.000Z$/, 'Z');
}

function duration(ms: number): string {
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = (ms % 60_000) / 1000;
  return `${h > 0 ? `${h}h` : ''}${m > 0 ? `${m}m` : ''}${sec > 0 ? `${sec}s` : ''}`;
}
