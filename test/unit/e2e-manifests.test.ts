/**
 * test/e2e/kind.sh needs Docker and kind, so it cannot run here; this checks what it can without
 * them: the script parses (`bash -n`), every manifest it applies is valid YAML with the expected
 * objects, its ModelRoute is accepted by the compiler, its custom resources pass the CRDs it
 * installs (schema, defaults and CEL rules), its CanaryRollouts steer the route as its scenarios
 * expect, and its RBAC lets the controller make every API request it makes (run here against the
 * fake API server) while granting statuses and Events no more than those requests.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { parseAllDocuments } from 'yaml';
import { ajv } from '../../src/api/ajv.ts';
import { evaluateRules } from '../../src/api/cel.ts';
import type { JsonSchema } from '../../src/api/crd.ts';
import type { Service } from '../../src/api/kubernetes-types.ts';
import { API_VERSION, type CanaryRollout, GROUP, type ModelRoute } from '../../src/api/resources.ts';
import { admitCustomResource } from '../../src/api/validate.ts';
import { rollout } from '../../src/cli/commands/rollout.ts';
import { compile } from '../../src/compiler/compile.ts';
import { revisionOf } from '../../src/controlplane/rollout/status-mapping.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { startController } from '../../src/roles/controller.ts';
import { kubeConfigFor, startFakeApiServer } from '../support/fake-apiserver/index.ts';
import { generatedCrds, openApiSchema, parseCrd } from './api/crd-helpers.ts';

const SCRIPT = fileURLToPath(new URL('../e2e/kind.sh', import.meta.url));

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** Every object `kind.sh --print-manifests` prints, in order. */
function manifests(): K8sObject[] {
  const out = execFileSync('bash', [SCRIPT, '--print-manifests'], { encoding: 'utf8' });
  const docs = parseAllDocuments(out);
  assert.ok(Array.isArray(docs));
  for (const d of docs) assert.deepEqual(d.errors, [], String(d.errors[0]));
  return docs.map((d) => d.toJS() as K8sObject);
}

const byName = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as K8sObject & {
    spec: Record<string, never>;
  };

test('kind.sh: bash syntax', () => {
  execFileSync('bash', ['-n', SCRIPT]);
});

test('kind.sh: its manifests are valid YAML with the expected objects', () => {
  const objects = manifests();
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
    'CanaryRollout/modelgate-demo/chat-v2',
  ])
    assert.ok(names.includes(want), `missing ${want}; have ${names.join(', ')}`);

  const controllerSvc = byName(objects, 'Service', 'modelgate-controller');
  assert.equal(controllerSvc.spec.clusterIP, 'None');
  type Pod = { spec: { containers: { args: string[] }[]; volumes?: unknown[] } };
  const proxyPod = (byName(objects, 'Deployment', 'modelgate-proxy').spec as unknown as { template: Pod })
    .template;
  const args = proxyPod.spec.containers[0]!.args;
  assert.deepEqual(args.slice(0, 5), [
    'proxy',
    '--controller',
    'dns:modelgate-controller.modelgate.svc.cluster.local:8443',
    '--push-token-file',
    '/var/run/modelgate/token/token',
  ]);
  assert.equal(byName(objects, 'Deployment', 'modelgate-controller').spec.replicas, 2);
  assert.equal(byName(objects, 'Deployment', 'modelgate-proxy').spec.replicas, 2);

  // The route compiles: accepted, 90/10 between the two model Services.
  const services = objects.filter((o) => o.kind === 'Service') as unknown as Service[];
  const route = byName(objects, 'ModelRoute', 'chat') as unknown as ModelRoute;
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

/** Fields the CRD schema does not declare (the API server drops them, or refuses them under kubectl's strict validation). */
function undeclared(schema: JsonSchema, value: unknown, path: string): string[] {
  if (value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) {
    const items = schema.items as JsonSchema | undefined;
    return items ? value.flatMap((v, i) => undeclared(items, v, `${path}[${i}]`)) : [];
  }
  const props = schema.properties as Record<string, JsonSchema> | undefined;
  if (!props) return [];
  return Object.entries(value).flatMap(([k, v]) =>
    props[k] ? undeclared(props[k], v, `${path}.${k}`) : [`${path}.${k}`],
  );
}

