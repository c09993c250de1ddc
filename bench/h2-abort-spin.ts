/**
 * bench/h2-abort-spin: reproduces the gateway spinning at 100% CPU after clients abort requests
 * whose bodies are still on their way to an HTTP/2 upstream, and tells whether it still does.
 *
 * The defect (undici ≥ 8.7 on Node's http2; src/dataplane/upstream/h2-abort-guard.ts has the
 * details and the fix): undici aborts an HTTP/2 request with `stream.close()` (NO_ERROR) and
 * `stream.destroy()` at once. When the request body is still queued in the stream (held by the
 * upstream's flow-control window, or behind a socket write), Node defers the RST_STREAM of a
 * NO_ERROR close until the body has gone out, the destroy() drops it, and the native stream is
 * freed while nghttp2 still has the body's DATA scheduled. The next WINDOW_UPDATE makes nghttp2
 * ask for that data: Node finds no stream and answers "0 bytes, not the end", and
 * Http2Session::SendPendingData loops for ever making empty DATA frames in memory (no syscalls, no
 * JavaScript; RSS grows by hundreds of MB a second until std::bad_alloc aborts the process).
 *
 * Each case starts a gateway child (bench/lib/gateway-child.ts) with one route to an HTTP/2
 * upstream, makes clients abort (raw TCP sockets, no wrk), and then watches the gateway's CPU time
 * (/proc/<pid>/stat) while nothing runs:
 *
 *   load              (default) the earlier wrk reproduction without wrk: an upstream child that
 *                     reads every body at once and answers as bench/lib/kserve-upstream.ts does
 *                     (FP32 [1, 1024]), `--clients` connections POSTing the ~19 KB v2 inference
 *                     body for `--seconds`, each destroying its socket 0–3 ms after writing its
 *                     request (most before their answer). Probabilistic, like wrk's teardown, but
 *                     thousands of aborts a second; it wedged the gateway within ~600 of them.
 *                     `--route translated`: the KServe v2 REST → gRPC translation in front of a
 *                     gRPC upstream instead of an H2C route.
 *   lockstep          deterministic: an in-process h2c upstream that advertises a 16 KiB stream
 *                     window and reads nothing until told; each client sends a 24 KiB body and is
 *                     destroyed once the upstream holds the first 16 KiB, so the gateway is left
 *                     with 8 KiB it cannot send; then the upstream starts reading (its
 *                     WINDOW_UPDATEs are what set the loop off). The default route replays bodies
 *                     up to 1 MiB, so it sends them as one buffer.
 *   lockstep-streamed the same on a route without retries (the body streams through: 16 KiB, then
 *                     the last 8 KiB once the upstream holds the first).
 *   all               the three, in that order.
 *
 * After the aborts: 0.5 s to settle, then the gateway's CPU ticks over `--idle` seconds with
 * nothing in flight, printed as ticks/s (a spin is ~100/s: one core at CLK_TCK 100), its RSS, and
 * the status of a normal request made afterwards through the same upstream. A watchdog kills the
 * gateway when its RSS passes 1 GiB (the spin's memory growth; this may be a shared machine).
 * Exit code 1 when the gateway spins (more than half a core while idle), dies, or does not answer
 * the follow-up with 200. Every child is killed at the end, on errors and on signals.
 *
 *   node bench/h2-abort-spin.ts [--mode load|lockstep|lockstep-streamed|all]
 *                               [--route h2c|translated] [--seconds 3] [--clients 16] [--idle 1]
 */
import { writeFileSync } from 'node:fs';
import { createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type NodeChild, startNodeChild } from './lib/node-child.ts';
import { clockTicksPerSecond, cpuTicks, installCleanup, rssBytes, tempDir } from './lib/procs.ts';
import { compileYaml } from './lib/routes.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'load' },
    route: { type: 'string', default: 'h2c' },
    seconds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '16' },
    idle: { type: 'string', default: '1' },
    /** Internal: run as the load mode's upstream child (h2c or grpc). */
    'upstream-child': { type: 'string' },
  },
});
const SECONDS = Math.min(30, Math.max(0.5, Number(values.seconds)));
const CLIENTS = Math.min(64, Math.max(1, Number(values.clients)));
const IDLE_S = Math.min(10, Math.max(0.5, Number(values.idle)));
/** A request (or a lockstep wait) that takes longer than this is given up. */
const STEP_TIMEOUT_MS = 5_000;
/** More than half a core while idle is a spin (a healthy idle gateway uses ~0). */
const SPIN_CORE_SHARE = 0.5;
/** Gateway RSS above this is the spin's memory growth (a healthy one stays near 100–300 MB). */
const RSS_LIMIT_BYTES = 1024 * 1048576;
/** The lockstep upstream's stream window, and the part of each body it receives. */
const WINDOW = 16_384;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (b: number) => Math.round(b / 1048576);
const round1 = (x: number) => Math.round(x * 10) / 10;
const SELF = fileURLToPath(import.meta.url);
const INFER_PATH = '/v2/models/bench/infer';

