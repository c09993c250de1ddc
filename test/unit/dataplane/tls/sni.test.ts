import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CertificateEntry,
  CertificateIndex,
  type IndexedCertificate,
  normalizeServerName,
} from '../../../../src/dataplane/tls/sni.ts';

const entry = (source: string, clientCaPem?: string): CertificateEntry => ({
  source,
  material: { certificatePem: source, privateKeyPem: source, ...(clientCaPem ? { clientCaPem } : {}) },
  clientCaPem,
  context: () => undefined,
});
const cert = (source: string, hostnames: string[], clientCaPem?: string): IndexedCertificate => ({
  hostnames,
  entry: entry(source, clientCaPem),
});
const pick = (index: CertificateIndex, name: string) => index.select(normalizeServerName(name))?.source;

test('route exact, then route wildcard, then file exact and wildcard, then *, route default, first file', () => {
  const routes = [
    cert('route-api', ['api.example.com']),
    cert('route-wild', ['*.apps.example.com']),
    cert('route-default', []),
  ];
  const files = [
    cert('file-a', ['files.example.com', 'api.example.com', 'x.apps.example.com']),
    cert('file-wild', ['*.files.example.com']),
    cert('file-star', ['*']),
  ];
  const index = new CertificateIndex(routes, files);
  assert.equal(pick(index, 'api.example.com'), 'route-api', 'a route beats a file for the same name');
  assert.equal(pick(index, 'x.apps.example.com'), 'route-wild', 'a route wildcard beats a file exact name');
  assert.equal(pick(index, 'files.example.com'), 'file-a');
  assert.equal(pick(index, 'a.files.example.com'), 'file-wild');
  assert.equal(pick(index, 'nothing.example.org'), 'file-star', '* comes before the route default');
  assert.equal(pick(index, ''), 'file-star', 'no SNI: the fallback');

  const noStar = new CertificateIndex(routes, files.slice(0, 2));
  assert.equal(pick(noStar, 'nothing.example.org'), 'route-default');
  assert.equal(pick(noStar, ''), 'route-default');
  const noDefault = new CertificateIndex(routes.slice(0, 2), files.slice(0, 2));
  assert.equal(pick(noDefault, 'nothing.example.org'), 'file-a', 'then the first listener certificate');
  const routesOnly = new CertificateIndex(routes.slice(0, 2), []);
  assert.equal(pick(routesOnly, 'nothing.example.org'), undefined, 'no match, no default: no certificate');
  assert.equal(routesOnly.fallback, undefined);
});

test('a wildcard matches exactly one label', () => {
  const index = new CertificateIndex([cert('wild', ['*.example.com'])], []);
  assert.equal(pick(index, 'a.example.com'), 'wild');
  assert.equal(pick(index, 'a.b.example.com'), undefined);
  assert.equal(pick(index, 'example.com'), undefined);
  assert.equal(pick(index, '.example.com'), undefined);
});

test('names are matched without case and without a trailing dot; the first certificate of a tier wins', () => {
  const index = new CertificateIndex(
    [cert('one', ['API.example.com']), cert('two', ['api.example.com'])],
    [],
  );
  assert.equal(pick(index, 'Api.Example.COM.'), 'one');
  assert.equal(normalizeServerName('A.B.'), 'a.b');
});

test('client certificates are required when any certificate has a CA bundle', () => {
  assert.equal(new CertificateIndex([cert('a', ['a.test'])], []).requiresClientCertificates, false);
  const index = new CertificateIndex([cert('a', ['a.test']), cert('m', ['m.test'], 'CA')], []);
  assert.equal(index.requiresClientCertificates, true);
  assert.equal(index.select('m.test')?.clientCaPem, 'CA');
  assert.equal(index.select('a.test')?.clientCaPem, undefined);
});
