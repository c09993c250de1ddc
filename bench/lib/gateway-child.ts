/**
 * A process under test for bench/proxy.ts, started (pinned) by the bench:
 *
 *   --mode gateway --table FILE [--log FILE] [--admin]
 *       a GatewayProxy (default metrics) serving the routing table in FILE (JSON, as the compiler
 *       emits it) on the bare node:http listener; access-log lines go to --log (default
 *       /dev/null) through the project's pino logger; --admin also starts the admin listener
 *       (for one /metrics scrape).
 *   --mode hello
 *       a plain node:http server answering every request with the upstream's small body: the
 *       floor for Node (and the upstream when nginx is missing).
 *
 * It listens on 127.0.0.1, port 0, and tells the parent over IPC: {type: 'ready', port,
 * adminPort}. The parent may send {type: 'stats', gc} (answered with process.memoryUsage(), after
 * a full GC when gc is true and --expose-gc is on), {type: 'profile-start'} and {type:
 * 'profile-stop', file} (a V8 CPU profile of just that window, through the inspector; answered
 * with {type: 'profile-written'}), and {type: 'exit'}. The gateway modules are imported only in
 * gateway mode, so the hello server is a bare Node process.
 */
import { writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import type { RoutingTable } from '../../src/routing-table/types.ts';

/** The upstream's response body (nginx.ts serves the same one). */
const UPSTREAM_BODY = 'hello from the upstream\n';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'gateway' },
    table: { type: 'string' },
    log: { type: 'string', default: '/dev/null' },
    admin: { type: 'boolean', default: false },
    upstream: { type: 'string' },
  },
});

type Message =
  | { type: 'stats'; gc?: boolean }
  | { type: 'profile-start' }
  | { type: 'profile-stop'; file: string }
  | { type: 'exit' };

let session: Session | undefined;

async function profile(m: Message): Promise<void> {
  if (m.type === 'profile-start') {
    session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    await session.post('Profiler.start');
    process.send?.({ type: 'profile-started' });
  } else if (m.type === 'profile-stop' && session) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(m.file, JSON.stringify(profile));
    session.disconnect();
    session = undefined;
    process.send?.({ type: 'profile-written' });
  }
}

let flush = () => {};

function exit(): void {
  flush();
  process.exit(0);
}

process.on('SIGTERM', exit);
process.on('SIGINT', exit);
// The bench went away: so do we.
process.on('disconnect', exit);

process.on('message', (m: Message) => {
  if (m.type === 'exit') exit();
  if (m.type === 'profile-start' || m.type === 'profile-stop') void profile(m);
  if (m.type === 'stats') {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (m.gc && gc) {
      gc();
      gc();
    }
    process.send?.({ type: 'stats', memory: process.memoryUsage(), gc: Boolean(m.gc && gc) });
  }
});

function ready(port: number, adminPort?: number): void {
  if (process.send) process.send({ type: 'ready', port, adminPort });
  else process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
}

if (values.mode === 'hello') {
  const server = createServer({ keepAliveTimeout: 65_000 }, (_req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(UPSTREAM_BODY);
  });
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port));
} else if (values.mode === 'minimal-proxy') {
  if (!values.upstream) throw new Error('--upstream URL is required in minimal-proxy mode');
  const { startMinimalProxy } = await import('./minimal-proxy.ts');
  ready(await startMinimalProxy(values.upstream));
} else if (values.mode === 'minimal-node-client-proxy') {
  if (!values.upstream) throw new Error('--upstream URL is required in this mode');
  const { startMinimalNodeClientProxy } = await import('./minimal-proxy.ts');
  ready(await startMinimalNodeClientProxy(values.upstream));
} else {
  if (!values.table) throw new Error('--table FILE is required in gateway mode');
  const [{ pino }, { listenAdmin }, { GatewayProxy }, { listen }, { createLogger }] = await Promise.all([
    import('pino'),
    import('../../src/dataplane/admin.ts'),
    import('../../src/dataplane/proxy.ts'),
    import('../../src/dataplane/server.ts'),
    import('../../src/observability/logger.ts'),
  ]);
  const table = JSON.parse(await readFile(values.table, 'utf8')) as RoutingTable;
  const log = createLogger({
    destination: pino.destination({ dest: values.log, sync: false, minLength: 4096 }),
  });
  flush = log.flush;
  const proxy = new GatewayProxy({ logger: log.logger });
  const applied = proxy.apply(table, 'bench-1');
  if (!applied.ok) throw new Error(`table refused: ${applied.reason}`);
  const listener = await listen(proxy, { address: '127.0.0.1', port: 0 });
  let adminPort: number | undefined;
  if (values.admin) {
    const admin = await listenAdmin(proxy, { address: '127.0.0.1', port: 0 });
    adminPort = Number(new URL(admin.url).port);
  }
  ready(listener.address.port, adminPort);
}
