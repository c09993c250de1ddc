/**
 * The chart's RBAC is least privilege, checked both ways against what the controller really does:
 * the controller runs against the fake API server with the flags the chart gives it, on a route, a
 * token-limit policy and a rollout taken to a pause and aborted; every request it makes must be
 * allowed by the rendered Roles and ClusterRoles (resourceNames included), and every permission
 * they grant must have been used by some request. Once cluster-wide (a ClusterRole), once with
 * `controller.watchNamespaces` (Roles in the watched namespaces only).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { GROUP } from '../../../src/api/resources.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import {
  kubeConfigFor,
  type RecordedRequest,
  startFakeApiServer,
} from '../../support/fake-apiserver/index.ts';
import { containerOf, flag, flags, type K8sObject, NAMESPACE, render } from './chart-helpers.ts';

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
type RoleObject = K8sObject & { rules: PolicyRule[] };
type Binding = K8sObject & {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
};

/** The rules that apply to a ServiceAccount, with where they apply (undefined: every namespace). */
function rulesFor(objects: K8sObject[], sa: { name: string; namespace: string }) {
  const out: { namespace: string | undefined; rule: PolicyRule }[] = [];
  for (const b of objects.filter(
    (o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding',
  ) as Binding[]) {
    if (
      !b.subjects.some(
        (s) => s.kind === 'ServiceAccount' && s.name === sa.name && s.namespace === sa.namespace,
      )
    )
      continue;
    const role = objects.find(
      (o) =>
        o.kind === b.roleRef.kind &&
        o.metadata.name === b.roleRef.name &&
        (b.roleRef.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    ) as RoleObject | undefined;
    assert.ok(role, `${b.kind} ${b.metadata.name} refers to a rendered ${b.roleRef.kind}`);
    const namespace = b.kind === 'RoleBinding' ? b.metadata.namespace : undefined;
    for (const rule of role.rules) out.push({ namespace, rule });
  }
  return out;
}

const resourceOf = (r: RecordedRequest) => (r.subresource ? `${r.resource}/${r.subresource}` : r.resource!);

function allows(rule: PolicyRule, r: RecordedRequest): boolean {
  return (
    rule.apiGroups.includes(r.group ?? '') &&
    rule.resources.includes(resourceOf(r)) &&
    rule.verbs.includes(r.verb) &&
    // resourceNames never match a create or a collection request: they have no name.
    (rule.resourceNames === undefined || (r.name !== undefined && rule.resourceNames.includes(r.name)))
  );
}

const quiet = createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

/** Runs the controller as the chart configures it and returns every API request it made. */
async function controllerRequests(
  objects: K8sObject[],
  t: { after: (fn: () => Promise<void>) => void },
): Promise<RecordedRequest[]> {
  const { c } = containerOf(objects, 'controller');
  const args = c.args!;
  const api = await startFakeApiServer();
  let controller: Awaited<ReturnType<typeof startController>> | undefined;
  t.after(async () => {
    await controller?.shutdown();
    await api.close();
  });
  const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  for (const o of [ns(NAMESPACE), ns('ml'), ns('other')]) api.apply(o as never);
  for (const namespace of ['ml', 'other']) {
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'llm', namespace },
      spec: { ports: [{ name: 'http', port: 8000 }] },
    } as never);
    api.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'redis', namespace },
      stringData: { url: 'redis://redis:6379' },
    } as never);
    api.apply({
      apiVersion: `${GROUP}/v1alpha1`,
      kind: 'ModelRoute',
      metadata: { name: 'chat', namespace },
      spec: {
        rules: [
          {
            backends: [
              { name: 'stable', service: { name: 'llm', port: 8000 }, weight: 100 },
              { name: 'canary', service: { name: 'llm', port: 8000 }, weight: 0 },
            ],
          },
        ],
      },
    } as never);
    api.apply({
      apiVersion: `${GROUP}/v1alpha1`,
      kind: 'RateLimitPolicy',
      metadata: { name: 'tokens', namespace },
      spec: {
        targetRefs: [{ name: 'chat' }],
        limits: [
          { name: 'tokens', key: [{ type: 'Consumer' }], amount: 100000, period: '1h', cost: 'ModelTokens' },
        ],
      },
    } as never);
  }
  const rollout = {
    apiVersion: `${GROUP}/v1alpha1`,
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      steps: [{ setWeight: 30 }, { pause: {} }, { setWeight: 100 }],
    },
  };
  api.apply(rollout as never);

  const watched = flags(args, '--watch-namespace');
  controller = await startController({
    kc: kubeConfigFor(api.url),
    // $(POD_NAMESPACE) and $(POD_NAME), as the kubelet expands them.
    namespace: flag(args, '--namespace') === '$(POD_NAMESPACE)' ? NAMESPACE : flag(args, '--namespace')!,
    identity: 'modelgate-controller-7d9f-abcde',
    watchNamespaces: watched.length > 0 ? watched : undefined,
    tokenSecretName: flag(args, '--push-token-secret'),
    leaseName: flag(args, '--lease'),
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
    api.waitFor((s) => s.get<Rollout>('CanaryRollout', 'ml', 'chat-v2')?.status?.phase === want, {
      message: `CanaryRollout phase ${want}`,
    });
  await phase('Paused');
  api.apply({
    ...rollout,
    metadata: { ...rollout.metadata, annotations: { 'modelgate.dev/abort': '1' } },
  } as never);
  await phase('RolledBack');
  await api.waitFor(
    (s) => s.recordedEvents('ml').some((e) => (e as { reason?: string }).reason === 'RolledBack'),
    {
      message: 'a RolledBack Event',
    },
  );
  for (const kind of ['ModelRoute', 'RateLimitPolicy'])
    await api.waitFor(
      (s) => s.get<{ status?: unknown }>(kind, 'ml', kind === 'ModelRoute' ? 'chat' : 'tokens')?.status,
      {
        message: `the ${kind} status`,
      },
    );
  // A renewal after the first acquisition (get + update of the Lease by name).
  await api.waitFor(() => api.requests.some((r) => r.resource === 'leases' && r.verb === 'update'), {
    message: 'a Lease renewal',
  });
  await controller.shutdown();
  controller = undefined;
  return api.requests.filter((r) => r.resource !== undefined); // not discovery, /version
}

/** Every request is allowed; every rule (each group, resource, verb and name it lists) is used. */
function checkLeastPrivilege(objects: K8sObject[], requests: RecordedRequest[], what: string) {
  const sa = containerOf(objects, 'controller').deployment.spec.template.spec.serviceAccountName!;
  const rules = rulesFor(objects, { name: sa, namespace: NAMESPACE });
  for (const { rule } of rules) {
    for (const list of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames ?? []])
      assert.ok(!list.includes('*'), `${what}: a wildcard in ${JSON.stringify(rule)}`);
  }
  const applicable = (r: RecordedRequest) =>
    rules.filter(
      ({ namespace, rule }) => (namespace === undefined || namespace === r.namespace) && allows(rule, r),
    );
  for (const r of requests) {
    assert.ok(
      applicable(r).length > 0,
      `${what}: RBAC does not allow ${r.method} ${r.path} (${r.verb} ${r.group ?? ''}/${resourceOf(r)}${r.namespace ? ` in ${r.namespace}` : ', cluster-wide'})`,
    );
  }
  for (const { namespace, rule } of rules) {
    for (const group of rule.apiGroups)
      for (const resource of rule.resources)
        for (const verb of rule.verbs)
          for (const name of rule.resourceNames ?? [undefined]) {
            const used = requests.some(
              (r) =>
                (r.group ?? '') === group &&
                resourceOf(r) === resource &&
                r.verb === verb &&
                (name === undefined || r.name === name) &&
                (namespace === undefined || r.namespace === namespace),
            );
            assert.ok(
              used,
              `${what}: ${verb} ${group}/${resource}${name ? ` ${name}` : ''}${namespace ? ` in ${namespace}` : ''} is granted but never used`,
            );
          }
  }
}

