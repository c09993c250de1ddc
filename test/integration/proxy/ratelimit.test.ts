/**
 * Local rate limiting end to end: a real gateway with API-key consumers in front of real
 * upstreams. Windows are an hour long so nothing refills during a test; concurrency and queue
 * tests hold the upstream in lock step (requests wait until the test releases them) instead of
 * relying on timing.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { type Reply, send } from '../../support/client.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const ALPHA = 'sk-alpha-0123456789abcdef';
const BRAVO = 'sk-bravo-0123456789abcdef';
const GOLD = 'sk-gold-0123456789abcdefgh';

function consumers(): string {
  const secret = (name: string, key: string, groups: string) => `apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ml, annotations: { modelgate.dev/groups: "${groups}" } }
stringData: { key: ${key} }
---
`;
  return secret('alpha', ALPHA, '') + secret('bravo', BRAVO, '') + secret('gold', GOLD, 'premium');
}

function route(name: string, upstream: string, path: string): string {
  return `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name}, namespace: ml }
spec:
  auth: { apiKeys: { header: x-api-key, secretRefs: [{ name: alpha }, { name: bravo }, { name: gold }] } }
  rules:
    - matches: [{ path: { value: ${path} } }]
      backends: [{ name: b, urls: ["${upstream}"] }]
---
`;
}

function policy(name: string, target: string, body: string): string {
  return `apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: ${name}, namespace: ml }
spec:
  targetRefs: [{ name: ${target} }]
${body}
---
`;
}

const call = (gw: TestGateway, path: string, key: string, headers: Record<string, string> = {}) =>
  send(gw.url, { path, headers: { 'x-api-key': key, ...headers } });

/** An upstream that holds every request until the test releases it, oldest first. */
async function lockStep(): Promise<{
  up: TestUpstream;
  held: () => number;
  arrived: (n: number) => Promise<void>;
  release: () => void;
}> {
  const waiting: (() => void)[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let arrivals = 0;
  const up = await startUpstream('held', (req, res) => {
    arrivals++;
    for (const w of waiters.splice(0)) {
      if (arrivals >= w.n) w.resolve();
      else waiters.push(w);
    }
    waiting.push(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ served: req.headers['x-tag'] ?? '' }));
    });
  });
  return {
    up,
    held: () => waiting.length,
    arrived: (n) =>
      arrivals >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
    release: () => waiting.shift()?.(),
  };
}