/** The FP32 [1, n] tensor the load mode's bodies and answers carry (as bench/kserve.ts's). */
function tensor(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 7.1 + seed * 13.7) * 100));
}

/**
 * The load mode's upstream child: what bench/lib/kserve-upstream.ts serves (reads every body at
 * once, node:http2 defaults, the FP32 [1, 1024] answer as gRPC or as its REST JSON form), except
 * that a stream the gateway has reset before the answer is left alone. kserve-upstream's
 * respond() throws on such a stream (ERR_HTTP2_INVALID_STREAM) and that upstream exits, which it
 * does as soon as the gateway cancels its aborted requests properly.
 */
async function serveUpstream(grpc: boolean): Promise<void> {
  const { encodeFramed } = await import('../src/dataplane/kserve/grpc-frame.ts');
  const { encodeModelInferResponse } = await import('../src/dataplane/kserve/messages.ts');
  const { translateResponse } = await import('../src/dataplane/kserve/rest-json.ts');
  const n = 1024;
  const frame = encodeFramed(encodeModelInferResponse, {
    modelName: 'bench',
    modelVersion: '1',
    outputs: [
      { name: 'out', datatype: 'FP32', shape: [1, n], contents: { fp32: Float32Array.from(tensor(n, 0)) } },
    ],
  });
  const json = translateResponse(
    { kind: 'model_infer', model: 'bench', version: '' },
    {
      status: 200,
      headers: { 'content-type': 'application/grpc' },
      body: frame,
      trailers: { 'grpc-status': '0' },
    },
  ).body;
  const exit = () => process.exit(0);
  process.on('message', (m: { type: string }) => {
    if (m.type === 'exit') exit();
  });
  process.on('disconnect', exit);
  process.on('SIGTERM', exit);
  const server = createH2Server();
  server.on('stream', (stream) => {
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return; // reset by the gateway: nobody to answer
      if (grpc) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(json);
      }
    });
  });
  server.listen(0, '127.0.0.1', () =>
    process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port }),
  );
}

let dir = '';

async function startGateway(
  upstreamUrl: string,
  protocol: 'H2C' | 'GRPC',
  translated: boolean,
  ruleExtra = '',
): Promise<NodeChild> {
  const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: spin, namespace: bench}
spec:
  accessLog: {enabled: false}
  rules:
    - backends: [{name: b, urls: ["${upstreamUrl}"], protocol: ${protocol}}]${translated ? '\n      translation: {kserveV2: {}}' : ''}${ruleExtra ? `\n      ${ruleExtra}` : ''}
