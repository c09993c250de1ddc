import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { loadFiles, loadManifests } from '../../../src/sources/files/index.ts';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-files-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function write(dir: string, name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

const service = (name: string, ns?: string, port = 80) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}${ns ? `\n  namespace: ${ns}` : ''}
spec:
  ports:
    - port: ${port}
`;

const route = (name: string) => `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata:
  name: ${name}
spec:
  hostnames: [api.example.com]
`;

const names = (objs: { metadata: { namespace?: string; name: string } }[]) =>
  objs.map((o) => `${o.metadata.namespace}/${o.metadata.name}`);

test('multi-document YAML: every kind lands in its list, empty documents are skipped', async (t) => {
  const dir = await tempDir(t);
  const file = await write(
    dir,
    'all.yaml',
    `# leading comment
${route('chat')}---
---
# a document with only a comment
---
${service('llm', 'models')}---
apiVersion: modelgate.dev/v1alpha1
kind: RateLimitPolicy
metadata: { name: rl }
spec: {}
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: { name: cr }
spec: {}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: llm-abc, namespace: models }
addressType: IPv4
endpoints: [{ addresses: [10.0.0.1] }]
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
data: { k: dmFsdWU= }
...
`,
  );
  const { state, problems } = await loadFiles([file]);
  assert.deepEqual(problems, []);
  assert.deepEqual(names(state.modelRoutes), ['default/chat']);
  assert.deepEqual(names(state.services), ['models/llm']);
  assert.deepEqual(names(state.rateLimitPolicies), ['default/rl']);
  assert.deepEqual(names(state.canaryRollouts), ['default/cr']);
  assert.deepEqual(names(state.endpointSlices), ['models/llm-abc']);
  assert.deepEqual(names(state.secrets), ['default/keys']);
  assert.deepEqual(state.modelRoutes[0]?.spec, { hostnames: ['api.example.com'] });
});

test('List and typed lists are flattened like kubectl does', async (t) => {
  const dir = await tempDir(t);
  const file = await write(
    dir,
    'list.yaml',
    `apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Service
    metadata: { name: a }
    spec: {}
  - apiVersion: modelgate.dev/v1alpha1
    kind: ModelRoute
    metadata: { name: r }
    spec: {}
---
apiVersion: v1
kind: ServiceList
items:
  - metadata: { name: b }
    spec: {}
`,
  );
  const { state, problems, origins } = await loadFiles([file]);
  assert.deepEqual(problems, []);
  assert.deepEqual(names(state.services), ['default/a', 'default/b']);
  assert.deepEqual(names(state.modelRoutes), ['default/r']);
  // Typed-list items get kind and apiVersion from the list, as kubectl restores them.
  assert.equal(state.services[1]?.kind, 'Service');
  assert.equal(state.services[1]?.apiVersion, 'v1');
  // Each item's origin is the item itself, not the List document.
  assert.deepEqual(origins.get('Service/default/a'), { file, line: 4 });
  assert.deepEqual(origins.get('ModelRoute/default/r'), { file, line: 8 });
  assert.deepEqual(origins.get('Service/default/b'), { file, line: 16 });
});

test('namespace defaults to default; generation is set and creation time dropped; status kept', async () => {
  const { state, problems, origins } = loadManifests([
    {
      file: 'x.yaml',
      text: `apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata:
  name: cr
  creationTimestamp: "2024-01-01T00:00:00Z"