/** Errors of one custom resource against the CRD file in crds/ that kind.sh installs. */
function crdErrors(o: K8sObject): string[] {
  const found = generatedCrds().find((c) => c.def.kind === o.kind);
  assert.ok(found?.text, `no CRD in crds/ for ${o.kind}`);
  const crd = parseCrd(found.text);
  const [group, version] = o.apiVersion.split('/');
  assert.equal(group, crd.spec.group);
  assert.ok(
    crd.spec.versions.some((v) => v.name === version && v.served),
    `${crd.metadata.name} does not serve ${o.apiVersion}`,
  );
  const schema = openApiSchema(crd);
  const copy = JSON.parse(JSON.stringify(o)) as K8sObject; // validation applies the defaults to it
  const validate = ajv.compile(schema);
  if (!validate(copy)) return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  const spec = (schema.properties as Record<string, JsonSchema>).spec!;
  const unknown = undeclared(spec, copy.spec, 'spec');
  const cel = evaluateRules(spec as unknown as TSchema, copy.spec, 'spec');
  return [...unknown.map((p) => `${p}: not in the CRD schema`), ...cel.map((e) => `${e.path}: ${e.message}`)];
}

test('kind.sh: its custom resources pass the CRDs it installs (schema, defaults, CEL rules)', () => {
  const custom = manifests().filter((o) => o.apiVersion.startsWith(`${GROUP}/`));
  assert.deepEqual(
    custom.map((o) => o.kind),
    ['ModelRoute', 'CanaryRollout', 'CanaryRollout'],
  );
  for (const o of custom) {
    const what = `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`;
    assert.equal(o.apiVersion, API_VERSION);
    // The schemas crds/ is generated from (unknown fields refused), then the files themselves.
    const admitted = admitCustomResource(o);
    assert.ok(admitted.ok, `${what}: ${JSON.stringify(!admitted.ok && admitted.errors)}`);
    assert.deepEqual(crdErrors(o), [], what);
  }

  // The CEL rules really run on these objects: a broken copy of each rollout is refused both ways.
  const rollout = custom.find((o) => o.kind === 'CanaryRollout')!;
  const same = structuredClone(rollout);
  same.spec!.canaryBackend = 'v1';
  assert.deepEqual(crdErrors(same), ['spec: stableBackend and canaryBackend must differ']);
  assert.equal(admitCustomResource(same).ok, false);
  const twoInOne = structuredClone(rollout);
  (twoInOne.spec!.steps as Record<string, unknown>[])[0]!.pause = { duration: '1s' };
  assert.deepEqual(crdErrors(twoInOne), [
    'spec.steps[0]: each step sets exactly one of setWeight, pause or analysis',
  ]);
  const typo = structuredClone(rollout);
  (typo.spec!.steps as Record<string, unknown>[])[1] = { pause: { durration: '15s' } };
  assert.deepEqual(crdErrors(typo), ['spec.steps[1].pause.durration: not in the CRD schema']);
});

