import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Outcome,
  OutlierDetector,
  OutlierGroup,
  type OutlierSettings,
} from '../../../../src/dataplane/health/outlier-detector.ts';
import { FakeTime } from './fake-time.ts';

const [A, B, C, D] = ['a', 'b', 'c', 'd'].map((x) => `http://10.0.0.${x.charCodeAt(0) - 96}:8000`) as [
  string,
  string,
  string,
  string,
];

const SETTINGS: OutlierSettings = {
  consecutiveErrors: 5,
  baseEjectionMs: 1000,
  maxEjectionMs: 5000,
  maxEjectionPercent: 100,
};

function setup(settings: Partial<OutlierSettings> = {}, members: string[] = [A, B, C, D]) {
  const time = new FakeTime();
  const changes: [string, boolean][] = [];
  const detector = new OutlierDetector({
    onChange: (origin, available) => changes.push([origin, available]),
    now: time.clock,
    timers: time.timers,
  });
  const group = new OutlierGroup('ns/route/rule-0/main', members, { ...SETTINGS, ...settings });
  const record = (origin: string, outcome: Outcome, times = 1): void => {
    for (let i = 0; i < times; i++) detector.record(origin, outcome, group);
  };
  /** consecutiveErrors errors in a row: an ejection unless something prevents it. */
  const trip = (origin: string): void => record(origin, 'error', group.settings.consecutiveErrors);
  return { time, changes, detector, group, record, trip };
}

test('exactly consecutiveErrors failures eject; 5xx, connect failures and timeouts count alike', () => {
  const { detector, changes, record } = setup();
  record(A, 'error');
  record(A, 'connect-failure');
  record(A, 'timeout');
  record(A, 'error');
  assert.equal(detector.isEjected(A), false);
  assert.deepEqual(changes, []);
  record(A, 'timeout');
  assert.equal(detector.isEjected(A), true);
  assert.deepEqual(changes, [[A, false]]);
  assert.deepEqual(detector.stats, {
    ejections: { error: 0, 'connect-failure': 0, timeout: 1 },
    capped: 0,
    returns: 0,
  });
  assert.equal(detector.activeEjections, 1);
});

test('a success resets the run', () => {
  const { detector, record } = setup();
  record(A, 'error', 4);
  record(A, 'success');
  record(A, 'error', 4);
  assert.equal(detector.isEjected(A), false);
  record(A, 'error');
  assert.equal(detector.isEjected(A), true);
});

test('runs are per endpoint', () => {
  const { detector, record } = setup();
  for (let i = 0; i < 4; i++) {
    record(A, 'error');
    record(B, 'error');
  }
  assert.equal(detector.isEjected(A) || detector.isEjected(B), false);
  record(B, 'error');
  assert.deepEqual([detector.isEjected(A), detector.isEjected(B)], [false, true]);
});

test('automatic return after the ejection time, by one timer, with onChange', () => {
  const { time, detector, changes, trip } = setup();
  trip(A);
  assert.deepEqual(time.delays(), [1000]);
  time.advance(999);
  assert.equal(detector.isEjected(A), true);
  assert.deepEqual(changes, [[A, false]]);
  time.advance(1);
  assert.equal(detector.isEjected(A), false);
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
  assert.equal(detector.activeEjections, 0);
  assert.equal(detector.stats.returns, 1);
  assert.equal(time.size, 0);
});

test('isEjected is a pure reading of the clock; record() releases an expired ejection it meets', () => {
  const { time, detector, changes, record, trip } = setup();
  trip(A);
  assert.equal(detector.isEjected(A, time.now + 1000), false);
  assert.equal(detector.isEjected(A, time.now + 999), true);
  time.now += 1000; // the clock moved but the timer has not fired yet
  assert.deepEqual(changes, [[A, false]]);
  record(A, 'success');
  assert.deepEqual(changes, [
    [A, false],
    [A, true],
  ]);
  assert.equal(time.size, 0, 'the timer was disarmed with the last ejection');
});

test('one timer for many ejections, armed for the earliest return', () => {
  const { time, detector, trip } = setup();
  trip(A);
  time.advance(300);
  trip(B);
  trip(B); // ignored while ejected
  assert.equal(time.size, 1);
  assert.deepEqual(time.dueTimes(), [2000]);
  time.advance(700);
  assert.deepEqual([detector.isEjected(A), detector.isEjected(B)], [false, true]);
  assert.deepEqual(time.dueTimes(), [2300]);
  time.advance(300);
  assert.equal(detector.activeEjections, 0);
  assert.equal(time.size, 0);
});

