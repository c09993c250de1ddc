import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isCidr, parseGatewayConfig, parseHostPort } from '../../../src/config/gateway-config.ts';

const base = { apiVersion: 'modelgate.dev/v1alpha1', kind: 'GatewayConfig' };

test('an absent config gives one HTTP listener on 0.0.0.0:8080 and the admin on 127.0.0.1:9901', () => {
  const r = parseGatewayConfig(undefined);
  assert.ok(r.ok);
  assert.deepEqual(r.config.listeners, [{ name: 'http', address: '0.0.0.0', port: 8080, protocol: 'HTTP' }]);
  assert.deepEqual(r.config.admin, { address: '127.0.0.1', port: 9901 });
  assert.deepEqual(r.config.trustedProxies.cidrs, []);
});

test('HTTPS listeners need certificates from a Secret or from files, not both', () => {
  const r = parseGatewayConfig({
    ...base,
    listeners: [
      { name: 'https', port: 8443, protocol: 'HTTPS' },
      {
        name: 'tls2',
        protocol: 'HTTPS',
        tls: {
          certificates: [
            { hostnames: ['a.example.com'], secretRef: { name: 'x' }, certFile: '/c', keyFile: '/k' },
          ],
        },
      },
    ],
  });
  assert.ok(!r.ok);
  assert.deepEqual(
    r.errors.map((e) => `${e.path}: ${e.message}`),
    [
      'listeners[0].tls: required for HTTPS',
      'listeners[1].tls.certificates[0]: set either secretRef or certFile and keyFile',
    ],
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
