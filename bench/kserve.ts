/**
 * bench/kserve: CPU per request of the KServe v2 REST ⇄ gRPC translation (src/dataplane/kserve),
 * in-process, no network: the overhead a kserve-grpc backend adds to a request over passing bytes
 * through. Prints JSON; no thresholds.
 *
 *   request   REST JSON body (a string, as received) → translateRequest → framed ModelInferRequest
 *             (JSON.parse, validation, conversion, protobuf encoding, framing).
 *   response  framed ModelInferResponse bytes (as received) → translateResponse → REST JSON body
 *             (deframing, protobuf decoding, shape checks, JSON writing).
 *   typed     tensors in InferTensorContents (fp32_contents); raw: raw_input/output_contents.
 *
 * Cases: small, one FP32 [1,16] tensor; large, one FP32 [1,3,224,224] tensor (150,528 elements, a
 * 2.0 MB JSON body, 602 KB of protobuf), the response echoing it back. For scale, `jsonParseUs` /
 * `jsonStringifyUs` are a bare JSON.parse of the request body and JSON.stringify of the response
 * object: the part of the cost any JSON-reading gateway pays.
 *
 * CPU is process.cpuUsage (user + system) per request; wall is elapsed time per request. Each
 * figure is the median of 3 runs; a run stops at its count or its time bound.
 *
 * End to end (needs wrk; the gateway pinned to one core, wrk and the upstream on the other): the
 * gateway's CPU per request, from /proc, for a v2 REST inference POST of an FP32 [1, N] tensor
 * (N = 16, and 1,024 unless --quick) through three routes whose upstreams answer the same
 * precomputed reply (bench/lib/kserve-upstream.ts):
 *
 *   http        a plain route to an HTTP/1.1 upstream answering the REST JSON reply;
 *   h2c         the same to an HTTP/2 (h2c) upstream: the gateway's HTTP/2 client without translation;
 *   translated  `translation: {kserveV2: {}}` to a gRPC upstream answering the ModelInferResponse.
 *
 * `translated − h2c` is the translation's own CPU (JSON in, protobuf out and back, the buffered
 * call); `translated − http` is what a client pays for reaching a gRPC server over REST through
 * the gateway rather than an HTTP/1.1 server that speaks REST itself.
 *
 *   node bench/kserve.ts           small: 50,000 requests per run, large: 100; end to end 10 s per case
 *   node bench/kserve.ts --quick   small: 5,000, large: 10 (≤ ~3 s); end to end N = 16, 2 s per case
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { encodeFramed } from '../src/dataplane/kserve/grpc-frame.ts';
import { encodeModelInferResponse, type ModelInferResponse } from '../src/dataplane/kserve/messages.ts';
import { translateRequest, translateResponse } from '../src/dataplane/kserve/rest-json.ts';
import type { KServeOp } from '../src/dataplane/kserve/rest-routes.ts';
import { startNodeChild } from './lib/node-child.ts';
import { allowedCpus, clockTicksPerSecond, cpuTicks, installCleanup, tempDir, which } from './lib/procs.ts';
import { compileYaml } from './lib/routes.ts';
import { runWrk } from './lib/wrk.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const RUNS = 3;
const TIME_BOUND_MS = QUICK ? 150 : 3_000;
const OP: KServeOp = { kind: 'model_infer', model: 'resnet', version: '' };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 100) / 100;
const cpuMicros = (since: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(since);
  return c.user + c.system;
};

interface Measured {
  cpuUs: number;
  wallUs: number;
  n: number;
}

function measure(count: number, fn: (i: number) => void): Measured {
  // Warm up until the code is optimised: a tenth of the count, at least 3, at most 2,000 calls.
  for (let i = 0; i < Math.max(3, Math.min(2_000, count / 10)); i++) fn(i);
  const cpu: number[] = [];
  const wall: number[] = [];
  const ns: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const deadline = performance.now() + TIME_BOUND_MS;
    let n = 0;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    while (n < count) {
      fn(n);
      n++;
      if ((n & 15) === 0 && performance.now() > deadline) break;
    }
    wall.push(((performance.now() - w0) * 1000) / n);
    cpu.push(cpuMicros(c0) / n);
    ns.push(n);
  }
  return { cpuUs: round(median(cpu)), wallUs: round(median(wall)), n: median(ns) };
}

function tensor(n: number, seed: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 7.1 + seed * 13.7) * 100));
}

/**
 * Each case uses `variants` different tensors in turn: V8 caches number-to-string conversions, and
 * one small tensor printed over and over would measure that cache rather than the translation.
 */
