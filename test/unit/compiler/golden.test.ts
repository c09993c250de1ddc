/**
 * Golden files: each folder in test/golden/ holds an `input.yaml` (its first line says what the case
 * checks) and the `expected.json` that loading it with the files source and compiling it gives:
 * the source's problems, the routing table and the statuses. `npm run golden:update` rewrites the
 * expected files; review the diff as you would review code.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ClusterState } from '../../../src/api/cluster-state.ts';
import { objectKey } from '../../../src/api/cluster-state.ts';
import { compile } from '../../../src/compiler/compile.ts';
import { loadFiles } from '../../../src/sources/files/index.ts';

const GOLDEN = fileURLToPath(new URL('../../golden/', import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === '1';

const cases = readdirSync(GOLDEN, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

async function render(dir: string): Promise<{ text: string; state: ClusterState }> {
  const { state, problems } = await loadFiles([path.join(dir, 'input.yaml')]);
  const { table, statuses } = compile(state);
  // Paths relative to the case folder, in messages too, so the expected files do not depend on the checkout.
  const relative = problems.map((p) => ({
    ...p,
    file: path.relative(dir, p.file),
    message: p.message.split(`${dir}${path.sep}`).join(''),
  }));
  return { text: `${JSON.stringify({ problems: relative, table, statuses }, null, 2)}\n`, state };
}

/** Every custom resource the source handed over, as `Kind/namespace/name`. */
function customResourceKeys(state: ClusterState): string[] {
  return [...state.modelRoutes, ...state.rateLimitPolicies, ...state.canaryRollouts].map((r) =>
    objectKey(r.kind, r.metadata.namespace, r.metadata.name),
  );
}

describe('golden files', () => {
  test('there are golden cases', () => assert.ok(cases.length >= 30, `${cases.length} cases`));

  for (const name of cases) {
    const dir = path.join(GOLDEN, name);
    const expectedFile = path.join(dir, 'expected.json');

    test(name, async () => {
      const input = readFileSync(path.join(dir, 'input.yaml'), 'utf8');
      assert.ok(
        input.startsWith('#') || existsSync(path.join(dir, 'README.md')),
        'say what the case checks: a # comment at the top of input.yaml, or a README.md',
      );

      const { text, state } = await render(dir);
      if (UPDATE) {
        writeFileSync(expectedFile, text);
      } else {
        assert.ok(existsSync(expectedFile), `${expectedFile} is missing: run npm run golden:update`);
        assert.equal(text, readFileSync(expectedFile, 'utf8'));
      }

      // Same input, same bytes: compiling the same state again, and a freshly loaded copy.
      const again = compile(state);
      const fresh = await render(dir);
      assert.equal(JSON.stringify(again), JSON.stringify(compile(state)));
      assert.equal(fresh.text, text);

      // Every custom resource gets exactly one status.
      const keys = customResourceKeys(state);
      const statusKeys = again.statuses.map((s) => objectKey(s.kind, s.namespace, s.name));
      assert.deepEqual([...statusKeys].sort(), [...keys].sort());
      assert.equal(new Set(statusKeys).size, statusKeys.length);
    });
  }
});
