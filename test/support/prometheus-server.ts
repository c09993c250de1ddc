/**
 * A real prometheus server for tests, on 127.0.0.1 and a free port, scraping the given targets
 * every second (or every `scrapeIntervalMs`), its TSDB in a temporary directory removed on close.
 * `close()` kills it (SIGKILL: nothing of its state matters) and removes the directory.
 *
 * Without prometheus on PATH, `prometheusAvailable()` is false and tests should skip, except in CI
 * (CI set) where it throws: CI must have it (Debian: apt-get install prometheus).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const START_TIMEOUT_MS = 30_000;
const BIND_ATTEMPTS = 5;

export interface TestPrometheus {
  readonly port: number;
  /** http://127.0.0.1:<port> */
  readonly url: string;
  /** One instant query (at `time`, seconds, or now): the result vector. Throws on any error. */
  query(query: string, time?: number): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Stops the server (SIGKILL) and removes its directory. */
  close(): Promise<void>;
}

let available: boolean | undefined;

/** True when prometheus can be run; throws in CI when it cannot. */
export function prometheusAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync('prometheus', ['--version'], { stdio: 'ignore' });
    available = r.error === undefined && r.status === 0;
    if (!available && process.env.CI) throw new Error('prometheus is not on PATH: CI must install it');
  }
  return available;
}

/** A reason to skip (for `test(name, { skip }, …)`), or false when prometheus is there. */
export function skipWithoutPrometheus(): string | false {
  return prometheusAvailable() ? false : 'prometheus not on PATH (apt-get install prometheus)';
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface PrometheusOptions {
  /**
   * Time between scrapes, ms (default 1000; whole milliseconds, at least 10). The scrape timeout is
   * the same (prometheus refuses a timeout longer than the interval).
   */
  scrapeIntervalMs?: number;
}

function config(targets: readonly string[], opts: PrometheusOptions): string {
  const list = targets.map((t) => `'${t}'`).join(', ');
  const ms = opts.scrapeIntervalMs ?? 1000;
  if (!Number.isInteger(ms) || ms < 10) throw new Error(`scrapeIntervalMs ${ms}: a whole number >= 10`);
  const every = `${ms}ms`;
  return [
    'global:',
    `  scrape_interval: ${every}`,
    `  scrape_timeout: ${every}`,
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: modelgate',
    `    scrape_interval: ${every}`,
    `    scrape_timeout: ${every}`,
    '    static_configs:',
    `      - targets: [${list}]`,
    '',
  ].join('\n');
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

async function spawnServer(port: number, dir: string): Promise<Running> {
  const args = [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ];
  const child = spawn('prometheus', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  installExitHook();
  live.add(child);
  // A server leaked by a failed test must not keep the test process alive: the exit hook kills it.
  child.unref();
  (child.stdout as Socket | null)?.unref();
  (child.stderr as Socket | null)?.unref();
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exitedWith: string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      exitedWith = `code ${code} signal ${signal}`;
      resolve();
    });
    child.on('error', (err) => {
      live.delete(child);
      exitedWith = err.message;
      resolve();
    });
  });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitedWith !== undefined) {
      throw new Error(`prometheus on port ${port} exited (${exitedWith}):\n${output}`);
    }
    try {
      const res = await fetch(`http://127.0.0.1:${port}/-/ready`, { signal: AbortSignal.timeout(1000) });
      await res.text();
      // Ready, and ours (not another server that took the port: ours then exits, bind failure).
      if (res.status === 200 && (await storagePath(port)) === join(dir, 'data')) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`prometheus on port ${port} not ready after ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await delay(50);
  }
  return { child, exited };
}

/** The answering prometheus's --storage.tsdb.path, which tells ours from another. */
async function storagePath(port: number): Promise<string | undefined> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/status/flags`, {
    signal: AbortSignal.timeout(1000),
  });
  const body = (await res.json()) as { data?: Record<string, string> };
  return body.data?.['storage.tsdb.path'];
}

function isBindFailure(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return /address already in use|bind/i.test(m);
}

/** Starts prometheus scraping `targets` ("host:port", path /metrics) every second (or as `opts` say). */
export async function startPrometheus(
  targets: readonly string[],
  opts: PrometheusOptions = {},
): Promise<TestPrometheus> {
  if (!prometheusAvailable()) throw new Error('prometheus not on PATH');
  const text = config(targets, opts);
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'mg-prometheus-'));
  dirs.add(dir);
  writeFileSync(join(dir, 'prometheus.yml'), text);
  const removeDir = () => {
    rmSync(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };
  let running: Running | undefined;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      running = await spawnServer(port, dir);
      break;
    } catch (err) {
      if (attempt >= BIND_ATTEMPTS || !isBindFailure(err)) {
        removeDir();
        throw err;
      }
    }
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    async query(query, time) {
      const params = new URLSearchParams({ query });
      if (time !== undefined) params.set('time', String(time));
      const res = await fetch(`${url}/api/v1/query?${params}`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as {
        status: string;
        error?: string;
        data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
      };
      if (res.status !== 200 || body.status !== 'success') {
        throw new Error(`query ${query}: HTTP ${res.status} ${body.error ?? ''}`);
      }
      if (body.data.resultType !== 'vector') throw new Error(`query ${query}: ${body.data.resultType}`);
      return body.data.result;
    },
    async close() {
      const r = running;
      running = undefined;
      if (r !== undefined) {
        // Keep the process alive until the server has gone (the child is unref'd).
        r.child.ref();
        r.child.kill('SIGKILL');
        await r.exited;
      }
      removeDir();
    },
  };
}
