/**
 * What a policy holds between requests, kept across routing tables so that a table push (a weight
 * edit, another route) neither resets anyone's quota nor drops the queue:
 *
 * - one Counter per policy: its budgets are the policy's, shared by every route the policy
 *   targets, unless a limit's key includes the Route;
 * - one RouteGate per (policy, route): the in-flight cap and the throttling queue, which the
 *   API defines per route.
 *
 * States are reused by the next table when the policy's counting is the same (scope, Redis,
 * limit names, algorithms, periods and keys; amounts may change, they are passed per request).
 * A changed limit starts from a full quota, as a new policy would.
 */
import type { CompiledRateLimitPolicy } from '../../routing-table/types.ts';
import type { Counter } from './counters.ts';
import type { ThrottleQueue } from './throttle-queue.ts';

/** The per-route part: requests in flight to the backends and those waiting for a turn. */
export class RouteGate {
  inFlight = 0;
  maxInFlight: number | undefined;
  queue: ThrottleQueue | undefined;
  /** The queue's longest wait and bound (0 without a queue). */
  maxWaitMs = 0;
  maxQueue = 0;
  private queueSettings = '';

  constructor(
    policy: CompiledRateLimitPolicy,
    makeQueue: (maxQueue: number, maxWaitMs: number) => ThrottleQueue,
  ) {
    this.maxInFlight = policy.maxInFlight;
    this.configure(policy, makeQueue);
  }

  /** Applies a new table's settings; the queue is kept unless its bound or wait changed. */
  configure(
    policy: CompiledRateLimitPolicy,
    makeQueue: (maxQueue: number, maxWaitMs: number) => ThrottleQueue,
  ): void {
    this.maxInFlight = policy.maxInFlight;
    const o = policy.onExceeded;
    const settings = o.action === 'Queue' ? `${o.maxQueue}/${o.maxWaitMs}` : '';
    if (settings === this.queueSettings) return;
    // Waiters of a queue whose settings changed are told so (they get a retryable answer).
    this.queue?.close();
    this.queue = o.action === 'Queue' ? makeQueue(o.maxQueue ?? 1, o.maxWaitMs ?? 0) : undefined;
    this.maxWaitMs = o.action === 'Queue' ? (o.maxWaitMs ?? 0) : 0;
    this.maxQueue = o.action === 'Queue' ? (o.maxQueue ?? 1) : 0;
    this.queueSettings = settings;
  }

  /** Takes an in-flight slot when one is free. */
  enter(): boolean {
    if (this.maxInFlight !== undefined && this.inFlight >= this.maxInFlight) return false;
    this.inFlight++;
    return true;
  }

  /** Gives a slot back; a waiter may now get it. */
  leave(): void {
    this.inFlight--;
    if (this.queue !== undefined && this.queue.length > 0) this.queue.kick();
  }
}

export class PolicyState {
  /** Undefined for a Global policy without a usable Redis: every request meets its failureMode. */
  readonly counter: Counter | undefined;
  readonly gates = new Map<string, RouteGate>();

  constructor(counter: Counter | undefined) {
    this.counter = counter;
  }
}

/** What must be equal for two tables' versions of a policy to share counters. */
export function countingFingerprint(p: CompiledRateLimitPolicy): string {
  return JSON.stringify([
    p.id,
    p.scope,
    p.redis ?? p.redisUnavailable ?? null,
    p.limits.map((l) => [l.name, l.algorithm, l.periodMs, l.key]),
  ]);
}
