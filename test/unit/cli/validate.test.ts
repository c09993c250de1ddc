import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from './run-cli.ts';

const EXAMPLES = fileURLToPath(new URL('../../../examples/', import.meta.url));

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('the shipped examples are valid', async () => {
  const r = await runCli(['validate', '-f', EXAMPLES]);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /resource\(s\) valid/);
  assert.equal(r.code, 0);
});

test('broken manifests give one precise line per problem and exit 1', async (t) => {
  const dir = await tempDir(t);
  await writeFile(
    join(dir, 'routes.yaml'),
    `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  rules:
    - matches: [{path: {value: v1/chat}}]
      backends:
        - {name: a, urls: ["http://127.0.0.1:1"], service: {name: x, port: 80}}
        - {name: a, urls: ["http://127.0.0.1:2"]}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: slow, namespace: ml}
spec:
  rules:
    - backends: [{name: b, urls: ["http://127.0.0.1:3"]}]
      timeouts: {connect: 5 seconds}
      colour: blue
---
apiVersion: modelgate.dev/v1alpha1
kind: CanaryRollout
metadata: {name: c, namespace: ml}
spec: {routeRef: {name: nope}, stableBackend: a, canaryBackend: b}
---
apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: refs, namespace: ml}
spec:
  rules:
    - backends: [{name: b, service: {name: missing, port: 80}}]
`,
  );
  await writeFile(join(dir, 'broken.yaml'), 'kind: ModelRoute\nmetadata:\n\tname: x\n');
  const r = await runCli(['validate', '-f', dir]);
  const file = join(dir, 'routes.yaml');
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, new RegExp(`^${join(dir, 'broken.yaml')}:3: `), 'YAML errors name the line');
  for (const expected of [
    `${file}: ModelRoute/ml/chat: spec.rules[0].matches[0].path.value: an Exact or PathPrefix path must start with /`,
    `${file}: ModelRoute/ml/chat: spec.rules[0].backends[0]: exactly one of service or urls must be set`,
    `${file}: ModelRoute/ml/chat: spec.rules[0].backends: backend names must be unique`,
    `${file}: ModelRoute/ml/slow: spec.rules[0].timeouts.connect: must be a duration such as 500ms, 2s, 5m or 1h30m`,
    `${file}: ModelRoute/ml/slow: spec.rules[0].colour: unknown field`,
    `${file}: CanaryRollout/ml/c: ModelRoute ml/nope not found`,
    `${file}: ModelRoute/ml/refs: spec.rules[0].backends[0]: service ml/missing not found`,
  ]) {
    assert.ok(lines.includes(expected), `missing line:\n${expected}\nin:\n${r.stdout}`);
  }
  assert.ok(
    lines.every((l) => l.startsWith(dir)),
    'every line starts with the file',
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /problem\(s\) found/);

  const skipped = await runCli(['validate', '--skip-refs', '-f', file]);
  assert.ok(!skipped.stdout.includes('service ml/missing not found'), '--skip-refs drops Service references');
});

test('usage mistakes exit 2 with a hint; --help exits 0', async () => {
  const none = await runCli(['validate']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /needs at least one -f PATH/);
  const unknown = await runCli(['validate', '--frobnicate']);
  assert.equal(unknown.code, 2);
  const help = await runCli(['validate', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: modelgate validate/);
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /validate\s+check manifests/);
  const bad = await runCli(['frobnicate']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command 'frobnicate'/);
});
