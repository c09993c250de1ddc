/**
 * The generated copies stay in step with their sources: the chart's crds/ is crds/ byte for byte
 * (and Helm packages and installs it), and deploy/ is what `npm run deploy:render` renders from the
 * chart now. CI fails when the chart, the schemas or the CRDs change without re-rendering.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  CHART_CRD_DIR,
  DEPLOY_DIR,
  DEPLOY_NAMESPACE,
  renderDeploy,
  sourceCrds,
} from '../../../scripts/render-deploy.ts';
import {
  CHART_DIR,
  helm,
  idOf,
  kubernetesProblems,
  parseStream,
  render,
  renderText,
} from './chart-helpers.ts';

const STALE = 'stale: run `npm run deploy:render` (or `npm run gen:crds` after a schema change)';

test("the chart's crds/ is the repository's crds/, byte for byte", () => {
  const source = sourceCrds();
  assert.ok(source.size >= 3);
  assert.deepEqual(readdirSync(CHART_CRD_DIR).sort(), [...source.keys()], STALE);
  for (const [file, text] of source)
    assert.ok(readFileSync(join(CHART_CRD_DIR, file), 'utf8') === text, `${file}: ${STALE}`);
});

test('every CRD is a valid CustomResourceDefinition, and Helm packages and installs them', async (t) => {
  const crds = parseStream([...sourceCrds().values()].join(''));
  assert.deepEqual(
    crds.map((c) => c.metadata.name),
    ['canaryrollouts.modelgate.dev', 'modelroutes.modelgate.dev', 'ratelimitpolicies.modelgate.dev'],
  );
  for (const crd of crds) assert.deepEqual(await kubernetesProblems(crd), [], idOf(crd));
  // `helm install` applies crds/ before the templates; `helm template --include-crds` shows that.
  const withCrds = parseStream(renderText(['--include-crds']));
  assert.deepEqual(
    withCrds.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name),
    crds.map((c) => c.metadata.name),
  );
  assert.equal(withCrds.length, crds.length + render().length);
  // The packaged chart holds them too (a symlink would not survive this).
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-helm-package-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = helm(['package', CHART_DIR, '--destination', dir]);
  const tgz = join(dir, 'modelgate-0.1.0.tgz');
  assert.match(out, /Successfully packaged chart/);
  const files = execFileSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).trim().split('\n');
  for (const f of sourceCrds().keys()) assert.ok(files.includes(`modelgate/crds/${f}`), `${f} packaged`);
  assert.ok(files.includes('modelgate/values.schema.json'));
  const shown = parseStream(helm(['show', 'crds', tgz]));
  assert.deepEqual(
    shown.map((o) => o.metadata.name),
    crds.map((c) => c.metadata.name),
  );
});

test('deploy/ is fresh: what the chart renders now with its default values', () => {
  const want = renderDeploy();
  assert.deepEqual(readdirSync(DEPLOY_DIR).sort(), [...want.keys()].sort(), STALE);
  for (const [file, text] of want) {
    const have = readFileSync(join(DEPLOY_DIR, file), 'utf8');
    // A plain comparison: a diff of 150 KB of YAML is no help in a test report.
    assert.ok(have === text, `deploy/${file}: ${STALE}`);
  }
});

test('deploy/ applies as it is: the Namespace first, every object valid, all in the namespace', async () => {
  const objects = parseStream(readFileSync(join(DEPLOY_DIR, 'modelgate.yaml'), 'utf8'));
  assert.equal(objects[0]?.kind, 'Namespace');
  assert.equal(objects[0]?.metadata.name, DEPLOY_NAMESPACE);
  // The pods meet the restricted Pod Security Standard (render.test.ts checks their contexts).
  assert.equal(objects[0]?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
  const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding']);
  for (const o of objects) {
    assert.deepEqual(await kubernetesProblems(o), [], idOf(o));
    if (!clusterScoped.has(o.kind)) assert.equal(o.metadata.namespace, DEPLOY_NAMESPACE, idOf(o));
  }
  assert.deepEqual(
    objects.map((o) => o.kind),
    ['Namespace', ...render().map((o) => o.kind)],
  );
  const crds = parseStream(readFileSync(join(DEPLOY_DIR, 'crds.yaml'), 'utf8'));
  assert.deepEqual(
    crds.map((o) => o.kind),
    ['CustomResourceDefinition', 'CustomResourceDefinition', 'CustomResourceDefinition'],
  );
});
