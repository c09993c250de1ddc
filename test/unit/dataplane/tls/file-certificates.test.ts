import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { FileCertificates, type ReloadResult } from '../../../../src/dataplane/tls/file-certificates.ts';
import { createLogger } from '../../../../src/observability/logger.ts';

const pem = (name: string) =>
  readFileSync(new URL(`../../../fixtures/tls/listener/${name}`, import.meta.url), 'utf8');
const caPem = readFileSync(new URL('../../../fixtures/tls/ca.crt', import.meta.url), 'utf8');

let dir: string;
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
  dir = await mkdtemp(join(tmpdir(), 'modelgate-tls-files-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cnOf = (f: FileCertificates, i = 0) =>
  new X509Certificate(f.certificates[i]!.entry.material.certificatePem).subject.replace('CN=', '');

test('every file must load at start; the error names the file', async () => {
  const d = join(dir, 'start');
  await mkdir(d);
  await writeFile(join(d, 'a.crt'), pem('file-a.crt'));
  await writeFile(join(d, 'a.key'), pem('file-star.key'));
  await writeFile(join(d, 'ca.crt'), 'not a certificate');
  assert.throws(
    () =>
      new FileCertificates({
        certificates: [
          { hostnames: ['*'], certFile: join(d, 'missing.crt'), keyFile: join(d, 'a.key') },
          { hostnames: ['*'], certFile: join(d, 'a.crt'), keyFile: join(d, 'a.key') },
        ],
        clientCaFile: join(d, 'ca.crt'),
        minVersion: 'TLSv1.2',
        logger,
      }),
    (e: Error) => {
      assert.match(e.message, /client CA .*ca\.crt: no PEM block/);
      assert.match(e.message, /certificate .*missing\.crt: ENOENT/);
      assert.match(e.message, /a\.crt: .*key values mismatch/i);
      return true;
    },
  );
});

test('a Kubernetes-style Secret update (symlink swap) reloads; a bad file keeps the previous certificate', async () => {
  // /mount/tls.crt -> ..data/tls.crt, ..data -> ..v1: what the kubelet writes.
  const mount = join(dir, 'mount');
  await mkdir(join(mount, '..v1'), { recursive: true });
  await writeFile(join(mount, '..v1', 'tls.crt'), pem('file-a.crt'));
  await writeFile(join(mount, '..v1', 'tls.key'), pem('file-a.key'));
  await writeFile(join(mount, '..v1', 'ca.crt'), caPem);
  await symlink('..v1', join(mount, '..data'));
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) await symlink(join('..data', f), join(mount, f));

  const files = new FileCertificates({
    certificates: [
      {
        hostnames: ['files.example.test'],
        certFile: join(mount, 'tls.crt'),
        keyFile: join(mount, 'tls.key'),
      },
    ],
    clientCaFile: join(mount, 'ca.crt'),
    minVersion: 'TLSv1.2',
    logger,
    debounceMs: 10,
    listener: 'https',
  });
  files.watch();
  try {
    assert.equal(cnOf(files), 'file-a');
    assert.equal(files.certificates[0]!.entry.clientCaPem, caPem);
    const v0 = files.version;

    // The new version appears atomically: a new folder, then the ..data link swapped by rename.
    await mkdir(join(mount, '..v2'));
    await writeFile(join(mount, '..v2', 'tls.crt'), pem('file-a-v2.crt'));
    await writeFile(join(mount, '..v2', 'tls.key'), pem('file-a-v2.key'));
    await writeFile(join(mount, '..v2', 'ca.crt'), caPem);
    let reloaded = once(files, 'reload');
    await symlink('..v2', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    let [result] = (await reloaded) as [ReloadResult];
    assert.deepEqual(result, { changed: true, errors: [] });
    assert.equal(cnOf(files), 'file-a-v2');
    assert.equal(files.version, v0 + 1);

    // A key that does not match: the previous certificate stays, and the log says why.
    await mkdir(join(mount, '..v3'));
    await writeFile(join(mount, '..v3', 'tls.crt'), pem('file-a.crt'));
    await writeFile(join(mount, '..v3', 'tls.key'), pem('file-a-v2.key'));
    await writeFile(join(mount, '..v3', 'ca.crt'), caPem);
    reloaded = once(files, 'reload');
    await symlink('..v3', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    [result] = (await reloaded) as [ReloadResult];
    assert.equal(result.changed, false);
    assert.equal(result.errors.length, 1);
    assert.match(result.errors[0]!, /tls\.crt: .*key values mismatch/i);
    assert.equal(cnOf(files), 'file-a-v2');
    assert.equal(files.version, v0 + 1);
    assert.ok(
      logs.some(
        (l) =>
          l.msg === 'TLS file not reloaded; the previous certificate stays in use' &&
          String(l.reason).includes('tls.crt') &&
          l.listener === 'https',
      ),
    );

    // Unchanged files: nothing to do.
    assert.deepEqual(files.reload().changed, false);
  } finally {
    files.close();
  }
});