describe('request limits', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const yaml = (amount: number) =>
    consumers() +
    route('chat', 'UPSTREAM', '/v1/chat') +
    route('other', 'UPSTREAM', '/v1/other') +
    policy(
      'per-consumer',
      'chat',
      `  limits:
    - name: requests
      key: [{ type: Consumer }]
      algorithm: FixedWindow
      amount: ${amount}
      period: 1h
      overrides: [{ group: premium, amount: 5 }]
    - name: route-wide
      key: [{ type: Route }]
      algorithm: FixedWindow
      amount: 7
      period: 1h`,
    );
  before(async () => {
    up = await startUpstream('vllm');
    gw = await startGateway(yaml(3).replaceAll('UPSTREAM', up.url));
  });
  after(async () => {
    await gw.close();
    await up.close();
  });

  test('a consumer gets its amount, then 429 with a JSON error, Retry-After and the draft-09 headers', async () => {
    const ok: Reply[] = [];
    for (let i = 0; i < 3; i++) ok.push(await call(gw, '/v1/chat', ALPHA));
    assert.deepEqual(
      ok.map((r) => r.status),
      [200, 200, 200],
    );
    assert.equal(ok[0]!.headers['ratelimit-policy'], '"requests";q=3;w=3600, "route-wide";q=7;w=3600');
    assert.equal(ok[0]!.headers.ratelimit, '"requests";r=2;t=3600');
    assert.equal(ok[2]!.headers.ratelimit, '"requests";r=0;t=3600');
    const received = up.received.length;
    const refused = await call(gw, '/v1/chat', ALPHA);
    assert.equal(refused.status, 429);
    assert.equal(up.received.length, received, 'a refused request never reaches the upstream');
    const body = refused.json<{ error: { code: string; message: string } }>();
    assert.equal(body.error.code, 'MG_RATE_LIMITED');
    assert.match(body.error.message, /limit "requests" of policy ml\/per-consumer exceeded/);
    assert.equal(refused.headers['retry-after'], '3600');
    assert.equal(refused.headers.ratelimit, '"requests";r=0;t=3600');
    assert.equal(refused.headers['content-type'], 'application/json');
  });

  test('other consumers have their own budget; a premium consumer gets its tier', async () => {
    assert.equal((await call(gw, '/v1/chat', BRAVO)).status, 200);
    const gold: number[] = [];
    for (let i = 0; i < 4; i++) gold.push((await call(gw, '/v1/chat', GOLD)).status);
    // 3 alpha + 1 bravo + 3 gold = 7: the route-wide limit is now what refuses.
    assert.deepEqual(gold, [200, 200, 200, 429]);
    const r = await call(gw, '/v1/chat', GOLD);
    assert.match(r.json<{ error: { message: string } }>().error.message, /"route-wide"/);
    assert.match(String(r.headers['ratelimit-policy']), /"requests";q=5;w=3600/);
  });

  test('a refusal by one limit spends nothing of the others', async () => {
    // Route-wide refused gold's 4th and 5th requests; its per-consumer budget shows 2 left of 5.
    const r = await call(gw, '/v1/chat', GOLD);
    assert.equal(r.status, 429);
    assert.match(String(r.headers.ratelimit), /"route-wide";r=0/);
  });

  test('routes the policy does not target are not limited', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await call(gw, '/v1/other', ALPHA)).status, 200);
  });

  test('a new table with the same limits keeps the counts; a changed amount applies at once', async () => {
    gw.apply(yaml(3).replaceAll('UPSTREAM', up.url) + route('extra', up.url, '/v1/extra'));
    assert.equal((await call(gw, '/v1/chat', ALPHA)).status, 429, 'alpha is still out of quota');
    gw.apply(yaml(4).replaceAll('UPSTREAM', up.url));
    // alpha has used 3 of 4 now, but the route-wide limit (7) is exhausted already.
    const r = await call(gw, '/v1/chat', ALPHA);
    assert.equal(r.status, 429);
    assert.match(String(r.headers['ratelimit-policy']), /"requests";q=4/);
  });

  test('decisions are counted in metrics', async () => {
    const text = gw.proxy.metrics.registry.metrics();
    const body = await text;
    assert.match(
      body,
      /modelgate_ratelimit_decisions_total\{route="ml\/chat",policy="ml\/per-consumer",outcome="limited"\} \d+/,
    );
    assert.match(
      body,
      /modelgate_ratelimit_limited_total\{policy="ml\/per-consumer",limit="route-wide"\} \d+/,
    );
  });
});

