/**
 * ThrottleQueue: a bounded wait queue for requests that were refused by a rate limit (or a route's
 * in-flight cap) under `onExceeded: {action: Queue, maxQueue, maxWait, priorities}`. A request waits
 * here instead of being rejected at once, and leaves admitted or with a reason.
 *
 * Terms. Each waiter has a level (0 is the highest priority), an arrival number (FIFO within a
 * level), a wake time and a deadline. The wake time is enqueue time + the `retryAfterMs` the limit
 * gave when it refused; after each refused recheck it becomes now + the new `retryAfterMs`. The
 * deadline is enqueue time + maxWaitMs. A waiter is due when its wake time has passed, and every
 * waiter is due after `kick()` (capacity may have freed: an in-flight request ended, tokens were
 * refunded).
 *
 * Passes. Due waiters are rechecked in passes, one pass at a time per queue. A pass takes the due
 * waiters as they are when it starts, orders them by level, then arrival, and rechecks them one at
 * a time; an async recheck (a global limit asks Redis) is awaited before the next one starts, so the
 * order is kept and at most one recheck per queue is in flight. Sync rechecks run synchronously:
 * `kick()` with local limits has settled everything it could before it returns. Outcomes:
 *   - admitted → removed, settle('admitted') (the recheck consumed the quota);
 *   - refused → stays, with wake time now + retryAfterMs (at least 1 ms, so a limiter answering
 *     "refused, retry in 0" cannot spin a timer); if that is at or after its deadline it could never
 *     be admitted in time → removed, settle('timeout') now;
 *   - refused with retryAfterMs Infinity (the cost exceeds the limit's capacity) → settle('rejected');
 *   - the recheck throws or rejects → refused with retryAfterMs = errorBackoffMs (100 ms default).
 *     The queue does not report it: the caller's recheck logs its own Redis failures.
 * A kick, or a timer finding new due waiters, while a pass runs marks that another pass is needed;
 * it starts when the current one ends. A pass caused by a kick rechecks every waiter (also those
 * the previous pass just refused: the capacity freed after their recheck). Passes that keep asking
 * for more passes (a settle callback that kicks synchronously) are chained at most MAX_ROUNDS times
 * in a row; the rest continues from a zero-delay timer, so no loop here is unbounded.
 *
 * Priority is strict in ordering, not blocking. Within a pass a level-0 waiter is always rechecked
 * before any level-1 waiter, so when capacity frees for one request the highest level that fits takes
 * it. But a refused waiter does not stop the pass: due waiters behind it, of its level or lower ones,
 * are still rechecked. Different waiters usually have different limit keys (different consumers), and
 * one consumer over its own limit must not hold up everyone else. Within a level, arrival order is
 * respected only in that sense: earlier waiters are rechecked first in each pass, so they take freed
 * capacity first; a later waiter can still be admitted before an earlier one that its own limit
 * refuses (another key, or a larger cost that does not fit yet).
 *
 * Deadline. A waiter not admitted by its deadline leaves with settle('timeout'), from a timer, even
 * while a pass is stuck awaiting another waiter's recheck. Deadlines are exclusive: a waiter whose
 * wake time is at or after its deadline can never be admitted in time, so `enqueue` refuses it (the
 * caller rejects at once with the limit's Retry-After; waiting would be pointless).
 *
 * Bound. At most maxQueue waiters. When full, an arrival with a strictly higher priority (smaller
 * level) than the lowest-priority level present displaces the newest waiter of that level
 * (settle('displaced')) and takes its place; otherwise `enqueue` returns false and settles nothing.
 *
 * Leaving during a recheck. `cancel` (client gone), a deadline, displacement or `close` can hit a
 * waiter whose recheck is in flight. It is settled at once, and settle is never called twice. If that
 * recheck then admits, the recheck has consumed quota nobody will use: the queue calls the waiter's
 * optional `release()` so the caller can refund it. A caller whose recheck consumes quota must
 * implement `release`.
 *
 * Timers. At most one timer per queue, armed for the earliest of the next wake time and the next
 * deadline (a due waiter waiting for its turn in a running pass has only its deadline left), re-armed
 * when an earlier time appears, none when the queue is empty. A timer left armed for a waiter that
 * has since left just fires, finds nothing and re-arms: cheaper than re-arming on every removal.
 * The default clock unrefs its timers, so a queue never keeps the process alive.
 *
 * Costs (maxQueue ≤ 100,000; at most a handful of levels). Each level is a doubly linked list in
 * arrival order: add, cancel and displace-the-newest are O(1). Wake times and deadlines are in two
 * indexed binary heaps: O(log n) to add, remove or update, O(1) to read the earliest. A timer pass
 * costs O(k log k) for its k due waiters; a kick pass walks the whole queue, which it rechecks anyway.
 * Passes reuse one work array per queue, so a pass allocates nothing in proportion to the queue.
 *
 * Callbacks (settle, release, onSettled) run after the queue's own state is updated, so they may call
 * back into the queue (enqueue, cancel, kick, close). One that throws is reported to `onError`
 * (default: process.emitWarning) and does not disturb the queue.
 */