function benchCase(shape: number[], count: number, variants: number) {
  const VARIANTS = variants;
  const n = shape.reduce((a, b) => a * b, 1);
  const tensors = Array.from({ length: VARIANTS }, (_, k) => tensor(n, k));
  const bodies = tensors.map((values) =>
    JSON.stringify({
      id: 'bench',
      inputs: [{ name: 'data', datatype: 'FP32', shape, data: Array.from(values) }],
    }),
  );
  const response = (values: Float32Array, raw: boolean): Buffer => {
    const out: ModelInferResponse = {
      modelName: 'resnet',
      modelVersion: '1',
      id: 'bench',
      outputs: [{ name: 'out', datatype: 'FP32', shape, ...(raw ? {} : { contents: { fp32: values } }) }],
    };
    if (raw) out.rawOutputContents = [new Uint8Array(values.buffer)];
    return encodeFramed(encodeModelInferResponse, out);
  };
  const upstream = (frame: Buffer) => ({
    status: 200,
    headers: { 'content-type': 'application/grpc' },
    body: frame,
    trailers: { 'grpc-status': '0' },
  });
  const typedFrames = tensors.map((t) => response(t, false));
  const rawFrames = tensors.map((t) => response(t, true));

  let requestBytes = 0;
  const requestTyped = measure(count, (i) => {
    const t = translateRequest(OP, bodies[i % VARIANTS]!);
    if (!t.ok) throw new Error(t.reply.body);
    requestBytes = t.frame.length;
  });
  let rawRequestBytes = 0;
  const requestRaw = measure(count, (i) => {
    const t = translateRequest(OP, bodies[i % VARIANTS]!, undefined, { rawInputs: true });
    if (!t.ok) throw new Error(t.reply.body);
    rawRequestBytes = t.frame.length;
  });
  let jsonBytes = 0;
  const responseTyped = measure(count, (i) => {
    const r = translateResponse(OP, upstream(typedFrames[i % VARIANTS]!));
    if (r.status !== 200) throw new Error(r.body);
    jsonBytes = r.body.length;
  });
  const responseRaw = measure(count, (i) => {
    const r = translateResponse(OP, upstream(rawFrames[i % VARIANTS]!));
    if (r.status !== 200) throw new Error(r.body);
  });
  const jsonParse = measure(count, (i) => {
    JSON.parse(bodies[i % VARIANTS]!);
  });
  const responseObjects = tensors.map((values) => ({
    model_name: 'resnet',
    model_version: '1',
    id: 'bench',
    outputs: [{ name: 'out', datatype: 'FP32', shape, data: Array.from(values) }],
  }));
  const jsonStringify = measure(count, (i) => {
    JSON.stringify(responseObjects[i % VARIANTS]);
  });
  return {
    shape,
    elements: n,
    restRequestBytes: bodies[0]!.length,
    grpcRequestBytes: { typed: requestBytes, raw: rawRequestBytes },
    restResponseBytes: jsonBytes,
    requestTyped,
    requestRaw,
    responseTyped,
    responseRaw,
    jsonParseUs: jsonParse.cpuUs,
    jsonStringifyUs: jsonStringify.cpuUs,
    roundTripTypedCpuUs: round(requestTyped.cpuUs + responseTyped.cpuUs),
    roundTripRawCpuUs: round(requestRaw.cpuUs + responseRaw.cpuUs),
  };
}

const UPSTREAM = fileURLToPath(new URL('./lib/kserve-upstream.ts', import.meta.url));
const E2E_SECONDS = QUICK ? 2 : 10;

interface EndToEnd {
  cpuUsPerRequest: number;
  requestsPerSecond: number;
  nonOk: number;
}

/**
 * Warm-up requests that all run to their end, so the warm-up's ending leaves no aborted streams
 * behind to skew the measured run. (Aborted HTTP/2 uploads once wedged the gateway in
 * Http2Session::SendPendingData; src/dataplane/upstream/h2-abort-guard.ts prevents that, and
 * bench/h2-abort-spin.ts checks it.)
 */