spec: {}
status:
  stepWeight: 20
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: r, namespace: team, generation: 7 }
spec: {}
---
apiVersion: v1
kind: Service
metadata: { name: s, namespace: "" }
spec: {}
`,
    },
  ]);
  assert.deepEqual(problems, []);
  const cr = state.canaryRollouts[0]!;
  assert.equal(cr.metadata.namespace, 'default');
  assert.equal(cr.metadata.generation, 1);
  assert.equal('creationTimestamp' in cr.metadata, false);
  assert.deepEqual(cr.status, { stepWeight: 20 });
  assert.equal(state.modelRoutes[0]?.metadata.generation, 7);
  assert.equal(state.services[0]?.metadata.namespace, 'default');
  assert.deepEqual(
    [...origins.keys()],
    ['CanaryRollout/default/cr', 'ModelRoute/team/r', 'Service/default/s'],
  );
});

test('unknown kinds, wrong apiVersions and nameless objects are problems; the rest loads', async () => {
  const { state, problems } = loadManifests([
    {
      file: 'mixed.yaml',
      text: `apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
---
${service('ok')}---
apiVersion: modelgate.dev/v1beta1
kind: ModelRoute
metadata: { name: old }
spec: {}
---
apiVersion: v1
metadata: { name: kindless }
---
apiVersion: v1
kind: Service
metadata: { generateName: svc- }
spec: {}
---
- just
- a list
`,
    },
  ]);
  assert.deepEqual(names(state.services), ['default/ok']);
  assert.deepEqual(state.modelRoutes, []);
  assert.deepEqual(
    problems.map((p) => [p.line, p.key, p.message]),
    [
      [
        1,
        'Deployment/default/web',
        'unsupported kind Deployment (apiVersion apps/v1); ModelGate reads ModelRoute, RateLimitPolicy, CanaryRollout, Service, EndpointSlice, Secret',
      ],
      [
        13,
        'ModelRoute/default/old',
        'apiVersion must be modelgate.dev/v1alpha1 for ModelRoute, not modelgate.dev/v1beta1',
      ],
      [18, undefined, 'object has no kind'],
      [21, undefined, 'Service has no metadata.name'],
      [
        26,
        undefined,
        'expected a Kubernetes object (a mapping with apiVersion, kind and metadata), got a list',
      ],
    ],
  );
  assert.ok(problems.every((p) => p.file === 'mixed.yaml'));
});

test('a YAML syntax error names its line; other documents and files still load', async (t) => {
  const dir = await tempDir(t);
  await write(
    dir,
    'a.yaml',
    `${service('first')}---
apiVersion: v1
kind: Service
metadata:
  name: broken
  labels: app: x
