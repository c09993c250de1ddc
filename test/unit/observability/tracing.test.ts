import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { OtlpKeyValue, OtlpSpan } from '../../../src/observability/otlp/json.ts';
import { isValidTraceparent, traceFlagsOf } from '../../../src/observability/otlp/traceparent.ts';
import {
  ATTR,
  createTracer,
  NOOP_TRACER,
  type Tracer,
  type TracerOptions,
  type Transport,
} from '../../../src/observability/tracing.ts';
import { FakeCollector, manualTimers, seeded } from './fake-collector.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const SAMPLED = `00-${TRACE_ID}-${PARENT_ID}-01`;
const UNSAMPLED = `00-${TRACE_ID}-${PARENT_ID}-00`;
const REQ = { method: 'POST', path: '/v1/chat/completions', host: 'api.example.com', scheme: 'http' };
const OUTGOING = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[0-3])$/;

function attrs(span: OtlpSpan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of span.attributes as OtlpKeyValue[]) {
    const v = a.value as Record<string, unknown>;
    out[a.key] = v.stringValue ?? v.intValue ?? v.boolValue ?? v.doubleValue;
  }
  return out;
}

function parts(tp: string): { traceId: string; spanId: string; flags: string } {
  const m = OUTGOING.exec(tp);
  assert.ok(m, `not a version-00 traceparent: ${tp}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

describe('tracing over OTLP/HTTP JSON', () => {
  const collector = new FakeCollector();
  let endpoint = '';
  let clock = 1_700_000_000_000_000_000n;
  const open: Tracer[] = [];

  before(async () => {
    endpoint = await collector.start();
  });
  after(async () => {
    await Promise.all(open.map((t) => t.shutdown()));
    await collector.close();
  });
  beforeEach(() => {
    collector.requests.length = 0;
    collector.script.length = 0;
  });

  /** A tracer on the fake collector with a manual clock (+1 ms per reading) and manual timers. */
  function tracer(opts: TracerOptions = {}) {
    const t = manualTimers();
    const tr = createTracer({
      endpoint,
      now: () => {
        clock += 1_000_000n;
        return clock;
      },
      timers: t.timers,
      backoffMs: 10,
      ...opts,
    });
    open.push(tr);
    return { tracer: tr, ...t };
  }

  test('joins an incoming sampled traceparent: same trace id, its parent-id, a new span id sent upstream', async () => {
    const { tracer: tr } = tracer({ serviceName: 'gw-test', serviceVersion: '1.2.3' });
    const span = tr.startHop(SAMPLED, { ...REQ, port: 8080, clientAddress: '10.0.0.9' });
    assert.equal(span.sampled, true);
    assert.equal(span.traceId, TRACE_ID);
    const up = parts(span.traceparentForUpstream());
    assert.equal(up.traceId, TRACE_ID);
    assert.notEqual(up.spanId, PARENT_ID);
    assert.equal(up.flags, '01');
    span.setAttribute(ATTR.route, 'chat');
    span.setAttribute(ATTR.backend, 'llama-70b');
    span.setAttribute(ATTR.model, 'llama-3-70b');
    span.setAttribute(ATTR.upstreamAddress, '10.1.2.3');
    span.setAttribute(ATTR.upstreamPort, 8000);
    span.setAttribute(ATTR.upstreamAddress, '10.1.2.4'); // a retry elsewhere replaces it
    span.setAttribute(ATTR.resendCount, 1);
    span.end(200);
    span.end(500); // only the first end counts
    await tr.flush();

    assert.equal(collector.requests.length, 1);
    const req = collector.requests[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/v1/traces');
    assert.equal(req.headers['content-type'], 'application/json');
    const rs = req.body.resourceSpans[0]!;
    assert.deepEqual(attrs({ attributes: rs.resource.attributes } as OtlpSpan), {
      'service.name': 'gw-test',
      'service.version': '1.2.3',
      'telemetry.sdk.name': 'modelgate',
      'telemetry.sdk.language': 'nodejs',
    });
    assert.equal(rs.scopeSpans[0]!.scope.name, 'modelgate.proxy');
    const s = rs.scopeSpans[0]!.spans[0]!;
    assert.equal(s.traceId, TRACE_ID);
    assert.equal(s.parentSpanId, PARENT_ID);
    assert.equal(s.spanId, up.spanId);
    assert.equal(s.kind, 2);
    assert.equal(s.name, 'POST chat');
    assert.equal(s.flags, 0x01 | 0x100 | 0x200); // sampled, parent known to be remote
    assert.match(s.startTimeUnixNano, /^\d+$/);
    assert.equal(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano), 1_000_000n);
    assert.equal(s.status, undefined);
    assert.deepEqual(attrs(s), {
      'http.request.method': 'POST',
      'url.path': '/v1/chat/completions',
      'url.scheme': 'http',
      'server.address': 'api.example.com',
      'server.port': '8080',
      'client.address': '10.0.0.9',
      'http.response.status_code': '200',
      'modelgate.route': 'chat',
      'modelgate.backend': 'llama-70b',
      'modelgate.model': 'llama-3-70b',
      'modelgate.upstream.address': '10.1.2.4',
      'modelgate.upstream.port': '8000',
      'http.request.resend_count': '1',
    });
    assert.deepEqual(
      s.attributes.find((a) => a.key === 'http.response.status_code')!.value,
      { intValue: '200' },
      'int64 attributes are decimal strings in OTLP/JSON',
    );
  });

  test('starts a new sampled trace when there is no valid incoming traceparent', async () => {
    const { tracer: tr } = tracer();
    const invalid = [
      undefined,
      '',
      'garbage',
      `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`,
      `00-${'0'.repeat(32)}-${PARENT_ID}-01`,
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`,
      `ff-${TRACE_ID}-${PARENT_ID}-01`,
      `${SAMPLED}-extra`, // version 00 has nothing after the flags
      `${SAMPLED}, ${SAMPLED}`, // two headers joined
    ];
    const ups = invalid.map((h) => {
      const span = tr.startHop(h, REQ);
      const up = span.traceparentForUpstream();
      assert.ok(isValidTraceparent(up), up);
      span.end(200);
      return parts(up);
    });
    for (const up of ups) {
      assert.notEqual(up.traceId, TRACE_ID);
      assert.equal(up.flags, '01');
    }
    assert.equal(new Set(ups.map((u) => u.traceId)).size, invalid.length, 'a new trace id each time');
    await tr.flush();
    const spans = collector.spans();
    assert.equal(spans.length, invalid.length);
    for (const [i, s] of spans.entries()) {
      assert.equal(s.traceId, ups[i]!.traceId);
      assert.equal(s.spanId, ups[i]!.spanId);
      assert.equal(s.parentSpanId, undefined, 'a root span has no parent');
      assert.equal(s.flags, 0x01 | 0x100);
      assert.equal(s.name, 'POST');
    }
  });

  test('a future version is joined for the version-00 fields and sent on as version 00', () => {
    const { tracer: tr } = tracer();
    const span = tr.startHop(`cc-${TRACE_ID}-${PARENT_ID}-01-what-the-future-holds`, REQ);
    const up = parts(span.traceparentForUpstream());
    assert.equal(up.traceId, TRACE_ID);
    assert.equal(up.flags, '01');
  });

  test('an unsampled parent is honoured: not exported, propagated with -00 and a new span id', async () => {
    const { tracer: tr } = tracer({ sampleRatio: 1 });
    const span = tr.startHop(UNSAMPLED, REQ);
    assert.equal(span.sampled, false);
    assert.equal(span.traceId, TRACE_ID);
    const up = parts(span.traceparentForUpstream());
    assert.equal(up.traceId, TRACE_ID);
    assert.notEqual(up.spanId, PARENT_ID);
    assert.equal(up.flags, '00');
    span.setAttribute(ATTR.route, 'chat');
    span.end(200);
    // The random flag (Trace Context Level 2) travels with the trace id; unknown bits do not.
    assert.equal(
      parts(tr.startHop(`00-${TRACE_ID}-${PARENT_ID}-fe`, REQ).traceparentForUpstream()).flags,
      '02',
    );
    await tr.flush();
    assert.equal(collector.requests.length, 0);
    assert.equal(tr.stats().started, 2);
    assert.equal(tr.stats().sampled, 0);
  });

  test('a sampled parent is honoured even at sampleRatio 0', async () => {
    const { tracer: tr } = tracer({ sampleRatio: 0 });
    tr.startHop(SAMPLED, REQ).end(200);
    const fresh = tr.startHop(undefined, REQ);
    assert.equal(parts(fresh.traceparentForUpstream()).flags, '00');
    fresh.end(200);
    await tr.flush();
    assert.deepEqual(
      collector.spans().map((s) => s.traceId),
      [TRACE_ID],
    );
  });

  test('sampleRatio samples new traces with the injected random, deterministically', async () => {
    const ratio = 0.25;
    const n = 400;
    const { tracer: tr } = tracer({ sampleRatio: ratio, random: seeded(7), batchSize: 1000, maxQueue: 1000 });
    const replay = seeded(7);
    let expected = 0;
    const sampledIds: string[] = [];
    for (let i = 0; i < n; i++) {
      const want = replay() < ratio;
      if (want) expected++;
      const span = tr.startHop(undefined, REQ);
      const up = parts(span.traceparentForUpstream());
      assert.equal(span.sampled, want);
      assert.equal(up.flags, want ? '01' : '00');
      if (want) sampledIds.push(up.spanId);
      span.end(200);
    }
    assert.ok(expected > 70 && expected < 130, `about a quarter: ${expected}`);
    await tr.flush();
    assert.deepEqual(
      collector.spans().map((s) => s.spanId),
      sampledIds,
    );
    assert.equal(tr.stats().sampled, expected);
    assert.equal(tr.stats().exported, expected);
  });

  test('batches by size: a full batch leaves at once, the rest waits for the interval', async () => {
    const { tracer: tr, intervals } = tracer({ batchSize: 3, flushIntervalMs: 60_000 });
    assert.equal(intervals.length, 1, 'one timer for the exporter');
    assert.equal(intervals[0]!.ms, 60_000);
    for (let i = 0; i < 7; i++) tr.startHop(SAMPLED, { ...REQ, path: `/p${i}` }).end(200);
    await collector.waitFor(2);
    await tr.flush(); // flush would also send the leftover span: check the state before it matters
    assert.deepEqual(
      collector.requests.slice(0, 2).map((r) => r.body.resourceSpans[0]!.scopeSpans[0]!.spans.length),
      [3, 3],
    );
    assert.deepEqual(
      collector.spans().map((s) => attrs(s)['url.path']),
      ['/p0', '/p1', '/p2', '/p3', '/p4', '/p5', '/p6'],
    );
    assert.equal(intervals.length, 1, 'no timer per span');
  });

  test('batches by size without flush: the leftover is sent by the interval tick', async () => {
    const { tracer: tr, tick } = tracer({ batchSize: 3, flushIntervalMs: 60_000 });
    for (let i = 0; i < 4; i++) tr.startHop(SAMPLED, REQ).end(200);
    // Until the first batch's export has settled; the leftover span stays queued meanwhile.
    while (tr.stats().exported < 3) await new Promise((r) => setImmediate(r));
    assert.equal(tr.stats().queued, 1);
    assert.equal(collector.requests.length, 1);
    tick();
    await collector.waitFor(2);
    assert.equal(collector.requests[1]!.body.resourceSpans[0]!.scopeSpans[0]!.spans.length, 1);
  });

  test('batches by interval: below the batch size nothing leaves until the tick', async () => {
    const { tracer: tr, tick } = tracer({ batchSize: 100 });
    tr.startHop(SAMPLED, REQ).end(200);
    tr.startHop(SAMPLED, REQ).end(201);
    await new Promise((r) => setImmediate(r));
    assert.equal(tr.stats().queued, 2);
    assert.equal(collector.requests.length, 0);
    tick();
    await collector.waitFor(1);
    await tr.flush();
    assert.equal(collector.spans().length, 2);
    assert.equal(tr.stats().queued, 0);
    assert.equal(tr.stats().exported, 2);
    assert.equal(tr.stats().requests, 1);
  });

  test('a full queue drops the newest spans and counts them', async () => {
    const { tracer: tr } = tracer({ maxQueue: 4, batchSize: 10 });
    for (let i = 0; i < 6; i++) tr.startHop(SAMPLED, { ...REQ, path: `/p${i}` }).end(200);
    assert.equal(tr.stats().droppedQueueFull, 2);
    await tr.flush();
    assert.deepEqual(
      collector.spans().map((s) => attrs(s)['url.path']),
      ['/p0', '/p1', '/p2', '/p3'],
    );
  });

  test('status and error.type follow the HTTP server conventions', async () => {
    const { tracer: tr } = tracer();
    const cases: [number, string | undefined, number | undefined, string | undefined][] = [
      [200, undefined, undefined, undefined],
      [404, 'no_route', undefined, 'no_route'], // the client's error: status unset
      [503, undefined, 2, '503'],
      [502, 'upstream_connect_failed', 2, 'upstream_connect_failed'],
      [200, 'upstream_reset', 2, 'upstream_reset'], // cut mid-stream after a 200
      [0, undefined, 2, '_OTHER'], // nothing was sent
    ];
    for (const [status, code] of cases) tr.startHop(SAMPLED, REQ).end(status, code);
    const odd = tr.startHop(SAMPLED, { ...REQ, method: 'PURGE' });
    odd.end(200);
    await tr.flush();
    const spans = collector.spans();
    for (const [i, [status, , statusCode, errorType]] of cases.entries()) {
      const s = spans[i]!;
      assert.equal(s.status?.code, statusCode, `status of case ${i}`);
      assert.equal(attrs(s)['error.type'], errorType, `error.type of case ${i}`);
      assert.equal(attrs(s)['http.response.status_code'], status > 0 ? String(status) : undefined);
    }
    const last = spans.at(-1)!;
    assert.equal(last.name, 'HTTP');
    assert.equal(attrs(last)['http.request.method'], '_OTHER');
    assert.equal(attrs(last)['http.request.method_original'], 'PURGE');
  });

  test('collector down: nothing throws, retries back off a few times, then the batch is dropped and counted', async () => {
    const gone = new FakeCollector();
    const goneEndpoint = await gone.start();
    await gone.close(); // the port now refuses connections
    const errors: string[] = [];
    const { tracer: tr, delays } = tracer({
      endpoint: goneEndpoint,
      maxRetries: 2,
      backoffMs: 100,
      onError: (m) => errors.push(m),
    });
    for (let i = 0; i < 5; i++) {
      const span = tr.startHop(SAMPLED, REQ);
      assert.doesNotThrow(() => span.end(200));
    }
    await tr.flush(); // resolves, never rejects
    const st = tr.stats();
    assert.equal(st.droppedExportFailed, 5);
    assert.equal(st.exported, 0);
    assert.equal(st.requests, 3);
    assert.equal(st.retries, 2);
    assert.equal(delays.length, 2);
    assert.ok(delays[0]! >= 50 && delays[0]! <= 100, `first back-off ${delays[0]}`);
    assert.ok(delays[1]! >= 100 && delays[1]! <= 200, `second back-off ${delays[1]}`);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /network error.*3 attempt\(s\); dropped 5 spans/);
  });

  test('retryable statuses are retried (honouring Retry-After); others drop the batch at once', async () => {
    const { tracer: tr, delays } = tracer({ maxRetries: 3 });
    collector.script.push({ status: 503 }, { status: 429, headers: { 'retry-after': '7' } });
    tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.equal(collector.requests.length, 3);
    assert.equal(delays[1], 7000);
    assert.equal(tr.stats().exported, 1);
    assert.equal(tr.stats().retries, 2);

    collector.script.push({ status: 400, body: '{"code":3,"message":"bad"}' });
    tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.equal(collector.requests.length, 4, 'a 400 is not retried');
    assert.equal(tr.stats().droppedExportFailed, 1);
  });

  test('a flush covers what was queued when it was called, so it ends under steady load', async () => {
    let tr: Tracer | undefined;
    let calls = 0;
    // Each export request sees a new request's span arrive meanwhile.
    const transport: Transport = async () => {
      calls++;
      tr!.startHop(SAMPLED, REQ).end(200);
      return { status: 200 };
    };
    tr = tracer({ transport, batchSize: 2 }).tracer;
    for (let i = 0; i < 3; i++) tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.ok(calls <= 3, `calls ${calls}`);
    assert.ok(tr.stats().queued > 0);
  });

  test('a partial success counts the rejected spans', async () => {
    const { tracer: tr } = tracer();
    collector.script.push({
      status: 200,
      body: '{"partialSuccess":{"rejectedSpans":"2","errorMessage":"x"}}',
    });
    for (let i = 0; i < 3; i++) tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.equal(tr.stats().rejected, 2);
    assert.equal(tr.stats().exported, 1);
  });

  test('a throwing transport or logger never reaches the request path', async () => {
    const transport: Transport = () => {
      throw new Error('synchronous failure');
    };
    const { tracer: tr } = tracer({
      transport,
      maxRetries: 0,
      onError: () => {
        throw new Error('logger down');
      },
    });
    tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.equal(tr.stats().droppedExportFailed, 1);
  });

  test('shutdown flushes what is queued, stops the timer and drops later spans', async () => {
    const { tracer: tr, intervals } = tracer({ batchSize: 100 });
    tr.startHop(SAMPLED, REQ).end(200);
    tr.startHop(SAMPLED, REQ).end(200);
    const late = tr.startHop(SAMPLED, REQ);
    await tr.shutdown();
    assert.equal(collector.spans().length, 2);
    assert.equal(intervals[0]!.cleared, true);
    late.end(200);
    await tr.shutdown(); // idempotent
    await tr.flush();
    assert.equal(collector.spans().length, 2);
    assert.equal(tr.stats().droppedAfterShutdown, 1);
  });

  test('shutdown cuts a back-off wait short', async () => {
    const t = manualTimers();
    const pending: (() => void)[] = [];
    // A back-off that would never end on its own.
    t.timers.setTimeout = (fn) => {
      pending.push(fn);
      return pending.length;
    };
    t.timers.clearTimeout = () => {};
    const tr = createTracer({ endpoint, timers: t.timers, maxRetries: 5 });
    collector.script.push({ status: 503 }, { status: 503 });
    tr.startHop(SAMPLED, REQ).end(200);
    void tr.flush();
    await collector.waitFor(1);
    while (pending.length === 0) await new Promise((r) => setImmediate(r));
    await tr.shutdown();
    // Woken by shutdown: one last attempt (503 again), then dropped without further waits.
    assert.equal(collector.requests.length, 2);
    assert.equal(tr.stats().droppedExportFailed, 1);
  });

  test('extra headers reach the collector; the endpoint may end with a slash', async () => {
    const { tracer: tr } = tracer({ endpoint: `${endpoint}/`, headers: { authorization: 'Bearer t0k' } });
    tr.startHop(SAMPLED, REQ).end(200);
    await tr.flush();
    assert.equal(collector.requests[0]!.path, '/v1/traces');
    assert.equal(collector.requests[0]!.headers.authorization, 'Bearer t0k');
  });

  test('bad options fail at creation', () => {
    assert.throws(() => createTracer({ endpoint: 'not a url' }), TypeError);
    assert.throws(() => createTracer({ endpoint: 'ftp://x' }), TypeError);
    assert.throws(() => createTracer({ endpoint, sampleRatio: 1.5 }), RangeError);
    assert.throws(() => createTracer({ endpoint, sampleRatio: Number.NaN }), RangeError);
    assert.throws(() => createTracer({ endpoint, maxQueue: 0 }), RangeError);
  });
});

