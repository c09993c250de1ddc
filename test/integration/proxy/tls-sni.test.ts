/**
 * HTTPS listeners: the certificate chosen per SNI name (route certificates from the table, the
 * listener's file certificates), ALPN h2 and http/1.1 to the same proxy, the TLS version floor,
 * certificate rotation under traffic, and file certificates reloaded from disk.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { type Listener, listen } from '../../../src/dataplane/server.ts';
import type { ReloadResult } from '../../../src/dataplane/tls/file-certificates.ts';
import { route } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';
import {
  CA,
  fixturePath,
  h2Request,
  handshake,
  httpsRequest,
  routeCert,
  startTlsGateway,
  type TlsGateway,
  type TlsReply,
} from './tls-support.ts';

let upstream: TestUpstream;
let gw: TlsGateway;
let yaml: string;
/** File certificates: file-a for its names, then file-star for `*`. */
let withStar: Listener;
/** Only file-a. */
let fileA: Listener;
/** No file certificates: route certificates only. */
let routesOnly: Listener;
let dir: string;

const fileCert = (name: string, hostnames: string[]) => ({
  hostnames,
  certFile: fixturePath(`${name}.crt`),
  keyFile: fixturePath(`${name}.key`),
});
const FILE_A = fileCert('file-a', ['files.example.test', 'api.example.test', 'x.apps.example.test']);
const routeCerts = (api = 'route-api', withDefault = true) => [
  routeCert('demo/api', ['api.example.test'], api),
  routeCert('demo/apps', ['*.apps.example.test'], 'route-wild'),
  ...(withDefault ? [routeCert('demo/fallback', [], 'route-default')] : []),
];

before(async () => {
  upstream = await startUpstream('up');
  dir = await mkdtemp(join(tmpdir(), 'modelgate-tls-sni-'));
  yaml = route(
    'any',
    `{rules: [{matches: [{path: {value: /}}], backends: [{name: up, urls: ["${upstream.url}"]}]}]}`,
  );
  gw = await startTlsGateway(yaml, routeCerts(), {
    name: 'https',
    tls: { certificates: [FILE_A, fileCert('file-star', ['*'])] },
  });
  withStar = gw.listener;
  fileA = await listen(gw.proxy, { address: '127.0.0.1', port: 0, tls: { certificates: [FILE_A] } });
  routesOnly = await listen(gw.proxy, { address: '127.0.0.1', port: 0, tls: {} });
});

