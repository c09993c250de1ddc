import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Clock, Outcome, Recheck, Waiter } from '../../../../src/dataplane/ratelimit/throttle-queue.ts';
import { ThrottleQueue } from '../../../../src/dataplane/ratelimit/throttle-queue.ts';

/** A manual clock: timers fire only when the test advances time. Tracks how many are armed at once. */
class FakeClock implements Clock {
  t = 0;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  maxActive = 0;
  setCount = 0;

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    this.setCount++;
    this.maxActive = Math.max(this.maxActive, this.timers.size);
    return id;
  }

  clearTimer(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  get active(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in time order at their own times. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 10_000; guard++) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers) if (!first || entry[1].at < first[1].at) first = entry;
      if (!first || first[1].at > end) break;
      this.timers.delete(first[0]);
      this.t = Math.max(this.t, first[1].at);
      first[1].fn();
    }
    this.t = end;
  }
}

interface TestWaiter extends Waiter {
  readonly name: string;
  readonly outcomes: Outcome[];
  releases: number;
  rechecks: number;
}

function waiter(
  name: string,
  level: number,
  recheck: (self: TestWaiter) => Recheck | Promise<Recheck>,
  log?: string[],
): TestWaiter {
  const w: TestWaiter = {
    name,
    level,
    outcomes: [],
    releases: 0,
    rechecks: 0,
    recheck() {
      w.rechecks++;
      log?.push(name);
      return recheck(w);
    },
    settle(outcome) {
      w.outcomes.push(outcome);
    },
    release() {
      w.releases++;
    },
  };
  return w;
}

