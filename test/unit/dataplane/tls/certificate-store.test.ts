import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { TlsCertificateStore } from '../../../../src/dataplane/tls/certificate-store.ts';
import { createLogger } from '../../../../src/observability/logger.ts';
import type { CompiledTlsCertificate } from '../../../../src/routing-table/types.ts';

const pem = (name: string) =>
  readFileSync(new URL(`../../../fixtures/tls/listener/${name}`, import.meta.url), 'utf8');

function capture() {
  const logs: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  return { logs, logger: createLogger({ destination }).logger };
}

const routeCert = (route: string, hostnames: string[], name: string): CompiledTlsCertificate => ({
  route,
  hostnames,
  certificatePem: pem(`${name}.crt`),
  privateKey: pem(`${name}.key`),
});

test('the index is memoised on the identity of routes.tls; contexts on the certificate content', () => {
  const { logger } = capture();
  let tls: CompiledTlsCertificate[] | undefined = [routeCert('ns/api', ['api.example.test'], 'route-api')];
  const store = new TlsCertificateStore({ routeCertificates: () => tls, minVersion: 'TLSv1.2', logger });
  const first = store.current();
  assert.equal(store.current(), first, 'same array: same index');
  assert.equal(store.builds, 1);
  const ctx = first.select('api.example.test')?.context();
  assert.ok(ctx);
  assert.equal(first.select('api.example.test')?.context(), ctx, 'built once');

  // A new table with the same certificate: a new index, the same SecureContext.
  tls = [routeCert('ns/api', ['api.example.test'], 'route-api')];
  const second = store.current();
  assert.notEqual(second, first);
  assert.equal(store.builds, 2);
  assert.equal(second.select('api.example.test')?.context(), ctx);

  // A rotated certificate: a new context.
  tls = [routeCert('ns/api', ['api.example.test'], 'route-api-v2')];
  const third = store.current();
  const rotated = third.select('api.example.test')?.context();
  assert.ok(rotated);
  assert.notEqual(rotated, ctx);

  tls = undefined;
  assert.equal(store.current().select('api.example.test'), undefined, 'no route certificates any more');
});

test('an unusable route certificate fails its own names (logged once), and keeps its client-CA policy', () => {
  const { logger, logs } = capture();
  const broken: CompiledTlsCertificate = {
    ...routeCert('ns/broken', ['broken.example.test'], 'route-api'),
    privateKey: pem('route-wild.key'), // not the certificate's key
    clientCaPem: pem('other-ca.crt'),
  };
  const tls = [broken, routeCert('ns/default', [], 'route-default')];
  const store = new TlsCertificateStore({ routeCertificates: () => tls, minVersion: 'TLSv1.2', logger });
  const index = store.current();
  const entry = index.select('broken.example.test');
  assert.equal(entry?.source, 'route ns/broken', 'not silently served by the default certificate');
  assert.equal(entry?.context(), undefined);
  assert.equal(entry?.context(), undefined);
  assert.equal(entry?.clientCaPem, broken.clientCaPem);
  const warnings = logs.filter(
    (l) => l.msg === 'route certificate unusable: handshakes for its hostnames fail',
  );
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.certificate, 'route ns/broken');
  assert.ok(index.select('other.example.test')?.context(), 'the default certificate still works');
});
