import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  applyListenerOverrides,
  bindConflicts,
  isCidr,
  parseGatewayConfig,
  parseHostPort,
  publicListeners,
} from '../../../src/config/gateway-config.ts';

const base = { apiVersion: 'modelgate.dev/v1alpha1', kind: 'GatewayConfig' };

test('an absent config gives one HTTP listener on 0.0.0.0:8080 and the admin on 127.0.0.1:9901', () => {
  const r = parseGatewayConfig(undefined);
  assert.ok(r.ok);
  assert.deepEqual(r.config.listeners, [{ name: 'http', address: '0.0.0.0', port: 8080, protocol: 'HTTP' }]);
  assert.deepEqual(r.config.admin, { address: '127.0.0.1', port: 9901 });
  assert.deepEqual(r.config.trustedProxies.cidrs, []);
});

test('HTTPS listeners: route certificates only, or their own from files (no Secret references)', () => {
  const ok = parseGatewayConfig({
    ...base,
    listeners: [
      { name: 'routes-only', port: 8443, protocol: 'HTTPS' },
      {
        name: 'files',
        port: 9443,
        protocol: 'HTTPS',
        tls: {
          certificates: [
            { hostnames: ['api.example.com', '*.apps.example.com', '*'], certFile: '/c', keyFile: '/k' },
          ],
          clientCA: { file: '/ca.crt' },
        },
      },
    ],
  });
  assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.errors));
  assert.equal(ok.config.listeners[0]!.tls, undefined);
  assert.equal(ok.config.listeners[1]!.tls?.minVersion, 'TLSv1.2');

  const r = parseGatewayConfig({
    ...base,
    listeners: [
      {
        name: 'secret',
        protocol: 'HTTPS',
        port: 1,
        tls: { certificates: [{ hostnames: ['a.example.com'], secretRef: { name: 'x' } }] },
      },
      {
        name: 'nokey',
        protocol: 'HTTPS',
        port: 2,
        tls: { certificates: [{ hostnames: ['a.example.com'], certFile: '/c' }] },
      },
      {
        name: 'caref',
        protocol: 'HTTPS',
        port: 3,
        tls: { certificates: [], clientCA: { secretRef: { name: 'ca' } } },
      },
    ],
  });
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => `${e.path}: ${e.message}`),
    [
      '.listeners[0].tls.certificates[0].certFile: required field is missing',
      '.listeners[0].tls.certificates[0].keyFile: required field is missing',
      '.listeners[0].tls.certificates[0].secretRef: unknown field',
      '.listeners[1].tls.certificates[0].keyFile: required field is missing',
      '.listeners[2].tls.clientCA.file: required field is missing',
      '.listeners[2].tls.clientCA.secretRef: unknown field',
    ],
  );
});

test('listener rules: tls only on HTTPS, clientCA needs certificates, host names are checked', () => {
  const r = parseGatewayConfig({
    ...base,
    listeners: [
      { name: 'http', tls: { certificates: [] } },
      { name: 'ca-alone', protocol: 'HTTPS', port: 1, tls: { clientCA: { file: '/ca.crt' } } },
      {
        name: 'names',
        protocol: 'HTTPS',
        port: 2,
        tls: {
          certificates: [
            { hostnames: ['ok.example.com', 'a.*.example.com', 'bad name'], certFile: '/c', keyFile: '/k' },
          ],
        },
      },
    ],
  });
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => `${e.path}: ${e.message}`),
    [
      'listeners[0].tls: only allowed for HTTPS',
      "listeners[1].tls.clientCA: applies to the listener's own certificates, and it has none",
      'listeners[2].tls.certificates[0].hostnames[1]: a.*.example.com is not a host name, a *.wildcard or *',
      'listeners[2].tls.certificates[0].hostnames[2]: bad name is not a host name, a *.wildcard or *',
    ],
  );
});

test('the admin listener and public listeners may not share an address and port', () => {
  const listeners = [
    { name: 'http', address: '0.0.0.0', port: 8080 },
    { name: 'https', address: '127.0.0.1', port: 8443 },
  ];
  assert.deepEqual(bindConflicts(listeners, { address: '127.0.0.1', port: 9901 }), []);
  assert.deepEqual(bindConflicts(listeners, { address: '10.0.0.1', port: 8443 }), [], 'other addresses');
  assert.deepEqual(
    bindConflicts([{ name: 'a', address: '127.0.0.1', port: 0 }], { address: '127.0.0.1', port: 0 }),
    [],
    'port 0 picks',
  );
  assert.deepEqual(bindConflicts(listeners, { address: '127.0.0.1', port: 8080 }), [
    'the admin listener (127.0.0.1:8080) would share its port with the public listener http (0.0.0.0:8080); give it another --admin address or port',
  ]);
  assert.deepEqual(
    bindConflicts([...listeners, { name: 'again', address: '::', port: 8443 }], {
      address: '127.0.0.1',
      port: 9901,
    }),
    ['listeners https and again both bind :::8443'],
  );
  const r = parseGatewayConfig({ ...base, listeners: [{ name: 'http', port: 9901, address: '127.0.0.1' }] });
  assert.ok(!r.ok);
  assert.match(
    r.errors[0]!.message,
    /admin listener \(127\.0\.0\.1:9901\) would share its port with the public listener http/,
  );
  assert.throws(
    () =>
      publicListeners(undefined, { address: '127.0.0.1', port: 7000 }, { address: '127.0.0.1', port: 7000 }),
    /admin listener \(127\.0\.0\.1:7000\) would share its port/,
  );
});