test('outcomes while ejected are ignored; a returning endpoint starts with an empty run', () => {
  const { time, detector, record, trip } = setup();
  record(A, 'error', 4);
  record(A, 'error'); // ejected
  record(A, 'error', 10); // late answers of requests sent before the ejection
  assert.deepEqual(detector.snapshot(), [{ origin: A, until: 2000, count: 1 }]);
  time.advance(1000);
  record(A, 'error', 4);
  assert.equal(detector.isEjected(A), false);
  trip(A);
  assert.equal(detector.isEjected(A), true);
});

test('back-off: base × 2^(k−1), capped at maxEjectionMs', () => {
  const { time, detector, trip } = setup({ baseEjectionMs: 1000, maxEjectionMs: 5000 });
  const lengths: number[] = [];
  for (let i = 0; i < 5; i++) {
    trip(A);
    const until = detector.snapshot()[0]!.until;
    lengths.push(until - time.now);
    time.advance(until - time.now); // returns, and fails again at once
  }
  assert.deepEqual(lengths, [1000, 2000, 4000, 5000, 5000]);
  assert.equal(detector.stats.ejections.error, 5);
});

test('decay: in service for maxEjectionMs since the last return, the next ejection starts from base', () => {
  const { time, detector, trip } = setup({ baseEjectionMs: 1000, maxEjectionMs: 5000 });
  const lengthOfNext = (): number => {
    trip(A);
    const length = detector.snapshot()[0]!.until - time.now;
    time.advance(length);
    return length;
  };
  assert.equal(lengthOfNext(), 1000);
  assert.equal(lengthOfNext(), 2000);
  time.advance(4999); // not quite long enough
  assert.equal(lengthOfNext(), 4000);
  time.advance(5000);
  assert.equal(lengthOfNext(), 1000);
  assert.equal(lengthOfNext(), 2000);
});

test('maxEjectionPercent: with 4 endpoints and 50%, the third failing endpoint stays in', () => {
  const { time, detector, changes, record, trip } = setup({ maxEjectionPercent: 50 });
  trip(A);
  time.advance(100);
  trip(B);
  trip(C);
  assert.deepEqual(
    [A, B, C, D].map((o) => detector.isEjected(o)),
    [true, true, false, false],
  );
  assert.equal(detector.stats.capped, 1);
  assert.deepEqual(changes, [
    [A, false],
    [B, false],
  ]);
  // C keeps its run: once A is back, C's next error ejects it.
  time.advance(900);
  assert.equal(detector.isEjected(A), false);
  record(C, 'error');
  assert.equal(detector.isEjected(C), true);
  // A failing again now finds the cap full (B and C out).
  trip(A);
  assert.equal(detector.isEjected(A), false);
  assert.equal(detector.stats.capped, 2);
});

test('maxEjectionPercent counts only members of the recording group, and rounds down', () => {
  const { detector, trip } = setup({ maxEjectionPercent: 50 }, [A]);
  trip(A);
  assert.equal(detector.isEjected(A), false, 'floor(1 × 50%) = 0: a lone endpoint is never ejected');

  const other = setup({ maxEjectionPercent: 100 }, [A]);
  other.trip(A);
  assert.equal(other.detector.isEjected(A), true, '100% may empty the backend');

  const zero = setup({ maxEjectionPercent: 0 });
  zero.trip(A);
  assert.equal(zero.detector.isEjected(A), false, '0% disables ejection');

  // An endpoint ejected through another group does not count against this one.
  const shared = setup({ maxEjectionPercent: 50 }, [A, B]);
  const elsewhere = new OutlierGroup('other', [C, D], { ...SETTINGS, maxEjectionPercent: 50 });
  for (let i = 0; i < 5; i++) shared.detector.record(C, 'error', elsewhere);
  shared.trip(A);
  assert.deepEqual([shared.detector.isEjected(C), shared.detector.isEjected(A)], [true, true]);
});

test('retain forgets endpoints no table has, silently', () => {
  const { time, detector, changes, record, trip } = setup();
  trip(A);
  record(B, 'error', 4);
  detector.retain(new Set([C]));
  assert.equal(detector.isEjected(A), false);
  assert.equal(detector.activeEjections, 0);
  assert.equal(time.size, 0);
  assert.deepEqual(changes, [[A, false]]);
  record(B, 'error');
  assert.equal(detector.isEjected(B), false, 'B starts a new run');
});

test('close clears the timer', () => {
  const { time, detector, trip } = setup();
  trip(A);
  trip(B);
  assert.equal(time.size, 1);
  detector.close();
  assert.equal(time.size, 0);
});
