/**
 * charts/modelgate with a real helm binary (scripts/helm.ts): lint, deterministic rendering, every
 * rendered object against the Kubernetes schemas, the pods' hardening, and the wiring between
 * objects (selectors, ports, the push token, the flags the binary accepts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { servingSettings } from '../../../src/cli/serving.ts';
import { parseHostPort } from '../../../src/config/gateway-config.ts';
import { runCli } from '../cli/run-cli.ts';
import {
  ALL_OPTIONS,
  byKind,
  CHART_DIR,
  type Container,
  containerOf,
  type Deployment,
  flag,
  flags,
  helm,
  idOf,
  type K8sObject,
  kubernetesProblems,
  NAMESPACE,
  one,
  render,
  renderText,
} from './chart-helpers.ts';

const defaults = render();
const allOptions = render(['-f', ALL_OPTIONS]);
/** Push TLS the easy way: cert-manager with the chart's own CA. */
const PUSH_TLS = ['--set', 'push.tls.enabled=true', '--set', 'push.tls.certManager.enabled=true'];
const pushTls = render(PUSH_TLS);
const VARIANTS: [string, K8sObject[]][] = [
  ['default values', defaults],
  ['every option', allOptions],
  ['push TLS', pushTls],
];
/** cert-manager's kinds: its CRDs are not a dependency, so push-tls.test.ts checks them by hand. */
const CERT_MANAGER_KINDS = new Set(['Certificate', 'Issuer']);

test('helm lint --strict passes with the default values and with every option', () => {
  for (const extra of [[], ['-f', ALL_OPTIONS]]) {
    const out = helm(['lint', '--strict', CHART_DIR, ...extra]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, out);
  }
});

test('rendering is deterministic: the same values give the same bytes', () => {
  assert.equal(renderText(), renderText());
  assert.equal(renderText(['-f', ALL_OPTIONS]), renderText(['-f', ALL_OPTIONS]));
  // Nothing in the templates depends on the clock, randomness or the cluster.
  for (const file of readdirSync(join(CHART_DIR, 'templates'))) {
    const text = readFileSync(join(CHART_DIR, 'templates', file), 'utf8');
    for (const fn of [
      'randAlpha',
      'randAscii',
      'randNumeric',
      'randBytes',
      'uuidv4',
      'now',
      'lookup',
      'genCA',
      'genPrivateKey',
    ])
      assert.doesNotMatch(text, new RegExp(`\\b${fn}\\b`), `${file} uses ${fn}`);
  }
  // The push token is the controller's to create: Helm renders no Secret for it.
  const token = flag(containerOf(defaults, 'controller').c.args!, '--push-token-secret');
  assert.equal(token, 'modelgate-push-token');
  assert.deepEqual(byKind(defaults, 'Secret'), []);
});

test('every rendered object is valid against the Kubernetes schemas (no unknown fields)', async () => {
  const kinds = new Set<string>();
  for (const [what, objects] of VARIANTS) {
    for (const o of objects) {
      kinds.add(o.kind);
      // Custom resources: checked below and in monitoring.test.ts.
      if (o.kind === 'ServiceMonitor' || o.kind === 'PrometheusRule' || CERT_MANAGER_KINDS.has(o.kind))
        continue;
      assert.deepEqual(await kubernetesProblems(o), [], `${what}: ${idOf(o)}`);
    }
  }
  assert.deepEqual([...kinds].sort(), [
    'Certificate',
    'ClusterRole',
    'ClusterRoleBinding',
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'Issuer',
    'NetworkPolicy',
    'PodDisruptionBudget',
    'PrometheusRule',
    'Role',
    'RoleBinding',
    'Secret',
    'Service',
    'ServiceAccount',
    'ServiceMonitor',
  ]);
  // The check itself catches what it is there for.
  const service = structuredClone(one(defaults, 'Service', 'modelgate-proxy')) as K8sObject & {
    spec: { ports: Record<string, unknown>[] };
  };
  service.spec.ports[0]!.targetport = 'http';
  service.spec.ports[0]!.port = 'eighty';
  const problems = await kubernetesProblems(service);
  assert.equal(problems.length, 2, problems.join('\n'));
  assert.match(problems[0]!, /port must be integer/);
  assert.equal(problems[1], 'spec.ports[0].targetport: not in the Service schema');
});

