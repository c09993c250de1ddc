/** Parent side of bench/lib/gateway-child.ts: start it pinned, wait for it, ask it for memory stats. */
import { fileURLToPath } from 'node:url';
import { pinned, spawnTracked, type Tracked, waitForPort } from './procs.ts';

const CHILD = fileURLToPath(new URL('./gateway-child.ts', import.meta.url));

export interface NodeChild {
  readonly proc: Tracked;
  readonly pid: number;
  readonly port: number;
  readonly adminPort: number | undefined;
  readonly url: string;
  /** process.memoryUsage() of the child (after a full GC when `gc`). */
  memory(gc: boolean): Promise<NodeJS.MemoryUsage>;
  /** Starts the inspector's CPU profiler in the child. */
  profileStart(): Promise<void>;
  /** Stops it and writes the .cpuprofile to `file`. */
  profileStop(file: string): Promise<void>;
  /** Asks it to exit normally; kills it after `graceMs`. */
  exit(graceMs?: number): Promise<void>;
}

export async function startNodeChild(opts: {
  args: string[];
  cpu: number | undefined;
  /** The child script; default bench/lib/gateway-child.ts (compiled.ts builds a .js one). */
  script?: string;
  nodeFlags?: string[];
  timeoutMs?: number;
}): Promise<NodeChild> {
  const [cmd, args] = pinned(opts.cpu, process.execPath, [
    '--expose-gc',
    ...(opts.nodeFlags ?? []),
    opts.script ?? CHILD,
    ...opts.args,
  ]);
  const proc = spawnTracked(cmd, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  const child = proc.child;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ready = await new Promise<{ port: number; adminPort?: number }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`gateway child not ready after ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.on('message', (m: { type: string; port: number; adminPort?: number }) => {
      if (m.type !== 'ready') return;
      clearTimeout(timer);
      resolve(m);
    });
    proc.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway child exited (${code}) before it was ready: ${proc.stderr().trim()}`));
    });
  });
  await waitForPort(ready.port, 5000, proc);
  /** Sends `msg` and resolves with the first reply of type `reply` (30 s at most). */
  const ask = <T>(msg: object, reply: string): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${reply} from the child`)), 30_000);
      const onMessage = (m: { type: string }) => {
        if (m.type !== reply) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(m as T);
      };
      child.on('message', onMessage);
      child.send(msg);
    });
  return {
    proc,
    pid: proc.pid,
    port: ready.port,
    adminPort: ready.adminPort,
    url: `http://127.0.0.1:${ready.port}`,
    memory(gc) {
      return ask<{ memory: NodeJS.MemoryUsage }>({ type: 'stats', gc }, 'stats').then((m) => m.memory);
    },
    profileStart() {
      return ask({ type: 'profile-start' }, 'profile-started').then(() => {});
    },
    profileStop(file) {
      return ask({ type: 'profile-stop', file }, 'profile-written').then(() => {});
    },
    async exit(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      if (child.connected) child.send({ type: 'exit' });
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
