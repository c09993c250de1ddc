/**
 * The push stream's TLS flags: `modelgate controller --push-tls-cert/--push-tls-key` (both or
 * neither; the files read and checked at start) and `modelgate proxy --push-ca`
 * (`--push-ca-file`), `--push-server-name`, and the controller addresses they allow.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { controllerHelp, loadPushTls, pushTlsFlags } from '../../../src/cli/commands/controller.ts';
import { proxyHelp, pushSettings } from '../../../src/cli/commands/proxy.ts';
import { UsageError } from '../../../src/cli/usage-error.ts';
import { createCa } from '../../support/pki.ts';
import { runCli } from './run-cli.ts';

const ca = createCa('Flags Test CA');
const skip = ca ? false : 'openssl is not available';
let dir: string;
const file = (name: string) => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-push-flags-'));
  if (!ca) return;
  const a = ca.issue('a', ['ctl.ns.svc']);
  const b = ca.issue('b', ['ctl.ns.svc']);
  await writeFile(file('tls.crt'), a.cert);
  await writeFile(file('tls.key'), a.key);
  await writeFile(file('other.key'), b.key);
  await writeFile(file('ca.crt'), ca.cert);
  await writeFile(file('not-pem.crt'), 'hello\n');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  ca?.close();
});

const quiet = pino({ level: 'silent' });

test('controller: --push-tls-cert and --push-tls-key go together', () => {
  assert.equal(pushTlsFlags({}), undefined);
  assert.deepEqual(pushTlsFlags({ 'push-tls-cert': '/c', 'push-tls-key': '/k' }), {
    certFile: '/c',
    keyFile: '/k',
  });
  for (const half of [{ 'push-tls-cert': '/c' }, { 'push-tls-key': '/k' }])
    assert.throws(
      () => pushTlsFlags(half),
      (e: unknown) =>
        e instanceof UsageError && /--push-tls-cert and --push-tls-key go together/.test(e.message),
    );
  assert.throws(() => pushTlsFlags({ 'push-tls-cert': '', 'push-tls-key': '/k' }), /need a file/);
});

test('controller: the files are read and checked at start', { skip }, () => {
  const ok = loadPushTls({ certFile: file('tls.crt'), keyFile: file('tls.key') }, quiet);
  assert.match(ok.certificates[0]!.entry.material.certificatePem, /BEGIN CERTIFICATE/);
  const refused = (certFile: string, keyFile: string, why: RegExp) =>
    assert.throws(
      () => loadPushTls({ certFile, keyFile }, quiet),
      (e: unknown) =>
        e instanceof UsageError &&
        /^--push-tls-cert\/--push-tls-key: /.test(e.message) &&
        why.test(e.message),
    );
  refused(file('missing.crt'), file('tls.key'), /certificate .*missing\.crt: ENOENT/);
  refused(file('not-pem.crt'), file('tls.key'), /not-pem\.crt: no PEM block/);
  // A key that is not the certificate's.
  refused(file('tls.crt'), file('other.key'), /tls\.crt/);
});

test('proxy: --push-ca makes scheme-less addresses https and refuses plaintext ones', { skip }, () => {
  assert.deepEqual(pushSettings({ controller: ['dns:ctl.ns.svc:8443'], 'push-ca': file('ca.crt') }), {
    controllers: ['dns:ctl.ns.svc:8443'],
    ca: ca!.cert,
  });
  // The older spelling, and MODELGATE_PUSH_CA_FILE, do the same.
  assert.equal(pushSettings({ controller: ['ctl:8443'], 'push-ca-file': file('ca.crt') }).ca, ca!.cert);
  assert.equal(
    pushSettings({ controller: ['ctl:8443'], 'push-ca': file('ca.crt'), 'push-ca-file': file('ca.crt') }).ca,
    ca!.cert,
  );
  assert.deepEqual(
    pushSettings(
      {},
      { MODELGATE_CONTROLLERS: 'dns:https://a.ns.svc:8443,b:8443', MODELGATE_PUSH_CA_FILE: file('ca.crt') },
    ),
    { controllers: ['dns:https://a.ns.svc:8443', 'b:8443'], ca: ca!.cert },
  );
  assert.deepEqual(
    pushSettings({
      controller: ['dns:https://ctl.ns.svc.cluster.local:8443'],
      'push-server-name': 'ctl.ns.svc',
    }),
    { controllers: ['dns:https://ctl.ns.svc.cluster.local:8443'], serverName: 'ctl.ns.svc' },
  );
  const refused = (values: Parameters<typeof pushSettings>[0], why: RegExp) =>
    assert.throws(
      () => pushSettings(values),
      (e: unknown) => e instanceof UsageError && why.test(e.message),
      JSON.stringify(values),
    );
  refused({}, /proxy needs at least one --controller/);
  refused(
    { controller: ['http://10.0.0.5:8443'], 'push-ca': file('ca.crt') },
    /--controller http:\/\/10\.0\.0\.5:8443: plaintext http while a push CA is given/,
  );
  refused(
    { controller: ['dns:http://ctl.ns.svc:8443'], 'push-ca': file('ca.crt') },
    /plaintext http while a push CA is given/,
  );
  refused({ controller: ['ctl.ns.svc'] }, /--controller ctl\.ns\.svc: expected/);
  refused({ controller: ['ctl:8443'], 'push-ca': file('missing.crt') }, /--push-ca .*missing\.crt: ENOENT/);
  refused({ controller: ['ctl:8443'], 'push-ca': file('not-pem.crt') }, /no PEM certificate/);
  refused(
    { controller: ['ctl:8443'], 'push-ca': file('ca.crt'), 'push-ca-file': file('tls.crt') },
    /--push-ca and --push-ca-file name different files/,
  );
  refused(
    { controller: ['ctl:8443'], 'push-server-name': 'https://ctl' },
    /--push-server-name .*expected a DNS name/,
  );
});

test('the help names every flag; a wrong combination exits 2 with the reason', { skip }, async () => {
  for (const f of ['--push-tls-cert FILE', '--push-tls-key FILE']) assert.ok(controllerHelp.includes(f), f);
  for (const f of ['--push-ca FILE', '--push-ca-file FILE', '--push-server-name N'])
    assert.ok(proxyHelp.includes(f), f);
  const half = await runCli(['controller', '--push-tls-cert', file('tls.crt')]);
  assert.equal(half.code, 2);
  assert.match(half.stderr, /modelgate controller: --push-tls-cert and --push-tls-key go together/);
  const mixed = await runCli([
    'proxy',
    '--controller',
    'http://127.0.0.1:8443',
    '--push-ca',
    file('ca.crt'),
    '--push-token-file',
    file('token'),
  ]);
  assert.equal(mixed.code, 2);
  assert.match(mixed.stderr, /modelgate proxy: --controller http:\/\/127\.0\.0\.1:8443: plaintext http/);
  // Flags are parsed before --help, which then shows the usage.
  const help = await runCli([
    'proxy',
    '--push-ca',
    file('ca.crt'),
    '--push-server-name',
    'ctl.ns.svc',
    '--help',
  ]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--push-ca FILE/);
});
