/**
 * The push stream over TLS, against a real controller (fake API server) with certificates made at
 * test time: a proxy that trusts the CA gets the table over https and ACKs it, with the replica
 * dialled by IP and its certificate verified against the Service name; a proxy without the CA,
 * with another CA, expecting a name the certificate lacks, or dialling plain http gets nothing and
 * says why (and so does a proxy dialling https to a plaintext server). Then the same through the CLI (`modelgate controller --push-tls-cert/--push-tls-key`,
 * `modelgate proxy --push-ca --push-server-name`), including a certificate rotated on disk.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { type PeerCertificate, connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadPushTls } from '../../../src/cli/commands/controller.ts';
import { compareVersions } from '../../../src/controlplane/push/protocol.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { type ControllerRole, startController } from '../../../src/roles/controller.ts';
import { type ProxyRole, type ProxyRoleOptions, startProxyRole } from '../../../src/roles/proxy.ts';
import { type FakeApiServer, kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { createCa } from '../../support/pki.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));
const NS = 'modelgate';
/** The headless Service's short DNS name: the only name in the controller's certificate. */
const SVC = `modelgate-controller.${NS}.svc`;
/** The name the chart's proxies resolve. */
const FQDN = `${SVC}.cluster.local`;
const WAIT_MS = 20_000;

const ca = createCa('ModelGate Push Test CA');
const otherCa = createCa('Some Other CA');
const skip = ca && otherCa ? false : 'openssl is not available';

type LogLine = Record<string, unknown>;

function capture(): { logger: ReturnType<typeof createLogger>['logger']; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { logger: createLogger({ destination, level: 'debug' }).logger, lines };
}

async function until<T>(
  what: string,
  f: () => T | undefined | Promise<T | undefined>,
  ms = WAIT_MS,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function applyRoute(api: FakeApiServer): void {
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'llama', namespace: 'ml' },
    spec: { ports: [{ name: 'http', port: 8000, targetPort: 8000 }] },
  });
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'llama-1', namespace: 'ml', labels: { 'kubernetes.io/service-name': 'llama' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8000 }],
    endpoints: [{ addresses: ['127.0.0.1'], conditions: { ready: true } }],
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          matches: [{ path: { value: '/v1' } }],
          backends: [{ name: 'llama', service: { name: 'llama', port: 8000 } }],
        },
      ],
    },
  });
}

function pushToken(api: FakeApiServer): string {
  const secret = api.get<{ data: { token: string } }>('Secret', NS, 'modelgate-push-token');
  assert.ok(secret, 'the controller created the push-token Secret');
  return Buffer.from(secret.data.token, 'base64').toString();
}

// --- in-process roles ---------------------------------------------------------------------------

let api: FakeApiServer;
let controller: ControllerRole;
let dir: string;
let port: number;
let token: string;
const proxies: ProxyRole[] = [];
/** The names the proxies looked up (their `dns:` addresses). */
const looked: string[] = [];

before(async () => {
  if (skip) return;
  dir = await mkdtemp(join(tmpdir(), 'modelgate-push-tls-'));
  const issued = ca!.issue('modelgate-controller', [SVC]);
  await writeFile(join(dir, 'tls.crt'), issued.cert);
  await writeFile(join(dir, 'tls.key'), issued.key);
  api = await startFakeApiServer();
  // The CLI's loader: the files are read and checked (the key matches the certificate).
  const files = loadPushTls(
    { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') },
    capture().logger,
  );
  const m = files.certificates[0]!.entry.material;
  controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: NS,
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    pushTls: { cert: m.certificatePem, key: m.privateKeyPem },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: capture().logger,
  });
  port = Number(new URL(controller.pushUrl).port);
  token = pushToken(api);
  applyRoute(api);
  await until('a published table', () => controller.push.state.version);
});

after(async () => {
  if (skip) return;
  await Promise.all(proxies.map((p) => p.shutdown(500)));
  await controller.shutdown();
  await api.close();
  await rm(dir, { recursive: true, force: true });
  ca?.close();
  otherCa?.close();
});