describe('in-flight cap and queue', () => {
  test('over maxInFlight with Reject: 429 MG_CONCURRENCY_LIMITED, and a slot frees when a request ends', async (t) => {
    const ls = await lockStep();
    const gw = await startGateway(
      consumers() +
        route('chat', ls.up.url, '/v1/chat') +
        policy(
          'cap',
          'chat',
          `  maxInFlight: 1
  limits: [{ name: requests, key: [{ type: Route }], amount: 1000, period: 1h }]`,
        ),
    );
    t.after(async () => {
      await gw.close();
      await ls.up.close();
    });
    const first = call(gw, '/v1/chat', ALPHA);
    await ls.arrived(1);
    const second = await call(gw, '/v1/chat', BRAVO);
    assert.equal(second.status, 429);
    assert.equal(second.json<{ error: { code: string } }>().error.code, 'MG_CONCURRENCY_LIMITED');
    assert.equal(second.headers['retry-after'], '1');
    ls.release();
    assert.equal((await first).status, 200);
    const third = call(gw, '/v1/chat', BRAVO);
    await ls.arrived(2);
    ls.release();
    assert.equal((await third).status, 200);
  });

  test('queued requests are served in priority order, then arrival order; a full queue refuses', async (t) => {
    const ls = await lockStep();
    const gw = await startGateway(
      consumers() +
        route('chat', ls.up.url, '/v1/chat') +
        policy(
          'queue',
          'chat',
          `  maxInFlight: 1
  limits: [{ name: requests, key: [{ type: Route }], amount: 1000, period: 1h }]
  onExceeded:
    action: Queue
    maxQueue: 3
    maxWait: 60s
    priorities: [{ header: { name: x-priority, value: high } }]`,
        ),
    );
    t.after(async () => {
      await gw.close();
      await ls.up.close();
    });
    const queueLength = async () => {
      const m = await gw.proxy.metrics.registry.metrics();
      return Number(/modelgate_ratelimit_queue_length\{route="ml\/chat"\} (\d+)/.exec(m)?.[1] ?? -1);
    };
    const waitQueue = async (n: number) => {
      // The queue length gauge is set synchronously when a request enters; poll it (bounded: 10 s).
      for (let i = 0; i < 2000 && (await queueLength()) !== n; i++)
        await new Promise((r) => setTimeout(r, 5));
      assert.equal(await queueLength(), n);
    };
    const served: string[] = [];
    const go = (tag: string, headers: Record<string, string> = {}) =>
      call(gw, '/v1/chat', ALPHA, { 'x-tag': tag, ...headers }).then((r) => {
        if (r.status === 200) served.push(r.json<{ served: string }>().served);
        return r;
      });
    const a = go('a');
    await ls.arrived(1);
    const b = go('b');
    await waitQueue(1);
    const c = go('c');
    await waitQueue(2);
    const d = go('d', { 'x-priority': 'high' });
    await waitQueue(3);
    const full = await go('e');
    assert.equal(full.status, 429, 'the queue holds 3');
    assert.match(full.json<{ error: { message: string } }>().error.message, /queue is full/);
    for (let i = 2; i <= 4; i++) {
      ls.release();
      await ls.arrived(i);
    }
    ls.release();
    const replies = await Promise.all([a, b, c, d]);
    assert.deepEqual(
      replies.map((r) => r.status),
      [200, 200, 200, 200],
    );
    assert.deepEqual(served, ['a', 'd', 'b', 'c'], 'high priority first, then first come first served');
    const m = await gw.proxy.metrics.registry.metrics();
    assert.match(
      m,
      /modelgate_ratelimit_decisions_total\{route="ml\/chat",policy="ml\/queue",outcome="queue_admitted"\} 3/,
    );
    assert.match(m, /modelgate_ratelimit_queue_wait_seconds_count\{route="ml\/chat",outcome="admitted"\} 3/);
  });

  test('a client that goes away leaves the queue; one that waits past maxWait gets 429', async (t) => {
    const ls = await lockStep();
    const gw = await startGateway(
      consumers() +
        route('chat', ls.up.url, '/v1/chat') +
        policy(
          'queue',
          'chat',
          `  maxInFlight: 1
  limits: [{ name: requests, key: [{ type: Route }], amount: 1000, period: 1h }]
  onExceeded: { action: Queue, maxQueue: 5, maxWait: 300ms }`,
        ),
    );
    t.after(async () => {
      await gw.close();
      await ls.up.close();
    });
    const first = call(gw, '/v1/chat', ALPHA);
    await ls.arrived(1);
    // A client that gives up while queued.
    const gone = new Promise<void>((resolve) => {
      const req = request(`${gw.url}/v1/chat`, { headers: { 'x-api-key': BRAVO } });
      req.on('error', () => resolve());
      req.end();
      const poll = async () => {
        const m = await gw.proxy.metrics.registry.metrics();
        if (/modelgate_ratelimit_queue_length\{route="ml\/chat"\} 1/.test(m)) req.destroy();
        else setTimeout(poll, 5);
      };
      void poll();
    });
    await gone;
    for (let i = 0; i < 2000; i++) {
      const m = await gw.proxy.metrics.registry.metrics();
      if (/outcome="queue_aborted"\} 1/.test(m)) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const m = await gw.proxy.metrics.registry.metrics();
    assert.match(
      m,
      /modelgate_ratelimit_decisions_total\{route="ml\/chat",policy="ml\/queue",outcome="queue_aborted"\} 1/,
    );
    // Nobody frees the slot: this one waits its 300 ms and is refused.
    const late = await call(gw, '/v1/chat', BRAVO);
    assert.equal(late.status, 429);
    assert.match(late.json<{ error: { message: string } }>().error.message, /in the queue: timeout/);
    ls.release();
    assert.equal((await first).status, 200);
    assert.equal(ls.held(), 0, 'the aborted request never reached the upstream');
  });
});