test('cluster-wide RBAC (default values): exactly what the controller uses', async (t) => {
  const objects = render();
  const requests = await controllerRequests(objects, t);
  checkLeastPrivilege(objects, requests, 'default values');
  assert.deepEqual(
    objects
      .filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')
      .map((o) => `${o.kind}/${o.metadata.name}`),
    ['ClusterRole/modelgate-controller', 'Role/modelgate-controller'],
  );
  // The shape the README documents: reads are list and watch, writes are status patches, Events
  // (created in the resources' namespaces), the Lease and the token Secret (by name).
  const clusterRole = objects.find((o) => o.kind === 'ClusterRole') as RoleObject;
  assert.deepEqual(clusterRole.rules, [
    {
      apiGroups: [GROUP],
      resources: ['modelroutes', 'ratelimitpolicies', 'canaryrollouts'],
      verbs: ['list', 'watch'],
    },
    {
      apiGroups: [GROUP],
      resources: ['modelroutes/status', 'ratelimitpolicies/status', 'canaryrollouts/status'],
      verbs: ['patch'],
    },
    { apiGroups: [''], resources: ['services', 'secrets'], verbs: ['list', 'watch'] },
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
    { apiGroups: [''], resources: ['events'], verbs: ['create'] },
  ]);
  const role = objects.find((o) => o.kind === 'Role') as RoleObject;
  assert.deepEqual(role.rules, [
    {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      resourceNames: ['modelgate-controller'],
      verbs: ['get', 'update'],
    },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: [''], resources: ['secrets'], resourceNames: ['modelgate-push-token'], verbs: ['get'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  ]);
  // Both namespaces were watched cluster-wide.
  assert.ok(
    requests.some((r) => r.resource === 'modelroutes' && r.verb === 'watch' && r.namespace === undefined),
  );
});

test('watchNamespaces: Roles in the watched namespaces only, nothing cluster-wide', async (t) => {
  const objects = render(['--set', 'controller.watchNamespaces={ml}']);
  assert.deepEqual(
    objects
      .filter((o) => ['ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'].includes(o.kind))
      .map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`),
    [
      'Role/ml/modelgate-controller-watch',
      'Role/modelgate/modelgate-controller',
      'RoleBinding/ml/modelgate-controller-watch',
      'RoleBinding/modelgate/modelgate-controller',
    ],
  );
  const requests = await controllerRequests(objects, t);
  checkLeastPrivilege(objects, requests, 'watchNamespaces [ml]');
  assert.ok(!requests.some((r) => r.namespace === 'other'), 'nothing in an unwatched namespace');
  assert.ok(
    requests.every((r) => r.namespace !== undefined),
    'no cluster-wide request',
  );
});

test('the proxies have no RBAC at all', () => {
  for (const objects of [render(), render(['--set', 'controller.watchNamespaces={ml}'])]) {
    const sa = containerOf(objects, 'proxy').deployment.spec.template.spec.serviceAccountName!;
    assert.deepEqual(rulesFor(objects, { name: sa, namespace: NAMESPACE }), []);
  }
});
