/** TLS to upstreams: a private CA, SNI, and a client certificate, all from Secrets. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';

const pem = (name: string) => readFileSync(new URL(`../../fixtures/tls/${name}`, import.meta.url), 'utf8');
let upstream: Server;
let gw: TestGateway;
const seen: { servername: string | false | null; clientCn: string | undefined }[] = [];

before(async () => {
  upstream = createServer(
    {
      key: pem('server.key'),
      cert: pem('server.crt'),
      ca: pem('ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      seen.push({
        servername: socket.servername,
        clientCn: socket.getPeerCertificate().subject?.CN as string | undefined,
      });
      res.end('secure hello');
    },
  );
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const secret = (name: string, data: Record<string, string>) =>
    `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: test}\nstringData: ${JSON.stringify(data)}\n---\n`;
  const backend = (path: string, tls: string) =>
    `{matches: [{path: {value: ${path}}}], retries: {attempts: 0}, backends: [{name: b, urls: ["${url}"], tls: ${tls}}]}`;
  gw = await startGateway(
    secret('ca', { 'ca.crt': pem('ca.crt') }) +
      secret('client', { 'tls.crt': pem('client.crt'), 'tls.key': pem('client.key') }) +
      route(
        'secure',
        `{rules: [
          ${backend('/ok', '{caSecretRef: {name: ca}, serverName: upstream.test, clientCertificateSecretRef: {name: client}}')},
          ${backend('/system-cas', '{serverName: upstream.test, clientCertificateSecretRef: {name: client}}')},
          ${backend('/wrong-name', '{caSecretRef: {name: ca}, serverName: other.test, clientCertificateSecretRef: {name: client}}')},
          ${backend('/no-client-cert', '{caSecretRef: {name: ca}, serverName: upstream.test}')}]}`,
      ),
  );
});
after(async () => {
  await gw.close();
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

test('the gateway verifies the upstream with the CA, sends SNI and presents its certificate', async () => {
  const r = await send(gw.url, { path: '/ok' });
  assert.equal(r.status, 200);
  assert.equal(r.text, 'secure hello');
  assert.deepEqual(seen.at(-1), { servername: 'upstream.test', clientCn: 'modelgate-proxy' });
});

for (const [path, why] of [
  ['/system-cas', 'an upstream signed by an unknown CA'],
  ['/wrong-name', 'a certificate for another name'],
  ['/no-client-cert', 'an upstream that wants a client certificate'],
] as const) {
  test(`${why} fails the request with 502 MG_UPSTREAM_TLS_ERROR or a reset`, async () => {
    const before = seen.length;
    const r = await send(gw.url, { path });
    assert.equal(r.status, 502);
    assert.match(r.json<{ error: { code: string } }>().error.code, /MG_UPSTREAM_(TLS_ERROR|RESET)/);
    assert.equal(seen.length, before, 'the upstream handler never ran');
  });
}

test('the dump shows the certificates but never the private key', async () => {
  const { buildAdmin } = await import('../../../src/dataplane/admin.ts');
  const admin = await buildAdmin(gw.proxy, {});
  const dump = (await admin.inject({ url: '/config/dump' })).body;
  await admin.close();
  assert.ok(dump.includes('BEGIN CERTIFICATE'));
  assert.ok(!dump.includes('PRIVATE KEY'), 'the client key is redacted');
});

test('health checks of a TLS backend use its CA and SNI, so a healthy upstream stays in service', async (t) => {
  const url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const secret = (name: string, data: Record<string, string>) =>
    `apiVersion: v1\nkind: Secret\nmetadata: {name: ${name}, namespace: test}\nstringData: ${JSON.stringify(data)}\n---\n`;
  const checked = await startGateway(
    secret('ca', { 'ca.crt': pem('ca.crt') }) +
      secret('client', { 'tls.crt': pem('client.crt'), 'tls.key': pem('client.key') }) +
      route(
        'probed',
        `{rules: [{healthCheck: {path: /health, interval: 50ms, unhealthyThreshold: 1}, backends: [{name: b, urls: ["${url}"],
          tls: {caSecretRef: {name: ca}, serverName: upstream.test, clientCertificateSecretRef: {name: client}}}]}]}`,
      ),
  );
  t.after(() => checked.close());
  await new Promise<void>((resolve) => {
    const check = () => (checked.proxy.health.checker.stats.pass >= 3 ? resolve() : setImmediate(check));
    check();
  });
  assert.equal(checked.proxy.health.checker.stats.fail, 0);
  assert.equal((await send(checked.url, { path: '/x' })).status, 200);
});
