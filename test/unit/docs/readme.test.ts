/**
 * README.md stays true to the code where users read contracts off it:
 * - The error-code table ("Requests the proxy refuses") lists every code of the catalogues
 *   (`Errors`, `KServeErrors`) with its HTTP status (`mapped` for MG_KSERVE_UPSTREAM_STATUS), names
 *   no code that does not exist, and links to the operations guide's table of what to do.
 * - The access-log paragraph does not claim errors are logged when `accessLog.enabled` is false.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Errors } from '../../../src/dataplane/errors.ts';
import { KServeErrors } from '../../../src/dataplane/kserve/errors.ts';
import { AccessLog } from '../../../src/observability/access-log.ts';
import { createLogger } from '../../../src/observability/logger.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const operations = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');

const catalogue = new Map([...Object.values(Errors), ...Object.values(KServeErrors)].map((d) => [d.code, d]));

/** The README's error table: the rows under the `| code | status | when |` header. */
function errorTable(): Map<string, string> {
  const lines = readme.split('\n');
  const start = lines.findIndex((l) => /^\| code \| status \| when \|$/.test(l));
  assert.ok(start >= 0, 'the error table header `| code | status | when |` is in README.md');
  const rows = new Map<string, string>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const m = /^\| `(MG_[A-Z0-9_]+)` \| ([^|]+) \|/.exec(line);
    assert.ok(m, `an error table row that does not start with a code and a status: ${line}`);
    rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

test('README lists every error code of the catalogues with its HTTP status', () => {
  const rows = errorTable();
  assert.ok(catalogue.size >= 40, `only ${catalogue.size} codes in the catalogues`);
  const problems: string[] = [];
  for (const [code, d] of [...catalogue].sort()) {
    const status = rows.get(code);
    const want = String(d.status);
    if (status === undefined) problems.push(`${code}: no row in README's error table`);
    else if (status !== want) problems.push(`${code}: README says ${status}, the catalogue ${want}`);
  }
  for (const code of rows.keys()) if (!catalogue.has(code)) problems.push(`${code}: not in any catalogue`);
  assert.deepEqual(problems, []);
});

test("README's error table links to the operations guide's table, which exists", () => {
  const link = /\(docs\/operations\.md#error-codes\)/;
  const table = readme.indexOf('| code | status | when |');
  const before = readme.slice(Math.max(0, table - 600), table);
  assert.match(before, link, 'the paragraph introducing the table links to docs/operations.md#error-codes');
  assert.match(operations, /^### Error codes$/m, 'the heading the link points to');
});

test('README and the guide say errors are logged only while the access log is enabled', () => {
  // The behaviour the docs describe.
  const log = new AccessLog(createLogger({ destination: { write: () => {} } }).logger, () => 0.999);
  assert.equal(log.wants({ enabled: false, sampleRate: 1 }, 500, 'MG_INTERNAL'), false);
  assert.equal(log.wants({ enabled: true, sampleRate: 0 }, 500, 'MG_INTERNAL'), true);
  for (const [name, text] of [
    ['README.md', readme],
    ['docs/operations.md', operations],
  ] as const) {
    const paragraphs = text.split(/\n\s*\n/).filter((p) => /always logged/.test(p));
    assert.ok(paragraphs.length > 0, `${name} says which access lines are always logged`);
    for (const p of paragraphs) {
      assert.match(p, /enabled: false/, `${name}: "always logged" without saying what enabled: false does`);
    }
  }
});
