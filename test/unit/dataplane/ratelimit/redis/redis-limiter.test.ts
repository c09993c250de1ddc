/**
 * RedisLimiter against real redis-server processes: all-or-nothing across limits, exact global
 * counting from two clients (two proxies) on the server clock, a one-node Redis Cluster, a crash
 * and restart, a hung server, and script errors. No sleeps as synchronisation and no wall-clock
 * thresholds: failures are asserted as rejections, readiness is awaited with a bounded wait.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { type KeyedLimit, PolicyKeys } from '../../../../../src/dataplane/ratelimit/redis/redis-keys.ts';
import {
  type GlobalCheck,
  RedisLimiter,
  type RedisLimiterState,
  RedisUnavailableError,
} from '../../../../../src/dataplane/ratelimit/redis/redis-limiter.ts';
import { skipWithoutRedis, startRedis, type TestRedis } from '../../../../support/redis-server.ts';

const skip = skipWithoutRedis();
const READY_WAIT_MS = 20_000;
/** Generous: these tests are about behaviour, not latency, on a possibly loaded machine. */
const TIMEOUT_MS = 5_000;
const HOUR = 3_600_000;

function fixed(key: string, amount: number, cost = 1, periodMs = HOUR): GlobalCheck {
  return { algorithm: 'FixedWindow', amount, periodMs, burst: 0, cost, key };
}

/** Runs `total` takes from the limiters, alternating, `batch` at a time concurrently. */
async function hammer(
  limiters: RedisLimiter[],
  checks: (i: number) => GlobalCheck[],
  total: number,
  batch: number,
): Promise<number> {
  let admitted = 0;
  for (let start = 0; start < total; start += batch) {
    const calls: Promise<{ allowed: boolean }>[] = [];
    for (let i = start; i < Math.min(total, start + batch); i++) {
      calls.push(limiters[i % limiters.length]!.take(checks(i)));
    }
    for (const r of await Promise.all(calls)) if (r.allowed) admitted++;
  }
  return admitted;
}

async function serverMs(raw: Redis): Promise<number> {
  const [s, us] = await raw.time();
  return Number(s) * 1000 + Math.floor(Number(us) / 1000);
}