export type Recheck = { admit: true } | { admit: false; retryAfterMs: number };

export type LeaveReason = 'timeout' | 'aborted' | 'rejected' | 'displaced' | 'closed';

export type Outcome = 'admitted' | LeaveReason;

export interface Waiter {
  /** 0 is the highest priority; larger numbers wait behind smaller ones. Must be finite. */
  readonly level: number;
  /**
   * Re-checks the limit (consumes quota when it admits). May be async: global limits ask Redis.
   * May throw/reject: treated as { admit: false, retryAfterMs: errorBackoffMs }. retryAfterMs
   * Infinity means it can never be admitted: the waiter is settled 'rejected'.
   */
  recheck(): Recheck | Promise<Recheck>;
  /** Called exactly once: admitted, or left the queue (and why). */
  settle(outcome: Outcome): void;
  /**
   * Called when a recheck admitted this waiter after it had already left the queue (cancelled, timed
   * out, displaced or closed while that recheck was in flight): give back the quota it consumed.
   * `settle` is not called again.
   */
  release?(): void;
}

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export interface ThrottleQueueOptions {
  /** At most this many waiters (0 admits none). */
  maxQueue: number;
  /** The longest a waiter waits, from enqueue. */
  maxWaitMs: number;
  /** Default: Date.now and unref'd setTimeout. */
  clock?: Clock;
  /** The retry delay after a recheck that threw or rejected. Default 100 ms. */
  errorBackoffMs?: number;
}

/** Passes chained in a row before the next one is deferred to a zero-delay timer. */
const MAX_ROUNDS = 16;
/** The shortest wait after a refused recheck. */
const MIN_RETRY_MS = 1;
const DEFAULT_BACKOFF_MS = 100;
/** setTimeout's largest delay; a longer wait fires early, finds nothing due and re-arms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const defaultClock: Clock = {
  now: Date.now,
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

class Entry {
  readonly w: Waiter;
  readonly level: number;
  readonly seq: number;
  readonly enqueuedAt: number;
  readonly deadline: number;
  wakeAt: number;
  /** Neighbours in its level's list. */
  prev: Entry | null = null;
  next: Entry | null = null;
  /** Positions in the heaps; -1 when absent. */
  wakeIdx = -1;
  deadIdx = -1;
  /** In the queue (not yet settled). */
  queued = true;

  constructor(w: Waiter, level: number, seq: number, now: number, wakeAt: number, deadline: number) {
    this.w = w;
    this.level = level;
    this.seq = seq;
    this.enqueuedAt = now;
    this.wakeAt = wakeAt;
    this.deadline = deadline;
  }
}

class Level {
  readonly level: number;
  head: Entry | null = null;
  tail: Entry | null = null;

  constructor(level: number) {
    this.level = level;
  }

  push(e: Entry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }

  unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
  }
}

/** A binary min-heap of entries that records each entry's position, for O(log n) removal. */
class IndexedHeap {
  private readonly a: Entry[] = [];
  private readonly key: (e: Entry) => number;
  private readonly setIdx: (e: Entry, i: number) => void;
  private readonly getIdx: (e: Entry) => number;

