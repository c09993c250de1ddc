/**
 * Real redis-server processes for tests, on 127.0.0.1 and a free port, without persistence, in a
 * temporary directory that is removed on close. `stop()` kills the server with SIGKILL (a crash);
 * `restart()` starts a fresh one (no data) on the same port and in the same mode. Cluster mode is a
 * one-node cluster (`--cluster-enabled yes`) owning all 16384 slots.
 *
 * Without redis-server on PATH, `redisAvailable()` is false and tests should skip, except in CI
 * (CI set) where it throws: CI must have it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

const START_TIMEOUT_MS = 10_000;
const BIND_ATTEMPTS = 5;

export interface TestRedis {
  readonly port: number;
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly cluster: boolean;
  /** SIGKILL: simulates a crash. */
  stop(): Promise<void>;
  /** A fresh server (no data) on the same port and in the same mode. */
  restart(): Promise<void>;
  /** Stops the server and removes its directory. */
  close(): Promise<void>;
  /** SIGSTOP: the server keeps its connections but answers nothing (a hung server). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
}

let available: boolean | undefined;

/** True when redis-server can be run; throws in CI when it cannot. */
export function redisAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
    available = r.error === undefined && r.status === 0;
    if (!available && process.env.CI) throw new Error('redis-server is not on PATH: CI must install it');
  }
  return available;
}

/** A reason to skip (for `test(name, { skip }, …)`), or false when redis-server is there. */
export function skipWithoutRedis(): string | false {
  return redisAvailable() ? false : 'redis-server not on PATH';
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;

/** Servers and directories a test left behind go when the test process exits. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
}

function makeDir(): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), 'mg-redis-'));
  dirs.add(dir);
  return dir;
}

function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
}

function freePort(): Promise<number> {
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

/** Asks `INFO server` over a fresh connection: the answering server's pid, or undefined. */
function serverPid(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let data = '';
    const done = (pid: number | undefined): void => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(1000, () => done(undefined));
    socket.on('error', () => done(undefined));
    socket.on('connect', () => socket.write('INFO server\r\n'));
    socket.on('data', (chunk) => {
      data += chunk.toString('latin1');
      if (data.startsWith('-')) return done(undefined);
      const m = /process_id:(\d+)/.exec(data);
      if (m) done(Number(m[1]));
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

/** Spawns redis-server; resolves once it answers on its port, rejects if it exits or times out. */
async function spawnServer(port: number, dir: string, cluster: boolean): Promise<Running> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--protected-mode', 'no');
  if (cluster) {
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'));
    args.push('--cluster-announce-ip', '127.0.0.1');
  }
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
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
      throw new Error(`redis-server on port ${port} exited (${exitedWith}):\n${output}`);
    }
    // Our process, not another one that took the port meanwhile (ours then exits: bind failure).
    if ((await serverPid(port)) === child.pid) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} not answering after ${START_TIMEOUT_MS} ms:\n${output}`);
    }
    await delay(20);
  }
  if (cluster) {
    try {
      await assignAllSlots(port, deadline);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }
  return { child, exited };
}

async function assignAllSlots(port: number, deadline: number): Promise<void> {
  const admin = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  try {
    await admin.connect();
    try {
      await admin.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    } catch {
      // Redis < 7: no ADDSLOTSRANGE.
      await admin.call('CLUSTER', 'ADDSLOTS', ...Array.from({ length: 16384 }, (_, i) => String(i)));
    }
    for (;;) {
      const info = String(await admin.call('CLUSTER', 'INFO'));
      if (info.includes('cluster_state:ok')) return;
      if (Date.now() > deadline) throw new Error(`cluster on port ${port} not ok:\n${info}`);
      await delay(20);
    }
  } finally {
    admin.disconnect();
  }
}

function isBindFailure(err: unknown): boolean {
  const m = err instanceof Error ? err.message : '';
  return /address already in use|could not create server tcp listening socket|bind/i.test(m);
}

export async function startRedis(opts: { cluster?: boolean } = {}): Promise<TestRedis> {
  if (!redisAvailable()) throw new Error('redis-server not on PATH');
  const cluster = opts.cluster ?? false;
  let dir = makeDir();
  let running: Running | undefined;
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      running = await spawnServer(port, dir, cluster);
      break;
    } catch (err) {
      if (attempt >= BIND_ATTEMPTS || !isBindFailure(err)) {
        removeDir(dir);
        throw err;
      }
    }
  }
  const stop = async (): Promise<void> => {
    const r = running;
    running = undefined;
    if (r === undefined) return;
    // Keep the process alive until the server has gone (the child is unref'd).
    r.child.ref();
    r.child.kill('SIGKILL');
    await r.exited;
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cluster,
    stop,
    async restart() {
      await stop();
      // Fresh data: a new directory (no nodes.conf, so a new cluster node owning all slots again).
      removeDir(dir);
      dir = makeDir();
      running = await spawnServer(port, dir, cluster);
    },
    pause() {
      running?.child.kill('SIGSTOP');
    },
    resume() {
      running?.child.kill('SIGCONT');
    },
    async close() {
      running?.child.kill('SIGCONT');
      await stop();
      removeDir(dir);
    },
  };
}
