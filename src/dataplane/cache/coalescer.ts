/**
 * Request coalescing: while one request for a key is on its way upstream (the leader's "flight"),
 * identical requests wait for its answer instead of going themselves, so N concurrent identical
 * requests reach the backend once (per proxy: with a Redis store, each proxy sends its own first).
 *
 * Bounded both ways: at most `maxWaiters` wait on a flight (more go upstream), and each waits at
 * most `maxWaitMs`. The leader settles its flight exactly once: with the stored entry, or with
 * nothing as soon as it is known that nothing will be stored (an answer that is an error, a stream
 * or too large; its client gone; its request refused). Waiters given nothing go upstream
 * themselves: nobody is stranded behind a leader that went away.
 */
import type { CacheEntry } from './entry.ts';

interface Waiter {
  resolve: (entry: CacheEntry | undefined) => void;
  timer: NodeJS.Timeout;
}

export class Flight {
  readonly key: string;
  readonly waiters: Waiter[] = [];
  settled = false;
  constructor(key: string) {
    this.key = key;
  }
}

export class Coalescer {
  private readonly flights = new Map<string, Flight>();

  /** Flights in progress. */
  get size(): number {
    return this.flights.size;
  }

  /** The flight in progress for `key`, if any. */
  get(key: string): Flight | undefined {
    return this.flights.get(key);
  }

  /** Starts a flight for `key`; the caller is its leader and must settle it. */
  lead(key: string): Flight {
    const f = new Flight(key);
    this.flights.set(key, f);
    return f;
  }

  /**
   * Waits for the flight's outcome: its entry, or undefined (nothing stored, or `maxWaitMs`
   * passed). Returns undefined at once when the flight already has `maxWaiters` waiting.
   */
  wait(flight: Flight, maxWaiters: number, maxWaitMs: number): Promise<CacheEntry | undefined> | undefined {
    if (flight.settled || flight.waiters.length >= maxWaiters) return undefined;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const i = flight.waiters.indexOf(waiter);
          if (i >= 0) flight.waiters.splice(i, 1);
          resolve(undefined);
        }, maxWaitMs),
      };
      waiter.timer.unref();
      flight.waiters.push(waiter);
    });
  }

  /** The leader's outcome reaches every waiter, and the key is free for a new flight. Once. */
  settle(flight: Flight, entry: CacheEntry | undefined): void {
    if (flight.settled) return;
    flight.settled = true;
    if (this.flights.get(flight.key) === flight) this.flights.delete(flight.key);
    const waiters = flight.waiters.splice(0);
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve(entry);
    }
  }
}