test('the ServiceMonitor has the prometheus-operator shape and selects both admin Services', () => {
  // prometheus-operator's CRD is not a dependency: the fields it needs, checked by hand.
  const sm = one<K8sObject & { spec: Record<string, unknown> }>(allOptions, 'ServiceMonitor');
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(sm.metadata.namespace, 'monitoring');
  assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
  const spec = sm.spec as unknown as {
    namespaceSelector: { matchNames: string[] };
    selector: { matchLabels: Record<string, string> };
    endpoints: { port: string; path: string; interval: string; scrapeTimeout: string }[];
  };
  assert.deepEqual(Object.keys(sm.spec).sort(), ['endpoints', 'namespaceSelector', 'selector']);
  assert.deepEqual(spec.namespaceSelector, { matchNames: [NAMESPACE] });
  assert.deepEqual(spec.endpoints, [
    { port: 'admin', path: '/metrics', interval: '15s', scrapeTimeout: '5s' },
  ]);
  const selected = byKind<K8sObject & { spec: { ports: { name: string }[] } }>(allOptions, 'Service').filter(
    (s) =>
      s.metadata.namespace === NAMESPACE &&
      Object.entries(spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v),
  );
  assert.deepEqual(selected.map((s) => s.metadata.name).sort(), [
    'modelgate-controller',
    'modelgate-proxy-admin',
  ]);
  for (const s of selected)
    assert.ok(
      s.spec.ports.some((p) => p.name === 'admin'),
      s.metadata.name,
    );
  // Off by default, with the proxies' admin Service.
  assert.deepEqual(byKind(defaults, 'ServiceMonitor'), []);
  assert.deepEqual(
    byKind(defaults, 'Service').map((s) => s.metadata.name),
    ['modelgate-controller', 'modelgate-proxy'],
  );
});

function pods(objects: K8sObject[]): { name: string; spec: Deployment['spec']['template']['spec'] }[] {
  return byKind<Deployment>(objects, 'Deployment').map((d) => ({
    name: d.metadata.name,
    spec: d.spec.template.spec,
  }));
}

