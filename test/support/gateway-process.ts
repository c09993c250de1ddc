/**
 * A test gateway (./gateway.ts) in a process of its own, for tests whose failure is the gateway
 * process wedging: a gateway stuck in native code never returns to its event loop, so in the test's
 * own process it would hang the test runner instead of failing a test. The parent reads the child's
 * CPU time and memory from /proc (Linux), which needs nothing from a stuck child.
 *
 * The child tells the parent over IPC when it is listening, and each time an upstream request of
 * its undici pools ends in an error (`undici:request:error`; aborts included). That message is sent
 * on the next turn of the child's event loop, after undici has finished tearing the request down,
 * so tests can wait for "the gateway has cancelled its upstream call" instead of sleeping.
 *
 * Run directly (`node gateway-process.ts`), this file is the child: the routes come as YAML in the
 * MODELGATE_TEST_ROUTES environment variable.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { subscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);

export interface GatewayProcess {
  readonly pid: number;
  readonly url: string;
  /** Upstream requests that ended in an error so far (the child's count, as last reported). */
  readonly upstreamErrors: number;
  /** Resolves once `n` upstream requests have ended in an error; rejects after `timeoutMs`. */
  waitForUpstreamErrors(n: number, timeoutMs: number): Promise<void>;
  /** User + system CPU time of the child so far, in ms; undefined once it is gone. */
  cpuMs(): number | undefined;
  /** Resident memory of the child, in bytes; undefined once it is gone. */
  rssBytes(): number | undefined;
  /** SIGKILL (a stuck child cannot act on anything gentler) and wait for the exit. */
  kill(): Promise<void>;
}

let ticksPerSecond: number | undefined;

function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

function procStat(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command (field 2) may hold spaces; fields after its ')' are fixed: [0] is field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

export function startGatewayProcess(routesYaml: string, timeoutMs = 30_000): Promise<GatewayProcess> {
  const child: ChildProcess = spawn(process.execPath, [SELF], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { ...process.env, MODELGATE_TEST_ROUTES: routesYaml },
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-4096);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let errors = 0;
  const waiters = new Set<() => void>();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway process was not ready in ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the gateway process exited (${signal ?? code}) before it was ready: ${stderr}`));
    });
    child.on('message', (m: { type: string; url?: string }) => {
      if (m.type === 'upstream-error') {
        errors++;
        for (const w of waiters) w();
        return;
      }
      if (m.type !== 'ready') return;
      clearTimeout(timer);
      const pid = child.pid!;
      resolve({
        pid,
        url: m.url!,
        get upstreamErrors() {
          return errors;
        },
        waitForUpstreamErrors(n, ms) {
          return new Promise<void>((done, fail) => {
            const check = () => {
              if (errors < n) return;
              clearTimeout(t);
              waiters.delete(check);
              done();
            };
            const t = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`${errors} of ${n} upstream requests ended after ${ms} ms`));
            }, ms);
            waiters.add(check);
            check();
          });
        },
        cpuMs() {
          const f = procStat(pid);
          return f ? ((Number(f[11]) + Number(f[12])) * 1000) / clockTicksPerSecond() : undefined;
        },
        rssBytes() {
          try {
            const line = readFileSync(`/proc/${pid}/status`, 'utf8')
              .split('\n')
              .find((l) => l.startsWith('VmRSS:'));
            return line ? Number(line.split(/\s+/)[1]) * 1024 : undefined;
          } catch {
            return undefined;
          }
        },
        async kill() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}

async function runChild(): Promise<void> {
  const { startGateway } = await import('./gateway.ts');
  const gw = await startGateway(process.env.MODELGATE_TEST_ROUTES ?? '');
  subscribe('undici:request:error', () => {
    setImmediate(() => process.send?.({ type: 'upstream-error' }));
  });
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'ready', url: gw.url });
}

if (process.argv[1] === SELF) await runChild();
