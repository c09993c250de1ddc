/**
 * The chart's `push.tls` values: the controllers serve the push stream over https from a mounted
 * kubernetes.io/tls Secret, the proxies dial `dns:https://…` and verify the certificate against the
 * mounted CA under the Service's name, and cert-manager objects make the Secret when asked. Every
 * built-in object of the TLS rendering is checked against the Kubernetes schemas in render.test.ts
 * (its "push TLS" variant); the cert-manager objects are checked by hand here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pushTlsFlags } from '../../../src/cli/commands/controller.ts';
import { controllerTargets, parseControllerAddress } from '../../../src/dataplane/push/controller-address.ts';
import {
  ALL_OPTIONS,
  byKind,
  type Container,
  containerOf,
  type Deployment,
  flag,
  flags,
  type K8sObject,
  NAMESPACE,
  one,
  render,
  renderNotes,
  renderText,
} from './chart-helpers.ts';

const PUSH_TLS = ['--set', 'push.tls.enabled=true', '--set', 'push.tls.certManager.enabled=true'];
const defaults = render();
const tls = render(PUSH_TLS);
const allOptions = render(['-f', ALL_OPTIONS]);

type Volume = NonNullable<Deployment['spec']['template']['spec']['volumes']>[number];

/** The volume a file named by a flag comes from, and the Secret key it is. */
function fileSource(
  deployment: Deployment,
  c: Container,
  path: string,
): { volume: Volume; key: string; readOnly: boolean | undefined } {
  const mount = c.volumeMounts?.find((m) => path.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${path} is in a mount`);
  const volume = deployment.spec.template.spec.volumes?.find((v) => v.name === mount.name);
  assert.ok(volume?.secret, `${path} comes from a Secret`);
  const item = volume.secret.items?.find((i) => i.path === path.slice(mount.mountPath.length + 1));
  assert.ok(item, `${path} is an item of the Secret`);
  return { volume, key: item.key, readOnly: mount.readOnly };
}

type CertManagerObject = K8sObject & { spec: Record<string, unknown> };
interface CertificateSpec {
  secretName: string;
  dnsNames?: string[];
  isCA?: boolean;
  commonName?: string;
  duration: string;
  renewBefore?: string;
  usages?: string[];
  privateKey: { algorithm: string; size: number; rotationPolicy?: string };
  issuerRef: { group: string; kind: string; name: string };
}

test('off by default: plain http, no certificate flags, no TLS volumes, no cert-manager objects', () => {
  const controller = containerOf(defaults, 'controller');
  const proxy = containerOf(defaults, 'proxy');
  for (const f of ['--push-tls-cert', '--push-tls-key'])
    assert.equal(flag(controller.c.args!, f), undefined, f);
  for (const f of ['--push-ca', '--push-ca-file', '--push-server-name'])
    assert.equal(flag(proxy.c.args!, f), undefined, f);
  assert.deepEqual(flags(proxy.c.args!, '--controller'), [
    `dns:modelgate-controller.${NAMESPACE}.svc.cluster.local:8443`,
  ]);
  assert.equal(controller.c.volumeMounts, undefined);
  assert.equal(controller.deployment.spec.template.spec.volumes, undefined);
  assert.deepEqual(
    proxy.deployment.spec.template.spec.volumes!.map((v) => v.name),
    ['config', 'push-token', 'state'],
  );
  for (const kind of ['Certificate', 'Issuer']) assert.deepEqual(byKind(defaults, kind), [], kind);
  // Without a CA the address is plaintext, which the binary takes as such.
  assert.deepEqual(parseControllerAddress(flag(proxy.c.args!, '--controller')!), {
    kind: 'dns',
    scheme: 'http',
    name: `modelgate-controller.${NAMESPACE}.svc.cluster.local`,
    port: 8443,
  });
});

test("on: the controllers serve the mounted certificate; the proxies dial https and verify it against the mounted CA under the Service's name", async () => {
  assert.equal(renderText(PUSH_TLS), renderText(PUSH_TLS), 'deterministic');
  const controller = containerOf(tls, 'controller');
  const proxy = containerOf(tls, 'proxy');
  const cert = flag(controller.c.args!, '--push-tls-cert')!;
  const key = flag(controller.c.args!, '--push-tls-key')!;
  assert.deepEqual(pushTlsFlags({ 'push-tls-cert': cert, 'push-tls-key': key }), {
    certFile: cert,
    keyFile: key,
  });
  const certFile = fileSource(controller.deployment, controller.c, cert);
  const keyFile = fileSource(controller.deployment, controller.c, key);
  assert.equal(certFile.volume, keyFile.volume);
  assert.equal(certFile.volume.secret?.secretName, 'modelgate-push-tls');
  assert.deepEqual([certFile.key, keyFile.key], ['tls.crt', 'tls.key']);
  assert.equal(certFile.readOnly, true);
  // Not optional: a controller never starts without its certificate (and so never in clear).
  assert.equal(certFile.volume.secret?.optional, undefined);

  // The proxies: https, written out; the CA; the name the certificate holds.
  const [address] = flags(proxy.c.args!, '--controller');
  assert.equal(address, `dns:https://modelgate-controller.${NAMESPACE}.svc.cluster.local:8443`);
  const serverName = flag(proxy.c.args!, '--push-server-name');
  assert.equal(serverName, `modelgate-controller.${NAMESPACE}.svc`);
  const ca = fileSource(proxy.deployment, proxy.c, flag(proxy.c.args!, '--push-ca')!);
  assert.equal(ca.volume.secret?.secretName, 'modelgate-push-tls');
  assert.equal(ca.key, 'ca.crt');
  assert.equal(ca.readOnly, true);
  // Only the CA reaches the proxies: no item of any proxy volume is a private key of that Secret.
  const proxyItems = proxy.deployment.spec.template.spec.volumes!.flatMap((v) =>
    v.secret?.secretName === 'modelgate-push-tls' ? (v.secret.items ?? []).map((i) => i.key) : [],
  );
  assert.deepEqual(proxyItems, ['ca.crt']);

  // What the binary makes of the address: each pod's IP, verified as the Service name.
  assert.equal(typeof parseControllerAddress(address!, { tls: true }), 'object');
  const targets = controllerTargets([address!], {
    tls: true,
    serverName: serverName!,
    lookup: async () => ['10.244.1.7', 'fd00:10:244::7'],
  });
  assert.deepEqual(await targets(), [
    { url: 'https://10.244.1.7:8443', servername: `modelgate-controller.${NAMESPACE}.svc` },
    { url: 'https://[fd00:10:244::7]:8443', servername: `modelgate-controller.${NAMESPACE}.svc` },
  ]);
});

