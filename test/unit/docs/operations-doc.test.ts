/**
 * docs/operations.md stays true to the code: every error code, status reason, rollout Event
 * reason and alert the code has is in the guide (with its HTTP status, for codes), and everything
 * of those kinds the guide names exists. Chart values, metric names and `modelgate` flags the
 * guide names must exist too.
 *
 * How each set is collected, and why:
 * - MG_ codes: a regex over every .ts file under src/. The catalogues (`Errors` in
 *   src/dataplane/errors.ts, `KServeErrors` in src/dataplane/kserve/errors.ts) give the HTTP
 *   statuses (for MG_KSERVE_UPSTREAM_STATUS, `mapped` and the statuses the gRPC mapping gives),
 *   but a regex also catches a code written outside them.
 * - Condition reasons: the exported `Reason` constant (src/api/status.ts) is the declared
 *   vocabulary, but several writers use string literals instead of it (programmed.ts writes
 *   'Pending', 'NotProgrammed' and 'Programmed', endpoints.ts 'BackendNotFound', route-security.ts
 *   'InvalidSecret', standalone.ts its own Programmed). So the set is `Reason`'s values together
 *   with the CamelCase literals in reason positions in the code that writes conditions
 *   (src/compiler, src/controlplane, src/roles): `reason: 'X'`, type unions `reason: 'X' | 'Y'`,
 *   and `problems.push(['X', …])`. Lower-case or sentence reasons there (NACK messages, file
 *   problems) are not condition reasons and do not match the CamelCase pattern.
 * - Rollout Event reasons: the literals the state machine passes to normal(run, 'X', …) and
 *   warning(run, 'X', …), with their type.
 * - Alerts: the rule file itself, parsed as YAML.
 * - Chart values: the guide writes them `values.a.b` (and `--set a.b=` in commands); each must be a
 *   property of charts/modelgate/values.schema.json, which refuses unknown keys at install.
 *
 * Each collected set is also checked to be non-trivially large, so a broken regex or a moved file
 * makes this test fail instead of passing on nothing.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { ConditionType, Reason } from '../../../src/api/status.ts';
import { compileHelp } from '../../../src/cli/commands/compile.ts';
import { controllerHelp } from '../../../src/cli/commands/controller.ts';
import { proxyHelp } from '../../../src/cli/commands/proxy.ts';
import { rolloutHelp } from '../../../src/cli/commands/rollout.ts';
import { standaloneHelp } from '../../../src/cli/commands/standalone.ts';
import { statusHelp } from '../../../src/cli/commands/status.ts';
import { validateHelp } from '../../../src/cli/commands/validate.ts';
import { Errors } from '../../../src/dataplane/errors.ts';
import { KServeErrors } from '../../../src/dataplane/kserve/errors.ts';

const ROOT = join(import.meta.dirname, '..', '..', '..');
const SRC = join(ROOT, 'src');
const DOC_FILE = join(ROOT, 'docs', 'operations.md');
const RULES_FILE = join(ROOT, 'charts', 'modelgate', 'rules', 'modelgate-alerts.yaml');
const SCHEMA_FILE = join(ROOT, 'charts', 'modelgate', 'values.schema.json');
const STATE_MACHINE_FILE = join(SRC, 'controlplane', 'rollout', 'state-machine.ts');

const doc = readFileSync(DOC_FILE, 'utf8');
const docLines = doc.split('\n');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

const sources = new Map(tsFiles(SRC).map((f) => [f, readFileSync(f, 'utf8')] as const));

function sourcesUnder(...dirs: string[]): string[] {
  const roots = dirs.map((d) => join(SRC, d));
  return [...sources].filter(([f]) => roots.some((r) => f.startsWith(`${r}/`))).map(([, text]) => text);
}

/** The cells of the table row of the guide whose first cell is `first` (in backticks), or undefined. */
function rowOf(first: string): string[] | undefined {
  const line = docLines.find((l) => l.startsWith(`| \`${first}\` |`));
  return line
    ?.split('|')
    .slice(1, -1)
    .map((c) => c.trim());
}