describe('model-token limits', () => {
  /** An OpenAI-style server: `generate` tokens per answer, usage only when asked for in streams. */
  let up: TestUpstream;
  let gw: TestGateway;
  const PROMPT_TOKENS = 10;
  const GENERATE = 4;
  let holdAfter = -1;
  let releaseHeld: (() => void) | undefined;
  const bodies: Record<string, unknown>[] = [];
  before(async () => {
    up = await startUpstream('llm', (_req, res, raw) => {
      const body = JSON.parse(raw.toString()) as {
        stream?: boolean;
        stream_options?: { include_usage?: boolean };
      };
      bodies.push(body);
      const usage = {
        prompt_tokens: PROMPT_TOKENS,
        completion_tokens: GENERATE,
        total_tokens: PROMPT_TOKENS + GENERATE,
      };
      if (!body.stream) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ id: 'x', choices: [{ message: { content: 'abcd' } }], usage }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chunk = (o: unknown) => res.write(`data: ${JSON.stringify(o)}\n\n`);
      chunk({ id: 'x', choices: [{ index: 0, delta: { role: 'assistant' } }] });
      const rest = () => {
        for (let i = Math.max(0, holdAfter); i < GENERATE; i++) {
          chunk({ id: 'x', choices: [{ index: 0, delta: { content: `t${i}` } }] });
        }
        chunk({ id: 'x', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
        if (body.stream_options?.include_usage) chunk({ id: 'x', choices: [], usage });
        res.end('data: [DONE]\n\n');
      };
      if (holdAfter >= 0) {
        for (let i = 0; i < holdAfter; i++)
          chunk({ id: 'x', choices: [{ index: 0, delta: { content: `t${i}` } }] });
        releaseHeld = rest;
        return;
      }
      rest();
    });
    gw = await startGateway(
      consumers() +
        route('chat', up.url, '/v1/chat/completions') +
        policy(
          'tokens',
          'chat',
          `  limits:
    - name: tokens
      key: [{ type: Consumer }]
      algorithm: FixedWindow
      amount: 1000
      period: 1h
      cost: ModelTokens
      completionTokensEstimate: 50`,
        ),
    );
  });
  after(async () => {
    releaseHeld?.();
    await gw.close();
    await up.close();
  });

  const chat = (key: string, extra: Record<string, unknown>) =>
    send(gw.url, {
      path: '/v1/chat/completions',
      headers: { 'x-api-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello there' }], ...extra }),
    });
  const remaining = (r: Reply) => Number(/;r=(\d+)/.exec(String(r.headers.ratelimit))?.[1]);

  test('the reservation from max_tokens is replaced by the usage the server reports', async () => {
    const first = await chat(ALPHA, { max_tokens: 20 });
    assert.equal(first.status, 200);
    assert.equal(first.headers['ratelimit-policy'], '"tokens";q=1000;qu="tokens";w=3600');
    const reserved = 1000 - remaining(first);
    assert.ok(reserved > 20, `the reservation covers the prompt and max_tokens (${reserved})`);
    const second = await chat(ALPHA, { max_tokens: 20 });
    // After the first: its real cost (14) instead of its reservation; then this one's reservation.
    assert.equal(remaining(second), 1000 - (PROMPT_TOKENS + GENERATE) - reserved);
    assert.equal(bodies.at(-1)!.stream_options, undefined, 'a non-streamed request is not rewritten');
  });

  test('a stream: usage is asked for, counted, and removed from what the client sees', async () => {
    const before = remaining(await chat(BRAVO, { max_tokens: 20 }));
    const r = await chat(BRAVO, { max_tokens: 20, stream: true });
    assert.equal(r.status, 200);
    assert.deepEqual(bodies.at(-1)!.stream_options, { include_usage: true }, 'the gateway asked for usage');
    assert.ok(!r.text.includes('"usage"'), 'the usage chunk the client did not ask for is removed');
    assert.ok(r.text.endsWith('data: [DONE]\n\n'));
    assert.equal((r.text.match(/"content":"t\d"/g) ?? []).length, GENERATE);
    const after = remaining(await chat(BRAVO, { max_tokens: 20 }));
    // Three reservations of the same size; the two completed ones replaced by 14 each.
    const reservation = 1000 - before;
    assert.equal(after, 1000 - 2 * (PROMPT_TOKENS + GENERATE) - reservation);
  });

  test('a client that asked for usage keeps its usage chunk', async () => {
    const r = await chat(GOLD, { stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    assert.match(r.text, /"choices":\[\],"usage":\{"prompt_tokens":10/);
  });

  test('a stream the client abandons is charged the prompt estimate and what was generated', async () => {
    const { inspectTokenRequest } = await import('../../../src/dataplane/ratelimit/usage/request-tokens.ts');
    const payload = {
      model: 'm',
      messages: [{ role: 'user', content: 'hello there' }],
      stream: true,
      max_tokens: 30,
    };
    const estimate = inspectTokenRequest(Buffer.from(JSON.stringify(payload)), {
      defaultCompletionTokens: 0,
    })!;
    const start = remaining(await chat(ALPHA, { max_tokens: 30 }));
    holdAfter = 2;
    await new Promise<void>((resolve) => {
      const req = request(
        `${gw.url}/v1/chat/completions`,
        { method: 'POST', headers: { 'x-api-key': ALPHA, 'content-type': 'application/json' } },
        (res) => {
          let seen = '';
          res.on('data', (d: Buffer) => {
            seen += d.toString();
            if ((seen.match(/"content":"t\d"/g) ?? []).length === 2) req.destroy();
          });
        },
      );
      req.on('close', () => resolve());
      req.on('error', () => {});
      req.end(JSON.stringify(payload));
    });
    holdAfter = -1;
    // The abort reaches the gateway's accounting when the exchange ends; wait for its metric.
    let metrics = '';
    for (let i = 0; i < 2000; i++) {
      metrics = await gw.proxy.metrics.registry.metrics();
      if (/modelgate_ratelimit_tokens_charged_total\{[^}]*source="generated"\}/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.match(
      metrics,
      new RegExp(
        `modelgate_ratelimit_tokens_charged_total\\{route="ml/chat",policy="ml/tokens",source="generated"\\} ${estimate.promptEstimate + 2}`,
      ),
    );
    // `start` was left after the first request's reservation. Since then: that request settled
    // at its usage (14), the abandoned stream at prompt + 2, and this one reserved as much as the
    // first (the same prompt and max_tokens).
    const next = remaining(await chat(ALPHA, { max_tokens: 30 }));
    assert.equal(next, start - (PROMPT_TOKENS + GENERATE) - (estimate.promptEstimate + 2));
  });
});