test('traceparent parsing: trace-flags from any two lower-case hex digits', () => {
  for (const [flags, value] of [
    ['00', 0],
    ['01', 1],
    ['09', 9],
    ['0a', 10],
    ['a1', 0xa1],
    ['ff', 255],
  ] as const) {
    const h = `00-${TRACE_ID}-${PARENT_ID}-${flags}`;
    assert.ok(isValidTraceparent(h));
    assert.equal(traceFlagsOf(h), value);
  }
  assert.equal(isValidTraceparent(`00-${TRACE_ID}-${PARENT_ID}-0g`), false);
  assert.equal(isValidTraceparent(`00_${TRACE_ID}-${PARENT_ID}-01`), false);
});

describe('tracing off', () => {
  test('without an endpoint: the shared no-op tracer and span, no timer, nothing sent', async () => {
    let sent = 0;
    const t = manualTimers();
    const transport: Transport = async () => {
      sent++;
      return { status: 200 };
    };
    const tr = createTracer({ transport, timers: t.timers, sampleRatio: 1 });
    assert.equal(tr, NOOP_TRACER);
    assert.equal(createTracer(), NOOP_TRACER);
    assert.equal(tr.enabled, false);
    const a = tr.startHop(SAMPLED, REQ);
    const b = tr.startHop(undefined, { method: 'GET', path: '/' });
    assert.equal(a, b, 'one shared span handle');
    assert.equal(a.traceparentForUpstream(), '', 'the caller keeps its own propagation');
    assert.equal(a.traceId, '');
    assert.equal(a.sampled, false);
    a.setAttribute(ATTR.route, 'x');
    a.end(500, 'boom');
    assert.ok(Object.isFrozen(a));
    await tr.flush();
    await tr.shutdown();
    assert.equal(sent, 0);
    assert.equal(t.intervals.length, 0);
    assert.equal(tr.stats().started, 0);
  });
});