async function proxy(
  id: string,
  opts: Pick<ProxyRoleOptions, 'controllers' | 'pushCa' | 'pushServerName'>,
): Promise<{ role: ProxyRole; lines: LogLine[] }> {
  const { logger, lines } = capture();
  const stateDir = await mkdtemp(join(dir, `${id}-`));
  const role = await startProxyRole({
    proxyId: id,
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    // The headless Service's every address: here, the one controller.
    lookup: async (name) => {
      looked.push(name);
      return ['127.0.0.1'];
    },
    logger,
    ...opts,
  });
  proxies.push(role);
  return { role, lines };
}

/** The controller has the proxy's ACK of the version it publishes now. */
function acked(id: string): boolean {
  const want = controller.push.state.version;
  const p = controller.push.proxies().find((x) => x.id === id);
  return (
    want !== undefined &&
    p?.applied !== undefined &&
    p.lastAck?.ok === true &&
    compareVersions(p.applied, want) === 0
  );
}

test('a proxy that trusts the CA gets the table over https and ACKs it; replicas dialled by IP are verified against the Service name', {
  skip,
}, async () => {
  assert.match(controller.pushUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  // `dns:NAME:PORT` with a CA: https, the certificate checked against NAME.
  const short = await proxy('proxy-dns', { controllers: [`dns:${SVC}:${port}`], pushCa: ca!.cert });
  // The chart's form: the cluster-domain name resolved, the certificate's name given.
  const chart = await proxy('proxy-chart', {
    controllers: [`dns:https://${FQDN}:${port}`],
    pushCa: ca!.cert,
    pushServerName: SVC,
  });
  await until('proxy-dns ACKed', () => acked('proxy-dns'));
  await until('proxy-chart ACKed', () => acked('proxy-chart'));
  for (const p of [short, chart]) {
    const s = p.role.push.status();
    assert.equal(s.connected, 1);
    assert.equal(s.leader, 'controller-0');
    assert.equal(s.lastError, null);
    // The table the controller publishes, with its route.
    assert.deepEqual(p.role.push.table?.version, controller.push.state.version);
    assert.ok(JSON.stringify(p.role.push.table?.table.routes).includes('ml/chat'));
    // Each dialled the replica by address.
    assert.ok(
      p.lines.some((l) => l.msg === 'controller connected' && /^https:\/\/127\.0\.0\.1:/.test(String(l.url))),
    );
  }
  assert.ok(looked.includes(SVC) && looked.includes(FQDN), looked.join(' '));
});

test('without the CA, with another CA, or expecting a name the certificate lacks, a proxy gets no table and says why', {
  skip,
}, async () => {
  const cases = [
    // https by its scheme, checked against the system CAs: the test CA is not one of them.
    {
      id: 'proxy-no-ca',
      opts: { controllers: [`dns:https://${SVC}:${port}`] },
      code: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/,
    },
    {
      id: 'proxy-other-ca',
      opts: { controllers: [`dns:${SVC}:${port}`], pushCa: otherCa!.cert },
      code: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT/,
    },
    // The right CA, but the certificate does not hold the cluster-domain name.
    {
      id: 'proxy-wrong-name',
      opts: { controllers: [`dns:${FQDN}:${port}`], pushCa: ca!.cert },
      code: /ERR_TLS_CERT_ALTNAME_INVALID/,
    },
    // An address (no DNS name) the certificate does not hold either.
    {
      id: 'proxy-by-ip',
      opts: { controllers: [`127.0.0.1:${port}`], pushCa: ca!.cert },
      code: /ERR_TLS_CERT_ALTNAME_INVALID/,
    },
  ];
  const started = await Promise.all(cases.map(async (c) => ({ ...c, ...(await proxy(c.id, c.opts)) })));
  for (const c of started) {
    // Redialled with backoff and refused each time: at least two failures.
    const failures = await until(`${c.id}: certificate errors`, () => {
      const f = c.lines.filter((l) => l.msg === 'push: stream to controller failed');
      return f.length >= 2 ? f : undefined;
    });
    for (const f of failures) {
      assert.match(String(f.reason), /^TLS certificate of the controller not accepted/, c.id);
      assert.match(String(f.reason), c.code, c.id);
    }
    assert.match(String(c.role.push.status().lastError), c.code, c.id);
  }
  // None of them got a table, and the controller never saw any of them.
  for (const c of started) {
    const s = c.role.push.status();
    assert.equal(s.source, 'none', c.id);
    assert.equal(s.connected, 0, c.id);
    assert.equal(c.role.push.table, undefined, c.id);
    assert.equal(
      controller.push.proxies().find((p) => p.id === c.id),
      undefined,
      c.id,
    );
    assert.ok(!c.lines.some((l) => l.msg === 'push: table applied'), c.id);
  }
});

test('a plaintext proxy gets nothing from a TLS controller; a plaintext address next to a CA is refused', {
  skip,
}, async () => {
  const plain = await proxy('proxy-plain', { controllers: [`http://127.0.0.1:${port}`] });
  const failures = await until('proxy-plain failures', () => {
    const f = plain.lines.filter((l) => l.msg === 'push: stream to controller failed');
    return f.length >= 2 ? f : undefined;
  });
  // The TLS server hangs up on the plaintext request; the reason says what to try.
  assert.match(String(failures[0]!.reason), /over https with --push-ca/);
  assert.equal(plain.role.push.status().source, 'none');
  assert.equal(plain.role.push.table, undefined);
  assert.equal(
    controller.push.proxies().find((p) => p.id === 'proxy-plain'),
    undefined,
  );
  // The other way round: a proxy dialling https, a controller (here, any server) in plaintext.
  const plainServer = createServer((_req, res) => res.end());
  await new Promise<void>((resolve) => plainServer.listen(0, '127.0.0.1', resolve));
  const plainPort = (plainServer.address() as AddressInfo).port;
  try {
    const tlsProxy = await proxy('proxy-tls-to-plain', {
      controllers: [`127.0.0.1:${plainPort}`],
      pushCa: ca!.cert,
      pushServerName: SVC,
    });
    const failed = await until('proxy-tls-to-plain failure', () =>
      tlsProxy.lines.find((l) => l.msg === 'push: stream to controller failed'),
    );
    assert.match(String(failed.reason), /wrong version number.*the controller answers in plaintext/);
    assert.equal(tlsProxy.role.push.table, undefined);
  } finally {
    plainServer.close();
  }
  // With a CA, a plaintext address is a mistake: refused before anything starts.
  for (const address of [`http://127.0.0.1:${port}`, `dns:http://${SVC}:${port}`])
    await assert.rejects(
      proxy('proxy-mixed', { controllers: [address], pushCa: ca!.cert }),
      /plaintext http while a push CA is given/,
    );
});

// --- the CLI ----------------------------------------------------------------------------------------

interface Proc {
  child: ChildProcess;
  lines: LogLine[];
  stderr: string[];
  exited: Promise<number | null>;
  waitLog(pred: (l: LogLine) => boolean, what: string): Promise<LogLine>;
}

function spawnCli(args: string[]): Proc {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogLine[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    try {
      lines.push(JSON.parse(l));
    } catch {
      lines.push({ msg: l });
    }
  });
  child.stderr!.on('data', (c: Buffer) => stderr.push(String(c)));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr,
    exited,
    waitLog: (pred, what) =>
      until(`${args[0]}: ${what} (${stderr.join('').slice(-500)})`, () => lines.find(pred)),
  };
}