function missing(expected: Iterable<string>, present: (x: string) => boolean): string[] {
  return [...expected].filter((x) => !present(x)).sort();
}

// --- Error codes -------------------------------------------------------------------------------

const codesInSource = new Set<string>();
for (const text of sources.values())
  for (const m of text.matchAll(/\bMG_[A-Z0-9_]+\b/g)) codesInSource.add(m[0]);
const catalogue = new Map([...Object.values(Errors), ...Object.values(KServeErrors)].map((d) => [d.code, d]));

test('the error codes are collected from src/ (not vacuously)', () => {
  assert.ok(codesInSource.size >= 40, `only ${codesInSource.size} MG_ codes found in src/`);
  assert.ok(catalogue.size >= 40, `only ${catalogue.size} codes in the catalogues`);
  const uncatalogued = missing(codesInSource, (c) => catalogue.has(c));
  assert.deepEqual(uncatalogued, [], 'codes in src/ without a catalogue entry (no HTTP status to check)');
});

test('every MG_ code has a row in the guide with its HTTP status, meaning and action', () => {
  const problems: string[] = [];
  for (const code of [...new Set([...codesInSource, ...catalogue.keys()])].sort()) {
    const row = rowOf(code);
    if (!row) {
      problems.push(`${code}: no table row`);
      continue;
    }
    if (row.length < 4 || row.some((c) => c === '')) problems.push(`${code}: the row needs 4 filled cells`);
    const entry = catalogue.get(code);
    // A mapped entry (MG_KSERVE_UPSTREAM_STATUS) has no status of its own: the cell must say it is
    // mapped and name every status the mapping gives.
    const statuses =
      entry === undefined ? [] : entry.status === 'mapped' ? ['mapped', ...entry.statuses] : [entry.status];
    for (const status of statuses)
      if (!row[1]?.includes(String(status)))
        problems.push(`${code}: the HTTP cell "${row[1]}" does not say ${status}`);
  }
  assert.deepEqual(problems, []);
});

test('every MG_ code the guide names exists in src/', () => {
  const named = new Set([...doc.matchAll(/\bMG_[A-Z0-9_]+\b/g)].map((m) => m[0]));
  assert.deepEqual(
    missing(named, (c) => codesInSource.has(c)),
    [],
  );
});

// --- Condition reasons -------------------------------------------------------------------------

