/** Runs wrk (closed loop, keep-alive) and parses its summary. */
import { execFileSync } from 'node:child_process';
import { pinned, runTracked } from './procs.ts';

export interface WrkResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  avgLatencyMs: number;
  /** Responses outside 2xx/3xx. */
  nonOk: number;
  /** connect + read + write + timeout errors. */
  socketErrors: number;
}

export function wrkVersion(bin: string): string | undefined {
  try {
    execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    // wrk --version exits 1 after printing its banner.
    const out = (e as { stdout?: string }).stdout ?? '';
    return /wrk (\S+)/.exec(out)?.[1];
  }
  return undefined;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  if (unit === 'us') return v / 1000;
  if (unit === 's') return v * 1000;
  if (unit === 'm') return v * 60_000;
  return v;
}

export function parseWrk(out: string): WrkResult {
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  if (!done) throw new Error(`unexpected wrk output:\n${out}`);
  const requests = Number(done[1]);
  const seconds = toMs(done[2]!, done[3]!) / 1000;
  const lat = /Latency\s+([\d.]+)(us|ms|s|m)/.exec(out);
  const nonOk = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((n, x) => n + Number(x), 0) : 0;
  return {
    requests,
    seconds,
    requestsPerSecond: requests / seconds,
    avgLatencyMs: lat ? toMs(lat[1]!, lat[2]!) : Number.NaN,
    nonOk,
    socketErrors,
  };
}

/** wrk -t1 -cN -dS against `url`, pinned to `cpu`; bounded by the duration plus 30 s. */
export async function runWrk(
  bin: string,
  url: string,
  opts: {
    connections: number;
    seconds: number;
    cpu: number | undefined;
    headers?: readonly string[];
    /** A Lua script (`-s`), e.g. one that sets the method and body. */
    script?: string;
  },
): Promise<WrkResult> {
  const [cmd, args] = pinned(opts.cpu, bin, [
    '-t1',
    `-c${opts.connections}`,
    `-d${opts.seconds}s`,
    '--timeout',
    '5s',
    ...(opts.headers ?? []).flatMap((h) => ['-H', h]),
    ...(opts.script ? ['-s', opts.script] : []),
    url,
  ]);
  const r = await runTracked(cmd, args, opts.seconds * 1000 + 30_000);
  if (r.code !== '0') throw new Error(`wrk exited with ${r.code}: ${r.stderr}${r.stdout}`);
  return parseWrk(r.stdout);
}