test('kind.sh: its CanaryRollouts steer the route as its scenarios expect', () => {
  const objects = manifests();
  const services = objects.filter((o) => o.kind === 'Service') as unknown as Service[];
  const route = byName(objects, 'ModelRoute', 'chat') as unknown as ModelRoute;
  const rollouts = objects
    .filter((o) => o.kind === 'CanaryRollout')
    .map((o) => {
      const a = admitCustomResource(o);
      assert.ok(a.ok);
      return a.resource as CanaryRollout;
    });
  assert.equal(rollouts.length, 2);
  const [promoted, manual] = rollouts as [CanaryRollout, CanaryRollout];
  for (const r of rollouts) {
    assert.equal(`${r.metadata.namespace}/${r.metadata.name}`, 'modelgate-demo/chat-v2');
    assert.deepEqual(r.spec.routeRef, { name: 'chat' });
    assert.equal(r.spec.stableBackend, 'v1');
    assert.equal(r.spec.canaryBackend, 'v2');
  }
  // Scenario 1: the steps as specified (history 0 20 50 100 once promoted).
  assert.deepEqual(promoted.spec.steps, [
    { setWeight: 20 },
    { pause: { duration: '15s' } },
    { setWeight: 50 },
    {
      analysis: {
        interval: '30s',
        minRequests: 20,
        maxErrorRate: 0.05,
        failureLimit: 0,
        intervals: 1,
      },
    },
    { setWeight: 100 },
  ]);
  // Scenario 2 applies the second over the first: other steps, so a new run (revision) starts,
  // and it waits at 30% in a pause without a duration for the actions.
  assert.notEqual(revisionOf(manual), revisionOf(promoted));
  assert.deepEqual(manual.spec.steps, [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }]);

  // The weights the scenarios check traffic against: the engine's stepWeight is what the table serves.
  for (const [r, weight] of [
    [promoted, 0],
    [promoted, 20],
    [promoted, 50],
    [promoted, 100],
    [manual, 30],
    [manual, 0],
  ] as const) {
    const result = compile({
      modelRoutes: [{ ...route, metadata: { ...route.metadata, generation: 1 } }],
      rateLimitPolicies: [],
      canaryRollouts: [
        { ...r, metadata: { ...r.metadata, generation: 1 }, status: { stepWeight: weight } } as CanaryRollout,
      ],
      services,
      endpointSlices: [],
      secrets: [],
    });
    const status = result.statuses.find((s) => s.kind === 'CanaryRollout')?.status as
      | { conditions: { type: string; status: string }[]; servedWeight?: number }
      | undefined;
    assert.equal(
      status?.conditions.find((c) => c.type === 'Accepted')?.status,
      'True',
      JSON.stringify(status),
    );
    assert.equal(status?.servedWeight, weight);
    const rule = result.table.routes.rules.find((x) => x.route === 'modelgate-demo/chat');
    assert.deepEqual(
      rule?.backends.map((b) => [b.name, b.weight]),
      [
        ['v1', (100 - weight) * 100],
        ['v2', weight * 100],
      ],
      `stepWeight ${weight}`,
    );
  }
});

/** The verbs `rules` grant on `resource` (`canaryrollouts/status` for a subresource) of `group`. */
function granted(rules: PolicyRule[], group: string, resource: string): Set<string> {
  const out = new Set<string>();
  for (const r of rules) {
    if (!r.apiGroups.includes(group) && !r.apiGroups.includes('*')) continue;
    if (!r.resources.includes(resource) && !r.resources.includes('*')) continue;
    for (const v of r.verbs) out.add(v);
  }
  return out;
}

