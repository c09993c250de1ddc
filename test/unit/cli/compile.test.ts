import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { runCli } from './run-cli.ts';

const QUICKSTART = fileURLToPath(new URL('../../../examples/quickstart/', import.meta.url));

test('compile prints the table and statuses, as JSON or YAML, the same both ways', async () => {
  const json = await runCli(['compile', '-f', QUICKSTART]);
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout);
  assert.equal(out.table.schemaVersion, 1);
  const chat = out.table.routes.rules.find((r: { id: string }) => r.id === 'quickstart/chat/chat');
  assert.deepEqual(
    chat.backends.map((b: { name: string; weight: number }) => [b.name, b.weight]),
    [
      ['stable', 9000],
      ['canary', 1000],
    ],
  );
  assert.ok(
    out.statuses.every((s: { status: { conditions: { type: string; status: string }[] } }) =>
      s.status.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'),
    ),
  );
  const yaml = await runCli(['compile', '-o', 'yaml', '-f', QUICKSTART]);
  assert.deepEqual(parse(yaml.stdout), out);
});

test('compile redacts credentials and reports loading problems on stderr', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-compile-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'in.yaml'),
    `apiVersion: v1
kind: Secret
metadata: {name: upstream-key}
stringData: {token: sk-live-123}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
`,
  );
  const r = await runCli(['compile', '-f', dir]);
  assert.equal(r.code, 0);
  assert.ok(!r.stdout.includes('sk-live-123'));
  assert.match(r.stderr, /unsupported kind ConfigMap/);
  const bad = await runCli(['compile', '-o', 'xml', '-f', dir]);
  assert.equal(bad.code, 2);
});
