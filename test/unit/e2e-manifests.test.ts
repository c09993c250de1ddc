/**
 * test/e2e/kind.sh needs Docker and kind, so it cannot run here; this checks what it can without
 * them. The script parses (`bash -n`, and shellcheck where installed). What it applies itself
 * (`--print-manifests`: namespaces, a CLI pod, the model servers, the route and the rollouts) is
 * valid for the Kubernetes schemas, its ModelRoute is accepted by the compiler, its custom
 * resources pass the CRDs it installs (schema, defaults and CEL rules), and its CanaryRollouts
 * steer the route as its scenarios expect. Its helm values (`--print-helm-values`) exist in the
 * chart's values.schema.json, and the chart rendered with them has the objects, names, labels,
 * ports and pods the script relies on. Last, on the fake API server with the script's own objects:
 * the chart's RBAC lets the controller run the rollout scenario, and the CLI pod's Role lets
 * `modelgate rollout status` run, granting it nothing more.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
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
import { kubeConfigFor, type RecordedRequest, startFakeApiServer } from '../support/fake-apiserver/index.ts';
import { generatedCrds, openApiSchema, parseCrd } from './api/crd-helpers.ts';
import {
  CHART_DIR,
  type K8sObject as ChartObject,
  containerOf,
  type Deployment,
  flag,
  kubernetesProblems,
  NAMESPACE,
  parseStream,
  RELEASE,
  render,
} from './chart/chart-helpers.ts';

const SCRIPT = fileURLToPath(new URL('../e2e/kind.sh', import.meta.url));
const SCRIPT_TEXT = readFileSync(SCRIPT, 'utf8');

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec?: Record<string, unknown>;
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** What `kind.sh OPTION` prints (it exits before touching a cluster). */
const printed = (option: string) => execFileSync('bash', [SCRIPT, option], { encoding: 'utf8' });

/** Every object `kind.sh --print-manifests` prints, in order. */
const manifests = (): K8sObject[] => parseStream(printed('--print-manifests')) as unknown as K8sObject[];

/** The helm value flags of `kind.sh --print-helm-values` (`--set`, `image.pullPolicy=Never`, ...). */
const helmValues = () => printed('--print-helm-values').trimEnd().split('\n');

/** A shell variable's literal value in kind.sh (`NS=modelgate`). */
function scriptVariable(name: string): string {
  const m = new RegExp(`^${name}=([\\w.-]+)$`, 'm').exec(SCRIPT_TEXT);
  assert.ok(m, `${name}= in kind.sh`);
  return m[1]!;
}
const NS = scriptVariable('NS');
const DEMO_NS = scriptVariable('DEMO_NS');

/** The chart as kind.sh installs it: its release and namespace, with its values. */
function chart(): ChartObject[] {
  assert.equal(scriptVariable('RELEASE'), RELEASE);
  assert.equal(NS, NAMESPACE);
  return render(helmValues());
}

const byName = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as K8sObject & {
    spec: Record<string, never>;
  };

test('kind.sh: bash syntax, and shellcheck where installed', (t) => {
  execFileSync('bash', ['-n', SCRIPT]);
  const shellcheck = spawnSync('shellcheck', [SCRIPT], { encoding: 'utf8' });
  if (shellcheck.error) {
    t.skip('shellcheck is not installed');
    return;
  }
  assert.equal(shellcheck.status, 0, shellcheck.stdout);
});