test('every pod and container is hardened: non-root, read-only root, no escalation, no capabilities, seccomp', () => {
  for (const [what, objects] of VARIANTS) {
    const all = pods(objects);
    assert.equal(all.length, 2);
    for (const { name, spec } of all) {
      assert.deepEqual(
        spec.securityContext,
        {
          runAsNonRoot: true,
          runAsUser: 1000,
          runAsGroup: 1000,
          fsGroup: 1000,
          seccompProfile: { type: 'RuntimeDefault' },
        },
        `${what}: ${name}`,
      );
      const containers: Container[] = [...spec.containers, ...(spec.initContainers ?? [])];
      for (const c of containers) {
        const where = `${what}: ${name}/${c.name}`;
        assert.deepEqual(
          c.securityContext,
          {
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          },
          where,
        );
        assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${where}: resource requests`);
        assert.ok(c.resources?.limits?.memory, `${where}: a memory limit`);
      }
    }
    // The proxies need no API access: no token in the pod, none on the account.
    const proxy = containerOf(objects, 'proxy').deployment.spec.template.spec;
    assert.equal(proxy.automountServiceAccountToken, false);
    const proxySa = one<K8sObject & { automountServiceAccountToken?: boolean }>(
      objects,
      'ServiceAccount',
      proxy.serviceAccountName,
    );
    assert.equal(proxySa.automountServiceAccountToken, false);
    // The only writable place is the proxy's state directory, an emptyDir with a size limit.
    const { c } = containerOf(objects, 'proxy');
    const stateDir = flag(c.args!, '--state-dir')!;
    const mount = c.volumeMounts!.find((m) => m.mountPath === stateDir);
    const volume = proxy.volumes!.find((v) => v.name === mount?.name);
    assert.ok(volume?.emptyDir?.sizeLimit, `${what}: the state directory is an emptyDir`);
    assert.ok(!mount?.readOnly);
    for (const m of c.volumeMounts!) {
      const v = proxy.volumes!.find((x) => x.name === m.name);
      assert.ok(v, `${what}: volume ${m.name}`);
      if (v.emptyDir === undefined) assert.equal(m.readOnly, true, `${what}: ${m.mountPath} is read-only`);
    }
  }
});

test('probes hit /healthz and /readyz on the admin listener, bound to the pod address', () => {
  for (const [component, port] of [
    ['controller', 9902],
    ['proxy', 9901],
  ] as const) {
    const { c } = containerOf(defaults, component);
    assert.deepEqual(c.readinessProbe?.httpGet, { path: '/readyz', port: 'admin' });
    assert.deepEqual(c.livenessProbe?.httpGet, { path: '/healthz', port: 'admin' });
    assert.equal(c.ports!.find((p) => p.name === 'admin')?.containerPort, port);
    // `[$(POD_IP)]:PORT`: the kubelet expands POD_IP (the downward API), and the binary parses the
    // bracketed form for IPv4 and IPv6 alike.
    const admin = flag(c.args!, '--admin')!;
    assert.equal(admin, `[$(POD_IP)]:${port}`);
    assert.equal(c.env!.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
    for (const ip of ['10.244.1.7', 'fd00:10:244::7'])
      assert.deepEqual(parseHostPort(admin.replace('$(POD_IP)', ip)), { address: ip, port });
    // With a literal address (what `kubectl port-forward` needs), the probes still find the port.
    const literal = containerOf(allOptions, component).c;
    assert.equal(flag(literal.args!, '--admin'), `0.0.0.0:${port}`);
  }
  // The controller's identity and namespace for its Lease come from the downward API.
  const { c } = containerOf(defaults, 'controller');
  const env = Object.fromEntries(c.env!.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]));
  assert.equal(env.POD_NAME, 'metadata.name');
  assert.equal(env.POD_NAMESPACE, 'metadata.namespace');
  assert.equal(flag(c.args!, '--id'), '$(POD_NAME)');
  assert.equal(flag(c.args!, '--namespace'), '$(POD_NAMESPACE)');
});

test('the binary accepts every flag the chart passes', async () => {
  const runs = VARIANTS.flatMap(([what, objects]) =>
    ['controller', 'proxy'].map(async (component) => {
      const { c } = containerOf(objects, component);
      assert.equal(c.args![0], component);
      // `--help` comes after the flags, which the parser (strict) checks first.
      const r = await runCli([...c.args!, '--help']);
      assert.equal(r.code, 0, `${what}: modelgate ${c.args!.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: modelgate ${component}`));
    }),
  );
  await Promise.all(runs);
});

test("controller.logLevel and proxy.logLevel are each component's --log-level, info by default", () => {
  for (const component of ['controller', 'proxy']) {
    const args = containerOf(defaults, component).c.args!;
    assert.deepEqual(flags(args, '--log-level'), ['info'], `${component}: one --log-level, info`);
  }
  // Per component: one can be debugged without the other's volume.
  const set = render(['--set', 'controller.logLevel=debug', '--set', 'proxy.logLevel=warn']);
  assert.deepEqual(flags(containerOf(set, 'controller').c.args!, '--log-level'), ['debug']);
  assert.deepEqual(flags(containerOf(set, 'proxy').c.args!, '--log-level'), ['warn']);
  // The all-options values set them too, so "the binary accepts every flag" runs them.
  assert.equal(flag(containerOf(allOptions, 'controller').c.args!, '--log-level'), 'debug');
  assert.equal(flag(containerOf(allOptions, 'proxy').c.args!, '--log-level'), 'warn');
  // extraArgs come after, so a --log-level there wins (the parser keeps the last value).
  const extra = render(['--set', 'proxy.extraArgs={--log-level,trace}']);
  assert.equal(flag(containerOf(extra, 'proxy').c.args!, '--log-level'), 'trace');
});

test("the proxies' GatewayConfig and flags give the listeners their container ports", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-chart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [what, objects] of VARIANTS) {
    const { deployment, c } = containerOf(objects, 'proxy');
    const configMap = one<K8sObject & { data: Record<string, string> }>(
      objects,
      'ConfigMap',
      'modelgate-proxy',
    );
    const configArg = flag(c.args!, '--config')!;
    const configMount = c.volumeMounts!.find((m) => configArg.startsWith(`${m.mountPath}/`));
    assert.ok(configMount, `${what}: --config is in a mount`);
    const volume = deployment.spec.template.spec.volumes!.find((v) => v.name === configMount.name);
    assert.equal(volume?.configMap?.name, configMap.metadata.name);
    const file = join(dir, `${what.replace(/ /g, '-')}.yaml`);
    writeFileSync(file, configMap.data[configArg.slice(configMount.mountPath.length + 1)]!);
    // What `modelgate proxy` does with its flags and the file: schema, listener overrides, conflicts.
    const settings = await servingSettings({
      config: file,
      admin: flag(c.args!, '--admin')!.replace('$(POD_IP)', '10.244.1.7'),
      'drain-timeout': flag(c.args!, '--drain-timeout'),
    });
    const ports = Object.fromEntries(c.ports!.map((p) => [p.name, p.containerPort]));
    assert.deepEqual(
      Object.fromEntries(settings.listeners.map((l) => [l.name, l.port])),
      Object.fromEntries(Object.entries(ports).filter(([n]) => n !== 'admin')),
      what,
    );
    assert.equal(settings.admin.port, ports.admin);
    assert.equal(settings.config.stateDir, flag(c.args!, '--state-dir'));
    // A new GatewayConfig rolls the proxies.
    assert.match(deployment.spec.template.metadata.annotations?.['checksum/config'] ?? '', /^[0-9a-f]{64}$/);
  }
  // Every option: TLS from mounted Secrets, mTLS, trusted proxies, cache, tracing.
  const cm = one<K8sObject & { data: Record<string, string> }>(allOptions, 'ConfigMap', 'modelgate-proxy');
  const config = parse(cm.data['gateway.yaml']!) as {
    listeners: {
      name: string;
      tls?: {
        certificates: { certFile: string; keyFile: string }[];
        clientCA?: { file: string };
        minVersion: string;
      };
    }[];
    trustedProxies: { cidrs: string[] };
    cache: { maxBytes: string };
    tracing: Record<string, unknown>;
  };
  const https = config.listeners.find((l) => l.name === 'https')!;
  assert.equal(https.tls?.minVersion, 'TLSv1.3');
  const { deployment, c } = containerOf(allOptions, 'proxy');
  const volumes = deployment.spec.template.spec.volumes!;
  const files = [
    ...https.tls!.certificates.flatMap((x) => [x.certFile, x.keyFile]),
    https.tls!.clientCA!.file,
  ];
  for (const f of files) {
    const m = c.volumeMounts!.find((x) => f.startsWith(`${x.mountPath}/`));
    assert.ok(m, `${f} is mounted`);
    const v = volumes.find((x) => x.name === m.name)!;
    assert.ok(
      v.secret?.items?.some((i) => i.path === f.slice(m.mountPath.length + 1)),
      `${f} comes from a Secret`,
    );
  }
  assert.deepEqual(
    volumes.flatMap((v) => (v.secret ? [v.secret.secretName] : [])),
    ['gateway-push-token', 'gateway-push-ca', 'gateway-tls', 'internal-tls', 'clients-ca'],
  );
  assert.deepEqual(config.trustedProxies.cidrs, ['10.0.0.0/8', '2001:db8::/32']);
  assert.equal(config.cache.maxBytes, '512Mi');
  assert.deepEqual(config.tracing, {
    otlpEndpoint: 'http://otel-collector.observability.svc:4318',
    sampleRatio: 0.1,
    serviceName: 'modelgate-proxy',
  });
});

test('the proxies reach every controller through the headless Service, with the token the controller creates', () => {
  for (const [what, objects] of VARIANTS) {
    const controller = containerOf(objects, 'controller');
    const proxy = containerOf(objects, 'proxy');
    const svc = one<
      K8sObject & {
        spec: {
          clusterIP: string;
          publishNotReadyAddresses: boolean;
          ports: { name: string; port: number; targetPort: string }[];
        };
      }
    >(objects, 'Service', controller.deployment.metadata.name);
    assert.equal(svc.spec.clusterIP, 'None');
    assert.equal(svc.spec.publishNotReadyAddresses, true);
    const push = svc.spec.ports.find((p) => p.name === 'push')!;
    assert.equal(flag(controller.c.args!, '--listen'), `[$(POD_IP)]:${push.port}`);
    // https (written out) when the push stream is TLS: push-tls.test.ts.
    const scheme = flag(controller.c.args!, '--push-tls-cert') ? 'https://' : '';
    assert.deepEqual(flags(proxy.c.args!, '--controller'), [
      `dns:${scheme}${svc.metadata.name}.${NAMESPACE}.svc.cluster.local:${push.port}`,
    ]);
    // The token Secret the controller creates (and reads) is the one the proxies mount.
    const secretName = flag(controller.c.args!, '--push-token-secret');
    const tokenFile = flag(proxy.c.args!, '--push-token-file')!;
    const mount = proxy.c.volumeMounts!.find((m) => tokenFile.startsWith(`${m.mountPath}/`))!;
    const volume = proxy.deployment.spec.template.spec.volumes!.find((v) => v.name === mount.name)!;
    assert.equal(volume.secret?.secretName, secretName, what);
    // The controller writes the key `token` (src/roles/controller.ts ensurePushToken).
    assert.deepEqual(volume.secret?.items, [
      { key: 'token', path: tokenFile.slice(mount.mountPath.length + 1) },
    ]);
    // Optional: the controller creates the Secret after proxies may have started; the proxy
    // dials with backoff until the token file appears (push-client.ts).
    assert.equal(volume.secret?.optional, true);
  }
  assert.equal(
    flag(containerOf(allOptions, 'controller').c.args!, '--push-token-secret'),
    'gateway-push-token',
  );
});

test('Service and policy selectors match the pods they are for; target ports exist', () => {
  for (const [what, objects] of VARIANTS) {
    const deployments = byKind<Deployment>(objects, 'Deployment');
    const matches = (selector: Record<string, string>) =>
      deployments
        .filter((d) => Object.entries(selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v))
        .map((d) => d.metadata.name);
    for (const d of deployments) assert.deepEqual(matches(d.spec.selector.matchLabels), [d.metadata.name]);
    for (const s of byKind<
      K8sObject & { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } }
    >(objects, 'Service')) {
      const [target] = matches(s.spec.selector);
      assert.ok(target, `${what}: ${idOf(s)} selects a Deployment`);
      const pod = one<Deployment>(objects, 'Deployment', target);
      const names = pod.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name));
      for (const p of s.spec.ports)
        assert.ok(names.includes(p.targetPort), `${what}: ${idOf(s)} → ${p.targetPort}`);
    }
    for (const pdb of byKind<K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }>(
      objects,
      'PodDisruptionBudget',
    ))
      assert.deepEqual(matches(pdb.spec.selector.matchLabels), ['modelgate-proxy']);
    for (const hpa of byKind<K8sObject & { spec: { scaleTargetRef: { kind: string; name: string } } }>(
      objects,
      'HorizontalPodAutoscaler',
    ))
      assert.deepEqual(hpa.spec.scaleTargetRef, {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: 'modelgate-proxy',
      });
  }
});

test('HPA and PDB: off by default; with autoscaling the Deployment leaves replicas to the HPA', () => {
  assert.deepEqual(byKind(defaults, 'HorizontalPodAutoscaler'), []);
  assert.deepEqual(byKind(defaults, 'PodDisruptionBudget'), []);
  assert.equal(containerOf(defaults, 'proxy').deployment.spec.replicas, 2);
  assert.equal(containerOf(defaults, 'controller').deployment.spec.replicas, 2);
  assert.equal(containerOf(allOptions, 'proxy').deployment.spec.replicas, undefined);
  const hpa = one<K8sObject & { spec: { minReplicas: number; maxReplicas: number; metrics: unknown[] } }>(
    allOptions,
    'HorizontalPodAutoscaler',
  );
  assert.equal(hpa.spec.minReplicas, 3);
  assert.equal(hpa.spec.maxReplicas, 20);
  assert.equal(hpa.spec.metrics.length, 2);
  assert.deepEqual(
    one<K8sObject & { spec: { minAvailable: string } }>(allOptions, 'PodDisruptionBudget').spec.minAvailable,
    '50%',
  );
  const pdb = render(['--set', 'proxy.podDisruptionBudget.enabled=true']);
  assert.deepEqual(
    (one(pdb, 'PodDisruptionBudget') as K8sObject & { spec: Record<string, unknown> }).spec.maxUnavailable,
    1,
  );
});

test('NetworkPolicies close the push and admin ports to all but the controllers, proxies and monitoring', () => {
  assert.deepEqual(byKind(defaults, 'NetworkPolicy'), []);
  type Peer = {
    podSelector?: { matchLabels: Record<string, string> };
    namespaceSelector?: unknown;
    ipBlock?: unknown;
  };
  type Policy = K8sObject & {
    spec: {
      podSelector: { matchLabels: Record<string, string> };
      policyTypes: string[];
      ingress: { ports: { port: string }[]; from?: Peer[] }[];
    };
  };
  const policies = byKind<Policy>(allOptions, 'NetworkPolicy');
  assert.equal(policies.length, 2);
  const component = (p: Peer) => p.podSelector?.matchLabels['app.kubernetes.io/component'];
  const internal = (from: Peer[] | undefined) => {
    assert.ok(from && from.length > 0, 'a closed port lists its peers');
    const components = from
      .filter((p) => !p.namespaceSelector)
      .map(component)
      .sort();
    const monitoring = from.filter((p) => p.namespaceSelector);
    return { components, monitoring, ipBlocks: from.filter((p) => p.ipBlock) };
  };
  for (const policy of policies) {
    const which = policy.spec.podSelector.matchLabels['app.kubernetes.io/component'];
    assert.deepEqual(policy.spec.policyTypes, ['Ingress']);
    const ports = policy.spec.ingress.flatMap((r) => r.ports.map((p) => p.port)).sort();
    const container = containerOf(allOptions, which!).c;
    // Every container port is covered by a rule, so none is open by accident or closed by mistake.
    assert.deepEqual(ports, container.ports!.map((p) => p.name).sort(), which);
    for (const rule of policy.spec.ingress) {
      const names = rule.ports.map((p) => p.port);
      if (names.includes('push') || names.includes('admin')) {
        assert.deepEqual(names.length, 1);
        const peers = internal(rule.from);
        assert.deepEqual(peers.components, ['controller', 'proxy']);
        assert.deepEqual(peers.ipBlocks, []);
        // The monitoring namespace reaches the admin port only, never the push stream.
        assert.equal(peers.monitoring.length, names[0] === 'admin' ? 1 : 0, `${which} ${names[0]}`);
      } else {
        assert.equal(which, 'proxy');
        assert.deepEqual(names.sort(), ['http', 'https']);
      }
    }
  }
  // Public ports are open to anyone unless publicFrom says otherwise.
  const open = byKind<Policy>(render(['--set', 'networkPolicy.enabled=true']), 'NetworkPolicy');
  const publicRule = open.find((p) => p.metadata.name === 'modelgate-proxy')!.spec.ingress[0]!;
  assert.deepEqual(publicRule.ports, [{ port: 'http', protocol: 'TCP' }]);
  assert.equal(publicRule.from, undefined);
});

test('Redis settings: a Secret with the connection in each namespace listed', () => {
  const secrets = byKind<K8sObject & { type: string; stringData: Record<string, string> }>(
    allOptions,
    'Secret',
  );
  assert.deepEqual(
    secrets.map((s) => `${s.metadata.namespace}/${s.metadata.name}`),
    ['ml/modelgate-redis', 'ml-staging/modelgate-redis'],
  );
  for (const s of secrets) {
    assert.deepEqual(s.stringData, {
      url: 'rediss://redis.ml.svc:6380/0',
      username: 'gateway',
      password: 'not-a-real-password',
      cluster: 'true',
    });
  }
  const local = byKind<K8sObject & { stringData: Record<string, string> }>(
    render(['--set', 'redis.createSecret=true', '--set', 'redis.url=redis://redis:6379']),
    'Secret',
  );
  assert.deepEqual(
    local.map((s) => [s.metadata.namespace, s.stringData]),
    [[NAMESPACE, { url: 'redis://redis:6379' }]],
  );
});

test('values.schema.json and the templates refuse bad values', () => {
  const refused = (args: string[], message: RegExp) =>
    assert.throws(() => renderText(args), message, `helm template ${args.join(' ')} should fail`);
  refused(['--set', 'proxy.replicas=-1'], /proxy\.replicas: Must be greater than or equal to 0/);
  refused(['--set', 'controller.replicas=0'], /controller\.replicas: Must be greater than or equal to 1/);
  refused(['--set', 'proxy.replica=3'], /Additional property replica is not allowed/);
  refused(['--set', 'controller.leaderElection.leaseDuration=15'], /leaseDuration: Invalid type/);
  refused(['--set', 'proxy.drainTimeout=30 seconds'], /drainTimeout: Does not match pattern/);
  refused(['--set', 'proxy.https.minVersion=TLSv1.1'], /minVersion/);
  refused(['--set', 'image.pullPolicy=Sometimes'], /pullPolicy/);
  refused(['--set', 'proxy.logLevel=verbose'], /proxy\.logLevel must be one of the following: "trace"/);
  refused(['--set', 'controller.logLevel=DEBUG'], /controller\.logLevel must be one of/);
  refused(['--set', 'controller.watchNamespaces[0]=ML'], /watchNamespaces\.0: Does not match pattern/);
  refused(
    ['--set', 'proxy.https.certificates[0].secretName=tls'],
    /proxy\.https\.certificates\.0: hostnames is required/,
  );
  // What a schema cannot say, the templates do.
  refused(
    [
      '--set',
      'proxy.https.certificates[0].secretName=tls',
      '--set',
      'proxy.https.certificates[0].hostnames[0]=*',
    ],
    /proxy\.https\.certificates needs proxy\.https\.enabled: true/,
  );
  refused(['--set', 'proxy.adminPort=8080'], /proxy\.adminPort must differ from the public ports/);
  refused(['--set', 'redis.createSecret=true'], /redis\.createSecret needs redis\.url/);
  refused(
    ['--set', 'proxy.https.enabled=true', '--set', 'proxy.https.clientCA.secretName=ca'],
    /clientCA applies to the listener's own certificates/,
  );
});
