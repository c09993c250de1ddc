/**
 * A fixed-rate, open-loop HTTP load generator (wrk has no fixed-rate mode). Requests are
 * scheduled by time, not by completion: request i is due at t0 + i/rate, and a 1 ms timer sends
 * whatever is due, so a slow response never delays the next request (no coordinated omission in
 * the schedule). Latency is measured per request with process.hrtime.bigint(), from the moment the
 * request is handed to undici (a keep-alive Pool with enough connections for the rate) to the end
 * of the response body; `lag` is how late the sends were against the schedule (timer jitter), the
 * same for every target.
 *
 * As a module: runFixedRate(opts). As a script (what bench/proxy.ts runs, pinned to the load core):
 *
 *   node bench/lib/fixed-rate.ts --url http://127.0.0.1:8080/ --rate 2000 --duration 10 --warmup 2
 *
 * prints one JSON object.
 */
import { parseArgs } from 'node:util';
import { type Dispatcher, Pool } from 'undici';

export interface FixedRateOptions {
  url: string;
  /** Requests per second. */
  rate: number;
  /** Measured seconds (after the warm-up). */
  durationS: number;
  /** Seconds of the same load before measuring. */
  warmupS: number;
  connections: number;
  /** How long to wait for stragglers after the last send, in seconds. */
  drainS: number;
}

export interface FixedRateResult {
  target: string;
  rate: number;
  measured: number;
  completed: number;
  errors: number;
  achievedRate: number;
  latencyUs: { p50: number; p90: number; p99: number; max: number; mean: number };
  lagUs: { p50: number; p99: number; max: number };
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function r1(x: number): number {
  return Math.round(x * 10) / 10;
}

export function runFixedRate(o: FixedRateOptions): Promise<FixedRateResult> {
  const url = new URL(o.url);
  const pool = new Pool(url.origin, { connections: o.connections, pipelining: 1 });
  const path = url.pathname + url.search;
  const warm = Math.round(o.rate * o.warmupS);
  const total = warm + Math.round(o.rate * o.durationS);
  const latency = new Float64Array(total).fill(Number.NaN);
  const lag = new Float64Array(total);
  const intervalNs = 1e9 / o.rate;
  let next = 0;
  let inFlight = 0;
  let completed = 0;
  let t0 = 0n;
  let resolveDrained: () => void = () => {};
  const drained = new Promise<void>((r) => {
    resolveDrained = r;
  });

  const finish = (i: number, ok: boolean, sentAt: bigint) => {
    inFlight--;
    if (ok) {
      latency[i] = Number(process.hrtime.bigint() - sentAt) / 1000;
      if (i >= warm) completed++;
    }
    if (inFlight === 0 && next === total) resolveDrained();
  };

  const send = (i: number) => {
    const sentAt = process.hrtime.bigint();
    lag[i] = (Number(sentAt - t0) - i * intervalNs) / 1000;
    inFlight++;
    let status = 0;
    let done = false;
    const end = (ok: boolean) => {
      if (done) return;
      done = true;
      finish(i, ok, sentAt);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_c, statusCode) {
        status = statusCode;
      },
      onResponseData() {},
      onResponseEnd() {
        end(status >= 200 && status < 400);
      },
      onResponseError() {
        end(false);
      },
    };
    pool.dispatch({ path, method: 'GET', headers: { host: url.host } }, handler);
  };

  return new Promise<FixedRateResult>((resolve) => {
    const tick = () => {
      const elapsed = Number(process.hrtime.bigint() - t0);
      const due = Math.min(total, Math.floor(elapsed / intervalNs) + 1);
      while (next < due) send(next++);
      if (next < total) setTimeout(tick, 1);
      else if (inFlight === 0) resolveDrained();
    };
    t0 = process.hrtime.bigint();
    tick();
    const bound = setTimeout(resolveDrained, (o.warmupS + o.durationS + o.drainS) * 1000 + 1000);
    drained.then(async () => {
      clearTimeout(bound);
      const wallS = Number(process.hrtime.bigint() - t0) / 1e9 - o.warmupS;
      await pool.destroy().catch(() => {});
      const measured = latency.subarray(warm).filter((x) => !Number.isNaN(x));
      measured.sort();
      const lags = lag.subarray(warm).slice().sort();
      let sum = 0;
      for (const x of measured) sum += x;
      resolve({
        target: o.url,
        rate: o.rate,
        measured: total - warm,
        completed,
        // Failed, or still unanswered when the drain time ran out.
        errors: total - warm - completed,
        achievedRate: r1(completed / wallS),
        latencyUs: {
          p50: r1(percentile(measured, 50)),
          p90: r1(percentile(measured, 90)),
          p99: r1(percentile(measured, 99)),
          max: r1(measured.length ? measured[measured.length - 1]! : Number.NaN),
          mean: r1(sum / measured.length),
        },
        lagUs: { p50: r1(percentile(lags, 50)), p99: r1(percentile(lags, 99)), max: r1(lags.at(-1) ?? 0) },
      });
    });
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      rate: { type: 'string', default: '2000' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '64' },
      drain: { type: 'string', default: '5' },
    },
  });
  if (!values.url) throw new Error('--url is required');
  const result = await runFixedRate({
    url: values.url,
    rate: Number(values.rate),
    durationS: Number(values.duration),
    warmupS: Number(values.warmup),
    connections: Number(values.connections),
    drainS: Number(values.drain),
  });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