spec: {}
---
${service('third')}`,
  );
  await write(dir, 'b.yaml', service('other'));
  const { state, problems } = await loadFiles([dir]);
  assert.deepEqual(names(state.services), ['default/first', 'default/other', 'default/third']);
  assert.ok(problems.every((p) => p.file === path.join(dir, 'a.yaml')));
  assert.deepEqual(
    problems.map((p) => [p.line, p.message]),
    [[13, 'YAML syntax error: Nested mappings are not allowed in compact mappings']],
  );
});

test('syntax errors: tab indentation, duplicate keys, unclosed flow mapping', () => {
  const lines = (bad: string) =>
    loadManifests([
      { file: 'bad.yaml', text: `${service('a')}---\n${bad}---\n${service('c')}` },
    ]).problems.map((p) => [p.line, p.message]);
  // service() is 7 lines, then `---`: the bad document starts on line 9.
  assert.deepEqual(lines('kind: Service\nmetadata:\n\tname: b\n'), [
    [11, 'YAML syntax error: Tabs are not allowed as indentation'],
  ]);
  assert.deepEqual(lines('kind: Service\nmetadata:\n  name: b\n  name: c\n'), [
    [12, 'YAML syntax error: Map keys must be unique'],
  ]);
  // An unclosed flow mapping is noticed where the next key starts, one line below the brace.
  assert.deepEqual(lines('kind: Service\nmetadata: {name: b\nspec: {}\n'), [
    [11, 'YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }'],
  ]);
});

test('a duplicate is reported with both places and the first one wins', async (t) => {
  const dir = await tempDir(t);
  const a = await write(dir, 'a.yaml', service('dup', undefined, 1));
  const b = await write(dir, 'b.yaml', `${service('other')}---\n${service('dup', 'default', 2)}`);
  const { state, problems, origins } = await loadFiles([dir]);
  assert.deepEqual(names(state.services), ['default/dup', 'default/other']);
  assert.equal(state.services[0]?.spec.ports?.[0]?.port, 1);
  assert.deepEqual(origins.get('Service/default/dup'), { file: a, line: 1 });
  assert.equal(problems.length, 1);
  assert.equal(problems[0]?.file, b);
  assert.equal(problems[0]?.line, 9);
  assert.equal(problems[0]?.key, 'Service/default/dup');
  assert.match(problems[0]?.message ?? '', new RegExp(`${a.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1`));
});

test('Secret stringData is folded into data as base64, stringData winning; type kept', async () => {
  const { state, problems } = loadManifests([
    {
      file: 's.yaml',
      text: `apiVersion: v1
kind: Secret
metadata: { name: s }
type: kubernetes.io/basic-auth
data:
  username: b2xk
  keep: a2VwdA==
stringData:
  username: admin
  password: "pä ss"
---
apiVersion: v1
kind: Secret
metadata: { name: bad }
data: { k: "not base64!" }
`,
    },
  ]);
  assert.deepEqual(names(state.secrets), ['default/s']);
  const s = state.secrets[0]!;
  assert.equal(s.type, 'kubernetes.io/basic-auth');
  assert.equal('stringData' in s, false);
  assert.deepEqual(s.data, {
    username: Buffer.from('admin').toString('base64'),
    keep: 'a2VwdA==',
    password: Buffer.from('pä ss', 'utf8').toString('base64'),
  });
  assert.deepEqual(
    problems.map((p) => [p.key, p.message]),
    [['Secret/default/bad', 'data.k is not valid base64']],
  );
});

test('the state does not depend on file names or order', async (t) => {
  const one = await tempDir(t);
  await write(one, 'a.yaml', `${service('z', 'b')}---\n${route('m')}---\n${service('a', 'b')}`);
  await write(one, 'b.yaml', `${service('c', 'a')}---\n${route('b')}`);
  const two = await tempDir(t);
  await write(two, '1.yaml', route('b'));
  await write(two, 'sub/2.yaml', `${service('a', 'b')}---\n${service('c', 'a')}`);
  await write(two, '3.yml', `${route('m')}---\n${service('z', 'b')}`);

  const first = await loadFiles([one]);
  const second = await loadFiles([two]);
  const reversed = await loadFiles([
    path.join(two, 'sub'),
    path.join(two, '3.yml'),
    path.join(two, '1.yaml'),
  ]);
  assert.deepEqual(names(first.state.services), ['a/c', 'b/a', 'b/z']);
  assert.deepEqual(names(first.state.modelRoutes), ['default/b', 'default/m']);
  assert.deepEqual(second.state, first.state);
  assert.deepEqual(reversed.state, first.state);
  assert.deepEqual([...first.origins.keys()], [...second.origins.keys()]);
});

test('EndpointSlices of every address type are kept as written', async () => {
  const slice = (name: string, type: string, address: string) => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}
  labels: { kubernetes.io/service-name: llm }
addressType: ${type}
endpoints:
  - addresses: ["${address}"]
    conditions: { ready: true }
ports: [{ name: http, port: 8000 }]
`;
  const { state, problems } = loadManifests([
    {
      file: 'eps.yaml',
      text: [
        slice('v4', 'IPv4', '10.1.2.3'),
        slice('v6', 'IPv6', 'fd00::1'),
        slice('dns', 'FQDN', 'llm.example.com'),
        slice('bad', 'IPv5', '1.2.3.4'),
      ].join('---\n'),
    },
  ]);
  assert.deepEqual(
    state.endpointSlices.map((s) => [s.metadata.name, s.addressType, s.endpoints?.[0]?.addresses]),
    [
      ['dns', 'FQDN', ['llm.example.com']],
      ['v4', 'IPv4', ['10.1.2.3']],
      ['v6', 'IPv6', ['fd00::1']],
    ],
  );
  assert.deepEqual(state.endpointSlices[1]?.ports, [{ name: 'http', port: 8000 }]);
  assert.deepEqual(
    problems.map((p) => [p.key, p.message]),
    [['EndpointSlice/default/bad', 'addressType must be IPv4, IPv6 or FQDN']],
  );
});