test('--listen, --listen-https and --tls-cert/--tls-key over the configured listeners', () => {
  const parsed = parseGatewayConfig({
    ...base,
    listeners: [
      { name: 'web', port: 80 },
      {
        name: 'secure',
        port: 443,
        protocol: 'HTTPS',
        tls: {
          minVersion: 'TLSv1.3',
          clientCA: { file: '/ca' },
          certificates: [{ hostnames: ['a.example.com'], certFile: '/a.crt', keyFile: '/a.key' }],
        },
      },
      { name: 'web2', port: 81 },
    ],
  });
  assert.ok(parsed.ok);
  const ls = parsed.config.listeners;
  const r = applyListenerOverrides(ls, {
    listen: { address: '127.0.0.1', port: 8080 },
    listenHttps: { address: '127.0.0.1', port: 8443 },
    certificate: { certFile: '/t.crt', keyFile: '/t.key' },
  });
  assert.ok(r.ok);
  assert.deepEqual(
    r.listeners.map((l) => `${l.name} ${l.protocol} ${l.address}:${l.port}`),
    ['web HTTP 127.0.0.1:8080', 'secure HTTPS 127.0.0.1:8443', 'web2 HTTP 0.0.0.0:81'],
  );
  assert.deepEqual(r.listeners[1]!.tls, {
    minVersion: 'TLSv1.3',
    clientCA: { file: '/ca' },
    certificates: [{ hostnames: ['*'], certFile: '/t.crt', keyFile: '/t.key' }],
  });
  assert.equal(ls[0]!.port, 80, 'the config is not changed');

  // No HTTPS listener configured: --listen-https adds one, with or without a certificate.
  const http = parseGatewayConfig(undefined);
  assert.ok(http.ok);
  const added = applyListenerOverrides(http.config.listeners, {
    listenHttps: { address: '0.0.0.0', port: 8443 },
    certificate: { certFile: '/t.crt', keyFile: '/t.key' },
  });
  assert.ok(added.ok);
  assert.deepEqual(added.listeners[1], {
    name: 'https',
    protocol: 'HTTPS',
    address: '0.0.0.0',
    port: 8443,
    tls: {
      minVersion: 'TLSv1.2',
      certificates: [{ hostnames: ['*'], certFile: '/t.crt', keyFile: '/t.key' }],
    },
  });
  const routesOnly = applyListenerOverrides(http.config.listeners, {
    listenHttps: { address: '0.0.0.0', port: 8443 },
  });
  assert.ok(routesOnly.ok);
  assert.deepEqual(routesOnly.listeners[1]?.tls, { minVersion: 'TLSv1.2', certificates: [] });
  const orphan = applyListenerOverrides(http.config.listeners, {
    certificate: { certFile: '/c', keyFile: '/k' },
  });
  assert.deepEqual(orphan, {
    ok: false,
    error: '--tls-cert and --tls-key need an HTTPS listener (--listen-https)',
  });
  // Only HTTPS configured: --listen adds an HTTP listener first.
  const onlyTls = applyListenerOverrides([ls[1]!], { listen: { address: '::', port: 8080 } });
  assert.ok(onlyTls.ok);
  assert.deepEqual(
    onlyTls.listeners.map((l) => `${l.name} ${l.protocol}`),
    ['http HTTP', 'secure HTTPS'],
  );
});

test('unknown fields, bad CIDRs and duplicate listener names are reported by path', () => {
  const r = parseGatewayConfig({
    ...base,
    listeners: [{ name: 'a' }, { name: 'a', port: 81 }],
    trustedProxies: { cidrs: ['10.0.0.0/8', '10.0.0.0/33', 'not-an-ip'] },
  });
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => e.path),
    ['trustedProxies.cidrs[1]', 'trustedProxies.cidrs[2]', 'listeners[1].name'],
  );
  const unknown = parseGatewayConfig({ ...base, listners: [] });
  assert.ok(!unknown.ok);
  assert.equal(unknown.errors[0]?.path, '.listners');
  assert.equal(unknown.errors[0]?.message, 'unknown field');
});

test('CIDRs and host:port flags', () => {
  for (const ok of ['10.0.0.0/8', '192.168.1.1', '2001:db8::/32', '::1/128']) assert.ok(isCidr(ok), ok);
  for (const bad of ['10.0.0.0/', '10.0.0.0/8/1', 'fe80::/129', 'example.com/8'])
    assert.ok(!isCidr(bad), bad);
  assert.deepEqual(parseHostPort('0.0.0.0:8080'), { address: '0.0.0.0', port: 8080 });
  assert.deepEqual(parseHostPort('[::1]:9901'), { address: '::1', port: 9901 });
  assert.deepEqual(parseHostPort(':0'), { address: '0.0.0.0', port: 0 });
  assert.equal(parseHostPort('localhost'), undefined);
  assert.equal(parseHostPort('a:70000'), undefined);
});
