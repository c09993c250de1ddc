/**
 * Process plumbing for the proxy benchmarks: spawning children that are always killed when the
 * bench ends (normally, on an error or on a signal), waiting for ports instead of sleeping, temp
 * dirs that are removed, CPU pinning and CPU time from /proc.
 */
import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooked = false;

/** Kills every child still running (SIGKILL) and removes temp dirs. Synchronous: safe in 'exit'. */
export function cleanupSync(): void {
  for (const c of children) {
    if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  children.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Installs the exit, signal and crash hooks once. */
export function installCleanup(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`bench: ${sig}, stopping children\n`);
      cleanupSync();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (e) => {
    process.stderr.write(`bench: ${e.stack ?? e}\n`);
    cleanupSync();
    process.exit(1);
  });
  process.on('unhandledRejection', (e) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? e}\n`);
    cleanupSync();
    process.exit(1);
  });
}

export function tempDir(prefix: string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(d);
  return d;
}

export interface Tracked {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The last 8 KiB of stderr, for error messages. */
  stderr(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Spawns a tracked child. stderr is kept (bounded); stdout is ignored unless `stdio` says otherwise. */
export function spawnTracked(cmd: string, args: string[], opts: SpawnOptions = {}): Tracked {
  installCleanup();
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  children.add(child);
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    err = (err + d).slice(-8192);
  });
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve(signal ?? String(code));
    });
    child.once('error', (e) => {
      children.delete(child);
      err += String(e);
      resolve('error');
    });
  });
  const pid = child.pid;
  return {
    child,
    pid,
    stderr: () => err,
    exited,
    async stop(graceMs = 3000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion with a hard time limit; returns stdout. */
export async function runTracked(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ stdout: string; stderr: string; code: string }> {
  const t = spawnTracked(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  t.child.stdout?.setEncoding('utf8');
  t.child.stdout?.on('data', (d: string) => {
    out += d;
  });
  const timer = setTimeout(() => t.child.kill('SIGKILL'), timeoutMs);
  const code = await t.exited;
  clearTimeout(timer);
  return { stdout: out, stderr: t.stderr(), code };
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Waits until 127.0.0.1:port accepts connections; fails early if `proc` exits. */
export async function waitForPort(port: number, timeoutMs: number, proc?: Tracked): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let dead = false;
  proc?.exited.then(() => {
    dead = true;
  });
  while (Date.now() < deadline) {
    if (dead) throw new Error(`process exited before listening on ${port}: ${proc?.stderr().trim()}`);
    if (await tryConnect(port)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** Absolute path of an executable on PATH (or in the sbin dirs, where nginx lives), or undefined. */
export function which(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The CPUs this process may run on (Cpus_allowed_list), in order. */
export function allowedCpus(): number[] {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Cpus_allowed_list:'));
    const out: number[] = [];
    for (const part of (line?.split(':')[1] ?? '').trim().split(',')) {
      if (!part) continue;
      const [a, b] = part.split('-').map(Number);
      for (let c = a!; c <= (b ?? a!); c++) out.push(c);
    }
    if (out.length > 0) return out;
  } catch {
    // not Linux
  }
  return Array.from({ length: os.availableParallelism() }, (_, i) => i);
}

export function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/** utime + stime of a process (all its threads), in clock ticks; undefined when it is gone. */
export function cpuTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces; the fields after its ')' are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(rest[11]) + Number(rest[12]);
}

/** utime + stime + cutime + cstime of this process (children count once they are reaped). */
function selfTicks(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
}

/** user+nice+system, steal and all columns of the given CPUs (all CPUs when undefined). */
function cpuLines(cpus: readonly number[] | undefined): {
  work: number;
  steal: number;
  total: number;
  n: number;
} {
  const lines = readFileSync('/proc/stat', 'utf8').split('\n');
  const wanted = cpus ? new Set(cpus.map((c) => `cpu${c}`)) : new Set(['cpu']);
  let work = 0;
  let steal = 0;
  let total = 0;
  for (const l of lines) {
    const f = l.split(/\s+/);
    if (!wanted.has(f[0]!)) continue;
    const v = f.slice(1).map(Number);
    work += v[0]! + v[1]! + v[2]!;
    steal += v[7] ?? 0;
    total += v.slice(0, 8).reduce((a, b) => a + b, 0);
  }
  return { work, steal, total, n: cpus ? cpus.length : os.availableParallelism() };
}

/**
 * Watches for CPU use that is not ours on the bench's cores during a run: user+system time of the
 * cores (or of all CPUs when nothing is pinned) minus that of the watched processes, of this
 * process and of the children it reaped meanwhile (wrk, the fixed-rate generator), plus steal
 * time; in cores (1 = a whole core busy with something else). Kernel softirq time (the loopback
 * TCP work) is in neither side. Other people's jobs on a shared machine show up here.
 */
export function watchOtherLoad(cpus: readonly number[] | undefined, pids: readonly number[]): () => number {
  const ticks = () => pids.reduce((n, p) => n + (cpuTicks(p) ?? 0), 0) + selfTicks();
  const c0 = cpuLines(cpus);
  const t0 = ticks();
  return () => {
    const c1 = cpuLines(cpus);
    const ours = ticks() - t0;
    const elapsedPerCpu = (c1.total - c0.total) / c1.n;
    if (elapsedPerCpu <= 0) return 0;
    const other = c1.work - c0.work - ours + (c1.steal - c0.steal);
    return Math.max(0, other) / elapsedPerCpu;
  };
}

/** Resident set size from /proc/<pid>/status, in bytes. */
export function rssBytes(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('VmRSS:'));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Anonymous (private, non-file) memory of a process from /proc/<pid>/smaps_rollup, in bytes: RSS
 * without the shared pages of the node binary and libraries.
 */
export function anonymousBytes(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Anonymous:'));
    return line ? Number(line.split(/\s+/)[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** `taskset -c CPU cmd args` when pinning is possible, else the command itself. */
export function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  const taskset = cpu === undefined ? undefined : which('taskset');
  return taskset ? [taskset, ['-c', String(cpu), cmd, ...args]] : [cmd, args];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
