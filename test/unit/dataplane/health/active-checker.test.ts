import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ActiveHealthChecker,
  type HealthTarget,
  type Probe,
} from '../../../../src/dataplane/health/active-checker.ts';
import { FakeTime } from './fake-time.ts';

type Step = boolean | 'hang' | 'throw' | 'reject';

interface Call {
  origin: string;
  path: string;
  timeoutMs: number;
  signal: AbortSignal;
  resolve: (ok: boolean) => void;
}

const A = 'http://10.0.0.1:8000';
const B = 'http://10.0.0.2:8000';
const C = 'http://10.0.0.3:8000';

function target(origin: string, over: Partial<HealthTarget> = {}): HealthTarget {
  return {
    origin,
    path: '/health',
    intervalMs: 1000,
    timeoutMs: 7,
    unhealthyThreshold: 1,
    healthyThreshold: 1,
    ...over,
  };
}

/** A checker on fake time with a scripted probe (results per origin+path; default pass). */
function setup(random: () => number = () => 0.5) {
  const time = new FakeTime();
  const script = new Map<string, Step[]>();
  const calls: Call[] = [];
  const changes: [string, boolean][] = [];
  const probe: Probe = (origin, path, timeoutMs, signal) => {
    const step = script.get(origin + path)?.shift() ?? true;
    const call: Call = { origin, path, timeoutMs, signal, resolve: () => {} };
    calls.push(call);
    if (step === 'throw') throw new Error('boom');
    if (step === 'reject') return Promise.reject(new Error('ECONNREFUSED'));
    if (step === 'hang') return new Promise<boolean>((r) => (call.resolve = r));
    return Promise.resolve(step);
  };
  const checker = new ActiveHealthChecker({
    onChange: (origin, healthy) => changes.push([origin, healthy]),
    probe,
    timers: time.timers,
    now: time.clock,
    random,
  });
  const results = (origin: string, ...steps: Step[]): void => {
    script.set(origin + '/health', steps);
  };
  /** Fires the earliest timer (a probe) and lets its result land. */
  const round = async (): Promise<void> => {
    assert.ok(time.next(), 'a timer is armed');
    await checker.settle();
  };
  return { time, checker, calls, changes, results, round, script };
}

test('thresholds: exactly unhealthyThreshold failures mark down, healthyThreshold passes mark up', async () => {
  const { checker, changes, results, round } = setup();
  checker.sync([target(A, { unhealthyThreshold: 3, healthyThreshold: 2 })]);
  results(A, false, false, false, true, false, true, true);
  const health: boolean[] = [];
  for (let i = 0; i < 7; i++) {
    await round();
    health.push(checker.isHealthy(A));
  }
  assert.deepEqual(health, [true, true, false, false, false, false, true]);
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
  assert.deepEqual(checker.stats, { pass: 3, fail: 4, timeout: 0, markedUnhealthy: 1, markedHealthy: 1 });
});

test('a pass interrupts a failure run: failures must be consecutive', async () => {
  const { checker, changes, results, round } = setup();
  checker.sync([target(A, { unhealthyThreshold: 2 })]);
  results(A, false, true, false, true, false, false);
  for (let i = 0; i < 5; i++) await round();
  assert.equal(checker.isHealthy(A), true);
  await round();
  assert.equal(checker.isHealthy(A), false);
  assert.deepEqual(changes, [[A, false]]);
});

test('an endpoint with no check is healthy; a new check starts healthy', () => {
  const { checker, changes } = setup();
  assert.equal(checker.isHealthy(A), true);
  checker.sync([target(A)]);
  assert.equal(checker.isHealthy(A), true);
  assert.deepEqual(changes, []);
});

test('probe timeout: the checker’s own timer ends the probe, aborts it and ignores a late answer', async () => {
  const { time, checker, calls, results } = setup();
  checker.sync([target(A, { timeoutMs: 250 })]);
  results(A, 'hang');
  time.next(); // the probe starts
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.timeoutMs, 250);
  assert.deepEqual(time.delays(), [250]); // only the deadline is armed while the probe runs
  time.next(); // the deadline
  await checker.settle();
  assert.equal(calls[0]!.signal.aborted, true);
  assert.equal(checker.stats.timeout, 1);
  assert.equal(checker.isHealthy(A), false);
  calls[0]!.resolve(true);
  await checker.settle();
  await Promise.resolve();
  assert.equal(checker.stats.pass, 0);
  assert.equal(checker.isHealthy(A), false);
  assert.equal(time.size, 1); // exactly the next probe
});

test('a probe that throws or rejects is a failure', async () => {
  const { checker, results, round } = setup();
  checker.sync([target(A, { unhealthyThreshold: 2 })]);
  results(A, 'throw', 'reject');
  await round();
  await round();
  assert.equal(checker.stats.fail, 2);
  assert.equal(checker.isHealthy(A), false);
});

test('jitter: first probe uniform in [0, interval), then interval ±10% after each probe ends', async () => {
  const values = [0, 0, 0.999999, 0.5];
  const { time, checker, round } = setup(() => values.shift() ?? 0.5);
  checker.sync([target(A, { intervalMs: 1000, timeoutMs: 7 })]);
  await round();
  await round();
  await round();
  // first delay, then for each probe: its deadline (7) and the next probe's delay.
  assert.deepEqual(
    time.scheduled.map((d) => Math.round(d * 1e4) / 1e4),
    [0, 7, 900, 7, 1099.9998, 7, 1000],
  );
});

