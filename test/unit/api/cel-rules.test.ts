/**
 * Every CEL rule in the spec schemas, run through `admitCustomResource` on whole resources, so
 * defaulting, the JSON schema and the rules run together as in the API server. Fixtures live in
 * cel-fixtures.ts; a rule without fixtures fails the first suite.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collectRules } from '../../../src/api/cel.ts';
import { RESOURCES } from '../../../src/api/resources.ts';
import type { CelRule } from '../../../src/api/schema-helpers.ts';
import { admitCustomResource } from '../../../src/api/validate.ts';
import { CEL_FIXTURES, type CelFixture } from './cel-fixtures.ts';

interface CollectedRule {
  kind: string;
  /** Where the rule is attached, relative to spec: `rules[].backends`. */
  path: string;
  rule: CelRule;
}

const collected: CollectedRule[] = RESOURCES.flatMap((def) =>
  collectRules(def.spec).map(({ path, rule }) => ({ kind: def.kind, path, rule })),
);

const names = (f: CelFixture, c: CollectedRule) =>
  f.kind === c.kind && (f.rule === c.rule.message || f.rule === c.rule.rule);
const describeRule = (c: CollectedRule) => `${c.kind} spec${c.path ? `.${c.path}` : ''}: ${c.rule.message}`;

/** The values a rule attached at `path` (relative to spec) is evaluated on. */
function valuesAt(spec: unknown, path: string): unknown[] {
  let values = [spec];
  if (path === '') return values;
  for (const segment of path.split('.')) {
    const [, name = '', lists = ''] = /^([^[]*)((?:\[\])*)$/.exec(segment) ?? [];
    values = values.flatMap((v) =>
      v !== null && typeof v === 'object' && (v as Record<string, unknown>)[name] !== undefined
        ? [(v as Record<string, unknown>)[name]]
        : [],
    );
    for (let i = 0; i < lists.length / 2; i++) values = values.flatMap((v) => (Array.isArray(v) ? v : []));
  }
  return values;
}

/** `rules[].backends` + `.name` → /^spec\.rules\[\d+\]\.backends\.name$/ */
function errorPathPattern(c: CollectedRule): RegExp {
  const path = `spec${c.path ? `.${c.path}` : ''}${c.rule.fieldPath ?? ''}`;
  const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\\[\\\]/g, '\\[\\d+\\]');
  return new RegExp(`^${escaped}$`);
}

/** Frozen fixtures make any write to the caller's object throw: admission must work on a copy. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('every CEL rule has fixtures', () => {
  test('the spec schemas have rules', () => {
    assert.ok(collected.length > 0);
  });

  test('each rule in the spec schemas has exactly one fixture entry', () => {
    const problems = collected.flatMap((c) => {
      const n = CEL_FIXTURES.filter((f) => names(f, c)).length;
      if (n === 0) return [`no fixture for ${describeRule(c)}; add one to test/unit/api/cel-fixtures.ts`];
      return n > 1 ? [`${n} fixture entries for ${describeRule(c)}`] : [];
    });
    assert.deepEqual(problems, []);
  });

  test('each fixture names exactly one rule', () => {
    const problems = CEL_FIXTURES.flatMap((f) => {
      const n = collected.filter((c) => names(f, c)).length;
      if (n === 0) return [`fixture ${f.kind} "${f.rule}" names no rule (renamed or removed?)`];
      return n > 1 ? [`fixture ${f.kind} "${f.rule}" is ambiguous; name the rule by its rule text`] : [];
    });
    assert.deepEqual(problems, []);
  });

  test('each fixture has at least one valid and one invalid resource', () => {
    const problems = CEL_FIXTURES.filter((f) => f.valid.length === 0 || f.invalid.length === 0).map(
      (f) => `${f.kind} "${f.rule}"`,
    );
    assert.deepEqual(problems, []);
  });

  test('status schemas carry no rules (admission checks spec only, so they would go untested)', () => {
    const statusRules = RESOURCES.flatMap((def) =>
      collectRules(def.status).map((c) => `${def.kind} status.${c.path}: ${c.rule.message}`),
    );
    assert.deepEqual(statusRules, []);
  });
});

for (const fixture of CEL_FIXTURES) {
  const rule = collected.find((c) => names(fixture, c));
  describe(`${fixture.kind}: ${fixture.rule}`, () => {
    fixture.valid.forEach((resource, i) => {
      test(`valid #${i} is admitted and reaches the rule`, () => {
        const result = admitCustomResource(deepFreeze(resource));
        assert.ok(result.ok, `expected admission, got ${JSON.stringify(!result.ok && result.errors)}`);
        if (rule) {
          const reached = valuesAt(result.resource.spec, rule.path);
          assert.ok(
            reached.length > 0,
            `the resource has nothing at spec.${rule.path}, so the rule never runs`,
          );
        }
      });
    });

    fixture.invalid.forEach((c, i) => {
      test(`invalid #${i} is refused at ${c.path}${c.note ? ` (${c.note})` : ''}`, () => {
        const result = admitCustomResource(deepFreeze(c.resource));
        assert.equal(result.ok, false, 'expected the resource to be refused');
        assert.deepEqual(!result.ok && result.errors, [{ path: c.path, message: c.message }]);
        if (rule) {
          assert.equal(c.message, rule.rule.message, 'the expected message is not the rule message');
          assert.match(c.path, errorPathPattern(rule), `the path does not point at spec.${rule.path}`);
        }
      });
    });
  });
}