  constructor(
    key: (e: Entry) => number,
    getIdx: (e: Entry) => number,
    setIdx: (e: Entry, i: number) => void,
  ) {
    this.key = key;
    this.getIdx = getIdx;
    this.setIdx = setIdx;
  }

  get size(): number {
    return this.a.length;
  }

  top(): Entry | undefined {
    return this.a[0];
  }

  push(e: Entry): void {
    this.a.push(e);
    this.setIdx(e, this.a.length - 1);
    this.up(this.a.length - 1);
  }

  remove(e: Entry): void {
    const i = this.getIdx(e);
    if (i < 0) return;
    this.setIdx(e, -1);
    const last = this.a.pop()!;
    if (i === this.a.length) return;
    this.a[i] = last;
    this.setIdx(last, i);
    this.down(i);
    this.up(i);
  }

  /** Empties the heap, calling `each` on every entry it held. */
  drain(each: (e: Entry) => void): void {
    for (const e of this.a) {
      this.setIdx(e, -1);
      each(e);
    }
    this.a.length = 0;
  }

  private up(i: number): void {
    const a = this.a;
    const e = a[i]!;
    const k = this.key(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = a[p]!;
      if (this.key(pe) <= k) break;
      a[i] = pe;
      this.setIdx(pe, i);
      i = p;
    }
    a[i] = e;
    this.setIdx(e, i);
  }

  private down(i: number): void {
    const a = this.a;
    const n = a.length;
    const e = a[i]!;
    const k = this.key(e);
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.key(a[r]!) < this.key(a[l]!)) c = r;
      const ce = a[c]!;
      if (this.key(ce) >= k) break;
      a[i] = ce;
      this.setIdx(ce, i);
      i = c;
    }
    a[i] = e;
    this.setIdx(e, i);
  }
}