/** The serial number of the certificate served at 127.0.0.1:port (no verification: just looking). */
function servedSerial(at: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port: at, servername: SVC, rejectUnauthorized: false }, () => {
      resolve((s.getPeerCertificate() as PeerCertificate).serialNumber.toUpperCase());
      s.destroy();
    });
    s.on('error', reject);
  });
}

test('the CLI: controller --push-tls-cert/--push-tls-key, proxy --push-ca --push-server-name; a rotated certificate is served without a restart', {
  skip,
}, async (t) => {
  const cliApi = await startFakeApiServer();
  const cliDir = await mkdtemp(join(tmpdir(), 'modelgate-push-tls-cli-'));
  const procs: Proc[] = [];
  t.after(async () => {
    for (const p of procs) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
    await cliApi.close();
    await rm(cliDir, { recursive: true, force: true });
  });
  const kubeconfig = join(cliDir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: cliApi.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake', user: {} }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake', namespace: 'default' } }],
      'current-context': 'fake',
    }),
  );
  const tlsDir = join(cliDir, 'push-tls');
  await mkdir(tlsDir);
  const first = ca!.issue('modelgate-controller', [SVC, FQDN]);
  await writeFile(join(tlsDir, 'tls.crt'), first.cert);
  await writeFile(join(tlsDir, 'tls.key'), first.key);
  await writeFile(join(tlsDir, 'ca.crt'), ca!.cert);

  const ctl = spawnCli([
    'controller',
    '--kubeconfig',
    kubeconfig,
    '--namespace',
    NS,
    '--id',
    'controller-cli',
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--push-tls-cert',
    join(tlsDir, 'tls.crt'),
    '--push-tls-key',
    join(tlsDir, 'tls.key'),
    '--lease-duration',
    '2s',
    '--renew-deadline',
    '1500ms',
    '--retry-period',
    '100ms',
  ]);
  procs.push(ctl);
  const up = await ctl.waitLog((l) => l.msg === 'modelgate controller is running', 'start');
  const pushUrl = String(up.push);
  assert.match(pushUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  const cliPort = Number(new URL(pushUrl).port);
  assert.equal(await servedSerial(cliPort), first.serial);
  applyRoute(cliApi);
  const tokenFile = join(cliDir, 'token');
  await writeFile(tokenFile, pushToken(cliApi));

  const px = spawnCli([
    'proxy',
    '--controller',
    `127.0.0.1:${cliPort}`,
    '--push-ca',
    join(tlsDir, 'ca.crt'),
    '--push-server-name',
    SVC,
    '--push-token-file',
    tokenFile,
    '--proxy-id',
    'proxy-cli',
    '--state-dir',
    join(cliDir, 'state'),
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--drain-timeout',
    '1s',
  ]);
  procs.push(px);
  const applied = await px.waitLog((l) => l.msg === 'push: table applied', 'a table');
  assert.match(String(applied.version), /^\d+\.\d+$/);
  // The controller has the ACK: the proxy is in sync in its status API.
  await until('proxy-cli in sync', async () => {
    const doc = (await (await fetch(`${String(up.admin)}/api/v1/status`)).json()) as {
      proxies: { id: string; inSync: boolean }[];
    };
    return doc.proxies.some((p) => p.id === 'proxy-cli' && p.inSync);
  });

  // Rotation: new files (cert-manager renewing the Secret); the controller serves them at once.
  const second = ca!.issue('modelgate-controller', [SVC, FQDN]);
  assert.notEqual(second.serial, first.serial);
  await writeFile(join(tlsDir, 'tls.key'), second.key);
  await writeFile(join(tlsDir, 'tls.crt'), second.cert);
  await ctl.waitLog((l) => l.msg === 'TLS certificates reloaded from files', 'the reload');
  await until('the new certificate served', async () => (await servedSerial(cliPort)) === second.serial);
  // The proxy's open stream keeps going; a new dial verifies the new certificate.
  px.child.kill('SIGTERM');
  assert.equal(await px.exited, 0);
  const again = spawnCli([
    'proxy',
    '--controller',
    `https://127.0.0.1:${cliPort}`,
    '--push-ca',
    join(tlsDir, 'ca.crt'),
    '--push-server-name',
    SVC,
    '--push-token-file',
    tokenFile,
    '--proxy-id',
    'proxy-cli-2',
    '--state-dir',
    join(cliDir, 'state-2'),
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
  ]);
  procs.push(again);
  await again.waitLog((l) => l.msg === 'push: table applied', 'a table after the rotation');
});