`);
  const file = path.join(dir, `table-${protocol}-${translated}-${ruleExtra ? 'extra' : 'plain'}.json`);
  writeFileSync(file, JSON.stringify(table));
  return startNodeChild({ args: ['--mode', 'gateway', '--table', file], cpu: undefined });
}

function requestHead(port: number, urlPath: string, length: number): string {
  return (
    `POST ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${length}\r\n\r\n`
  );
}

/** The body of the last non-200 answer `oneRequest` saw, for the report. */
let lastError = '';

/** One request on a fresh connection; resolves with its status (0: no answer in time). */
function oneRequest(port: number, urlPath: string, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (status: number) => {
      clearTimeout(timer);
      s.destroy();
      resolve(status);
    };
    const timer = setTimeout(() => done(0), STEP_TIMEOUT_MS);
    s.on('error', () => done(0));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got);
      if (!m) return;
      if (m[1] === '200') done(200);
      else if (got.includes('}')) {
        lastError = got.slice(got.indexOf('\r\n\r\n') + 4, 400);
        done(Number(m[1]));
      }
    });
    s.write(requestHead(port, urlPath, body.length));
    s.write(body);
  });
}

/** Load: clients that write a whole request, then destroy their socket after 0–3 ms. */
async function abortLoad(port: number, body: Buffer, stop: () => boolean): Promise<number> {
  const request = Buffer.concat([Buffer.from(requestHead(port, INFER_PATH, body.length)), body]);
  const deadline = performance.now() + SECONDS * 1000;
  const maxPerClient = 100_000;
  let aborted = 0;
  const worker = async () => {
    for (let i = 0; i < maxPerClient && performance.now() < deadline && !stop(); i++) {
      await new Promise<void>((resolve) => {
        const s: Socket = connect(port, '127.0.0.1');
        const finish = () => {
          s.destroy();
          resolve();
        };
        s.on('error', finish);
        s.on('connect', () => {
          aborted++;
          s.write(request);
          setTimeout(finish, Math.random() * 3);
        });
      });
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  return aborted;
}

interface Watchdog {
  stop(): void;
  /** RSS when it killed the gateway; undefined while it has not. */
  killedAtMB: number | undefined;
  /** The gateway's CPU ticks/s over the last second (or less) before the kill. */
  ticksPerSBeforeKill: number | undefined;
}

/**
 * Kills the gateway when its memory runs away (the spin grows it until std::bad_alloc), and notes
 * how busy it was just before.
 */
function rssWatchdog(gw: NodeChild): Watchdog {
  const samples: { at: number; ticks: number }[] = [];
  const w: Watchdog = {
    killedAtMB: undefined,
    ticksPerSBeforeKill: undefined,
    stop: () => clearInterval(timer),
  };
  const timer = setInterval(() => {
    const rss = rssBytes(gw.pid);
    const ticks = cpuTicks(gw.pid);
    if (rss === undefined || ticks === undefined || w.killedAtMB !== undefined) return;
    const at = performance.now();
    samples.push({ at, ticks });
    while (samples.length > 1 && at - samples[0]!.at > 1000) samples.shift();
    if (rss <= RSS_LIMIT_BYTES) return;
    gw.proc.child.kill('SIGKILL');
    w.killedAtMB = mb(rss);
    const first = samples[0]!;
    if (at > first.at) w.ticksPerSBeforeKill = round1((ticks - first.ticks) / ((at - first.at) / 1000));
  }, 50);
  timer.unref();
  return w;
}

interface Outcome {
  name: string;
  aborted: number;
  idleTicksPerS: number | null;
  rssBeforeMB?: number;
  rssAfterMB?: number;
  followUpStatus: number;
  spinning: boolean;
  note?: string;
}

/** The idle window: CPU ticks/s and RSS of the gateway, then a normal request. */
async function judge(
  name: string,
  gw: NodeChild,
  watchdog: Watchdog,
  aborted: number,
  clk: number,
  followUp: () => Promise<number>,
): Promise<Outcome> {
  const gone = async (): Promise<Outcome> => ({
    name,
    aborted,
    // Killed in the spin: how busy it was in the second before (load mode: that may overlap the load).
    idleTicksPerS: watchdog.ticksPerSBeforeKill ?? null,
    followUpStatus: 0,
    spinning: true,
    note:
      watchdog.killedAtMB !== undefined
        ? `killed at ${watchdog.killedAtMB} MB RSS (memory running away, the event loop stuck); ticks/s over the second before`
        : `the gateway exited (${await gw.proc.exited}): ${gw.proc.stderr().trim().slice(-300)}`,
  });
  await sleep(500);
  const rss0 = rssBytes(gw.pid);
  const t0 = cpuTicks(gw.pid);
  if (rss0 === undefined || t0 === undefined) return gone();
  const w0 = performance.now();
  await sleep(IDLE_S * 1000);
  const t1 = cpuTicks(gw.pid);
  const rss1 = rssBytes(gw.pid);
  if (t1 === undefined || rss1 === undefined) return gone();
  const idleTicksPerS = round1((t1 - t0) / ((performance.now() - w0) / 1000));
  const spinning = idleTicksPerS > SPIN_CORE_SHARE * clk;
  // A spinning gateway never answers (and its memory keeps growing): it is killed instead.
  const followUpStatus = spinning ? 0 : await followUp();
  return {
    name,
    aborted,
    idleTicksPerS,
    rssBeforeMB: mb(rss0),
    rssAfterMB: mb(rss1),
    followUpStatus,
    spinning,
    ...(!spinning && followUpStatus !== 200 ? { note: `follow-up answer: ${lastError}` } : {}),
  };
}

async function loadCase(translated: boolean, clk: number): Promise<Outcome> {
  const upstream = await startNodeChild({
    script: SELF,
    args: ['--upstream-child', translated ? 'grpc' : 'h2c'],
    cpu: undefined,
  });
  const gw = await startGateway(upstream.url, translated ? 'GRPC' : 'H2C', translated);
  const watchdog = rssWatchdog(gw);
  try {
    const body = Buffer.from(
      JSON.stringify({
        id: 'bench',
        inputs: [{ name: 'data', datatype: 'FP32', shape: [1, 1024], data: tensor(1024, 1) }],
      }),
    );
    // The gateway's H2 session is up and answers before the load.
    const warm = await oneRequest(gw.port, INFER_PATH, body);
    if (warm !== 200) throw new Error(`warm-up request answered ${warm}: ${lastError}`);
    const gone = () => gw.proc.child.exitCode !== null || gw.proc.child.signalCode !== null;
    const aborted = await abortLoad(gw.port, body, gone);
    return await judge(`load ${translated ? 'translated' : 'h2c'}`, gw, watchdog, aborted, clk, () =>
      oneRequest(gw.port, INFER_PATH, body),
    );
  } finally {
    watchdog.stop();
    await gw.proc.stop(1000);
    await upstream.exit(2000);
  }
}

/**
 * Lockstep: every abort leaves 8 KiB of body the gateway could not send. `streamed`: a route that
 * does not retry, so the body streams through; the default one reads bodies up to 1 MiB first (to
 * replay them) and sends them as one buffer.
 */
async function lockstepCase(streamed: boolean, clk: number): Promise<Outcome> {
  const held: ServerHttp2Stream[] = [];
  const server = createH2Server({ settings: { initialWindowSize: WINDOW } });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    if (headers[':path'] === '/hold') {
      stream.pause(); // read nothing: no WINDOW_UPDATE until the bench says so
      held.push(stream);
      return;
    }
    let n = 0;
    stream.on('data', (d: Buffer) => {
      n += d.length;
    });
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end(`got ${n}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gw = await startGateway(upstreamUrl, 'H2C', false, streamed ? 'retries: {attempts: 0}' : '');
  const watchdog = rssWatchdog(gw);
  const body = Buffer.alloc(WINDOW + 8192, 'x');
  const clients: Socket[] = [];
  try {
    // The gateway's H2 session is up and has the upstream's SETTINGS (its 16 KiB window).
    const warm = await oneRequest(gw.port, '/ok', body);
    if (warm !== 200) throw new Error(`warm-up request answered ${warm}: ${lastError}`);
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    const until = async (what: string, cond: () => boolean) => {
      while (!cond()) {
        if (performance.now() > deadline) throw new Error(`lockstep: timed out waiting for ${what}`);
        await sleep(5);
      }
    };
    for (let i = 0; i < CLIENTS; i++) {
      const s = connect(gw.port, '127.0.0.1');
      s.on('error', () => {});
      clients.push(s);
      s.write(requestHead(gw.port, '/hold', body.length));
      s.write(streamed ? body.subarray(0, WINDOW) : body);
      // The upstream holds the first 16 KiB: the stream's window is closed, the rest waits in the
      // gateway (a buffered body was written and ended at once).
      await until('the first 16 KiB upstream', () => (held[i]?.readableLength ?? 0) >= WINDOW);
      if (streamed) {
        // The last 8 KiB: the gateway writes them and ends its upstream stream before it sees the
        // close (data and FIN arrive in order).
        s.write(body.subarray(WINDOW));
        await sleep(20);
      }
      s.destroy();
    }
    await sleep(200); // the gateway aborts its upstream requests on the clients' close
    for (const st of held) st.resume(); // the upstream reads now: WINDOW_UPDATEs reach the gateway
    const name = `lockstep ${streamed ? 'streamed' : 'buffered'}`;
    return await judge(name, gw, watchdog, clients.length, clk, () => oneRequest(gw.port, '/ok', body));
  } finally {
    watchdog.stop();
    for (const s of clients) s.destroy();
    await gw.proc.stop(1000);
    for (const st of held) st.destroy();
    server.close();
  }
}