test("cert-manager: a Certificate for every name the proxies use, signed by the chart's own CA or the issuer given", () => {
  const controller = containerOf(tls, 'controller');
  const proxy = containerOf(tls, 'proxy');
  for (const o of [...byKind(tls, 'Certificate'), ...byKind(tls, 'Issuer')]) {
    assert.equal(o.apiVersion, 'cert-manager.io/v1');
    assert.equal(o.metadata.namespace, NAMESPACE);
    assert.equal(o.metadata.labels?.['app.kubernetes.io/part-of'], 'modelgate');
  }
  const server = one<CertManagerObject>(tls, 'Certificate', 'modelgate-push-tls')
    .spec as unknown as CertificateSpec;
  assert.deepEqual(Object.keys(server).sort(), [
    'dnsNames',
    'duration',
    'issuerRef',
    'privateKey',
    'renewBefore',
    'secretName',
    'usages',
  ]);
  // The Secret the controllers mount (and the proxies read ca.crt from).
  const mounted = fileSource(
    controller.deployment,
    controller.c,
    flag(controller.c.args!, '--push-tls-cert')!,
  );
  assert.equal(server.secretName, mounted.volume.secret?.secretName);
  // Every name of the Service, among them the one the proxies verify and the one they resolve.
  const resolved = /^dns:https:\/\/([^:]+):/.exec(flag(proxy.c.args!, '--controller')!)![1]!;
  assert.deepEqual(server.dnsNames, [
    'modelgate-controller.modelgate.svc',
    'modelgate-controller',
    'modelgate-controller.modelgate',
    'modelgate-controller.modelgate.svc.cluster.local',
  ]);
  assert.ok(server.dnsNames!.includes(flag(proxy.c.args!, '--push-server-name')!));
  assert.ok(server.dnsNames!.includes(resolved));
  assert.deepEqual(server.usages, ['server auth', 'digital signature']);
  assert.deepEqual(server.privateKey, { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' });
  assert.equal(server.duration, '2160h');
  assert.equal(server.renewBefore, '360h');
  // The chain: server ← CA Issuer ← CA Certificate (its Secret) ← self-signed Issuer.
  assert.deepEqual(server.issuerRef, { group: 'cert-manager.io', kind: 'Issuer', name: 'modelgate-push-ca' });
  const caIssuer = one<CertManagerObject>(tls, 'Issuer', 'modelgate-push-ca');
  assert.deepEqual(caIssuer.spec, { ca: { secretName: 'modelgate-push-ca' } });
  const caCert = one<CertManagerObject>(tls, 'Certificate', 'modelgate-push-ca')
    .spec as unknown as CertificateSpec;
  assert.equal(caCert.isCA, true);
  assert.equal(caCert.secretName, 'modelgate-push-ca');
  assert.equal(caCert.duration, '87600h');
  assert.deepEqual(caCert.issuerRef, {
    group: 'cert-manager.io',
    kind: 'Issuer',
    name: 'modelgate-push-selfsigned',
  });
  assert.deepEqual(one<CertManagerObject>(tls, 'Issuer', 'modelgate-push-selfsigned').spec, {
    selfSigned: {},
  });
  assert.equal(byKind(tls, 'Certificate').length, 2);
  assert.equal(byKind(tls, 'Issuer').length, 2);

  // Every option: the Secret, CA, server name and issuer given.
  const all = one<CertManagerObject>(allOptions, 'Certificate').spec as unknown as CertificateSpec;
  assert.equal(all.secretName, 'gateway-push-tls');
  assert.deepEqual(all.issuerRef, { group: 'cert-manager.io', kind: 'ClusterIssuer', name: 'platform-ca' });
  assert.equal(all.duration, '720h');
  assert.equal(all.renewBefore, '240h');
  assert.equal(all.dnsNames![0], 'controllers.gateway.internal');
  assert.deepEqual(byKind(allOptions, 'Issuer'), []);
  const p = containerOf(allOptions, 'proxy');
  assert.equal(flag(p.c.args!, '--push-server-name'), 'controllers.gateway.internal');
  const ca = fileSource(p.deployment, p.c, flag(p.c.args!, '--push-ca')!);
  assert.equal(ca.volume.secret?.secretName, 'gateway-push-ca');
  assert.equal(ca.key, 'bundle.pem');
  const c = containerOf(allOptions, 'controller');
  assert.equal(
    fileSource(c.deployment, c.c, flag(c.c.args!, '--push-tls-key')!).volume.secret?.secretName,
    'gateway-push-tls',
  );
  // Without cert-manager: the Secret is the operator's to make; nothing else is rendered.
  const own = render(['--set', 'push.tls.enabled=true', '--set', 'push.tls.secretName=my-push-tls']);
  assert.deepEqual(byKind(own, 'Certificate'), []);
  const ownController = containerOf(own, 'controller');
  assert.equal(
    fileSource(ownController.deployment, ownController.c, flag(ownController.c.args!, '--push-tls-cert')!)
      .volume.secret?.secretName,
    'my-push-tls',
  );
});

test('bad push TLS values are refused', () => {
  const refused = (args: string[], message: RegExp) =>
    assert.throws(() => renderText(args), message, `helm template ${args.join(' ')} should fail`);
  refused(
    ['--set', 'push.tls.certManager.enabled=true'],
    /push\.tls\.certManager needs push\.tls\.enabled: true/,
  );
  refused(['--set', 'push.tls.caKey=a/b'], /push\.tls\.caKey: Does not match pattern/);
  refused(['--set', 'push.tls.certManager.duration=90 days'], /duration: Does not match pattern/);
  refused(['--set', 'push.tls.secretname=x'], /Additional property secretname is not allowed/);
  refused(['--set', 'push.tls.serverName=Not_A_Name'], /serverName: Does not match pattern/);
});

test('NOTES: the proxies start at once; plaintext push is a warning with the way out', () => {
  const plain = renderNotes();
  assert.doesNotMatch(plain, /start once it exists/);
  assert.match(plain, /proxies start at once \(the token volume is optional\)/);
  assert.match(plain, /WARNING: the push stream between the controllers and the proxies is plain HTTP/);
  assert.match(plain, /--set push\.tls\.enabled=true --set push\.tls\.certManager\.enabled=true/);
  assert.match(plain, /networkPolicy\.enabled=true/);
  assert.doesNotMatch(renderNotes(['--set', 'networkPolicy.enabled=true']), /consider networkPolicy/);
  const on = renderNotes(PUSH_TLS);
  assert.doesNotMatch(on, /WARNING/);
  assert.match(on, /The push stream is TLS/);
  assert.match(on, /verify it as modelgate-controller\.modelgate\.svc/);
  assert.match(on, /get certificate modelgate-push-tls/);
  assert.match(renderNotes(['--set', 'push.tls.enabled=true']), /The pods start once that Secret exists/);
});