describe('RedisLimiter (standalone)', { skip }, () => {
  let server: TestRedis;
  let a: RedisLimiter;
  let b: RedisLimiter;
  let raw: Redis;
  const states: RedisLimiterState[] = [];

  before(async () => {
    server = await startRedis();
    a = new RedisLimiter(
      { url: server.url, cluster: false },
      { timeoutMs: TIMEOUT_MS, onStateChange: (s) => states.push(s) },
    );
    b = new RedisLimiter({ url: `${server.url}/0`, cluster: false }, { timeoutMs: TIMEOUT_MS });
    raw = new Redis({ host: '127.0.0.1', port: server.port });
    raw.on('error', () => {});
    assert.equal(await a.waitReady(READY_WAIT_MS), true);
    assert.equal(await b.waitReady(READY_WAIT_MS), true);
    assert.equal(a.state, 'ready');
  });

  after(async () => {
    raw.disconnect();
    await a.close();
    await b.close();
    await server.close();
    assert.equal(a.state, 'down');
  });

  test('a refusal by one limit consumes nothing from the others', async () => {
    const first = fixed('aon:{x}:first', 10, 3);
    const second = fixed('aon:{x}:second', 2, 3);
    const r1 = await a.take([first, second]);
    assert.equal(r1.allowed, false);
    assert.deepEqual(
      r1.decisions.map((d) => [d.allowed, d.remaining]),
      [
        [true, 7],
        [false, 2],
      ],
    );
    assert.equal(r1.decisions[1]!.retryAfterMs, Infinity);
    // The first limit still has all 10: nothing was taken by the refused request.
    const r2 = await a.take([{ ...first, cost: 0 }]);
    assert.equal(r2.decisions[0]!.remaining, 10);
    assert.equal(await raw.exists('aon:{x}:first', 'aon:{x}:second'), 0);
    // Once both admit, both consume.
    const r3 = await a.take([first, { ...second, cost: 1 }]);
    assert.equal(r3.allowed, true);
    assert.deepEqual(
      r3.decisions.map((d) => d.remaining),
      [7, 1],
    );
  });

  test('amount 0 and cost above capacity: retryAfter Infinity, nothing stored', async () => {
    const r = await a.take([fixed('inf:{x}:1', 0, 1), fixed('inf:{x}:2', 5, 1)]);
    assert.equal(r.allowed, false);
    assert.deepEqual(r.decisions[0], { allowed: false, remaining: 0, resetMs: 0, retryAfterMs: Infinity });
    assert.deepEqual(r.decisions[1], {
      allowed: true,
      remaining: 4,
      resetMs: r.decisions[1]!.resetMs,
      retryAfterMs: 0,
    });
    const big = await a.take([{ ...fixed('inf:{x}:3', 5, 6), algorithm: 'TokenBucket', burst: 0 }]);
    assert.equal(big.decisions[0]!.retryAfterMs, Infinity);
    assert.equal(await raw.exists('inf:{x}:1', 'inf:{x}:2', 'inf:{x}:3'), 0);
  });

  test('keys expire when the quota would be full again', async () => {
    // A token bucket: no aligned windows, so nothing here depends on when the test runs.
    const tb = (cost: number): GlobalCheck => ({
      algorithm: 'TokenBucket',
      amount: 10,
      periodMs: 60_000,
      burst: 0,
      cost,
      key: 'ttl:{x}',
    });
    await a.take([tb(4)]);
    // Full again in 4 × 6 s, plus the 1 s margin.
    const ttl = await raw.pttl('ttl:{x}');
    assert.ok(ttl > 0 && ttl <= 25_000, `pttl ${ttl}`);
    // A full refund leaves a full quota: the key is deleted.
    await a.adjust(tb(0), -4);
    assert.equal(await raw.exists('ttl:{x}'), 0);
    // A refund to an absent key stores nothing; a charge into debt does, with a longer TTL.
    await a.adjust(tb(0), -4);
    assert.equal(await raw.exists('ttl:{x}'), 0);
    await a.adjust(tb(0), 35);
    const debtTtl = await raw.pttl('ttl:{x}');
    assert.ok(debtTtl > 200_000 && debtTtl <= 211_000, `pttl ${debtTtl}`);
    // 35 tokens of debt: a request of 1 waits until the deficit is back to 9 tokens (26 × 6 s).
    const r = await a.take([tb(1)]);
    assert.equal(r.allowed, false);
    assert.ok(r.decisions[0]!.retryAfterMs > 150_000 && r.decisions[0]!.retryAfterMs <= 156_000);
  });

  test('two proxies, 500 concurrent takes on 100 per hour: exactly 100 admitted (server clock)', async () => {
    const t0 = await serverMs(raw);
    const admitted = await hammer([a, b], () => [fixed('exact:{x}:fw', 100)], 500, 50);
    const t1 = await serverMs(raw);
    // An aligned hour boundary crossed during the test legitimately reopens the window.
    if (Math.floor(t0 / HOUR) === Math.floor(t1 / HOUR)) assert.equal(admitted, 100);
    else assert.ok(admitted >= 100 && admitted <= 200, `${admitted}`);
  });

  test('two proxies, three limits of every algorithm: exactly the smallest amount admitted', async () => {
    const checks = (i: number): GlobalCheck[] => [
      { algorithm: 'SlidingWindow', amount: 150, periodMs: HOUR, burst: 0, cost: 1, key: 'exact:{y}:sw' },
      { algorithm: 'TokenBucket', amount: 90, periodMs: HOUR, burst: 10, cost: 1, key: 'exact:{y}:tb' },
      // Requests with cost 0 and 2 mixed in: only the units count.
      {
        algorithm: 'SlidingWindow',
        amount: 400,
        periodMs: HOUR,
        burst: 0,
        cost: i % 2,
        key: 'exact:{y}:sw2',
      },
    ];
    const admitted = await hammer([a, b], checks, 500, 50);
    // The token bucket refills 90 per hour: at most a token more during the test.
    assert.ok(admitted === 100 || admitted === 101, `${admitted}`);
    const tb = await a.take([{ ...checks(0)[1]!, cost: 0 }]);
    assert.ok(tb.decisions[0]!.remaining <= 1);
  });

  test('script and argument errors', async () => {
    await raw.hset('wrongtype:{x}', 'f', '1');
    await assert.rejects(a.take([fixed('wrongtype:{x}', 10)]), (err: Error) => {
      assert.ok(err instanceof RedisUnavailableError);
      assert.match(err.message, /WRONGTYPE/);
      return true;
    });
    await assert.rejects(a.take([]), RangeError);
    await assert.rejects(a.take([fixed('bad', -1)]), RangeError);
    await assert.rejects(a.take([fixed('bad', 1, Number.NaN)]), RangeError);
    await assert.rejects(a.take(Array.from({ length: 17 }, (_, i) => fixed(`bad:${i}`, 1))), RangeError);
    // A non-finite delta does nothing (as in the JS algorithms).
    await a.adjust(fixed('nan:{x}', 10), Number.POSITIVE_INFINITY);
    assert.equal(await raw.exists('nan:{x}'), 0);
  });

  test('a hung server: calls time out with RedisUnavailableError', async () => {
    const quick = new RedisLimiter({ url: server.url, cluster: false }, { timeoutMs: 100 });
    try {
      assert.equal(await quick.waitReady(READY_WAIT_MS), true);
      server.pause();
      const failuresBefore = quick.failures;
      await assert.rejects(quick.take([fixed('hung:{x}', 10)]), (err: Error) => {
        assert.ok(err instanceof RedisUnavailableError);
        assert.match(err.message, /timed out/i);
        return true;
      });
      assert.equal(quick.failures, failuresBefore + 1);
    } finally {
      server.resume();
      await quick.close();
    }
    // The server answers again.
    assert.equal((await a.take([fixed('hung:{y}', 10)])).allowed, true);
  });

  test('killed mid-test: calls reject at once; after a restart they succeed again', async () => {
    const failuresBefore = a.failures;
    // Some calls in flight while the server dies: each either completes or rejects cleanly.
    const inFlight = Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => a.take([fixed(`crash:{x}:${i}`, 10)])),
    );
    await server.stop();
    const settled = await inFlight;
    for (const s of settled) {
      if (s.status === 'rejected') assert.ok(s.reason instanceof RedisUnavailableError, String(s.reason));
    }
    await assert.rejects(a.take([fixed('crash:{x}', 10)]), RedisUnavailableError);
    await assert.rejects(a.adjust(fixed('crash:{x}', 10), 1), RedisUnavailableError);
    assert.ok(a.failures >= failuresBefore + 2);
    // The client notices the closed socket on its own event; wait for it (bounded), do not race it.
    for (let i = 0; i < 500 && a.state === 'ready'; i++) await new Promise((r) => setTimeout(r, 10));
    assert.notEqual(a.state, 'ready');

    await server.restart();
    assert.equal(await a.waitReady(READY_WAIT_MS), true);
    assert.equal(await b.waitReady(READY_WAIT_MS), true);
    const r = await a.take([fixed('crash:{x}', 10, 3)]);
    assert.equal(r.allowed, true);
    assert.equal(r.decisions[0]!.remaining, 7);
    // Fresh data: the other proxy sees the same count.
    const r2 = await b.take([fixed('crash:{x}', 10, 0)]);
    assert.equal(r2.decisions[0]!.remaining, 7);
    // onStateChange saw the outage and the recovery.
    assert.equal(states.at(-1), 'ready');
    assert.ok(states.indexOf('down') > 0, `states ${states}`);
  });
});

