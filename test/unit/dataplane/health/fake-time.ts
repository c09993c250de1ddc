import type { Timers } from '../../../../src/dataplane/health/timers.ts';

interface Pending {
  id: number;
  at: number;
  ms: number;
  fn: () => void;
}

/** A hand-driven clock and timer queue: nothing happens until a test advances time. */
export class FakeTime {
  now = 1_000;
  /** Every delay ever scheduled, in order. */
  readonly scheduled: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  readonly clock = (): number => this.now;

  readonly timers: Timers = {
    setTimeout: (fn, ms) => {
      const id = ++this.seq;
      this.scheduled.push(ms);
      this.pending.set(id, { id, at: this.now + ms, ms, fn });
      return id;
    },
    clearTimeout: (handle) => {
      this.pending.delete(handle as number);
    },
  };

  /** Number of timers armed. */
  get size(): number {
    return this.pending.size;
  }

  /** Delays of the armed timers, in due order. */
  delays(): number[] {
    return this.ordered().map((p) => p.ms);
  }

  /** Due times of the armed timers, in order. */
  dueTimes(): number[] {
    return this.ordered().map((p) => p.at);
  }

  /** Fires the earliest timer (moving the clock to it); false when none is armed. */
  next(): boolean {
    const p = this.ordered()[0];
    if (!p) return false;
    this.pending.delete(p.id);
    this.now = Math.max(this.now, p.at);
    p.fn();
    return true;
  }

  /** Moves the clock by `ms`, firing every timer due by then (including ones armed meanwhile). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const p = this.ordered()[0];
      if (!p || p.at > end) break;
      this.next();
    }
    this.now = end;
  }

  private ordered(): Pending[] {
    return [...this.pending.values()].sort((a, b) => a.at - b.at || a.id - b.id);
  }
}