test('kind.sh: its manifests are valid objects, besides the chart', async () => {
  const objects = manifests();
  for (const o of objects) {
    assert.ok(o.apiVersion && o.kind && o.metadata?.name, JSON.stringify(o));
    assert.ok(!JSON.stringify(o).includes('${'), `unexpanded variable in ${o.kind}/${o.metadata.name}`);
  }
  const names = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
  assert.deepEqual(names, [
    'Namespace//modelgate',
    'Namespace//modelgate-demo',
    'ServiceAccount/modelgate-demo/modelgate-cli',
    'Role/modelgate-demo/modelgate-cli',
    'RoleBinding/modelgate-demo/modelgate-cli',
    'Deployment/modelgate-demo/modelgate-cli',
    'Deployment/modelgate-demo/model-v1',
    'Service/modelgate-demo/model-v1',
    'Deployment/modelgate-demo/model-v2',
    'Service/modelgate-demo/model-v2',
    'ModelRoute/modelgate-demo/chat',
    'CanaryRollout/modelgate-demo/chat-v2',
    'CanaryRollout/modelgate-demo/chat-v2',
  ]);
  // The built-in objects against the Kubernetes schemas (unknown fields included).
  for (const o of objects.filter((x) => !x.apiVersion.startsWith(`${GROUP}/`)))
    assert.deepEqual(
      await kubernetesProblems(o as unknown as ChartObject),
      [],
      `${o.kind} ${o.metadata.name}`,
    );
  // Nothing the chart installs: the controllers, proxies and their RBAC are the chart's alone.
  const fromChart = new Set(chart().map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
  assert.deepEqual(
    names.filter((n) => fromChart.has(n)),
    [],
  );
  // The chart's namespace enforces the restricted Pod Security Standard, as deploy/ creates it.
  assert.equal(
    byName(objects, 'Namespace', NS).metadata.labels?.['pod-security.kubernetes.io/enforce'],
    'restricted',
  );

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

/** The schema node at a dotted values path (`image.pullPolicy`), undefined when it is not declared. */
function schemaAt(schema: JsonSchema, path: string): JsonSchema | undefined {
  let node: JsonSchema | undefined = schema;
  for (const key of path.split('.')) {
    node = (node?.properties as Record<string, JsonSchema> | undefined)?.[key];
  }
  return node;
}

test('kind.sh: its helm values are in values.schema.json, and the chart renders as its scenarios expect', async () => {
  // --set and --set-string pairs only (no values file the test could not see).
  const args = helmValues();
  const pairs = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    assert.ok(['--set', '--set-string'].includes(args[i]!), `helm flag ${args[i]}`);
    const [key, value] = args[i + 1]!.split(/=(.*)/s) as [string, string];
    pairs.set(key, value);
  }
  const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as JsonSchema;
  for (const [key, value] of pairs) {
    const node = schemaAt(schema, key);
    assert.ok(node, `${key} is not in values.schema.json`);
    assert.notEqual(node.type, 'object', `${key} is a whole object`);
    if (Array.isArray(node.enum))
      assert.ok(node.enum.includes(value), `${key}=${value}: not one of ${node.enum}`);
  }
  assert.deepEqual(Object.fromEntries(pairs), {
    'image.repository': 'modelgate',
    'image.tag': 'e2e',
    'image.pullPolicy': 'Never',
    'controller.replicas': '2',
    'proxy.replicas': '2',
  });

  // Rendered with them (helm checks values.schema.json again): every object is valid...
  const objects = chart();
  for (const o of objects) assert.deepEqual(await kubernetesProblems(o), [], `${o.kind} ${o.metadata.name}`);
  // ...the script's image, never pulled, in two controllers and two proxies...
  const controller = containerOf(objects, 'controller');
  const proxy = containerOf(objects, 'proxy');
  for (const { deployment, c } of [controller, proxy]) {
    assert.equal(deployment.spec.replicas, 2);
    assert.equal(c.image, 'modelgate:e2e');
    assert.equal((c as { imagePullPolicy?: string }).imagePullPolicy, 'Never');
  }
  // ...with the names the script uses: `deployment/NAME` in the chart's namespace or the demo one...
  const deployments = [
    ...objects.filter((o) => o.kind === 'Deployment').map((o) => `${NS}/${o.metadata.name}`),
    ...manifests()
      .filter((o) => o.kind === 'Deployment')
      .map((o) => `${o.metadata.namespace}/${o.metadata.name}`),
  ];
  const used = SCRIPT_TEXT.split('\n').flatMap((line) => {
    const ns = /-n "\$(NS|DEMO_NS)"/.exec(line)?.[1];
    return ns ? [...line.matchAll(/deploy(?:ment)?\/([\w-]+)/g)].map((m) => ({ ns, name: m[1]! })) : [];
  });
  assert.ok(used.length >= 10, 'kind.sh names Deployments');
  for (const { ns, name } of used)
    assert.ok(deployments.includes(`${ns === 'NS' ? NS : DEMO_NS}/${name}`), `deployment/${name} in $${ns}`);
  // ...the Service it port-forwards to (80, the proxies' HTTP listener)...
  const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'modelgate-proxy') as
    | (ChartObject & {
        spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
      })
    | undefined;
  assert.ok(service, 'Service modelgate-proxy');
  assert.match(SCRIPT_TEXT, /port-forward svc\/modelgate-proxy "\$\{LOCAL_PORT\}:80"/);
  assert.deepEqual(
    service.spec.ports.filter((p) => p.port === 80).map((p) => p.targetPort),
    ['http'],
  );
  assert.ok(proxy.c.ports?.some((p) => p.name === 'http'));
  // ...and the label selectors of its diagnostics, each selecting one component's pods.
  const selectors = [...SCRIPT_TEXT.matchAll(/logs -l "([^"]+)"/g)].map((m) =>
    m[1]!.replaceAll(/\$\{RELEASE\}/g, RELEASE),
  );
  assert.equal(selectors.length, 2);
  for (const [selector, { deployment }] of [
    [selectors[0]!, controller],
    [selectors[1]!, proxy],
  ] as const) {
    const labels = deployment.spec.template.metadata.labels;
    for (const term of selector.split(',')) {
      const [k, v] = term.split('=');
      assert.equal(labels[k!], v, `${selector} selects the ${deployment.metadata.name} pods`);
    }
  }

  // The proxies find the controllers through the headless Service.
  const push = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'modelgate-controller') as
    | (ChartObject & { spec: { clusterIP?: string } })
    | undefined;
  assert.equal(push?.spec.clusterIP, 'None');
  assert.equal(flag(proxy.c.args!, '--controller'), `dns:modelgate-controller.${NS}.svc.cluster.local:8443`);

  // The namespace enforces the restricted Pod Security Standard: the pods must meet it.
  for (const { deployment, c } of [controller, proxy]) {
    const pod = deployment.spec.template.spec;
    const what = deployment.metadata.name;
    assert.equal(pod.securityContext?.runAsNonRoot, true, what);
    assert.deepEqual(pod.securityContext?.seccompProfile, { type: 'RuntimeDefault' }, what);
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false, what);
    assert.deepEqual((c.securityContext?.capabilities as { drop?: string[] })?.drop, ['ALL'], what);
    for (const v of pod.volumes ?? [])
      assert.ok(
        v.configMap || v.secret || v.emptyDir,
        `${what}: volume ${v.name} is allowed under restricted`,
      );
  }
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

