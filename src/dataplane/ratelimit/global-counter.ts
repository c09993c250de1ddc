/**
 * A Global policy's counter: every proxy counts in the same Redis, one script call per request
 * (all limits at once, all-or-nothing), on the Redis server's clock. Reconciliations (model
 * tokens, a queued request admitted after its client left) are sent without waiting: they must
 * never hold a response, and one lost to an outage only errs by that request's estimate.
 */
import type { CompiledRateLimitPolicy } from '../../routing-table/types.ts';
import type { Charge, Counter, CountResult } from './counters.ts';
import { PolicyKeys } from './redis/redis-keys.ts';
import type { GlobalCheck, RedisLimiter } from './redis/redis-limiter.ts';

export class GlobalCounter implements Counter {
  readonly scope = 'Global' as const;
  readonly evictions = 0;
  private readonly policy: CompiledRateLimitPolicy;
  private readonly redis: RedisLimiter;
  private readonly keys: PolicyKeys;
  /** Reconciliations that failed (Redis unreachable): they are dropped, and counted. */
  lostAdjustments = 0;

  constructor(policy: CompiledRateLimitPolicy, redis: RedisLimiter) {
    this.policy = policy;
    this.redis = redis;
    this.keys = new PolicyKeys(policy.id, policy.limits);
  }

  get up(): boolean {
    return this.redis.state === 'ready';
  }

  take(charge: Charge): Promise<CountResult> {
    const limits = this.policy.limits;
    const redisKeys = this.keys.keys(charge.keys);
    const checks = new Array<GlobalCheck>(limits.length);
    for (let i = 0; i < limits.length; i++) {
      const l = limits[i]!;
      checks[i] = {
        algorithm: l.algorithm,
        amount: charge.amounts[i]!,
        periodMs: l.periodMs,
        burst: l.burst,
        cost: charge.costs[i]!,
        key: redisKeys[i]!,
      };
    }
    // A client still making its first connection would refuse at once (commands are not queued
    // while disconnected, so an outage fails fast): give the first connection the timeout.
    if (this.redis.state === 'connecting') {
      return this.redis.waitReady(this.redis.timeoutMs).then(() => this.redis.take(checks));
    }
    return this.redis.take(checks);
  }

  adjust(limit: number, key: string, amount: number, delta: number): void {
    if (delta === 0) return;
    const l = this.policy.limits[limit];
    if (l === undefined) return;
    const check: GlobalCheck = {
      algorithm: l.algorithm,
      amount,
      periodMs: l.periodMs,
      burst: l.burst,
      cost: 0,
      key: this.keys.key(limit, key),
    };
    this.redis.adjust(check, delta).catch(() => {
      this.lostAdjustments++;
    });
  }
}