async function main(): Promise<void> {
  installCleanup();
  dir = tempDir('mg-h2-abort-spin-');
  const clk = clockTicksPerSecond();
  const modes = values.mode === 'all' ? ['load', 'lockstep', 'lockstep-streamed'] : [values.mode];
  const outcomes: Outcome[] = [];
  for (const mode of modes) {
    if (mode === 'load') outcomes.push(await loadCase(values.route === 'translated', clk));
    else if (mode === 'lockstep') outcomes.push(await lockstepCase(false, clk));
    else if (mode === 'lockstep-streamed') outcomes.push(await lockstepCase(true, clk));
    else throw new Error(`unknown --mode ${mode}`);
  }
  const failed = outcomes.some((o) => o.spinning || o.followUpStatus !== 200);
  console.log(
    JSON.stringify(
      {
        bench: 'h2-abort-spin',
        node: process.version,
        clockTicksPerSecond: clk,
        seconds: SECONDS,
        clients: CLIENTS,
        idleSeconds: IDLE_S,
        outcomes,
        verdict: failed ? 'the gateway spins, died or does not answer' : 'ok',
      },
      null,
      2,
    ),
  );
  process.exit(failed ? 1 : 0);
}

if (values['upstream-child'] !== undefined) await serveUpstream(values['upstream-child'] === 'grpc');
else await main();