/** Errors of one custom resource against the CRD file in charts/modelgate/crds/ that kind.sh installs. */
function crdErrors(o: K8sObject): string[] {
  const found = generatedCrds().find((c) => c.def.kind === o.kind);
  assert.ok(found, `no CRD for ${o.kind}`);
  const crd = parseCrd(readFileSync(join(CHART_DIR, 'crds', basename(found.file)), 'utf8'));
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

type Binding = K8sObject & {
  roleRef: { kind: string; name: string };
  subjects: { kind: string; name: string; namespace: string }[];
};

/** The rules bound to a ServiceAccount, with where they apply (undefined: every namespace). */
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
        (o.kind === 'ClusterRole' || o.metadata.namespace === b.metadata.namespace),
    ) as (K8sObject & { rules: PolicyRule[] }) | undefined;
    assert.ok(role, `${b.kind} ${b.metadata.name} refers to a ${b.roleRef.kind} that exists`);
    for (const rule of role.rules)
      out.push({ namespace: b.kind === 'RoleBinding' ? b.metadata.namespace : undefined, rule });
  }
  return out;
}

const resourceOf = (r: RecordedRequest) => (r.subresource ? `${r.resource}/${r.subresource}` : r.resource!);

/** Whether a rule allows a request (resourceNames never match a create or a collection request). */
const allows = (rule: PolicyRule, r: RecordedRequest) =>
  rule.apiGroups.includes(r.group ?? '') &&
  rule.resources.includes(resourceOf(r)) &&
  rule.verbs.includes(r.verb) &&
  (rule.resourceNames === undefined || (r.name !== undefined && rule.resourceNames.includes(r.name)));

/** Fails for each request no rule allows; returns `verb group/resource` of those made. */
function checkAllowed(rules: ReturnType<typeof rulesFor>, requests: RecordedRequest[], who: string) {
  for (const list of rules.flatMap(({ rule }) => [rule.apiGroups, rule.resources, rule.verbs]))
    assert.ok(!list.includes('*'), `${who}: a wildcard in ${JSON.stringify(rules)}`);
  for (const r of requests) {
    assert.ok(
      rules.some(
        ({ namespace, rule }) => (namespace === undefined || namespace === r.namespace) && allows(rule, r),
      ),
      `${who}: RBAC does not allow ${r.method} ${r.path} (${r.verb} ${r.group ?? ''}/${resourceOf(r)}${r.namespace ? ` in ${r.namespace}` : ', cluster-wide'})`,
    );
  }
  return new Set(requests.map((r) => `${r.verb} ${r.group ?? ''}/${resourceOf(r)}`));
}

