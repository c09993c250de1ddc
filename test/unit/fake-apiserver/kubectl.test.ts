/**
 * The fake API server against the real kubectl (skipped when /usr/bin/kubectl is missing):
 * discovery resolves the kinds and short names, status patches go through the subresource, and
 * `get -w` streams a MODIFIED event. Each kubectl gets its own discovery cache directory so a
 * previous server's (different port, same host) cache is never used.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { promisify } from 'node:util';
import { type FakeApiServer, writeKubeconfigFile } from '../../support/fake-apiserver/index.ts';
import { accepted, route, server, TIMEOUT } from './helpers.ts';

const KUBECTL = '/usr/bin/kubectl';
const skip = existsSync(KUBECTL) ? false : `${KUBECTL} is not installed`;
const run = promisify(execFile);

interface Kubectl {
  (...args: string[]): Promise<{ stdout: string; stderr: string }>;
  spawn(...args: string[]): ChildProcess;
}

async function kubectlFor(t: TestContext, s: FakeApiServer): Promise<Kubectl> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-kubectl-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const kubeconfig = path.join(dir, 'kubeconfig');
  await writeKubeconfigFile(s.url, kubeconfig, 'ml');
  const common = ['--kubeconfig', kubeconfig, '--cache-dir', path.join(dir, 'cache')];
  const env = { ...process.env, HOME: dir, KUBECONFIG: kubeconfig };
  const k = (...args: string[]) => run(KUBECTL, [...common, ...args], { env, timeout: 30_000 });
  k.spawn = (...args: string[]) =>
    spawn(KUBECTL, [...common, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  return k;
}

/** Kubernetes needs the Namespace to exist for kubectl's NotFound messages; create it as a cluster would. */
function seed(s: FakeApiServer): void {
  s.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml' } });
  s.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
  s.apply(route('chat'));
  s.apply(route('embed', 'other'));
  s.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'RateLimitPolicy',
    metadata: { name: 'per-key', namespace: 'ml' },
    spec: { targetRefs: [{ kind: 'ModelRoute', name: 'chat' }] },
  });
}

test('kubectl get modelroutes -A -o json lists every namespace', { ...TIMEOUT, skip }, async (t) => {
  const s = await server(t);
  seed(s);
  const kubectl = await kubectlFor(t, s);
  const { stdout } = await kubectl('get', 'modelroutes', '-A', '-o', 'json');
  const list = JSON.parse(stdout) as { items: { metadata: { namespace: string; name: string } }[] };
  assert.deepEqual(
    list.items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`),
    ['ml/chat', 'other/embed'],
  );
  assert.ok(s.count({ verb: 'list', resource: 'modelroutes' }) >= 1);
  assert.equal(s.count({ resource: 'modelroutes', namespace: 'ml' }), 0, 'an all-namespaces list');
});

test('kubectl resolves the short names mr, rlp and canary', { ...TIMEOUT, skip }, async (t) => {
  const s = await server(t);
  seed(s);
  const kubectl = await kubectlFor(t, s);
  const mr = await kubectl('get', 'mr', '-n', 'ml');
  assert.match(mr.stdout, /^NAME\s+AGE\n/, 'no Table support: kubectl falls back to NAME and AGE');
  assert.match(mr.stdout, /^chat\s+\S+$/m);
  assert.doesNotMatch(mr.stdout, /embed/);
  const rlp = await kubectl('get', 'rlp', '-o', 'name');
  assert.equal(rlp.stdout.trim(), 'ratelimitpolicy.modelgate.dev/per-key');
  const canary = await kubectl('get', 'canary', '-n', 'ml');
  assert.equal(canary.stdout, '');
  assert.match(canary.stderr, /No resources found in ml namespace/);
  const missing = await kubectl('get', 'mr', 'nope').catch((e: { stderr: string }) => e);
  assert.match(missing.stderr, /modelroutes.modelgate.dev "nope" not found/);
});

test('kubectl patch --subresource=status changes status, not generation', { ...TIMEOUT, skip }, async (t) => {
  const s = await server(t);
  seed(s);
  const kubectl = await kubectlFor(t, s);
  const before = s.get('ModelRoute', 'ml', 'chat')!;
  const { stdout } = await kubectl(
    'patch',
    'modelroute',
    'chat',
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: accepted(1) }),
  );
  assert.match(stdout, /modelroute.modelgate.dev\/chat patched/);
  const after = s.get('ModelRoute', 'ml', 'chat')!;
  assert.deepEqual(after.status, accepted(1));
  assert.equal(after.metadata.generation, before.metadata.generation);
  assert.notEqual(after.metadata.resourceVersion, before.metadata.resourceVersion);
  assert.equal(s.count({ verb: 'patch', resource: 'modelroutes', subresource: 'status' }), 1);

  // The same patch without --subresource is ignored for status, as on a real cluster.
  await kubectl('patch', 'mr', 'chat', '--type=merge', '-p', JSON.stringify({ status: accepted(5) }));
  assert.deepEqual(s.get('ModelRoute', 'ml', 'chat')?.status, accepted(1));
});

test('kubectl apply works with --validate=false (the fake serves no OpenAPI)', {
  ...TIMEOUT,
  skip,
}, async (t) => {
  const s = await server(t);
  seed(s);
  const kubectl = await kubectlFor(t, s);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-manifest-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'route.json');
  await writeFile(file, JSON.stringify(route('applied')));
  const created = await kubectl('apply', '--validate=false', '-f', file);
  assert.match(created.stdout, /modelroute.modelgate.dev\/applied created/);
  await writeFile(file, JSON.stringify(route('applied', 'ml', { spec: { hostnames: ['new.example.com'] } })));
  const configured = await kubectl('apply', '--validate=false', '-f', file);
  assert.match(configured.stdout, /configured/);
  const stored = s.get<{ spec: unknown; metadata: { generation: number } }>('ModelRoute', 'ml', 'applied');
  assert.deepEqual(stored?.spec, { hostnames: ['new.example.com'] });
  assert.equal(stored?.metadata.generation, 2);
  assert.ok(s.count({ path: '/openapi/v3' }) >= 1, 'kubectl asked for OpenAPI and coped with the 404');
});

test('kubectl get -w prints a MODIFIED event', { ...TIMEOUT, skip }, async (t) => {
  const s = await server(t);
  seed(s);
  const kubectl = await kubectlFor(t, s);
  const child = kubectl.spawn(
    'get',
    'mr',
    'chat',
    '-w',
    '--output-watch-events',
    '-o',
    'jsonpath={.type} {.object.metadata.name} {.object.metadata.generation}{"\\n"}',
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    child.kill();
    await exited;
  });
  let stdout = '';
  let stderr = '';
  const wake: (() => void)[] = [];
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString();
    for (const w of wake.splice(0)) w();
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lineAppears = async (re: RegExp) => {
    while (!re.test(stdout)) {
      await Promise.race([new Promise<void>((r) => wake.push(r)), exited]);
      if (child.exitCode !== null) assert.fail(`kubectl exited: ${stderr}`);
    }
  };

  await s.waitFor(() => s.openWatches('modelroutes') === 1, { message: 'kubectl watch open' });
  await lineAppears(/^ADDED chat 1$/m);
  s.apply(route('chat', 'ml', { spec: { hostnames: ['changed.example.com'] } }));
  await lineAppears(/^MODIFIED chat 2$/m);
  const watch = s.requests.find((r) => r.verb === 'watch');
  assert.equal(watch?.query.get('fieldSelector'), 'metadata.name=chat');
});
