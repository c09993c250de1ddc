/**
 * test/e2e/kind.sh needs Docker and kind, so it cannot run here; this checks what it can without
 * them: the script parses (`bash -n`), every manifest it applies is valid YAML with the expected
 * objects, and its ModelRoute is accepted by the compiler.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { Service } from '../../src/api/kubernetes-types.ts';
import type { ModelRoute } from '../../src/api/resources.ts';
import { compile } from '../../src/compiler/compile.ts';

const SCRIPT = fileURLToPath(new URL('../e2e/kind.sh', import.meta.url));

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

test('kind.sh: bash syntax', () => {
  execFileSync('bash', ['-n', SCRIPT]);
});

test('kind.sh: its manifests are valid YAML with the expected objects', () => {
  const out = execFileSync('bash', [SCRIPT, '--print-manifests'], { encoding: 'utf8' });
  const docs = parseAllDocuments(out);
  assert.ok(Array.isArray(docs));
  for (const d of docs) assert.deepEqual(d.errors, [], String(d.errors[0]));
  const objects = docs.map((d) => d.toJS() as K8sObject);
  for (const o of objects) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, JSON.stringify(o));
    assert.ok(!JSON.stringify(o).includes('${'), `unexpanded variable in ${o.kind}/${o.metadata.name}`);
  }
  const names = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  for (const want of [
    'Namespace//modelgate',
    'ServiceAccount/modelgate/modelgate-controller',
    'ClusterRole//modelgate-controller',
    'ClusterRoleBinding//modelgate-controller',
    'Role/modelgate/modelgate-controller',
    'RoleBinding/modelgate/modelgate-controller',
    'Deployment/modelgate/modelgate-controller',
    'Service/modelgate/modelgate-controller',
    'Deployment/modelgate/modelgate-proxy',
    'Service/modelgate/modelgate-proxy',
    'Deployment/modelgate-demo/model-v1',
    'Deployment/modelgate-demo/model-v2',
    'ModelRoute/modelgate-demo/chat',
  ])
    assert.ok(names.includes(want), `missing ${want}; have ${names.join(', ')}`);

  const byName = (kind: string, name: string) =>
    objects.find((o) => o.kind === kind && o.metadata.name === name) as K8sObject & {
      spec: Record<string, never>;
    };
  const controllerSvc = byName('Service', 'modelgate-controller');
  assert.equal(controllerSvc.spec.clusterIP, 'None');
  type Pod = { spec: { containers: { args: string[] }[]; volumes?: unknown[] } };
  const proxyPod = (byName('Deployment', 'modelgate-proxy').spec as unknown as { template: Pod }).template;
  const args = proxyPod.spec.containers[0]!.args;
  assert.deepEqual(args.slice(0, 5), [
    'proxy',
    '--controller',
    'dns:modelgate-controller.modelgate.svc.cluster.local:8443',
    '--push-token-file',
    '/var/run/modelgate/token/token',
  ]);
  assert.equal(byName('Deployment', 'modelgate-controller').spec.replicas, 2);
  assert.equal(byName('Deployment', 'modelgate-proxy').spec.replicas, 2);

  // The route compiles: accepted, 90/10 between the two model Services.
  const services = objects.filter((o) => o.kind === 'Service') as unknown as Service[];
  const route = byName('ModelRoute', 'chat') as unknown as ModelRoute;
  const result = compile({
    modelRoutes: [{ ...route, metadata: { ...route.metadata, generation: 1 } }],
    rateLimitPolicies: [],
    canaryRollouts: [],
    services,
    endpointSlices: [],
    secrets: [],
  });
  const status = result.statuses.find((s) => s.name === 'chat');
  const accepted = status?.status.conditions.find((c) => c.type === 'Accepted');
  assert.equal(accepted?.status, 'True', JSON.stringify(status));
  const rule = result.table.routes.rules.find((r) => r.route === 'modelgate-demo/chat');
  assert.deepEqual(
    rule?.backends.map((b) => [b.name, b.weight]),
    [
      ['v1', 9000],
      ['v2', 1000],
    ],
  );
});
