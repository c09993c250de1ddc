import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { resolveLogLevel, servingSettings } from '../../../src/cli/serving.ts';
import { UsageError } from '../../../src/cli/usage-error.ts';
import { LOG_LEVELS } from '../../../src/observability/logger.ts';

test('--listen-https with --tls-cert/--tls-key adds an HTTPS listener next to the HTTP one', async () => {
  const s = await servingSettings({
    listen: '127.0.0.1:8080',
    'listen-https': '127.0.0.1:8443',
    'tls-cert': '/tls/tls.crt',
    'tls-key': '/tls/tls.key',
  });
  assert.deepEqual(
    s.listeners.map((l) => `${l.name} ${l.protocol} ${l.address}:${l.port}`),
    ['http HTTP 127.0.0.1:8080', 'https HTTPS 127.0.0.1:8443'],
  );
  assert.deepEqual(s.listeners[1]!.tls?.certificates, [
    { hostnames: ['*'], certFile: '/tls/tls.crt', keyFile: '/tls/tls.key' },
  ]);
});

test('flag errors are usage errors', async () => {
  await assert.rejects(servingSettings({ 'tls-cert': '/c' }), /--tls-cert and --tls-key go together/);
  await assert.rejects(servingSettings({ 'tls-cert': '/c', 'tls-key': '/k' }), /need an HTTPS listener/);
  await assert.rejects(
    servingSettings({ 'listen-https': 'nope' }),
    /--listen-https nope: expected HOST:PORT/,
  );
  await assert.rejects(
    servingSettings({ listen: '127.0.0.1:9901' }),
    /the admin listener \(127\.0\.0\.1:9901\) would share its port with the public listener http/,
  );
});

test('every listener of --config is kept; --listen replaces the first HTTP one', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-serving-'));
  try {
    const file = join(dir, 'gateway.yaml');
    await writeFile(
      file,
      `apiVersion: modelgate.dev/v1alpha1
kind: GatewayConfig
listeners:
  - {name: web, port: 8080}
  - name: secure
    port: 8443
    protocol: HTTPS
    tls: {certificates: [{hostnames: ["*"], certFile: /c, keyFile: /k}]}
trustedProxies: {cidrs: ["10.0.0.0/8"]}
`,
    );
    const s = await servingSettings({ config: file, listen: '127.0.0.1:9000' });
    assert.deepEqual(
      s.listeners.map((l) => `${l.name} ${l.address}:${l.port}`),
      ['web 127.0.0.1:9000', 'secure 0.0.0.0:8443'],
    );
    assert.deepEqual(s.config.trustedProxies.cidrs, ['10.0.0.0/8']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('--log-level, else MODELGATE_LOG_LEVEL, else info; the flag wins', () => {
  assert.equal(resolveLogLevel(undefined, {}), 'info');
  assert.equal(resolveLogLevel(undefined, { MODELGATE_LOG_LEVEL: 'debug' }), 'debug');
  assert.equal(resolveLogLevel('warn', { MODELGATE_LOG_LEVEL: 'debug' }), 'warn');
  // The flag wins outright: a bad variable it overrides is not an error.
  assert.equal(resolveLogLevel('error', { MODELGATE_LOG_LEVEL: 'verbose' }), 'error');
  // An empty variable (a Deployment's `value: ""`) counts as unset.
  assert.equal(resolveLogLevel(undefined, { MODELGATE_LOG_LEVEL: '' }), 'info');
  // Case does not matter.
  assert.equal(resolveLogLevel('DEBUG', {}), 'debug');
  assert.equal(resolveLogLevel(undefined, { MODELGATE_LOG_LEVEL: 'Warn' }), 'warn');
  for (const level of LOG_LEVELS) assert.equal(resolveLogLevel(level, {}), level);
  assert.deepEqual([...LOG_LEVELS], ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);
});

test('a bad log level is a usage error naming the levels and where it came from', () => {
  const levels = 'trace, debug, info, warn, error, fatal, silent';
  const usage = (fn: () => unknown, message: string) =>
    assert.throws(fn, (e: unknown) => {
      assert.ok(e instanceof UsageError, `not a UsageError: ${String(e)}`);
      assert.equal(e.message, message);
      return true;
    });
  usage(() => resolveLogLevel('verbose', {}), `--log-level verbose: expected one of ${levels}`);
  usage(() => resolveLogLevel('', {}), `--log-level "": expected one of ${levels}`);
  usage(
    () => resolveLogLevel(undefined, { MODELGATE_LOG_LEVEL: 'loud' }),
    `MODELGATE_LOG_LEVEL=loud: expected one of ${levels}`,
  );
});