test('kind.sh: RBAC lets the controller make its requests, and grants statuses and Events no more', async (t) => {
  const objects = manifests();
  const rulesOf = (kind: string, name: string) =>
    (objects.find((o) => o.kind === kind && o.metadata.name === name) as unknown as { rules: PolicyRule[] })
      .rules;
  const clusterRules = rulesOf('ClusterRole', 'modelgate-controller');
  const nsRules = rulesOf('Role', 'modelgate-controller');
  for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
    const b = objects.find(
      (o) => o.kind === kind && o.metadata.name === 'modelgate-controller',
    ) as unknown as {
      roleRef: { kind: string; name: string };
      subjects: { kind: string; name: string; namespace: string }[];
    };
    assert.equal(b.roleRef.kind, kind.replace('Binding', ''));
    assert.equal(b.roleRef.name, 'modelgate-controller');
    assert.deepEqual(b.subjects, [
      { kind: 'ServiceAccount', name: 'modelgate-controller', namespace: 'modelgate' },
    ]);
  }
  for (const r of [...clusterRules, ...nsRules]) {
    for (const list of [r.apiGroups, r.resources, r.verbs]) assert.ok(!list.includes('*'), JSON.stringify(r));
  }

  // The controller against the fake API server, on kind.sh's own objects: it starts, takes the
  // Lease, writes statuses and runs the second rollout to its pause; then an abort, as the scenario
  // does, and `modelgate rollout status` (kind.sh runs it with the controller's ServiceAccount).
  const api = await startFakeApiServer();
  const kc = kubeConfigFor(api.url);
  const quiet = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;
  let controller: Awaited<ReturnType<typeof startController>> | undefined;
  t.after(async () => {
    await controller?.shutdown();
    await api.close();
  });
  for (const o of objects) {
    if (['Namespace', 'Service', 'ModelRoute'].includes(o.kind)) api.apply(o as never);
  }
  const manual = objects.filter((o) => o.kind === 'CanaryRollout').at(-1)!;
  api.apply(manual as never);
  controller = await startController({
    kc,
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: quiet,
  });
  type Rollout = { status?: { phase?: string } };
  const phase = (want: string) =>
    api.waitFor((s) => s.get<Rollout>('CanaryRollout', 'modelgate-demo', 'chat-v2')?.status?.phase === want, {
      message: `CanaryRollout phase ${want}`,
    });
  await phase('Paused');
  api.apply({
    ...manual,
    metadata: { ...manual.metadata, annotations: { 'modelgate.dev/abort': '1' } },
  } as never);
  await phase('RolledBack');
  await api.waitFor(
    (s) => s.recordedEvents('modelgate-demo').some((e) => (e as { reason?: string }).reason === 'RolledBack'),
    {
      message: 'a RolledBack Event',
    },
  );
  await api.waitFor((s) => s.get<{ status?: unknown }>('ModelRoute', 'modelgate-demo', 'chat')?.status, {
    message: 'the ModelRoute status',
  });
  assert.match(await rollout(kc, 'status', 'modelgate-demo', 'chat-v2'), /: RolledBack\n/);
  await controller.shutdown();
  controller = undefined;

  const used = new Map<string, Set<string>>();
  for (const r of api.requests) {
    if (r.resource === undefined) continue; // discovery, /version
    const resource = r.subresource ? `${r.resource}/${r.subresource}` : r.resource;
    const group = r.group ?? '';
    const key = `${group}/${resource}`;
    if (!used.has(key)) used.set(key, new Set());
    used.get(key)!.add(r.verb);
    // Namespaced requests in the controller's own namespace may use the Role too.
    const allowed = granted(clusterRules, group, resource);
    if (r.namespace === 'modelgate') for (const v of granted(nsRules, group, resource)) allowed.add(v);
    assert.ok(
      allowed.has(r.verb),
      `RBAC does not allow ${r.method} ${r.path} (${r.verb} ${key}${r.namespace ? ` in ${r.namespace}` : ', cluster-wide'})`,
    );
  }
  // What was exercised, so the checks above mean something.
  assert.deepEqual([...(used.get(`${GROUP}/canaryrollouts/status`) ?? [])], ['patch']);
  assert.deepEqual([...(used.get(`${GROUP}/modelroutes/status`) ?? [])], ['patch']);
  assert.deepEqual([...(used.get('/events') ?? [])], ['create']);
  assert.ok(used.get(`${GROUP}/canaryrollouts`)?.has('watch'));
  assert.ok(used.get(`${GROUP}/canaryrollouts`)?.has('get'), 'modelgate rollout status');

  // Least privilege: statuses are only merge-patched, Events only created (core/v1, never patched),
  // and nothing else may touch either.
  for (const resource of ['modelroutes/status', 'ratelimitpolicies/status', 'canaryrollouts/status']) {
    assert.deepEqual([...granted(clusterRules, GROUP, resource)], ['patch'], resource);
    assert.deepEqual([...granted(nsRules, GROUP, resource)], [], resource);
  }
  assert.deepEqual([...granted(clusterRules, '', 'events')], ['create']);
  assert.deepEqual([...granted(nsRules, '', 'events')], []);
  assert.ok(
    ![...clusterRules, ...nsRules].some((r) => r.apiGroups.includes('events.k8s.io')),
    'events.k8s.io is not used',
  );
  assert.ok(
    !granted(clusterRules, GROUP, 'canaryrollouts').has('patch'),
    'the controller never edits a CanaryRollout itself, only its status',
  );
});