test("kind.sh: the chart's RBAC runs its rollout scenario, the CLI pod's Role runs `rollout status` and no more", async (t) => {
  const objects = manifests();
  const rendered = chart() as unknown as K8sObject[];
  const { c } = containerOf(rendered as unknown as ChartObject[], 'controller');
  const args = c.args!;

  // The controller against the fake API server, on kind.sh's own objects, with the flags the chart
  // gives it: it starts, takes the Lease, writes statuses and runs the second rollout to its pause;
  // then an abort, as the scenario does, and `modelgate rollout status` as the CLI pod runs it.
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
  assert.equal(flag(args, '--namespace'), '$(POD_NAMESPACE)');
  controller = await startController({
    kc,
    namespace: NS,
    identity: 'modelgate-controller-7d9f-abcde',
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
    api.waitFor((s) => s.get<Rollout>('CanaryRollout', DEMO_NS, 'chat-v2')?.status?.phase === want, {
      message: `CanaryRollout phase ${want}`,
    });
  await phase('Paused');
  api.apply({
    ...manual,
    metadata: { ...manual.metadata, annotations: { 'modelgate.dev/abort': '1' } },
  } as never);
  await phase('RolledBack');
  await api.waitFor(
    (s) => s.recordedEvents(DEMO_NS).some((e) => (e as { reason?: string }).reason === 'RolledBack'),
    { message: 'a RolledBack Event' },
  );
  await api.waitFor((s) => s.get<{ status?: unknown }>('ModelRoute', DEMO_NS, 'chat')?.status, {
    message: 'the ModelRoute status',
  });
  await controller.shutdown();
  controller = undefined;
  const byController = api.requests.filter((r) => r.resource !== undefined); // not discovery, /version
  assert.match(await rollout(kc, 'status', DEMO_NS, 'chat-v2'), /: RolledBack\n/);
  const byCli = api.requests.filter((r) => r.resource !== undefined).slice(byController.length);

  // The controller: every request allowed by the chart's rules for its ServiceAccount...
  const sa = containerOf(rendered as unknown as ChartObject[], 'controller').deployment.spec.template.spec
    .serviceAccountName!;
  const controllerRules = rulesFor(rendered, { name: sa, namespace: NS });
  const made = checkAllowed(controllerRules, byController, 'controller');
  // ...and what the scenario needs was exercised, so that means something.
  for (const want of [
    `watch ${GROUP}/canaryrollouts`,
    `patch ${GROUP}/canaryrollouts/status`,
    `patch ${GROUP}/modelroutes/status`,
    'create /events',
    'create /secrets',
    'create coordination.k8s.io/leases',
  ])
    assert.ok(made.has(want), `the controller did not ${want}`);
  // Statuses are only merge-patched and Events only created (core/v1), by anything.
  const verbs = (group: string, resource: string) =>
    new Set(
      controllerRules
        .filter(({ rule }) => rule.apiGroups.includes(group) && rule.resources.includes(resource))
        .flatMap(({ rule }) => rule.verbs),
    );
  for (const resource of ['modelroutes/status', 'ratelimitpolicies/status', 'canaryrollouts/status'])
    assert.deepEqual([...verbs(GROUP, resource)], ['patch'], resource);
  assert.deepEqual([...verbs('', 'events')], ['create']);
  assert.deepEqual([...verbs('events.k8s.io', 'events')], []);
  assert.ok(!verbs(GROUP, 'canaryrollouts').has('patch'), 'the controller never edits a CanaryRollout');

  // The CLI: its requests allowed by the CLI pod's Role, which grants exactly those.
  const cliRules = rulesFor(objects, { name: 'modelgate-cli', namespace: DEMO_NS });
  const cliMade = checkAllowed(cliRules, byCli, 'modelgate rollout status');
  assert.deepEqual([...cliMade], [`get ${GROUP}/canaryrollouts`]);
  assert.deepEqual(
    cliRules.map(({ namespace, rule }) => ({ namespace, ...rule })),
    [{ namespace: DEMO_NS, apiGroups: [GROUP], resources: ['canaryrollouts'], verbs: ['get'] }],
  );
  // The CLI pod runs as that ServiceAccount.
  const cli = byName(objects, 'Deployment', 'modelgate-cli') as unknown as Deployment;
  assert.equal(cli.spec.template.spec.serviceAccountName, 'modelgate-cli');
  assert.match(
    SCRIPT_TEXT,
    /exec deploy\/modelgate-cli -c cli -- \\\n\s+node \/app\/dist\/cli\/main\.js rollout status/,
  );
});