test('jitter stays within ±10% whatever the random source says', async () => {
  const { time, checker, round } = setup(Math.random);
  checker.sync([target(A, { intervalMs: 5000, timeoutMs: 7 })]);
  for (let i = 0; i < 200; i++) await round();
  const intervals = time.scheduled.filter((d) => d !== 7).slice(1);
  assert.equal(intervals.length, 200);
  for (const d of intervals) assert.ok(d >= 4500 && d < 5500, String(d));
  assert.ok(Math.min(...intervals) < 4600 && Math.max(...intervals) > 5400, 'uses the whole range');
});

test('sync keeps running checks and their state; duplicates are one check', async () => {
  const { time, checker, calls, changes, results, round } = setup();
  checker.sync([target(A), target(B)]);
  results(A, false);
  await round();
  await round();
  assert.equal(checker.isHealthy(A), false);
  const armed = time.dueTimes();
  checker.sync([target(B), target(A), target(A), target(C), target(C)]);
  assert.equal(checker.size, 3);
  assert.equal(checker.isHealthy(A), false);
  assert.deepEqual(changes, [[A, false]]);
  assert.equal(time.size, 3, 'one timer per check: A and B kept theirs, C got one');
  for (const at of armed) assert.ok(time.dueTimes().includes(at), 'A and B keep their schedule');
  const before = calls.length;
  for (let i = 0; i < 3; i++) await round();
  assert.deepEqual(
    calls
      .slice(before)
      .map((c) => c.origin)
      .sort(),
    [A, B, C],
  );
});

test('a check whose settings change inherits the state of the same origin and path', async () => {
  const { checker, changes, results, round } = setup();
  checker.sync([target(A, { unhealthyThreshold: 1, healthyThreshold: 3 })]);
  results(A, false, true);
  await round();
  await round();
  assert.equal(checker.isHealthy(A), false);
  checker.sync([target(A, { intervalMs: 2000, unhealthyThreshold: 1, healthyThreshold: 2 })]);
  assert.equal(checker.isHealthy(A), false);
  assert.deepEqual(checker.snapshot()[0]!.consecutivePasses, 1);
  await round(); // the second pass reaches the new healthyThreshold
  assert.equal(checker.isHealthy(A), true);
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
});

test('a removed check stops: no timer, its probe in flight aborted, a late answer ignored', async () => {
  const { time, checker, calls, changes, results, round } = setup();
  checker.sync([target(A), target(B)]);
  results(A, false);
  results(B, 'hang');
  await round(); // A fails
  time.next(); // B's probe starts and hangs
  assert.equal(checker.isHealthy(A), false);
  checker.sync([]);
  assert.equal(checker.size, 0);
  assert.equal(time.size, 0);
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
  assert.equal(checker.isHealthy(A), true, 'no check: healthy');
  const hung = calls.find((c) => c.origin === B)!;
  assert.equal(hung.signal.aborted, true);
  await checker.settle();
  hung.resolve(false);
  await Promise.resolve();
  assert.equal(checker.stats.fail, 1);
  assert.equal(time.size, 0);
});

test('several paths on one endpoint: unhealthy while any check is', async () => {
  const { checker, changes, script, round } = setup(() => 0);
  checker.sync([target(A), target(A, { path: '/ready' })]);
  script.set(`${A}/health`, [false, true]);
  script.set(`${A}/ready`, [false, true]);
  await round(); // /health fails
  await round(); // /ready fails
  assert.deepEqual(changes, [[A, false]]);
  await round(); // /health passes
  assert.equal(checker.isHealthy(A), false);
  await round(); // /ready passes
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
});

test('close clears every timer and aborts probes in flight; later syncs do nothing', async () => {
  const { time, checker, calls, changes, results } = setup();
  checker.sync([target(A), target(B), target(C)]);
  results(B, 'hang');
  time.next();
  time.next();
  assert.equal(calls.length, 2);
  checker.close();
  assert.equal(time.size, 0);
  assert.ok(calls.every((c) => c.signal.aborted || c.origin !== B));
  await checker.settle();
  checker.sync([target(A)]);
  assert.equal(time.size, 0);
  assert.equal(checker.size, 0);
  assert.deepEqual(changes, []);
});

test('onChange may re-enter the checker (a proxy that closes on a change)', async () => {
  const time = new FakeTime();
  const checker: ActiveHealthChecker = new ActiveHealthChecker({
    onChange: () => checker.close(),
    probe: async () => false,
    timers: time.timers,
    random: () => 0,
  });
  checker.sync([target(A)]);
  time.next();
  await checker.settle();
  assert.equal(time.size, 0);
});

test('snapshot: one entry per check, sorted, with the last result', async () => {
  const { checker, results, round } = setup(() => 0);
  checker.sync([target(B), target(A, { unhealthyThreshold: 2 })]);
  results(A, false);
  await round();
  await round();
  assert.deepEqual(
    checker.snapshot().map(({ lastProbeAt: _, ...s }) => s),
    [
      {
        origin: A,
        path: '/health',
        healthy: true,
        consecutivePasses: 0,
        consecutiveFailures: 1,
        lastResult: 'fail',
      },
      {
        origin: B,
        path: '/health',
        healthy: true,
        consecutivePasses: 1,
        consecutiveFailures: 0,
        lastResult: 'pass',
      },
    ],
  );
});
