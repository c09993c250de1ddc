/**
 * Composition with real upstreams: pipelines (each step's answer feeds the next; the last streams)
 * and fan-outs (branches at once, merged under their names), with failures, timeouts, client
 * aborts, and the rule's retry, balancing and health machinery under each call. Upstreams are held
 * and released by the tests (lock-step); the only timers are the step timeouts under test.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { request } from 'undici';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';

type Json = Record<string, unknown>;

/** An upstream answering JSON computed from what it received (and recording it). */
async function jsonUpstream(
  name: string,
  answer: (body: Json, req: IncomingMessage) => { status?: number; body: unknown },
) {
  const seen: { body: Json; req: IncomingMessage }[] = [];
  const up = await startUpstream(name, (req, res, raw) => {
    const body = raw.length > 0 ? (JSON.parse(raw.toString('utf8')) as Json) : {};
    seen.push({ body, req });
    const a = answer(body, req);
    res.writeHead(a.status ?? 200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(JSON.stringify(a.body));
  });
  return Object.assign(up, { seen });
}

/** An upstream that holds every request until the test ends it; tells when one arrives and when it is closed. */
async function heldUpstream(name: string) {
  const arrivals: (() => void)[] = [];
  const closes: (() => void)[] = [];
  let arrived = 0;
  let closed = 0;
  const held: ServerResponse[] = [];
  const up = await startUpstream(name, (_req, res) => {
    held.push(res);
    arrived++;
    for (const f of arrivals.splice(0)) f();
    res.on('close', () => {
      closed++;
      for (const f of closes.splice(0)) f();
    });
  });
  const until = (list: (() => void)[], done: () => boolean) =>
    new Promise<void>((resolve) => {
      const check = () => (done() ? resolve() : list.push(check));
      check();
    });
  return Object.assign(up, {
    held,
    arrived: (n = 1) => until(arrivals, () => arrived >= n),
    closed: (n = 1) => until(closes, () => closed >= n),
  });
}

/** A port with nothing listening: bind, note the port, close. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Resolves when the gateway logs an availability change for `origin`. */
function healthEvent(gw: TestGateway, origin: string, available: boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (gw.logs.some((l) => l.endpoint === origin && l.available === available)) resolve();
      else setImmediate(check);
    };
    check();
  });
}

const errorOf = (r: { json<T>(): T }) => r.json<{ error: Record<string, unknown> }>().error;