test('origins give the file and the line each document starts on', async (t) => {
  const dir = await tempDir(t);
  const file = await write(
    dir,
    'o.yaml',
    `# header comment

${service('a')}---
# comment inside the document

${service('b')}
---

${route('r')}`,
  );
  const { origins } = await loadFiles([file]);
  assert.deepEqual(
    [...origins],
    [
      ['ModelRoute/default/r', { file, line: 23 }],
      ['Service/default/a', { file, line: 3 }],
      ['Service/default/b', { file, line: 13 }],
    ],
  );
});

test('folders: recursive, sorted, manifests only, hidden entries skipped, file links followed', async (t) => {
  const dir = await tempDir(t);
  await write(dir, 'b.yaml', service('b'));
  await write(dir, 'a/z.yml', service('az'));
  await write(
    dir,
    'c.json',
    JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c' }, spec: {} }),
  );
  await write(dir, 'notes.txt', service('txt'));
  await write(dir, '.hidden.yaml', service('hidden'));
  await write(dir, '.git/x.yaml', service('git'));
  const outside = await tempDir(t);
  await write(outside, 'target.yaml', service('linked'));
  await symlink(path.join(outside, 'target.yaml'), path.join(dir, 'link.yaml'));
  await symlink(outside, path.join(dir, 'dirlink'));
  // An explicitly named file is read whatever its extension, as kubectl does.
  const txt = path.join(dir, 'notes.txt');

  const { state, problems, origins } = await loadFiles([dir, txt, path.join(dir, 'missing.yaml')]);
  assert.deepEqual(names(state.services), [
    'default/az',
    'default/b',
    'default/c',
    'default/linked',
    'default/txt',
  ]);
  assert.deepEqual(problems, [
    { file: path.join(dir, 'missing.yaml'), message: 'no such file or directory' },
  ]);
  assert.equal(origins.get('Service/default/az')?.file, path.join(dir, 'a', 'z.yml'));
  assert.equal(origins.get('Service/default/linked')?.file, path.join(dir, 'link.yaml'));
});

test('the same file named twice is read once', async (t) => {
  const dir = await tempDir(t);
  const file = await write(dir, 'a.yaml', service('a'));
  const { state, problems } = await loadFiles([dir, file]);
  assert.deepEqual(names(state.services), ['default/a']);
  assert.deepEqual(problems, []);
});

test('YAML is read as kubectl reads it (YAML 1.1 scalars, merge keys); JSON too', () => {
  const { state, problems } = loadManifests([
    {
      file: 'y.yaml',
      text: `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: { name: r, labels: { created: 2024-01-01 } }
spec:
  base: &base { a: 1 }
  merged: { <<: *base, b: 2 }
  flag: yes
  country: NO
  mode: 0644
  time: 1:20
`,
    },
    {
      file: 'j.json',
      text: '{"apiVersion":"v1","kind":"Service","metadata":{"name":"j"},"spec":{"x":"a\\/b"}}',
    },
  ]);
  assert.deepEqual(problems, []);
  const spec = state.modelRoutes[0]?.spec as unknown as Record<string, unknown>;
  assert.deepEqual(spec.merged, { a: 1, b: 2 });
  assert.equal(spec.flag, true);
  assert.equal(spec.country, false);
  assert.equal(spec.mode, 0o644);
  assert.equal(spec.time, '1:20');
  assert.equal(state.modelRoutes[0]?.metadata.labels?.created, '2024-01-01');
  assert.deepEqual(state.services[0]?.spec, { x: 'a/b' });
});