function byLevelThenArrival(a: Entry, b: Entry): number {
  return a.level - b.level || a.seq - b.seq;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

export class ThrottleQueue {
  /** For metrics: called on each leave/admit with the time waited in ms. */
  onSettled?: (outcome: Outcome, waitedMs: number) => void;
  /** A settle, release or onSettled callback threw. Default: process.emitWarning. */
  onError?: (err: unknown) => void;

  private readonly maxQueue: number;
  private readonly maxWaitMs: number;
  private readonly clock: Clock;
  private readonly backoffMs: number;

  /** Non-empty levels, smallest level (highest priority) first. */
  private readonly levels: Level[] = [];
  private readonly byWaiter = new Map<Waiter, Entry>();
  /** Waiters waiting for their wake time. */
  private readonly wake = new IndexedHeap(
    (e) => e.wakeAt,
    (e) => e.wakeIdx,
    (e, i) => {
      e.wakeIdx = i;
    },
  );
  /** Every waiter, by deadline. */
  private readonly dead = new IndexedHeap(
    (e) => e.deadline,
    (e) => e.deadIdx,
    (e, i) => {
      e.deadIdx = i;
    },
  );
  /** Waiters past their wake time, for the next pass (may hold some that have left since). */
  private readonly due: Entry[] = [];
  /** The running pass's waiters, reused from pass to pass. */
  private readonly work: Entry[] = [];
  private seq = 0;
  private size = 0;
  /** kick() asked that every waiter be rechecked by the next pass. */
  private kicked = false;
  private running = false;
  /** Something asked for a pass while one was running. */
  private again = false;
  private closed = false;
  private timer: unknown = null;
  private timerAt = Infinity;

  constructor(opts: ThrottleQueueOptions) {
    this.maxQueue = Math.max(0, Math.floor(opts.maxQueue));
    this.maxWaitMs = Math.max(0, opts.maxWaitMs);
    this.clock = opts.clock ?? defaultClock;
    const backoff = opts.errorBackoffMs ?? DEFAULT_BACKOFF_MS;
    this.backoffMs = Number.isFinite(backoff) ? Math.max(MIN_RETRY_MS, backoff) : DEFAULT_BACKOFF_MS;
  }

  get length(): number {
    return this.size;
  }

  /**
   * Adds a waiter that was just refused; `retryAfterMs` is when its limit may admit it. Returns false
   * when it cannot enter (the caller rejects at once) — nothing is settled in that case: the queue is
   * closed or full (and the waiter cannot displace anyone), the wait would reach maxWaitMs, the level
   * is not a finite number, or this waiter is already queued. Never settles the new waiter before
   * returning (a displaced one, yes).
   */
  enqueue(w: Waiter, retryAfterMs: number): boolean {
    if (this.closed || !Number.isFinite(w.level) || this.byWaiter.has(w)) return false;
    const retry = Number.isNaN(retryAfterMs) ? 0 : Math.max(0, retryAfterMs);
    if (!(retry < this.maxWaitMs)) return false;
    let victim: Entry | null = null;
    if (this.size >= this.maxQueue) {
      const lowest = this.levels[this.levels.length - 1];
      if (lowest === undefined || w.level >= lowest.level) return false;
      victim = lowest.tail!;
      this.detach(victim);
    }
    const now = this.clock.now();
    const e = new Entry(w, w.level, this.seq++, now, now + retry, now + this.maxWaitMs);
    this.levelFor(e.level).push(e);
    this.byWaiter.set(w, e);
    this.size++;
    this.wake.push(e);
    this.dead.push(e);
    this.armTimer();
    if (victim) this.notify(victim, 'displaced', now);
    return true;
  }

  /** The client went away: remove it, settle('aborted'). No-op if already settled (or never queued). */
  cancel(w: Waiter): void {
    const e = this.byWaiter.get(w);
    if (e === undefined) return;
    this.detach(e);
    this.armTimer();
    this.notify(e, 'aborted', this.clock.now());
  }

  /** Capacity may have freed: re-check every waiter now rather than at their timers. */
  kick(): void {
    if (this.closed || this.size === 0) return;
    this.kicked = true;
    this.run();
  }

  /** Settles everything 'closed' and stops timers (the table was replaced / proxy stopping). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopTimer();
    const left: Entry[] = [];
    for (const l of this.levels) for (let e = l.head; e; e = e.next) left.push(e);
    for (const e of left) this.detach(e);
    this.due.length = 0;
    const now = this.clock.now();
    for (const e of left) this.notify(e, 'closed', now);
  }

  // ---- passes ----

  private run(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.drive().catch((err) => this.report(err));
  }

  private async drive(): Promise<void> {
    this.running = true;
    try {
      let rounds = 0;
      do {
        this.again = false;
        const work = this.collect();
        for (let i = 0; i < work.length && !this.closed; i++) {
          const e = work[i]!;
          if (!e.queued) continue;
          const now = this.clock.now();
          if (now >= e.deadline) {
            this.leave(e, 'timeout', now);
            continue;
          }
          let r: unknown;
          try {
            r = e.w.recheck();
          } catch {
            r = null;
          }
          if (isThenable(r)) {
            // Arm for the deadlines of the waiters still to come (and this one) while we wait.
            this.armTimer();
            try {
              r = await r;
            } catch {
              r = null;
            }
          }
          this.apply(e, r);
        }
        work.length = 0;
      } while (this.again && !this.closed && ++rounds < MAX_ROUNDS);
    } finally {
      this.work.length = 0;
      this.running = false;
      this.armTimer();
    }
  }

  /** This pass's waiters, in order: after a kick all of them, else those past their wake time. */
  private collect(): Entry[] {
    const now = this.clock.now();
    this.sweep(now);
    const work = this.work;
    work.length = 0;
    if (this.kicked) {
      this.kicked = false;
      this.due.length = 0;
      this.wake.drain(() => {});
      for (const l of this.levels) for (let e = l.head; e; e = e.next) work.push(e);
    } else {
      this.popDue(now);
      for (const e of this.due) if (e.queued) work.push(e);
      this.due.length = 0;
      work.sort(byLevelThenArrival);
    }
    return work;
  }

  private apply(e: Entry, raw: unknown): void {
    const r = raw as Partial<{ admit: boolean; retryAfterMs: number }> | null;
    const admit = typeof r === 'object' && r !== null && r.admit === true;
    if (!e.queued) {
      // Left while its recheck was in flight and was settled then: undo the quota it just took.
      if (admit) this.callback(() => e.w.release?.());
      return;
    }
    const now = this.clock.now();
    if (admit) {
      this.leave(e, 'admitted', now);
      return;
    }
    let retry = typeof r === 'object' && r !== null ? r.retryAfterMs : undefined;
    if (retry === Infinity) {
      this.leave(e, 'rejected', now);
      return;
    }
    if (typeof retry !== 'number' || Number.isNaN(retry)) retry = this.backoffMs;
    const wakeAt = now + Math.max(MIN_RETRY_MS, retry);
    if (wakeAt >= e.deadline) {
      this.leave(e, 'timeout', now);
      return;
    }
    e.wakeAt = wakeAt;
    this.wake.push(e);
  }

  // ---- timers ----

  private onTimer = (): void => {
    this.timer = null;
    this.timerAt = Infinity;
    if (this.closed) return;
    const now = this.clock.now();
    this.sweep(now);
    this.popDue(now);
    if (this.kicked || this.due.length > 0) this.run();
    this.armTimer();
  };

  /** Times out every waiter whose deadline has come, whether or not its recheck is in flight. */
  private sweep(now: number): void {
    for (let e = this.dead.top(); e !== undefined && e.deadline <= now; e = this.dead.top()) {
      this.leave(e, 'timeout', now);
    }
  }

  private popDue(now: number): void {
    for (let e = this.wake.top(); e !== undefined && e.wakeAt <= now; e = this.wake.top()) {
      this.wake.remove(e);
      this.due.push(e);
    }
  }

  private armTimer(): void {
    if (this.closed || this.size === 0) {
      this.stopTimer();
      return;
    }
    // Work left for a pass that is not running (a chain cut at MAX_ROUNDS): start one soon.
    let at = !this.running && (this.kicked || this.due.length > 0) ? -Infinity : Infinity;
    const w = this.wake.top();
    if (w !== undefined && w.wakeAt < at) at = w.wakeAt;
    const d = this.dead.top();
    if (d !== undefined && d.deadline < at) at = d.deadline;
    if (at === Infinity) return;
    if (this.timer !== null) {
      if (this.timerAt <= at) return;
      this.stopTimer();
    }
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.clock.now()));
    this.timerAt = at;
    this.timer = this.clock.setTimer(this.onTimer, delay);
  }

  private stopTimer(): void {
    if (this.timer !== null) this.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }

  // ---- bookkeeping ----

  private levelFor(level: number): Level {
    const ls = this.levels;
    let i = ls.length;
    while (i > 0 && ls[i - 1]!.level > level) i--;
    const at = ls[i - 1];
    if (at !== undefined && at.level === level) return at;
    const l = new Level(level);
    ls.splice(i, 0, l);
    return l;
  }

  /** Removes a waiter from every structure (not from `due`/`work`: those skip entries not queued). */
  private detach(e: Entry): void {
    e.queued = false;
    this.byWaiter.delete(e.w);
    this.size--;
    this.wake.remove(e);
    this.dead.remove(e);
    const i = this.levels.findIndex((l) => l.level === e.level);
    const l = this.levels[i]!;
    l.unlink(e);
    if (l.head === null) this.levels.splice(i, 1);
  }

  private leave(e: Entry, outcome: Outcome, now: number): void {
    this.detach(e);
    this.notify(e, outcome, now);
  }

  private notify(e: Entry, outcome: Outcome, now: number): void {
    const waited = Math.max(0, now - e.enqueuedAt);
    this.callback(() => e.w.settle(outcome));
    if (this.onSettled) this.callback(() => this.onSettled?.(outcome, waited));
  }

  private callback(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    try {
      if (this.onError) this.onError(err);
      else process.emitWarning(`throttle queue: ${err instanceof Error ? err.message : String(err)}`);
    } catch {
      // An error reporter that throws has nowhere left to report to.
    }
  }
}