/** A shared limit: admits while it has tokens, else asks to retry after `retryMs`. */
function limit(retryMs = 1000) {
  const l = {
    tokens: 0,
    check: (): Recheck => {
      if (l.tokens > 0) {
        l.tokens--;
        return { admit: true };
      }
      return { admit: false, retryAfterMs: retryMs };
    },
  };
  return l;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets awaited promise continuations run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

function setup(maxQueue = 100, maxWaitMs = 10_000) {
  const clock = new FakeClock();
  const q = new ThrottleQueue({ maxQueue, maxWaitMs, clock });
  const settled: [Outcome, number][] = [];
  q.onSettled = (o, ms) => settled.push([o, ms]);
  return { clock, q, settled };
}

test('throttle queue: FIFO within a level', () => {
  const { clock, q } = setup();
  const lim = limit();
  const log: string[] = [];
  const ws = ['a', 'b', 'c'].map((n) => waiter(n, 0, lim.check, log));
  for (const w of ws) assert.equal(q.enqueue(w, 1000), true);
  assert.equal(q.length, 3);
  lim.tokens = 2;
  clock.advance(1000);
  assert.deepEqual(log, ['a', 'b', 'c']);
  assert.deepEqual(
    ws.map((w) => w.outcomes),
    [['admitted'], ['admitted'], []],
  );
  assert.equal(q.length, 1);
});

test('throttle queue: a level-0 arrival takes freed capacity before earlier level-1 waiters', () => {
  const { q } = setup();
  const lim = limit();
  const log: string[] = [];
  const a = waiter('a', 1, lim.check, log);
  const b = waiter('b', 1, lim.check, log);
  const c = waiter('c', 0, lim.check, log);
  q.enqueue(a, 5000);
  q.enqueue(b, 5000);
  q.enqueue(c, 5000);
  lim.tokens = 1;
  q.kick();
  assert.deepEqual(log, ['c', 'a', 'b']);
  assert.deepEqual(c.outcomes, ['admitted']);
  assert.deepEqual(a.outcomes, []);
  assert.deepEqual(b.outcomes, []);
  assert.equal(q.length, 2);
});

test('throttle queue: a refused waiter does not block the ones behind it (other keys)', () => {
  const { q } = setup();
  const busy = limit();
  const free = limit();
  free.tokens = 5;
  const a = waiter('a', 0, busy.check);
  const b = waiter('b', 0, free.check);
  const c = waiter('c', 1, free.check);
  q.enqueue(a, 1000);
  q.enqueue(b, 1000);
  q.enqueue(c, 1000);
  q.kick();
  assert.deepEqual([a.outcomes, b.outcomes, c.outcomes], [[], ['admitted'], ['admitted']]);
});

test('throttle queue: kick re-checks at once, before the wake time', () => {
  const { clock, q } = setup();
  const lim = limit();
  const a = waiter('a', 0, lim.check);
  q.enqueue(a, 5000);
  q.kick();
  assert.equal(a.rechecks, 1);
  assert.equal(clock.t, 0);
  lim.tokens = 1;
  q.kick();
  assert.deepEqual(a.outcomes, ['admitted']);
  assert.equal(q.length, 0);
  assert.equal(clock.active, 0);
  q.kick(); // empty: nothing happens
});

test('throttle queue: not re-checked before its wake time; a refusal sets the next one', () => {
  const { clock, q } = setup();
  const lim = limit(300);
  const a = waiter('a', 0, lim.check);
  q.enqueue(a, 500);
  clock.advance(499);
  assert.equal(a.rechecks, 0);
  clock.advance(1);
  assert.equal(a.rechecks, 1);
  clock.advance(299);
  assert.equal(a.rechecks, 1);
  clock.advance(1);
  assert.equal(a.rechecks, 2);
  lim.tokens = 1;
  clock.advance(300);
  assert.deepEqual(a.outcomes, ['admitted']);
  assert.equal(clock.active, 0);
});

test('throttle queue: a waiter past its deadline leaves with timeout, and onSettled gets the wait', () => {
  const { clock, q, settled } = setup(100, 1000);
  const lim = limit(400);
  const a = waiter('a', 0, lim.check);
  q.enqueue(a, 400);
  clock.advance(400);
  assert.deepEqual(a.outcomes, []); // next wake 800 < 1000
  clock.advance(400);
  // Refused at 800 with retry 400: 1200 is past the deadline, so it times out now.
  assert.deepEqual(a.outcomes, ['timeout']);
  assert.deepEqual(settled, [['timeout', 800]]);
  assert.equal(q.length, 0);
  assert.equal(clock.active, 0);
});

test('throttle queue: deadlines fire from the timer while a pass waits on an async recheck', async () => {
  const { clock, q, settled } = setup(100, 1000);
  const d = deferred<Recheck>();
  const a = waiter('a', 0, () => d.promise);
  const lim = limit();
  const b = waiter('b', 0, lim.check);
  q.enqueue(a, 0);
  clock.advance(300);
  q.enqueue(b, 0);
  clock.advance(0);
  assert.equal(a.rechecks, 1);
  assert.equal(b.rechecks, 0); // waits behind a's recheck
  clock.advance(700); // t = 1000: a's deadline
  assert.deepEqual(a.outcomes, ['timeout']);
  assert.deepEqual(b.outcomes, []);
  clock.advance(300); // t = 1300: b's deadline
  assert.deepEqual(b.outcomes, ['timeout']);
  assert.deepEqual(settled, [
    ['timeout', 1000],
    ['timeout', 1000],
  ]);
  d.resolve({ admit: true });
  await flush();
  assert.equal(a.releases, 1); // admitted after it left: the quota goes back
  assert.deepEqual(a.outcomes, ['timeout']);
  assert.equal(b.rechecks, 0);
  assert.equal(clock.active, 0);
});

test('throttle queue: full → refused; a higher-priority arrival displaces the newest lowest-priority waiter', () => {
  const { q, settled } = setup(3);
  const lim = limit();
  const a = waiter('a', 2, lim.check);
  const b = waiter('b', 1, lim.check);
  const c = waiter('c', 2, lim.check);
  assert.equal(q.enqueue(a, 100), true);
  assert.equal(q.enqueue(b, 100), true);
  assert.equal(q.enqueue(c, 100), true);
  assert.equal(q.enqueue(waiter('d', 2, lim.check), 100), false); // same level as the lowest
  assert.equal(q.enqueue(waiter('e', 3, lim.check), 100), false);
  assert.equal(q.length, 3);
  assert.deepEqual(settled, []);
  const f = waiter('f', 1, lim.check);
  assert.equal(q.enqueue(f, 100), true);
  assert.deepEqual(c.outcomes, ['displaced']);
  assert.deepEqual(a.outcomes, []);
  assert.deepEqual(settled, [['displaced', 0]]);
  assert.equal(q.length, 3);
  // Now a is the only level-2 waiter: the next level-0 arrival displaces it.
  const g = waiter('g', 0, lim.check);
  assert.equal(q.enqueue(g, 100), true);
  assert.deepEqual(a.outcomes, ['displaced']);
  // Only level-1 and level-0 left: a level-1 arrival cannot enter.
  assert.equal(q.enqueue(waiter('h', 1, lim.check), 100), false);
  lim.tokens = 3;
  q.kick();
  assert.deepEqual([g.outcomes, b.outcomes, f.outcomes], [['admitted'], ['admitted'], ['admitted']]);
});

test('throttle queue: a retry at or beyond the deadline cannot enter', () => {
  const { clock, q, settled } = setup(10, 1000);
  const lim = limit();
  assert.equal(q.enqueue(waiter('a', 0, lim.check), 1000), false);
  assert.equal(q.enqueue(waiter('b', 0, lim.check), 5000), false);
  assert.equal(q.enqueue(waiter('c', 0, lim.check), Infinity), false);
  assert.equal(q.enqueue(waiter('d', Number.NaN, lim.check), 10), false);
  assert.equal(q.length, 0);
  assert.deepEqual(settled, []);
  assert.equal(clock.setCount, 0);
  const e = waiter('e', 0, lim.check);
  assert.equal(q.enqueue(e, 999), true);
  assert.equal(q.enqueue(e, 10), false); // already queued
});

test('throttle queue: retryAfterMs Infinity on a recheck → rejected', () => {
  const { q, settled } = setup();
  const a = waiter('a', 0, () => ({ admit: false, retryAfterMs: Infinity }));
  q.enqueue(a, 100);
  q.kick();
  assert.deepEqual(a.outcomes, ['rejected']);
  assert.deepEqual(settled, [['rejected', 0]]);
  assert.equal(q.length, 0);
});

test('throttle queue: cancel → aborted and removed; no further rechecks; cancel again is a no-op', () => {
  const { clock, q, settled } = setup();
  const lim = limit();
  const a = waiter('a', 0, lim.check);
  const b = waiter('b', 0, lim.check);
  q.enqueue(a, 100);
  q.enqueue(b, 100);
  clock.advance(50);
  q.cancel(a);
  assert.equal(q.length, 1);
  assert.deepEqual(a.outcomes, ['aborted']);
  assert.deepEqual(settled, [['aborted', 50]]);
  q.cancel(a);
  q.cancel(waiter('never', 0, lim.check));
  assert.deepEqual(a.outcomes, ['aborted']);
  lim.tokens = 2;
  clock.advance(50);
  assert.equal(a.rechecks, 0);
  assert.deepEqual(b.outcomes, ['admitted']);
  assert.equal(a.releases, 0);
});

test('throttle queue: cancel during an async recheck that then admits → release, settle once', async () => {
  const { q, settled } = setup();
  const d = deferred<Recheck>();
  const a = waiter('a', 0, () => d.promise);
  q.enqueue(a, 100);
  q.kick();
  assert.equal(a.rechecks, 1);
  q.cancel(a);
  assert.equal(q.length, 0);
  assert.deepEqual(a.outcomes, ['aborted']);
  d.resolve({ admit: true });
  await flush();
  assert.deepEqual(a.outcomes, ['aborted']);
  assert.equal(a.releases, 1);
  assert.deepEqual(settled, [['aborted', 0]]);
});

test('throttle queue: a cancelled recheck that refuses releases nothing', async () => {
  const { q } = setup();
  const d = deferred<Recheck>();
  const a = waiter('a', 0, () => d.promise);
  q.enqueue(a, 100);
  q.kick();
  q.cancel(a);
  d.resolve({ admit: false, retryAfterMs: 10 });
  await flush();
  assert.equal(a.releases, 0);
  assert.equal(q.length, 0);
});

test('throttle queue: async rechecks run one at a time, in order', async () => {
  const { clock, q } = setup();
  const log: string[] = [];
  const ds = new Map<string, ReturnType<typeof deferred<Recheck>>>();
  const mk = (name: string, level: number) =>
    waiter(
      name,
      level,
      () => {
        const d = deferred<Recheck>();
        ds.set(name, d);
        return d.promise;
      },
      log,
    );
  const a = mk('a', 1);
  const b = mk('b', 0);
  const c = mk('c', 1);
  q.enqueue(a, 100);
  q.enqueue(b, 100);
  q.enqueue(c, 100);
  clock.advance(100);
  assert.deepEqual(log, ['b']); // highest priority first, and alone
  ds.get('b')!.resolve({ admit: true });
  await flush();
  assert.deepEqual(log, ['b', 'a']);
  q.kick(); // during the pass: only marks another pass
  await flush();
  assert.deepEqual(log, ['b', 'a']);
  ds.get('a')!.resolve({ admit: false, retryAfterMs: 5000 });
  await flush();
  assert.deepEqual(log, ['b', 'a', 'c']);
  ds.get('c')!.resolve({ admit: false, retryAfterMs: 5000 });
  await flush();
  // The kick's pass rechecks everyone again, in order.
  assert.deepEqual(log, ['b', 'a', 'c', 'a']);
  ds.get('a')!.resolve({ admit: true });
  await flush();
  assert.deepEqual(log, ['b', 'a', 'c', 'a', 'c']);
  ds.get('c')!.resolve({ admit: false, retryAfterMs: 5000 });
  await flush();
  assert.deepEqual(log, ['b', 'a', 'c', 'a', 'c']);
  assert.deepEqual([a.outcomes, b.outcomes, c.outcomes], [['admitted'], ['admitted'], []]);
  assert.ok(clock.maxActive <= 1);
});

test('throttle queue: a waiter due while a pass runs is rechecked by the next pass', async () => {
  const { clock, q } = setup();
  const log: string[] = [];
  const d = deferred<Recheck>();
  const lim = limit();
  lim.tokens = 1;
  const a = waiter('a', 1, () => d.promise, log);
  const b = waiter('b', 0, lim.check, log);
  q.enqueue(a, 0);
  clock.advance(0);
  q.enqueue(b, 10);
  clock.advance(10);
  assert.deepEqual(log, ['a']);
  d.resolve({ admit: false, retryAfterMs: 1000 });
  await flush();
  assert.deepEqual(log, ['a', 'b']);
  assert.deepEqual(b.outcomes, ['admitted']);
});

test('throttle queue: close settles everyone closed, stops timers, refuses arrivals', async () => {
  const { clock, q, settled } = setup();
  const lim = limit();
  const d = deferred<Recheck>();
  const a = waiter('a', 0, () => d.promise);
  const b = waiter('b', 1, lim.check);
  const c = waiter('c', 0, lim.check);
  q.enqueue(a, 100);
  q.enqueue(b, 200);
  q.enqueue(c, 300);
  clock.advance(100); // a's recheck in flight
  q.close();
  assert.equal(q.length, 0);
  assert.equal(clock.active, 0);
  for (const w of [a, b, c]) assert.deepEqual(w.outcomes, ['closed']);
  assert.equal(settled.length, 3);
  d.resolve({ admit: true });
  await flush();
  assert.equal(a.releases, 1);
  assert.equal(b.rechecks + c.rechecks, 0);
  assert.equal(q.enqueue(waiter('d', 0, lim.check), 10), false);
  q.kick();
  q.close();
  assert.equal(settled.length, 3);
});

test('throttle queue: a recheck that throws or rejects is retried after the backoff', async () => {
  const { clock, q } = setup();
  let fail = 2;
  const a = waiter('a', 0, () => {
    if (fail === 2) {
      fail--;
      throw new Error('redis down');
    }
    if (fail === 1) {
      fail--;
      return Promise.reject(new Error('redis down'));
    }
    return { admit: true };
  });
  q.enqueue(a, 5000);
  q.kick();
  assert.equal(a.rechecks, 1);
  clock.advance(99);
  assert.equal(a.rechecks, 1);
  clock.advance(1);
  assert.equal(a.rechecks, 2);
  await flush();
  clock.advance(99);
  assert.equal(a.rechecks, 2);
  clock.advance(1);
  assert.equal(a.rechecks, 3);
  assert.deepEqual(a.outcomes, ['admitted']);
});

test('throttle queue: one timer at most, armed for the earliest time; none when empty', () => {
  const { clock, q } = setup(1000, 10_000);
  const lim = limit(700);
  const ws = [];
  for (let i = 0; i < 50; i++) {
    const w = waiter('w' + i, i % 3, lim.check);
    ws.push(w);
    q.enqueue(w, 9000 - i * 150);
  }
  assert.equal(clock.active, 1);
  clock.advance(3000); // wakes from 1650 on come due in turn; each is refused and re-armed
  assert.equal(clock.active, 1);
  lim.tokens = 50;
  clock.advance(10_000);
  assert.ok(ws.every((w) => w.outcomes.length === 1 && w.outcomes[0] === 'admitted'));
  assert.equal(clock.maxActive, 1);
  assert.equal(clock.active, 0);
  assert.equal(q.length, 0);
});

test('throttle queue: a callback that kicks re-entrantly cannot loop forever', () => {
  const { clock, q } = setup();
  const a: TestWaiter = waiter('a', 0, () => {
    q.kick();
    return { admit: false, retryAfterMs: 1000 };
  });
  q.enqueue(a, 1000);
  q.kick();
  assert.ok(a.rechecks > 1 && a.rechecks <= 16, String(a.rechecks));
  assert.equal(clock.active, 1); // the rest continues from a timer
});

test('throttle queue: a throwing settle is reported and does not break the queue', () => {
  const { q } = setup();
  const errors: unknown[] = [];
  q.onError = (e) => errors.push(e);
  const lim = limit();
  lim.tokens = 2;
  const a = waiter('a', 0, lim.check);
  a.settle = () => {
    throw new Error('boom');
  };
  const b = waiter('b', 0, lim.check);
  q.enqueue(a, 100);
  q.enqueue(b, 100);
  q.kick();
  assert.equal(errors.length, 1);
  assert.deepEqual(b.outcomes, ['admitted']);
  assert.equal(q.length, 0);
});