const conditionReasons = new Set<string>(Object.values(Reason));
const literalReasons = new Set<string>();
for (const text of sourcesUnder('compiler', 'controlplane', 'roles')) {
  for (const m of text.matchAll(/\breason\??:\s*((?:'[A-Z][A-Za-z]*'\s*\|?\s*)+)/g))
    for (const lit of m[1]!.matchAll(/'([A-Za-z]+)'/g)) literalReasons.add(lit[1]!);
  for (const m of text.matchAll(/\b(?:problems|refProblems)\.push\(\[\s*'([A-Z][A-Za-z]*)'/g))
    literalReasons.add(m[1]!);
}
for (const r of literalReasons) conditionReasons.add(r);

/** Rows of the conditions table: | Type | Status | `Reason` | … */
const documentedConditions = [...doc.matchAll(/^\| (\w+) \| (True|False|Unknown) \| `(\w+)` \|/gm)].map(
  (m) => ({ type: m[1]!, status: m[2]!, reason: m[3]! }),
);

test('the condition reasons are collected from the code (not vacuously)', () => {
  assert.ok(Object.values(Reason).length >= 15, 'the Reason constant shrank or moved');
  assert.ok(
    literalReasons.size >= 5,
    `only ${literalReasons.size} reason literals found: has the code moved?`,
  );
  assert.ok(conditionReasons.size >= 15, `only ${conditionReasons.size} reasons collected`);
  assert.ok(documentedConditions.length >= 15, 'the conditions table was not found in the guide');
});

test('every condition type and reason the code writes is in the guide', () => {
  const types = new Set(documentedConditions.map((c) => c.type));
  const reasons = new Set(documentedConditions.map((c) => c.reason));
  assert.deepEqual(
    missing(Object.values(ConditionType), (t) => types.has(t)),
    [],
    'condition types without a row',
  );
  assert.deepEqual(
    missing(conditionReasons, (r) => reasons.has(r)),
    [],
    'reasons without a row in the conditions table',
  );
});

test('every condition type and reason in the guide exists in the code', () => {
  const types = new Set<string>(Object.values(ConditionType));
  const problems = documentedConditions
    .filter((c) => !types.has(c.type) || !conditionReasons.has(c.reason))
    .map((c) => `${c.type} ${c.reason}`);
  assert.deepEqual(problems, []);
});

// --- Rollout Event reasons ---------------------------------------------------------------------

const eventReasons = new Map<string, string>();
for (const m of readFileSync(STATE_MACHINE_FILE, 'utf8').matchAll(
  /\b(normal|warning)\(\s*run,\s*'([A-Za-z]+)'/g,
))
  eventReasons.set(m[2]!, m[1] === 'normal' ? 'Normal' : 'Warning');

test('every rollout Event reason is in the guide with its type', () => {
  assert.ok(eventReasons.size >= 10, `only ${eventReasons.size} Event reasons found in the state machine`);
  const documented = new Map(
    [...doc.matchAll(/^\| `(\w+)` \| (Normal|Warning) \|/gm)].map((m) => [m[1]!, m[2]!] as const),
  );
  const problems: string[] = [];
  for (const [reason, type] of [...eventReasons].sort()) {
    if (!documented.has(reason)) problems.push(`${reason}: no row`);
    else if (documented.get(reason) !== type)
      problems.push(`${reason}: documented ${documented.get(reason)}, is ${type}`);
  }
  for (const reason of documented.keys())
    if (!eventReasons.has(reason)) problems.push(`${reason}: documented, not in the state machine`);
  assert.deepEqual(problems, []);
});

// --- Alerts ------------------------------------------------------------------------------------

const rules = parse(readFileSync(RULES_FILE, 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
const alertNames = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : []))));

test('every alert of the chart has a row in the guide, with what to do', () => {
  assert.ok(alertNames.size >= 8, `only ${alertNames.size} alerts in ${relative(ROOT, RULES_FILE)}`);
  const problems: string[] = [];
  for (const alert of [...alertNames].sort()) {
    const row = rowOf(alert);
    if (!row) problems.push(`${alert}: no table row`);
    else if (row.length < 4 || row.some((c) => c === ''))
      problems.push(`${alert}: the row needs 4 filled cells`);
  }
  assert.deepEqual(problems, []);
});

test('every alert the guide names exists in the rule file', () => {
  const named = new Set([...doc.matchAll(/\bModelGate[A-Z][A-Za-z0-9]+\b/g)].map((m) => m[0]));
  assert.deepEqual(
    missing(named, (a) => alertNames.has(a)),
    [],
  );
});

// --- Chart values ------------------------------------------------------------------------------

type SchemaNode = {
  $ref?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
};
const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as SchemaNode & {
  definitions?: Record<string, SchemaNode>;
};

function deref(node: SchemaNode | undefined): SchemaNode | undefined {
  if (!node?.$ref) return node;
  const name = /^#\/definitions\/(.+)$/.exec(node.$ref)?.[1];
  return name === undefined ? undefined : deref(schema.definitions?.[name]);
}

/** Whether `a.b[].c` is a property path of the values schema. */
function isValue(path: string): boolean {
  let node: SchemaNode | undefined = schema;
  for (const segment of path.split('.')) {
    const m = /^([A-Za-z0-9_]+)((?:\[\])*)$/.exec(segment);
    if (!m) return false;
    node = deref(node)?.properties?.[m[1]!];
    for (let i = 0; i < m[2]!.length / 2; i++) node = deref(node)?.items;
    if (!node) return false;
  }
  return true;
}

const valuePaths = new Set([
  ...[...doc.matchAll(/`values\.([A-Za-z0-9_.[\]]+)/g)].map((m) => m[1]!.replace(/\.$/, '')),
  ...[...doc.matchAll(/--set\s+([A-Za-z0-9_.[\]]+)=/g)].map((m) => m[1]!.replace(/\[\d+\]/g, '[]')),
]);

test('every chart value the guide names exists in values.schema.json', () => {
  assert.ok(isValue('proxy.autoscaling.enabled') && !isValue('proxy.autoscaling.nope'), 'the lookup works');
  assert.ok(valuePaths.size >= 20, `only ${valuePaths.size} chart values found in the guide`);
  assert.deepEqual(missing(valuePaths, isValue), []);
});

// --- Metrics -----------------------------------------------------------------------------------

test('every metric the guide names is exported by the code', () => {
  const exported = new Set<string>();
  for (const text of sources.values())
    for (const m of text.matchAll(/'(modelgate_[a-z0-9_]+)'/g)) exported.add(m[1]!);
  assert.ok(exported.size >= 30, `only ${exported.size} metric families found in src/`);
  const named = new Set([...doc.matchAll(/\bmodelgate_[a-z0-9_]+\b/g)].map((m) => m[0]));
  assert.ok(named.size >= 10, 'the guide names too few metrics for this check to mean anything');
  assert.deepEqual(
    missing(named, (n) => exported.has(n)),
    [],
  );
});

// --- modelgate flags ---------------------------------------------------------------------------

const HELP: Record<string, string> = {
  compile: compileHelp,
  controller: controllerHelp,
  proxy: proxyHelp,
  rollout: rolloutHelp,
  standalone: standaloneHelp,
  status: statusHelp,
  validate: validateHelp,
};

/** `modelgate <command> …` invocations: lines of code blocks, and inline code spans. */
function invocations(): { command: string; rest: string; where: string }[] {
  const out: { command: string; rest: string; where: string }[] = [];
  const cli = /(?:^|\s)(?:modelgate|node\s+\S*cli\/main\.(?:js|ts))\s+([a-z]+)\b/g;
  let inBlock = false;
  docLines.forEach((line, i) => {
    if (line.trimStart().startsWith('```')) {
      inBlock = !inBlock;
      return;
    }
    // In code blocks, whole lines without their comments; in prose, inline code spans.
    const texts = inBlock
      ? [line.replace(/\s#\s.*$/, '')]
      : [...line.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const text of texts) {
      for (const m of text.matchAll(cli)) {
        // `kubectl -n modelgate rollout …` names the namespace, not the CLI.
        if (/(?:^|\s)(?:-n|--namespace)$/.test(text.slice(0, m.index).trimEnd())) continue;
        if (m[1]! in HELP)
          out.push({ command: m[1]!, rest: text.slice(m.index + m[0].length), where: `line ${i + 1}` });
      }
    }
  });
  return out;
}

test('every flag of a modelgate command in the guide is in that command’s help', () => {
  const calls = invocations();
  assert.ok(calls.length >= 8, `only ${calls.length} modelgate invocations found in the guide`);
  const problems: string[] = [];
  let flags = 0;
  for (const c of calls) {
    for (const f of c.rest.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)) {
      flags++;
      if (!new RegExp(`${f[1]}(?![a-z-])`).test(HELP[c.command]!))
        problems.push(`${c.where}: modelgate ${c.command} has no ${f[1]}`);
    }
  }
  assert.ok(flags >= 3, `only ${flags} flags checked`);
  assert.deepEqual(problems, []);
});
