/** OpenTelemetry: the proxy hop's span joins the client's trace and parents the upstream call. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTracer } from '../../../src/observability/tracing.ts';
import { send } from '../../support/client.ts';
import { route, startGateway } from '../../support/gateway.ts';
import { startUpstream } from '../../support/upstream.ts';
import { FakeCollector } from '../../unit/observability/fake-collector.ts';

test('spans are exported over OTLP, joined to the incoming traceparent', async (t) => {
  const collector = new FakeCollector();
  const endpoint = await collector.start();
  const tracer = createTracer({ endpoint, flushIntervalMs: 60_000 });
  const up = await startUpstream('up');
  const gw = await startGateway(
    route('chat', `{rules: [{name: main, backends: [{name: llama, urls: ["${up.url}"]}]}]}`),
    { tracer },
  );
  t.after(async () => {
    await gw.close();
    await up.close();
    await collector.close();
  });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const clientSpan = '00f067aa0ba902b7';
  const r = await send(gw.url, {
    path: '/v1/chat',
    headers: { traceparent: `00-${traceId}-${clientSpan}-01` },
  });
  assert.equal(r.status, 200);
  const upstreamParent = String(up.received[0]!.headers.traceparent);
  const [, upTrace, hopSpan, flags] = upstreamParent.split('-');
  assert.equal(upTrace, traceId, 'same trace');
  assert.notEqual(hopSpan, clientSpan, "the upstream's parent is the proxy hop");
  assert.equal(flags, '01');

  await tracer.flush();
  await collector.waitFor(1);
  const [span] = collector.spans();
  assert.equal(span!.traceId, traceId);
  assert.equal(span!.spanId, hopSpan);
  assert.equal(span!.parentSpanId, clientSpan);
  const attrs = Object.fromEntries(span!.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
  assert.equal(attrs['modelgate.route'], 'test/chat');
  assert.equal(attrs['modelgate.backend'], 'llama');
  assert.equal(attrs['url.path'], '/v1/chat');
  assert.equal(String(attrs['http.response.status_code']), '200');
  const line = gw.logs.find((l) => l.msg === 'access');
  assert.equal(line?.traceId, traceId, 'the access log names the trace');
});
