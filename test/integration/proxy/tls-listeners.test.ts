/**
 * The roles start every listener of the GatewayConfig (HTTP and HTTPS), report ready once all are
 * up, drain all of them, and refuse an admin listener on a public listener's address.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { startStandalone } from '../../../src/roles/standalone.ts';
import { send } from '../../support/client.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';
import { CA, CLIENT, fixturePath, handshake, httpsRequest, pem } from './tls-support.ts';

let dir: string;
let upstream: TestUpstream;
const logs: Record<string, unknown>[] = [];
const { logger } = createLogger({
  destination: new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  }),
});

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-listeners-'));
  upstream = await startUpstream('up');
  await writeFile(
    join(dir, 'routes.yaml'),
    `apiVersion: modelgate.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: chat, namespace: demo}\nspec: {rules: [{matches: [{path: {value: /v1}}], backends: [{name: b, urls: ["${upstream.url}"]}]}]}\n`,
  );
});

after(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

test('standalone serves every listener, HTTP and HTTPS, and drains them all', async () => {
  const gw = await startStandalone({
    paths: [dir],
    listeners: [
      { name: 'http', address: '127.0.0.1', port: 0, protocol: 'HTTP' },
      {
        name: 'https',
        address: '127.0.0.1',
        port: 0,
        protocol: 'HTTPS',
        tls: {
          minVersion: 'TLSv1.2',
          certificates: [
            {
              hostnames: ['*'],
              certFile: fixturePath('file-star.crt'),
              keyFile: fixturePath('file-star.key'),
            },
          ],
        },
      },
    ],
    admin: { address: '127.0.0.1', port: 0 },
    logger,
    debounceMs: 20,
  });
  const agent = new Agent({ keepAlive: true });
  try {
    assert.deepEqual(
      gw.listeners.map((l) => l.protocol),
      ['http', 'https'],
    );
    assert.equal(gw.listener, gw.listeners[0]);
    assert.equal((await send(gw.listeners[0]!.url, { path: '/v1/a' })).status, 200);
    const tls = await httpsRequest(gw.listeners[1]!.address.port, {
      servername: 'chat.example.test',
      path: '/v1/b',
      agent,
    });
    assert.equal(tls.status, 200);
    assert.equal(tls.serverCn, 'file-star');
    assert.equal((await send(gw.adminUrl, { path: '/readyz' })).status, 200);
    const serving = logs.find((l) => l.msg === 'modelgate standalone is serving');
    assert.deepEqual(
      serving?.listeners,
      gw.listeners.map((l) => l.url),
    );

    // An idle keep-alive connection on the HTTPS listener does not hold the drain.
    const result = await gw.shutdown(5_000);
    assert.deepEqual(result, { forced: false });
    for (const l of gw.listeners) assert.equal(l.server.listening, false, `${l.name} stopped`);
  } finally {
    agent.destroy();
    await gw.close().catch(() => {});
  }
});

test('the admin listener may not take a public listener address; nothing is left bound', async () => {
  // A port known to be free (bound and released).
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));

  await assert.rejects(
    startStandalone({
      paths: [dir],
      listeners: [{ name: 'web', address: '0.0.0.0', port, protocol: 'HTTP' }],
      admin: { address: '127.0.0.1', port },
      logger,
    }),
    new RegExp(
      `the admin listener \\(127\\.0\\.0\\.1:${port}\\) would share its port with the public listener web`,
    ),
  );
  // Also for the single-address form.
  await assert.rejects(
    startStandalone({
      paths: [dir],
      listen: { address: '127.0.0.1', port },
      admin: { address: '127.0.0.1', port },
      logger,
    }),
    /would share its port/,
  );
  // Nothing was bound on the way.
  const again = createServer();
  await new Promise<void>((resolve, reject) => {
    again.once('error', reject);
    again.listen(port, '127.0.0.1', resolve);
  });
  await new Promise<void>((resolve) => again.close(() => resolve()));
});

test('a listener that cannot start stops the start and releases the others', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const port = (taken.address() as AddressInfo).port;
  try {
    await assert.rejects(
      startStandalone({
        paths: [dir],
        listeners: [
          { name: 'first', address: '127.0.0.1', port: 0, protocol: 'HTTP' },
          { name: 'second', address: '127.0.0.1', port, protocol: 'HTTP' },
        ],
        admin: { address: '127.0.0.1', port: 0 },
        logger,
      }),
      (e: Error & { code?: string }) => {
        assert.match(e.message, new RegExp(`second \\(127\\.0\\.0\\.1:${port}\\)`));
        assert.equal(e.code, 'EADDRINUSE');
        return true;
      },
    );
  } finally {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
  }
});

test('end to end: route certificates from ModelRoutes and Secrets, mTLS on HTTPS, refusal or redirect on HTTP', async () => {
  const routesDir = await mkdtemp(join(tmpdir(), 'modelgate-route-tls-'));
  const secret = (name: string, data: Record<string, string>, type = 'Opaque') =>
    `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: demo}\ntype: ${type}\nstringData:\n${Object.entries(
      data,
    )
      .map(([k, v]) => `  ${k}: ${JSON.stringify(v)}\n`)
      .join('')}---\n`;
  const modelRoute = (name: string, host: string, tls: string) =>
    `apiVersion: modelgate.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: ${name}, namespace: demo}\nspec:\n  hostnames: [${host}]\n  tls: ${tls}\n  rules: [{backends: [{name: b, urls: ["${upstream.url}"]}]}]\n---\n`;
  await writeFile(
    join(routesDir, 'routes.yaml'),
    secret(
      'api-tls',
      { 'tls.crt': pem('route-api.crt'), 'tls.key': pem('route-api.key') },
      'kubernetes.io/tls',
    ) +
      secret(
        'mtls-tls',
        { 'tls.crt': pem('route-mtls.crt'), 'tls.key': pem('route-mtls.key') },
        'kubernetes.io/tls',
      ) +
      secret('clients-ca', { 'ca.crt': CA }) +
      modelRoute('api', 'api.example.test', '{certificateRef: {name: api-tls}}') +
      modelRoute(
        'secure',
        'mtls.example.test',
        '{certificateRef: {name: mtls-tls}, clientValidation: {caSecretRef: {name: clients-ca}}, httpsRedirect: true}',
      ) +
      modelRoute(
        'locked',
        'other-mtls.example.test',
        '{certificateRef: {name: mtls-tls}, clientValidation: {caSecretRef: {name: clients-ca}}}',
      ),
  );
  const gw = await startStandalone({
    paths: [routesDir],
    listeners: [
      { name: 'http', address: '127.0.0.1', port: 0, protocol: 'HTTP' },
      { name: 'https', address: '127.0.0.1', port: 0, protocol: 'HTTPS' },
    ],
    admin: { address: '127.0.0.1', port: 0 },
    logger,
    debounceMs: 20,
  });
  try {
    const [http, https] = gw.listeners as [(typeof gw.listeners)[0], (typeof gw.listeners)[0]];
    const port = https.address.port;
    assert.equal((await handshake(port, { servername: 'api.example.test' })).cn, 'route-api');
    assert.equal((await handshake(port, { servername: 'mtls.example.test' })).cn, 'route-mtls');
    assert.equal((await httpsRequest(port, { servername: 'api.example.test' })).status, 200);
    const before = upstream.received.length;
    const noCert = await httpsRequest(port, { servername: 'mtls.example.test' });
    assert.equal(noCert.status, 403);
    assert.equal(noCert.json<{ error: { code: string } }>().error.code, 'MG_CLIENT_CERTIFICATE_REQUIRED');
    // Plaintext: the route that redirects answers with the redirect; the one that does not, 403.
    const redirected = await send(http.url, { headers: { host: 'mtls.example.test' } });
    assert.equal(redirected.status, 308);
    assert.equal(redirected.headers.location, 'https://mtls.example.test/');
    const locked = await send(http.url, { headers: { host: 'other-mtls.example.test' } });
    assert.equal(locked.status, 403);
    assert.equal(locked.json<{ error: { code: string } }>().error.code, 'MG_CLIENT_CERTIFICATE_REQUIRED');
    assert.equal(upstream.received.length, before, 'no refused request reached the upstream');
    assert.equal((await httpsRequest(port, { servername: 'mtls.example.test', ...CLIENT })).status, 200);
    assert.equal((await send(http.url, { headers: { host: 'api.example.test' } })).status, 200);
  } finally {
    await gw.close();
    await rm(routesDir, { recursive: true, force: true });
  }
});
