/**
 * PolicyPlan (tiers, split across proxies, queue priorities, header caching) and LocalCounter's
 * all-or-nothing take.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { Identity } from '../../../../src/dataplane/auth/identity.ts';
import type { FilterContext } from '../../../../src/dataplane/filters/filter.ts';
import { LocalCounter } from '../../../../src/dataplane/ratelimit/counters.ts';
import { capacityOf, PolicyPlan } from '../../../../src/dataplane/ratelimit/policy-plan.ts';
import type { CompiledLimit, CompiledRateLimitPolicy } from '../../../../src/routing-table/types.ts';

function limit(name: string, over: Partial<CompiledLimit> = {}): CompiledLimit {
  return {
    name,
    key: [{ type: 'Consumer' }],
    algorithm: 'FixedWindow',
    amount: 10,
    periodMs: 60_000,
    burst: 0,
    cost: 'Requests',
    overrides: [],
    ...over,
  };
}

function policy(over: Partial<CompiledRateLimitPolicy> = {}): CompiledRateLimitPolicy {
  return {
    id: 'ml/p',
    scope: 'Local',
    failureMode: 'FailOpen',
    limits: [
      limit('requests', {
        overrides: [
          { group: 'gold', amount: 100 },
          { group: 'silver', amount: 50 },
        ],
      }),
      limit('tokens', { cost: 'ModelTokens', algorithm: 'TokenBucket', amount: 1000, burst: 200 }),
    ],
    onExceeded: { action: 'Reject' },
    ...over,
  };
}

const who = (groups: string[]): Identity => ({
  method: 'apiKey',
  consumer: 'c',
  groups,
  scopes: [],
  claims: {},
});

function ctx(headers: Record<string, string>, identity?: Identity): FilterContext {
  return {
    req: { headers } as unknown as IncomingMessage,
    res: undefined as unknown as FilterContext['res'],
    requestId: 'r',
    rule: { route: 'ml/chat' } as FilterContext['rule'],
    model: undefined,
    upstreamHeaders: {},
    path: '/',
    hostRewrite: undefined,
    responseHeaders: undefined,
    identity,
    clientIp: '10.0.0.1',
    body: undefined,
    observers: undefined,
  };
}

test('amounts: the first override whose group the caller is in, per limit', () => {
  const plan = new PolicyPlan(policy());
  assert.deepEqual(plan.amounts(undefined, 1), [10, 1000]);
  assert.deepEqual(
    plan.amounts(who(['silver', 'gold']), 1),
    [100, 1000],
    'override order decides, not group order',
  );
  assert.deepEqual(plan.amounts(who(['silver']), 1), [50, 1000]);
  assert.deepEqual(plan.amounts(who(['bronze']), 1), [10, 1000]);
});

test('splitAcrossProxies divides amounts among proxies, rounding up; other policies ignore the count', () => {
  const split = new PolicyPlan(policy({ splitAcrossProxies: true }));
  assert.deepEqual(split.amounts(undefined, 3), [4, 334]);
  assert.deepEqual(split.amounts(who(['gold']), 3), [34, 334]);
  assert.deepEqual(split.amounts(undefined, 1), [10, 1000]);
  assert.deepEqual(new PolicyPlan(policy()).amounts(undefined, 3), [10, 1000]);
});

test('the RateLimit-Policy value follows the tier and is cached', () => {
  const plan = new PolicyPlan(policy());
  const base = plan.policyHeader([10, 1000]);
  assert.equal(base, '"requests";q=10;w=60, "tokens";q=1000;qu="tokens";w=60');
  assert.equal(plan.policyHeader([10, 1000]), base);
  assert.match(plan.policyHeader([100, 1000]), /"requests";q=100;/);
});

test('queue priorities: first matching level, groups or header values; the rest come last', () => {
  const plan = new PolicyPlan(
    policy({
      onExceeded: {
        action: 'Queue',
        maxQueue: 10,
        maxWaitMs: 1000,
        priorities: [{ group: 'gold' }, { header: 'x-priority', value: 'high' }],
      },
    }),
  );
  assert.equal(plan.priorityOf(ctx({}, who(['gold']))), 0);
  assert.equal(plan.priorityOf(ctx({ 'x-priority': 'high' }, who(['gold']))), 0);
  assert.equal(plan.priorityOf(ctx({ 'x-priority': 'high' })), 1);
  assert.equal(plan.priorityOf(ctx({ 'x-priority': 'low' })), 2);
  assert.equal(new PolicyPlan(policy()).priorityOf(ctx({})), 0, 'no priorities: one level');
});

test('capacity: amount, plus burst for a token bucket', () => {
  assert.equal(capacityOf(limit('a', { algorithm: 'TokenBucket', burst: 5 }), 10), 15);
  assert.equal(capacityOf(limit('a', { algorithm: 'SlidingWindow', burst: 0 }), 10), 10);
});

test('LocalCounter: a refusal by a later limit takes nothing from the earlier ones', () => {
  const c = new LocalCounter([limit('a', { amount: 5 }), limit('b', { amount: 2 })], () => 1000);
  const charge = (cost: number) => ({ keys: ['k', 'k'], amounts: [5, 2], costs: [cost, cost] });
  assert.equal(c.take(charge(1)).allowed, true);
  assert.equal(c.take(charge(1)).allowed, true);
  const refused = c.take(charge(1));
  assert.equal(refused.allowed, false);
  // A peek of limit a: 3 left, so 2 after this request, had it been admitted (nothing was taken).
  assert.equal(refused.decisions[0]!.remaining, 2);
  assert.equal(refused.decisions[0]!.allowed, true);
  assert.equal(refused.decisions[1]!.allowed, false);
  assert.ok(refused.decisions[1]!.retryAfterMs > 0);
  // Reconciling: giving one back to b admits one more.
  c.adjust(1, 'k', 2, -1);
  const after = c.take(charge(1));
  assert.equal(after.allowed, true);
  assert.equal(after.decisions[0]!.remaining, 2, 'limit a paid for 3 admitted requests, not 4');
});
