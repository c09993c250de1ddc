import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type LimitReport,
  mostRestrictive,
  policyItem,
  rateLimitHeaders,
  rateLimitItem,
  rateLimitPolicyValue,
  retryAfterValue,
  sfInteger,
  sfString,
} from '../../../../src/dataplane/ratelimit/headers.ts';
import { d } from './helpers.ts';

function report(
  name: string,
  quota: number,
  periodMs: number,
  decision = d(true, quota, 0, 0),
  cost: LimitReport['cost'] = 'Requests',
): LimitReport {
  return { name, quota, periodMs, cost, decision };
}

test('sf-string: quoted, with " and \\ escaped; anything outside printable ASCII is refused', () => {
  assert.equal(sfString('per-minute'), '"per-minute"');
  assert.equal(sfString(''), '""');
  assert.equal(sfString('a"b\\c'), '"a\\"b\\\\c"');
  assert.equal(sfString(' ~!'), '" ~!"');
  assert.throws(() => sfString('caf\u00e9'), TypeError);
  assert.throws(() => sfString('a\nb'), TypeError);
  assert.throws(() => sfString('\x7f'), TypeError);
});

test('sf-integer: floored, never negative, clamped to 15 digits', () => {
  assert.equal(sfInteger(42.9), '42');
  assert.equal(sfInteger(-3), '0');
  assert.equal(sfInteger(Number.NaN), '0');
  assert.equal(sfInteger(1e20), '999999999999999');
});

test('RateLimit-Policy: q and w for requests, qu="tokens" for model tokens', () => {
  assert.equal(policyItem(report('per-minute', 100, 60_000)), '"per-minute";q=100;w=60');
  assert.equal(
    policyItem(report('tokens-per-hour', 100_000, 3_600_000, undefined, 'ModelTokens')),
    '"tokens-per-hour";q=100000;qu="tokens";w=3600',
  );
  // Whole seconds, rounded up (a lower advertised rate), never 0.
  assert.equal(policyItem(report('x', 5, 1500)), '"x";q=5;w=2');
  assert.equal(policyItem(report('x', 5, 200)), '"x";q=5;w=1');
  assert.equal(policyItem(report('blocked', 0, 60_000)), '"blocked";q=0;w=60');
  assert.equal(policyItem(report('we"ird', 1, 1000)), '"we\\"ird";q=1;w=1');
  assert.equal(
    rateLimitPolicyValue([report('burst', 100, 60_000), report('daily', 1000, 86_400_000)]),
    '"burst";q=100;w=60, "daily";q=1000;w=86400',
  );
});

test('RateLimit: remaining and seconds until reset, rounded up; remaining capped at the quota', () => {
  assert.equal(rateLimitItem(report('default', 100, 60_000, d(true, 50, 29_001, 0))), '"default";r=50;t=30');
  assert.equal(rateLimitItem(report('default', 100, 60_000, d(true, 99, 0, 0))), '"default";r=99;t=0');
  // A token bucket with burst can hold more than q: report no more than q.
  assert.equal(rateLimitItem(report('bucket', 10, 1000, d(true, 14, 100, 0))), '"bucket";r=10;t=1');
  // Refused: t is the same moment as Retry-After.
  assert.equal(rateLimitItem(report('default', 100, 60_000, d(false, 0, 59_000, 1200))), '"default";r=0;t=2');
  // Never admitted: no retry moment, so t falls back to the reset.
  assert.equal(
    rateLimitItem(report('default', 100, 60_000, d(false, 3, 59_000, Infinity))),
    '"default";r=3;t=59',
  );
});

test('Retry-After: delay-seconds rounded up; nothing for 0 or never', () => {
  assert.equal(retryAfterValue(1), '1');
  assert.equal(retryAfterValue(1000), '1');
  assert.equal(retryAfterValue(1001), '2');
  assert.equal(retryAfterValue(0), undefined);
  assert.equal(retryAfterValue(Infinity), undefined);
});

test('several limits: RateLimit names the least remaining relative to its quota', () => {
  const reports = [
    report('per-second', 10, 1000, d(true, 5, 500, 0)), // 50% left
    report('per-day', 1000, 86_400_000, d(true, 100, 36_000_000, 0)), // 10% left
    report('per-hour', 100, 3_600_000, d(true, 20, 1_800_000, 0)), // 20% left
  ];
  assert.equal(mostRestrictive(reports), 1);
  assert.deepEqual(rateLimitHeaders(reports), {
    'ratelimit-policy': '"per-second";q=10;w=1, "per-day";q=1000;w=86400, "per-hour";q=100;w=3600',
    ratelimit: '"per-day";r=100;t=36000',
  });
  // Ties go to the longer reset, then to the first listed.
  const tied = [report('a', 10, 1000, d(true, 5, 500, 0)), report('b', 20, 1000, d(true, 10, 900, 0))];
  assert.equal(mostRestrictive(tied), 1);
  const same = [report('a', 10, 1000, d(true, 5, 500, 0)), report('b', 20, 1000, d(true, 10, 500, 0))];
  assert.equal(mostRestrictive(same), 0);
  // A zero quota (a blocked tier) refuses everything, so it is the one named.
  const blocked = [report('a', 10, 1000, d(true, 0, 500, 0)), report('z', 0, 1000, d(false, 0, 0, Infinity))];
  assert.equal(mostRestrictive(blocked), 1);
  assert.equal(rateLimitHeaders(blocked)?.ratelimit, '"z";r=0;t=0');
  assert.equal(mostRestrictive([]), -1);
  assert.equal(rateLimitHeaders([]), undefined);
});

test('several limits, one refuses: RateLimit names it and agrees with Retry-After', () => {
  const reports = [
    report('per-day', 1000, 86_400_000, d(true, 1, 36_000_000, 0)),
    report('per-second', 10, 1000, d(false, 0, 1000, 300)),
    report('tokens', 5000, 60_000, d(false, 0, 60_000, 12_500), 'ModelTokens'),
  ];
  assert.equal(mostRestrictive(reports), 2);
  assert.deepEqual(rateLimitHeaders(reports), {
    'ratelimit-policy': '"per-day";q=1000;w=86400, "per-second";q=10;w=1, "tokens";q=5000;qu="tokens";w=60',
    ratelimit: '"tokens";r=0;t=13',
    'retry-after': '13',
  });
});

test('a request that can never be admitted gets no Retry-After', () => {
  const reports = [report('tokens', 5000, 60_000, d(false, 4000, 12_000, Infinity), 'ModelTokens')];
  assert.deepEqual(rateLimitHeaders(reports), {
    'ratelimit-policy': '"tokens";q=5000;qu="tokens";w=60',
    ratelimit: '"tokens";r=4000;t=12',
  });
});
