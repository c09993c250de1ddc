/**
 * bench/tracing: what tracing costs the proxy per request, in nanoseconds, as the proxy would call
 * it: startHop (with a request literal), traceparentForUpstream, the route/backend/model/upstream
 * attributes, end. Prints JSON.
 *
 * - off: no endpoint, the shared no-op tracer.
 * - on, unsampled: an incoming `-00` traceparent (propagation only, nothing recorded).
 * - on, sampled: every span recorded; a stub transport answers 200 at once, so the export figure
 *   is the encoding (OTLP/JSON) and the exporter's bookkeeping, without a network. The hot path
 *   (the request's share) and the export (done later, off the request) are timed separately.
 *
 * Each figure is the median of 5 interleaved rounds of N hops.
 *
 *   node bench/tracing.ts [--iterations N]
 */
import { parseArgs } from 'node:util';
import { ATTR, createTracer, type Tracer, type Transport } from '../src/observability/tracing.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string' } } });
const N = Number(values.iterations ?? 200_000);
const BATCH = 512;
const SAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const UNSAMPLED = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';

let sink = 0;

/** One request's worth of tracing calls. */
function hop(tracer: Tracer, incoming: string | undefined): void {
  const span = tracer.startHop(incoming, {
    method: 'POST',
    path: '/v1/chat/completions',
    host: 'api.example.com',
  });
  if (tracer.enabled) {
    sink += span.traceparentForUpstream().length;
    span.setAttribute(ATTR.route, 'chat');
    span.setAttribute(ATTR.backend, 'llama-70b');
    span.setAttribute(ATTR.model, 'llama-3-70b');
    span.setAttribute(ATTR.upstreamAddress, '10.1.2.3');
    span.setAttribute(ATTR.upstreamPort, 8000);
  }
  span.end(200);
}

/** ns per hop of the hot path, and ns per span of the export (flush) when there is one. */
async function measure(
  tracer: Tracer,
  incoming: string | undefined,
  n = N,
): Promise<{ hot: number; exp: number }> {
  let hot = 0n;
  let exp = 0n;
  for (let done = 0; done < n; done += BATCH) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) hop(tracer, incoming);
    const t1 = process.hrtime.bigint();
    await tracer.flush();
    exp += process.hrtime.bigint() - t1;
    hot += t1 - t0;
  }
  const ops = Math.ceil(n / BATCH) * BATCH;
  return { hot: Number(hot) / ops, exp: Number(exp) / ops };
}

const stub: Transport = async (_url, body) => {
  sink += body.length;
  return { status: 200, body: '{}' };
};

function on(): Tracer {
  // A long interval: batches leave by size (and by the explicit flush after each round).
  return createTracer({
    endpoint: 'http://127.0.0.1:4318',
    transport: stub,
    batchSize: BATCH,
    maxQueue: 4 * BATCH,
    flushIntervalMs: 3_600_000,
  });
}

const round = (n: number): number => Math.round(n * 10) / 10;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Each mode: how to build its tracer, and the incoming traceparent its requests carry. */
const MODES: Record<string, { make: () => Tracer; incoming: string | undefined }> = {
  off: { make: () => createTracer({}), incoming: SAMPLED },
  on_unsampled: { make: on, incoming: UNSAMPLED },
  on_sampled_joined: { make: on, incoming: SAMPLED },
  on_sampled_new_trace: { make: on, incoming: undefined },
};
const REPEATS = 5;

// Warm up every path so the timed rounds run optimised code.
for (const m of Object.values(MODES)) {
  const t = m.make();
  await measure(t, m.incoming, 50 * BATCH);
  await t.shutdown();
}
// The modes interleave, a fresh tracer each round, and the median is kept: the garbage one mode
// leaves behind then falls on all of them alike.
const samples: Record<string, { hot: number[]; exp: number[] }> = {};
for (let r = 0; r < REPEATS; r++) {
  for (const [name, m] of Object.entries(MODES)) {
    const t = m.make();
    const { hot, exp } = await measure(t, m.incoming);
    await t.shutdown();
    samples[name] ??= { hot: [], exp: [] };
    samples[name].hot.push(hot);
    samples[name].exp.push(exp);
  }
}
const results: Record<string, unknown> = { iterations: N, repeats: REPEATS, node: process.version };
for (const [name, { hot, exp }] of Object.entries(samples)) {
  results[name] = name.startsWith('on_sampled')
    ? { ns_per_hop: round(median(hot)), ns_per_span_export: round(median(exp)) }
    : { ns_per_hop: round(median(hot)) };
}
console.log(JSON.stringify(results, null, 2));
if (sink === 42) console.log('');