describe('RedisLimiter (one-node Redis Cluster)', { skip }, () => {
  let server: TestRedis;
  let a: RedisLimiter;
  let b: RedisLimiter;

  before(async () => {
    server = await startRedis({ cluster: true });
    a = new RedisLimiter({ url: server.url, cluster: true }, { timeoutMs: TIMEOUT_MS });
    b = new RedisLimiter({ url: server.url, cluster: true }, { timeoutMs: TIMEOUT_MS });
    assert.equal(await a.waitReady(READY_WAIT_MS), true);
    assert.equal(await b.waitReady(READY_WAIT_MS), true);
  });

  after(async () => {
    await a.close();
    await b.close();
    await server.close();
  });

  const perConsumer = { type: 'Consumer' };
  const perIp = { type: 'ClientIP' };
  const mixed: KeyedLimit[] = [
    // 30-day windows: the test never straddles a boundary (which would reopen the window).
    { name: 'per-consumer', algorithm: 'FixedWindow', periodMs: 30 * 24 * HOUR, key: [perConsumer] },
    { name: 'per-ip', algorithm: 'SlidingWindow', periodMs: HOUR, key: [perIp] },
    {
      name: 'per-header',
      algorithm: 'TokenBucket',
      periodMs: 60_000,
      key: [{ type: 'Header', name: 'x-team' }],
    },
  ];
  const shared: KeyedLimit[] = [
    { name: 'minute', algorithm: 'TokenBucket', periodMs: 60_000, key: [perConsumer] },
    { name: 'month', algorithm: 'FixedWindow', periodMs: 30 * 24 * HOUR, key: [perConsumer] },
  ];

  function checks(keys: string[], limits: KeyedLimit[], amount: number): GlobalCheck[] {
    return limits.map((l, i) => ({
      algorithm: l.algorithm,
      amount,
      periodMs: l.periodMs,
      burst: 0,
      cost: 1,
      key: keys[i]!,
    }));
  }

  test('a policy with mixed key definitions: one slot, no CROSSSLOT', async () => {
    const keys = new PolicyKeys('ml/mixed', mixed);
    for (let i = 0; i < 10; i++) {
      const r = await a.take(checks(keys.keys([`consumer-${i}`, `10.0.0.${i}`, 'team']), mixed, 100));
      assert.equal(r.allowed, true);
    }
    // The per-header limit saw all ten.
    const r = await b.take(checks(keys.keys(['consumer-0', '10.0.0.0', 'team']), mixed, 100));
    assert.deepEqual(
      r.decisions.map((d) => d.remaining),
      [98, 98, 89],
    );
  });

  test('a policy with a shared key definition: consumers spread over slots', async () => {
    const keys = new PolicyKeys('ml/shared', shared);
    for (let i = 0; i < 10; i++) {
      const r = await a.take(checks(keys.keys([`consumer-${i}`, `consumer-${i}`]), shared, 5));
      assert.equal(r.allowed, true);
      assert.deepEqual(
        r.decisions.map((d) => d.remaining),
        [4, 4],
      );
    }
    const admitted = await hammer([a, b], () => checks(keys.keys(['hot', 'hot']), shared, 100), 300, 50);
    assert.equal(admitted, 100);
    await a.adjust(checks(keys.keys(['hot', 'hot']), shared, 100)[1]!, -10);
  });

  test('keys of different slots in one call are refused, as a RedisUnavailableError', async () => {
    await assert.rejects(
      a.take([fixed('mg:rl:{a}:1', 10), fixed('mg:rl:{b}:1', 10)]),
      (err: Error) => err instanceof RedisUnavailableError && /slot/i.test(err.message),
    );
  });

  test('killed and restarted: fast rejection, then back', async () => {
    await server.stop();
    await assert.rejects(a.take([fixed('mg:rl:{c}:1', 10)]), RedisUnavailableError);
    await server.restart();
    assert.equal(await a.waitReady(READY_WAIT_MS), true);
    // A call may still meet a node connection from before the restart being replaced: retry a
    // bounded number of times, each failure being a clean RedisUnavailableError.
    let ok = false;
    let failed = 0;
    for (let i = 0; i < 20 && !ok; i++) {
      try {
        ok = (await a.take([fixed('mg:rl:{c}:1', 10)])).allowed;
      } catch (err) {
        assert.ok(err instanceof RedisUnavailableError, String(err));
        failed++;
        assert.equal(await a.waitReady(READY_WAIT_MS), true);
      }
    }
    assert.ok(ok, `${failed} failures after the restart`);
  });
});