async function warmUp(url: string, body: string): Promise<void> {
  const pool = new Pool(new URL(url).origin, { connections: 16 });
  const path = new URL(url).pathname;
  try {
    const worker = async () => {
      for (let i = 0; i < 250; i++) {
        const r = await pool.request({
          method: 'POST',
          path,
          headers: { 'content-type': 'application/json' },
          body,
        });
        await r.body.dump();
        if (r.statusCode !== 200) throw new Error(`warm-up: ${r.statusCode}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    await pool.close();
  }
}

async function endToEnd(): Promise<Record<string, unknown>> {
  const wrk = which('wrk');
  if (!wrk) return { skipped: 'wrk not found' };
  installCleanup();
  const cpus = allowedCpus();
  const canPin = cpus.length >= 2 && which('taskset') !== undefined;
  const loadCpu = canPin ? cpus[0] : undefined;
  const proxyCpu = canPin ? cpus[1] : undefined;
  const clk = clockTicksPerSecond();
  const dir = tempDir('mg-bench-kserve-');
  const out: Record<string, unknown> = { pinned: canPin, seconds: E2E_SECONDS };
  for (const n of QUICK ? [16] : [16, 1024]) {
    const body = JSON.stringify({
      id: 'bench',
      inputs: [{ name: 'data', datatype: 'FP32', shape: [1, n], data: Array.from(tensor(n, 1)) }],
    });
    const script = path.join(dir, `post-${n}.lua`);
    writeFileSync(
      script,
      `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[${body}]==]\n`,
    );
    const cases: Record<string, EndToEnd> = {};
    for (const name of ['http', 'h2c', 'translated'] as const) {
      const protocol = name === 'translated' ? 'grpc' : name;
      const upstream = await startNodeChild({
        script: UPSTREAM,
        args: ['--protocol', protocol, '--elements', String(n)],
        cpu: loadCpu,
      });
      const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: infer, namespace: bench}
spec:
  accessLog: {enabled: false}
  rules:
    - backends: [{name: b, urls: ["${upstream.url}"], protocol: ${protocol === 'http' ? 'HTTP' : protocol === 'h2c' ? 'H2C' : 'GRPC'}}]${name === 'translated' ? '\n      translation: {kserveV2: {}}' : ''}
`);
      const file = path.join(dir, `${name}-${n}.json`);
      writeFileSync(file, JSON.stringify(table));
      const gw = await startNodeChild({ args: ['--mode', 'gateway', '--table', file], cpu: proxyCpu });
      try {
        const url = `${gw.url}/v2/models/bench/infer`;
        await warmUp(url, body);
        const before = cpuTicks(gw.pid)!;
        const r = await runWrk(wrk, url, { connections: 16, seconds: E2E_SECONDS, cpu: loadCpu, script });
        const ticks = cpuTicks(gw.pid)! - before;
        cases[name] = {
          cpuUsPerRequest: round(((ticks / clk) * 1e6) / r.requests),
          requestsPerSecond: Math.round(r.requestsPerSecond),
          nonOk: r.nonOk,
        };
      } finally {
        await gw.exit();
        await upstream.exit();
      }
    }
    out[`fp32x${n}`] = {
      restRequestBytes: body.length,
      ...cases,
      translationCpuUs: round(cases.translated!.cpuUsPerRequest - cases.h2c!.cpuUsPerRequest),
      overHttpCpuUs: round(cases.translated!.cpuUsPerRequest - cases.http!.cpuUsPerRequest),
    };
  }
  return out;
}

const started = performance.now();
const results = {
  small: benchCase([1, 16], QUICK ? 5_000 : 50_000, 64),
  large: benchCase([1, 3, 224, 224], QUICK ? 10 : 100, 3),
};
const e2e = await endToEnd();

console.log(
  JSON.stringify(
    {
      bench: 'kserve',
      node: process.version,
      quick: QUICK,
      runs: RUNS,
      results,
      endToEnd: e2e,
      totalMs: Math.round(performance.now() - started),
    },
    null,
    2,
  ),
);