test('a three-step pipeline: each step gets what its mapping builds, the last answer is the route answer', async (t) => {
  const tokenizer = await jsonUpstream('tokenizer', (body) => ({
    body: { tokens: String(body.text).split(' '), lang: 'en' },
  }));
  const classifier = await jsonUpstream('classifier', (body) => ({
    body: { label: (body.input_ids as string[]).includes('great') ? 'positive' : 'negative', score: 0.9 },
  }));
  const formatter = await jsonUpstream('formatter', (body) => ({ status: 201, body: { formatted: body } }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{matches: [{path: {value: /v1/sentiment}}],
        backends: [{name: tok, urls: ["${tokenizer.url}"]}, {name: clf, urls: ["${classifier.url}"], credentials: {header: x-api-key, secretKeyRef: {name: clf, key: key}}},
                   {name: fmt, urls: ["${formatter.url}"]}],
        composition: {pipeline: {steps: [
          {name: tokenize, backend: tok, path: /tokenize},
          {name: classify, backend: clf, path: "/v2/classify?verbose=1", method: PUT,
           request: [{from: /tokens, to: /input_ids}, {from: $request/model, to: /model}, {value: {top_k: 1}, to: /options}]},
          {name: format, backend: fmt,
           request: [{from: "", to: /classification}, {from: $tokenize/lang, to: /lang}, {from: $request/missing, to: /nothing}]}]}}}]}`,
    ) +
      'apiVersion: v1\nkind: Secret\nmetadata: {name: clf, namespace: test}\nstringData: {key: clf-secret}\n',
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([tokenizer.close(), classifier.close(), formatter.close()]);
  });
  const r = await send(gw.url, {
    path: '/v1/sentiment?trace=1',
    headers: { 'content-type': 'application/json', 'x-request-id': 'req-1', authorization: 'Bearer client' },
    body: JSON.stringify({ model: 'sent-1', text: 'a great day' }),
  });
  assert.equal(r.status, 201, "the last step's status is the answer's");
  assert.equal(r.headers['x-upstream'], 'formatter');
  assert.deepEqual(r.json(), {
    formatted: { classification: { label: 'positive', score: 0.9 }, lang: 'en' },
  });

  // Step 1: the client's body as sent, on the step's path, with the client's headers.
  assert.equal(tokenizer.received[0]!.url, '/tokenize');
  assert.equal(tokenizer.received[0]!.method, 'POST');
  assert.deepEqual(tokenizer.seen[0]!.body, { model: 'sent-1', text: 'a great day' });
  // Step 2: built from the previous answer, the client's request and a constant.
  assert.equal(classifier.received[0]!.url, '/v2/classify?verbose=1');
  assert.equal(classifier.received[0]!.method, 'PUT');
  assert.deepEqual(classifier.seen[0]!.body, {
    input_ids: ['a', 'great', 'day'],
    model: 'sent-1',
    options: { top_k: 1 },
  });
  const h = classifier.received[0]!.headers;
  assert.equal(h['content-type'], 'application/json');
  assert.equal(h['x-api-key'], 'clf-secret', "the backend's credentials are set");
  assert.equal(h.authorization, undefined, "the client's credentials do not go to a backend with its own");
  assert.equal(h['accept-encoding'], 'identity', 'intermediate answers are read, so unencoded');
  // Step 3: the client's path and query (no path given), an earlier step's answer by name.
  assert.equal(formatter.received[0]!.url, '/v1/sentiment?trace=1');
  for (const up of [tokenizer, classifier, formatter]) {
    assert.equal(up.received.length, 1);
    assert.equal(up.received[0]!.headers['x-request-id'], 'req-1', 'every step carries the request id');
    assert.equal(up.received[0]!.headers['x-forwarded-for'], '127.0.0.1');
  }

  const metrics = await gw.proxy.metrics.registry.metrics();
  for (const step of ['tokenize', 'classify', 'format']) {
    assert.match(
      metrics,
      new RegExp(
        `modelgate_composition_steps_total\\{route="test/r",rule="rule-0",step="${step}",result="2xx"\\} 1`,
      ),
    );
  }
  assert.match(
    metrics,
    /modelgate_requests_total\{route="test\/r",rule="rule-0",backend="fmt",model="",code_class="2xx"\} 1/,
  );
});

test('the last step streams Server-Sent Events to the client, event by event (lock-step)', async (t) => {
  const prep = await jsonUpstream('prep', (body) => ({ body: { prompt: `[INST]${String(body.q)}[/INST]` } }));
  let stream: ServerResponse | undefined;
  let received: Json | undefined;
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const llm = await startUpstream('llm', (_req, res, body) => {
    received = JSON.parse(body.toString('utf8')) as Json;
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.flushHeaders();
    stream = res;
    opened();
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: prep, urls: ["${prep.url}"]}, {name: llm, urls: ["${llm.url}"]}],
        composition: {pipeline: {steps: [{name: prep, backend: prep, path: /prep},
          {name: generate, backend: llm, path: /v1/completions, request: [{from: /prompt, to: /prompt}, {value: true, to: /stream}]}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([prep.close(), llm.close()]);
  });
  const r = await request(`${gw.url}/v1/chat`, { method: 'POST', body: '{"q":"hi"}' });
  await open;
  assert.equal(r.statusCode, 200);
  assert.equal(r.headers['content-type'], 'text/event-stream');
  assert.deepEqual(received, { prompt: '[INST]hi[/INST]', stream: true });
  const reader = r.body[Symbol.asyncIterator]();
  for (let k = 1; k <= 3; k++) {
    stream!.write(`data: {"token":${k}}\n\n`);
    assert.equal(String((await reader.next()).value), `data: {"token":${k}}\n\n`);
  }
  stream!.end('data: [DONE]\n\n');
  assert.equal(String((await reader.next()).value), 'data: [DONE]\n\n');
  assert.equal((await reader.next()).done, true);
});

test('a failing middle step stops the pipeline: 502 naming the step and the upstream status', async (t) => {
  const first = await jsonUpstream('first', () => ({ body: { ok: true } }));
  const broken = await jsonUpstream('broken', () => ({ status: 500, body: { detail: 'internal secret' } }));
  const last = await jsonUpstream('last', () => ({ body: {} }));
  const notJson = await startUpstream('not-json', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain words');
  });
  const gw = await startGateway(
    route(
      'r',
      `{rules: [
        {name: fails, matches: [{path: {value: /fails}}], retries: {attempts: 0},
         backends: [{name: a, urls: ["${first.url}"]}, {name: b, urls: ["${broken.url}"]}, {name: c, urls: ["${last.url}"]}],
         composition: {pipeline: {steps: [{name: one, backend: a}, {name: two, backend: b}, {name: three, backend: c}]}}},
        {name: prose, matches: [{path: {value: /prose}}],
         backends: [{name: a, urls: ["${notJson.url}"]}, {name: c, urls: ["${last.url}"]}],
         composition: {pipeline: {steps: [{name: words, backend: a}, {name: three, backend: c}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([first.close(), broken.close(), last.close(), notJson.close()]);
  });
  const r = await send(gw.url, { path: '/fails', body: '{}' });
  assert.equal(r.status, 502);
  const e = errorOf(r);
  assert.equal(e.code, 'MG_PIPELINE_STEP_FAILED');
  assert.equal(e.step, 'two');
  assert.equal(e.upstreamStatus, 500);
  assert.doesNotMatch(r.text, /internal secret/, "the step's own error body stays inside");
  assert.equal(last.received.length, 0, 'the steps after it are not called');

  const p = await send(gw.url, { path: '/prose', body: '{}' });
  assert.equal(p.status, 502);
  assert.equal(errorOf(p).code, 'MG_PIPELINE_BAD_RESPONSE');
  assert.equal(errorOf(p).step, 'words');
  assert.equal(last.received.length, 0);

  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(
    metrics,
    /modelgate_composition_steps_total\{route="test\/r",rule="fails",step="two",result="5xx"\} 1/,
  );
  assert.match(
    metrics,
    /modelgate_composition_steps_total\{route="test\/r",rule="prose",step="words",result="bad_response"\} 1/,
  );
  assert.match(metrics, /modelgate_gateway_errors_total\{code="MG_PIPELINE_STEP_FAILED"\} 1/);
});

test('a step that passes its timeout: 504 MG_STEP_TIMEOUT, and its upstream call is cancelled', async (t) => {
  const slow = await heldUpstream('slow');
  const last = await jsonUpstream('last', () => ({ body: {} }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: s, urls: ["${slow.url}"]}, {name: l, urls: ["${last.url}"]}],
        composition: {pipeline: {steps: [{name: think, backend: s, timeout: 200ms}, {name: say, backend: l}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([slow.close(), last.close()]);
  });
  const r = await send(gw.url, { path: '/', body: '{}' });
  assert.equal(r.status, 504);
  assert.equal(errorOf(r).code, 'MG_STEP_TIMEOUT');
  assert.equal(errorOf(r).step, 'think');
  await slow.closed();
  assert.equal(last.received.length, 0);
});

test('a fan-out calls its branches at once and merges their answers under their names', async (t) => {
  // Each branch answers only once all three have arrived: sequential calls would never finish.
  let arrived = 0;
  const waiting: (() => void)[] = [];
  const branch = (name: string) =>
    startUpstream(name, (_req, res, body) => {
      arrived++;
      const answer = () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ from: name, got: JSON.parse(body.toString('utf8')) }));
      };
      if (arrived === 3) for (const f of [...waiting.splice(0), answer]) f();
      else waiting.push(answer);
    });
  const [a, b, c] = await Promise.all([branch('a'), branch('b'), branch('c')]);
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: a, urls: ["${a.url}"]}, {name: b, urls: ["${b.url}"]}, {name: c, urls: ["${c.url}"]}],
        composition: {fanOut: {branches: [
          {name: sentiment, backend: a, path: /sentiment},
          {name: toxicity, backend: b, path: /toxicity, request: [{from: /text, to: /input}]},
          {name: summary, backend: c, path: /summary, request: [{from: $request/text, to: /messages/content}]}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });
  const r = await send(gw.url, { path: '/analyse', body: '{"text":"hello"}' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(
    r.text,
    '{"sentiment":{"from":"a","got":{"text":"hello"}},"toxicity":{"from":"b","got":{"input":"hello"}},"summary":{"from":"c","got":{"messages":{"content":"hello"}}}}',
  );
  assert.deepEqual(
    [a, b, c].map((u) => u.received[0]!.url),
    ['/sentiment', '/toxicity', '/summary'],
  );
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(
    metrics,
    /modelgate_requests_total\{route="test\/r",rule="rule-0",backend="_fanout",model="",code_class="2xx"\} 1/,
  );
});

test('a failed branch under each onPartialFailure policy', async (t) => {
  const good = await jsonUpstream('good', () => ({ body: { score: 1 } }));
  const bad = await jsonUpstream('bad', () => ({ status: 503, body: { error: 'overloaded' } }));
  const rules = ['Fail', 'Omit', 'SetNull'].map(
    (
      policy,
    ) => `{name: ${policy.toLowerCase()}, matches: [{path: {value: /${policy.toLowerCase()}}}], retries: {attempts: 0},
      backends: [{name: g, urls: ["${good.url}"]}, {name: x, urls: ["${bad.url}"]}],
      composition: {fanOut: {onPartialFailure: ${policy}, branches: [{name: good, backend: g}, {name: bad, backend: x}]}}}`,
  );
  const both = `{name: both, matches: [{path: {value: /both}}], retries: {attempts: 0},
      backends: [{name: x, urls: ["${bad.url}"]}],
      composition: {fanOut: {onPartialFailure: SetNull, branches: [{name: one, backend: x}, {name: two, backend: x}]}}}`;
  const gw = await startGateway(route('r', `{rules: [${[...rules, both].join(',')}]}`));
  t.after(async () => {
    await gw.close();
    await Promise.all([good.close(), bad.close()]);
  });
  const fail = await send(gw.url, { path: '/fail', body: '{}' });
  assert.equal(fail.status, 502);
  assert.deepEqual(
    { ...errorOf(fail), requestId: undefined },
    {
      code: 'MG_FANOUT_FAILED',
      message: 'fan-out branch bad answered 503',
      requestId: undefined,
      branch: 'bad',
      upstreamStatus: 503,
    },
  );

  const omit = await send(gw.url, { path: '/omit', body: '{}' });
  assert.equal(omit.status, 200);
  assert.deepEqual(omit.json(), {
    good: { score: 1 },
    _errors: {
      bad: { code: 'MG_FANOUT_FAILED', message: 'fan-out branch bad answered 503', upstreamStatus: 503 },
    },
  });

  const nul = await send(gw.url, { path: '/setnull', body: '{}' });
  assert.equal(nul.status, 200);
  assert.deepEqual(Object.keys(nul.json()), ['good', 'bad', '_errors']);
  assert.equal(nul.json().bad, null);

  const none = await send(gw.url, { path: '/both', body: '{}' });
  assert.equal(none.status, 502, 'with every branch failed there is nothing to answer with');
  assert.equal(errorOf(none).code, 'MG_FANOUT_FAILED');
  assert.match(String(errorOf(none).message), /^every branch failed/);
});

test('a branch timeout: null under SetNull, 504 under Fail; a fan-out deadline ends what still runs', async (t) => {
  const fast = await jsonUpstream('fast', () => ({ body: { ok: true } }));
  const slow = await heldUpstream('slow');
  const gw = await startGateway(
    route(
      'r',
      `{rules: [
        {name: tolerant, matches: [{path: {value: /tolerant}}], backends: [{name: f, urls: ["${fast.url}"]}, {name: s, urls: ["${slow.url}"]}],
         composition: {fanOut: {onPartialFailure: SetNull, branches: [{name: fast, backend: f}, {name: slow, backend: s, timeout: 150ms}]}}},
        {name: strict, matches: [{path: {value: /strict}}], backends: [{name: f, urls: ["${fast.url}"]}, {name: s, urls: ["${slow.url}"]}],
         composition: {fanOut: {branches: [{name: fast, backend: f}, {name: slow, backend: s, timeout: 150ms}]}}},
        {name: deadline, matches: [{path: {value: /deadline}}], backends: [{name: f, urls: ["${fast.url}"]}, {name: s, urls: ["${slow.url}"]}],
         composition: {fanOut: {onPartialFailure: Omit, timeout: 150ms, branches: [{name: fast, backend: f}, {name: slow, backend: s}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([fast.close(), slow.close()]);
  });
  const tolerant = await send(gw.url, { path: '/tolerant', body: '{}' });
  assert.equal(tolerant.status, 200);
  const body = tolerant.json<{ fast: unknown; slow: unknown; _errors: Record<string, { code: string }> }>();
  assert.deepEqual(body.fast, { ok: true });
  assert.equal(body.slow, null);
  assert.equal(body._errors.slow!.code, 'MG_STEP_TIMEOUT');
  await slow.closed(1);

  const strict = await send(gw.url, { path: '/strict', body: '{}' });
  assert.equal(strict.status, 504);
  assert.equal(errorOf(strict).code, 'MG_STEP_TIMEOUT');
  assert.equal(errorOf(strict).branch, 'slow');
  await slow.closed(2);

  const deadline = await send(gw.url, { path: '/deadline', body: '{}' });
  assert.equal(deadline.status, 200);
  assert.deepEqual(Object.keys(deadline.json()), ['fast', '_errors']);
  await slow.closed(3);
});

test('a client that leaves cancels the branches in flight: their upstreams see the close', async (t) => {
  const one = await heldUpstream('one');
  const two = await heldUpstream('two');
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: one, urls: ["${one.url}"]}, {name: two, urls: ["${two.url}"]}],
        composition: {fanOut: {branches: [{name: one, backend: one}, {name: two, backend: two}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([one.close(), two.close()]);
  });
  const controller = new AbortController();
  const pending = request(`${gw.url}/`, { method: 'POST', body: '{}', signal: controller.signal });
  await Promise.all([one.arrived(), two.arrived()]);
  controller.abort();
  await assert.rejects(pending);
  await Promise.all([one.closed(), two.closed()]);
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(
    metrics,
    /modelgate_composition_steps_total\{route="test\/r",rule="rule-0",step="one",result="cancelled"\} 1/,
  );
});

test("a step's connect failure is retried on the backend's other endpoint", async (t) => {
  const live = await jsonUpstream('live', () => ({ body: { ok: true } }));
  const last = await jsonUpstream('last', (body) => ({ body }));
  const dead = await deadPort();
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin}, retries: {attempts: 1, retryOn: [connect-failure]},
        backends: [{name: pre, urls: ["http://127.0.0.1:${dead}", "${live.url}"]}, {name: post, urls: ["${last.url}"]}],
        composition: {pipeline: {steps: [{name: pre, backend: pre}, {name: post, backend: post}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([live.close(), last.close()]);
  });
  for (let i = 0; i < 6; i++) {
    const r = await send(gw.url, { path: '/', body: '{}' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { ok: true });
  }
  assert.equal(live.received.length, 6);
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_upstream_retries_total\{route="test\/r",reason="connect-failure"\} [1-9]/);
});

test('a step skips an endpoint that failed its health checks', async (t) => {
  let healthy = true;
  const a = await startUpstream('a', (req, res) => {
    res.writeHead(req.url === '/health' && !healthy ? 503 : 200, { 'content-type': 'application/json' });
    res.end('{"from":"a"}');
  });
  const b = await startUpstream('b', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"from":"b"}');
  });
  const last = await jsonUpstream('last', (body) => ({ body }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin},
        healthCheck: {path: /health, interval: 50ms, timeout: 1s, unhealthyThreshold: 1, healthyThreshold: 1},
        backends: [{name: pre, urls: ["${a.url}", "${b.url}"]}, {name: post, urls: ["${last.url}"]}],
        composition: {pipeline: {steps: [{name: pre, backend: pre, path: /work}, {name: post, backend: post}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close(), last.close()]);
  });
  healthy = false;
  await healthEvent(gw, a.url, false);
  const before = a.received.filter((r) => r.url === '/work').length;
  for (let i = 0; i < 6; i++)
    assert.deepEqual((await send(gw.url, { path: '/', body: '{}' })).json(), { from: 'b' });
  assert.equal(a.received.filter((r) => r.url === '/work').length, before, 'no step call went to a');
});

test('a mapping that reads a request body that is not JSON: 400, and no step is called', async (t) => {
  const up = await jsonUpstream('up', () => ({ body: {} }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: u, urls: ["${up.url}"]}],
        composition: {fanOut: {branches: [{name: x, backend: u, request: [{from: $request/a, to: /a}]}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const r = await send(gw.url, { path: '/', body: 'not json' });
  assert.equal(r.status, 400);
  assert.equal(errorOf(r).code, 'MG_REQUEST_NOT_JSON');
  assert.equal(up.received.length, 0);
});

test('a step that keeps failing ejects its endpoint (outlier detection); later calls skip it', async (t) => {
  const sick = await jsonUpstream('sick', () => ({ status: 500, body: {} }));
  const well = await jsonUpstream('well', () => ({ body: { from: 'well' } }));
  const last = await jsonUpstream('last', (body) => ({ body }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{loadBalancing: {algorithm: RoundRobin}, retries: {attempts: 0},
        outlierDetection: {consecutiveErrors: 1, baseEjectionTime: 10m, maxEjectionPercent: 50},
        backends: [{name: pre, urls: ["${sick.url}", "${well.url}"]}, {name: post, urls: ["${last.url}"]}],
        composition: {pipeline: {steps: [{name: pre, backend: pre}, {name: post, backend: post}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([sick.close(), well.close(), last.close()]);
  });
  const ejected = healthEvent(gw, sick.url, false);
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await send(gw.url, { path: '/', body: '{}' })).status);
  await ejected;
  assert.equal(sick.received.length, 1, 'one failure ejects it; no step call reaches it afterwards');
  assert.equal(statuses.filter((s) => s === 502).length, 1);
  assert.equal(well.received.length, 7);
});

test('filters run once, before the steps: validation refuses, the request transform feeds the first step', async (t) => {
  const first = await jsonUpstream('first', (body) => ({ body }));
  const second = await jsonUpstream('second', (body) => ({ body }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: a, urls: ["${first.url}"]}, {name: b, urls: ["${second.url}"]}],
        validation: {jsonSchema: {type: object, required: [text]}},
        transform: {request: {headers: {set: [{name: x-tenant, value: acme}]}, body: [{op: Set, path: /tenant, value: acme}]}},
        composition: {pipeline: {steps: [{name: a, backend: a}, {name: b, backend: b, request: [{from: $request/tenant, to: /t}]}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([first.close(), second.close()]);
  });
  const refused = await send(gw.url, { path: '/', body: '{"other":1}' });
  assert.equal(refused.status, 400);
  assert.equal(errorOf(refused).code, 'MG_REQUEST_INVALID');
  assert.equal(first.received.length + second.received.length, 0);

  const r = await send(gw.url, { path: '/', body: '{"text":"hi"}' });
  assert.equal(r.status, 200);
  assert.deepEqual(first.seen[0]!.body, { text: 'hi', tenant: 'acme' });
  assert.deepEqual(r.json(), { t: 'acme' }, '$request is the request as the filters left it');
  for (const up of [first, second]) assert.equal(up.received[0]!.headers['x-tenant'], 'acme');
});

test('an intermediate answer larger than maxResponseSize: 502 MG_PIPELINE_BAD_RESPONSE', async (t) => {
  const big = await jsonUpstream('big', () => ({ body: { blob: 'x'.repeat(4096) } }));
  const last = await jsonUpstream('last', () => ({ body: {} }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: a, urls: ["${big.url}"]}, {name: b, urls: ["${last.url}"]}],
        composition: {maxResponseSize: 1Ki, pipeline: {steps: [{name: a, backend: a}, {name: b, backend: b}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([big.close(), last.close()]);
  });
  const r = await send(gw.url, { path: '/', body: '{}' });
  assert.equal(r.status, 502);
  assert.equal(errorOf(r).code, 'MG_PIPELINE_BAD_RESPONSE');
  assert.match(String(errorOf(r).message), /larger than maxResponseSize \(1024 bytes\)/);
  assert.equal(last.received.length, 0);
});

test('a composed route does not take WebSocket upgrades', async (t) => {
  const up = await jsonUpstream('up', () => ({ body: {} }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: a, urls: ["${up.url}"]}], composition: {fanOut: {branches: [{name: a, backend: a}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  const { sendRaw } = await import('../../support/client.ts');
  const answer = await sendRaw(
    gw.url,
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /MG_BAD_REQUEST/);
  assert.equal(up.received.length, 0);
});

test('a client that leaves mid-pipeline cancels the step in flight; later steps are never called', async (t) => {
  const slow = await heldUpstream('slow');
  const last = await jsonUpstream('last', () => ({ body: {} }));
  const gw = await startGateway(
    route(
      'r',
      `{rules: [{backends: [{name: s, urls: ["${slow.url}"]}, {name: l, urls: ["${last.url}"]}],
        composition: {pipeline: {steps: [{name: think, backend: s}, {name: say, backend: l}]}}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([slow.close(), last.close()]);
  });
  const controller = new AbortController();
  const pending = request(`${gw.url}/`, { method: 'POST', body: '{}', signal: controller.signal });
  await slow.arrived();
  controller.abort();
  await assert.rejects(pending);
  await slow.closed();
  assert.equal(last.received.length, 0);
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(
    metrics,
    /modelgate_composition_steps_total\{route="test\/r",rule="rule-0",step="think",result="cancelled"\} 1/,
  );
  assert.match(metrics, /modelgate_requests_in_flight\{route="test\/r"\} 0/);
});