after(async () => {
  await Promise.all([fileA.close(), routesOnly.close()]);
  await gw.close();
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

const cn = async (l: Listener, servername?: string) => {
  const r = await handshake(l.address.port, { servername });
  return r.ok ? r.cn : `failed (${r.error})`;
};

test('SNI picks route exact, route wildcard, file, *, route default, first file certificate', async () => {
  assert.equal(
    await cn(withStar, 'api.example.test'),
    'route-api',
    'route exact beats a file listing the name',
  );
  assert.equal(
    await cn(withStar, 'x.apps.example.test'),
    'route-wild',
    'route wildcard beats a file exact name',
  );
  assert.equal(await cn(withStar, 'y.apps.example.test'), 'route-wild');
  assert.equal(await cn(withStar, 'API.Example.Test'), 'route-api', 'SNI is matched without case');
  assert.equal(await cn(withStar, 'a.b.apps.example.test'), 'file-star', 'a wildcard covers one label only');
  assert.equal(await cn(withStar, 'files.example.test'), 'file-a');
  assert.equal(await cn(withStar, 'unknown.example.org'), 'file-star', '* before the route default');
  assert.equal(await cn(withStar, undefined), 'file-star', 'no SNI');

  assert.equal(await cn(fileA, 'unknown.example.org'), 'route-default');
  assert.equal(await cn(fileA, undefined), 'route-default');
  assert.equal(await cn(routesOnly, 'unknown.example.org'), 'route-default');

  const san = await handshake(withStar.address.port, { servername: 'x.apps.example.test' });
  assert.equal(san.san, 'DNS:*.apps.example.test');

  // Without the route default: the listener's first certificate, and with none, no handshake.
  gw.apply(yaml, routeCerts('route-api', false));
  try {
    assert.equal(await cn(fileA, 'unknown.example.org'), 'file-a');
    assert.equal(await cn(fileA, undefined), 'file-a');
    assert.match(String(await cn(routesOnly, 'unknown.example.org')), /^failed/);
    assert.match(String(await cn(routesOnly, undefined)), /^failed/);
    assert.equal(await cn(routesOnly, 'api.example.test'), 'route-api');
  } finally {
    gw.apply(yaml, routeCerts());
  }
  assert.equal(
    await cn(routesOnly, undefined),
    'route-default',
    'the default is back for clients without SNI',
  );
});

test('ALPN h2 and http/1.1 both reach the upstream, seen as https', async () => {
  const before = upstream.received.length;
  const h1 = await httpsRequest(gw.port, { servername: 'api.example.test', path: '/v1/h1' });
  assert.equal(h1.status, 200);
  assert.equal(h1.serverCn, 'route-api');
  assert.equal(h1.json().upstream, 'up');
  const h2 = await h2Request(gw.port, { servername: 'api.example.test', path: '/v1/h2' });
  assert.equal(h2.alpn, 'h2');
  assert.equal(h2.status, 200);
  assert.equal(h2.json().url, '/v1/h2');
  const seen = upstream.received.slice(before);
  assert.deepEqual(
    seen.map((r) => r.url),
    ['/v1/h1', '/v1/h2'],
  );
  // The proxy reads the scheme from `(req.socket as TLSSocket).encrypted`, for HTTP/1.1 and for
  // HTTP/2 (where req.socket is the session socket's proxy).
  assert.deepEqual(
    seen.map((r) => r.headers['x-forwarded-proto']),
    ['https', 'https'],
  );
  // A client that offers no ALPN speaks HTTP/1.1.
  const none = await handshake(gw.port, { servername: 'api.example.test', ALPNProtocols: [] });
  assert.equal(none.alpn, false);
});

test('TLS 1.1 is refused; TLS 1.2 and 1.3 are served; a TLSv1.3 listener refuses 1.2', async () => {
  const old = await handshake(gw.port, {
    servername: 'api.example.test',
    minVersion: 'TLSv1.1',
    maxVersion: 'TLSv1.1',
    ciphers: 'DEFAULT@SECLEVEL=0', // lets the client offer 1.1 at all
  });
  assert.equal(old.ok, false);
  assert.match(String(old.error), /ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION/, 'the server refuses it (alert 70)');
  const v12 = await handshake(gw.port, { servername: 'api.example.test', maxVersion: 'TLSv1.2' });
  assert.equal(v12.protocol, 'TLSv1.2');
  const v13 = await handshake(gw.port, { servername: 'api.example.test' });
  assert.equal(v13.protocol, 'TLSv1.3');

  const strict = await listen(gw.proxy, {
    address: '127.0.0.1',
    port: 0,
    tls: { minVersion: 'TLSv1.3', certificates: [fileCert('file-star', ['*'])] },
  });
  try {
    const r = await handshake(strict.address.port, { servername: 'a.test', maxVersion: 'TLSv1.2' });
    assert.equal(r.ok, false);
    assert.equal((await handshake(strict.address.port, { servername: 'a.test' })).protocol, 'TLSv1.3');
  } finally {
    await strict.close();
  }
});

test('a route certificate rotated mid-traffic: zero failures, new connections get the new one', {
  timeout: 30_000,
}, async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  // An HTTP/2 session opened before the rotation, used on both sides of it.
  const session = h2connect(`https://127.0.0.1:${gw.port}`, {
    servername: 'api.example.test',
    ca: CA,
    checkServerIdentity: () => undefined,
  });
  const h2get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': path, ':authority': 'api.example.test' });
      let status = 0;
      s.on('response', (h) => {
        status = Number(h[':status']);
      });
      s.on('data', () => {});
      s.on('end', () => resolve(status));
      s.on('error', reject);
      s.end();
    });
  try {
    assert.equal(await h2get('/h2/before'), 200);
    const total = 240;
    const rotateAt = 80;
    const replies: TlsReply[] = [];
    const failures: unknown[] = [];
    let started = 0;
    let rotated = false;
    let connections = 0;
    let connectionsAfterRotation = 0;
    const onConnection = () => {
      connections++;
      if (rotated) connectionsAfterRotation++;
    };
    gw.listener.server.on('secureConnection', onConnection);
    const worker = async () => {
      while (started < total) {
        started++;
        try {
          replies.push(await httpsRequest(gw.port, { servername: 'api.example.test', path: '/loop', agent }));
        } catch (e) {
          failures.push(e);
        }
        if (!rotated && replies.length + failures.length >= rotateAt) {
          rotated = true;
          gw.apply(yaml, routeCerts('route-api-v2'));
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    gw.listener.server.off('secureConnection', onConnection);
    assert.ok(rotated);
    assert.deepEqual(failures, []);
    assert.equal(replies.length, total);
    assert.ok(replies.every((r) => r.status === 200));
    // Every request rode one of the four keep-alive connections opened before the rotation.
    assert.equal(connections, 4);
    assert.equal(connectionsAfterRotation, 0);
    assert.deepEqual(new Set(replies.map((r) => r.serverCn)), new Set(['route-api']));
    assert.equal(await h2get('/h2/after'), 200, 'the HTTP/2 session keeps running');
    assert.equal(
      ((session.socket as TLSSocket).getPeerCertificate().subject as { CN: string }).CN,
      'route-api',
    );

    assert.equal(await cn(withStar, 'api.example.test'), 'route-api-v2');
    const fresh = await httpsRequest(gw.port, { servername: 'api.example.test' });
    assert.equal(fresh.status, 200);
    assert.equal(fresh.serverCn, 'route-api-v2');
  } finally {
    agent.destroy();
    session.close();
    gw.apply(yaml, routeCerts());
  }
});

test('a file certificate changed on disk is reloaded; a bad file keeps the previous one', {
  timeout: 30_000,
}, async () => {
  const crt = join(dir, 'tls.crt');
  const key = join(dir, 'tls.key');
  await copyFile(fixturePath('file-a.crt'), crt);
  await copyFile(fixturePath('file-a.key'), key);
  const l = await listen(gw.proxy, {
    address: '127.0.0.1',
    port: 0,
    name: 'reloading',
    tls: {
      certificates: [{ hostnames: ['files.example.test'], certFile: crt, keyFile: key }],
      reloadDebounceMs: 20,
    },
  });
  const files = l.files!;
  /** Waits for the reload that satisfies `done` (bounded: 20 reload attempts). */
  const reloadUntil = async (done: (r: ReloadResult) => boolean) => {
    for (let i = 0; i < 20; i++) {
      const [r] = (await once(files, 'reload')) as [ReloadResult];
      if (done(r)) return r;
    }
    throw new Error('no such reload');
  };
  try {
    assert.equal(await cn(l, 'files.example.test'), 'file-a');
    const version = files.version;
    // Replace both files atomically (write elsewhere, rename over).
    let waiting = reloadUntil(() => files.version > version);
    await copyFile(fixturePath('file-a-v2.crt'), `${crt}.new`);
    await copyFile(fixturePath('file-a-v2.key'), `${key}.new`);
    await rename(`${key}.new`, key);
    await rename(`${crt}.new`, crt);
    await waiting;
    assert.equal(await cn(l, 'files.example.test'), 'file-a-v2');

    waiting = reloadUntil((r) => r.errors.length > 0);
    await writeFile(crt, 'this is not a certificate\n');
    const bad = await waiting;
    assert.match(bad.errors[0]!, /certificate .*tls\.crt: no PEM block/);
    assert.equal(await cn(l, 'files.example.test'), 'file-a-v2', 'the previous certificate stays');
    assert.ok(
      gw.logs.some(
        (r) =>
          r.msg === 'TLS file not reloaded; the previous certificate stays in use' &&
          r.listener === 'reloading' &&
          String(r.reason).includes('no PEM block'),
      ),
    );
  } finally {
    await l.close();
  }
});

test('a listener whose certificate files do not load does not start', async () => {
  await assert.rejects(
    listen(gw.proxy, {
      address: '127.0.0.1',
      port: 0,
      name: 'broken',
      tls: {
        certificates: [{ hostnames: ['*'], certFile: join(dir, 'nope.crt'), keyFile: join(dir, 'nope.key') }],
      },
    }),
    /listener broken: certificate .*nope\.crt: ENOENT/,
  );
});
