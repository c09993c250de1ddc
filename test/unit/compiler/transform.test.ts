/**
 * The compiler's part of transforms and validation: what a schema cannot check (regexes, Envoy
 * substitutions, JSON Schemas that compile) and the table form. Golden cases cover whole routes.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Rule } from '../../../src/api/model-route.ts';
import { canonicalJson, compileRuleFilters, type FilterProblems } from '../../../src/compiler/transform.ts';
import { MAX_SCHEMA_BYTES, schemaProblem } from '../../../src/routing-table/json-schema.ts';

const prefixMatch = (value: string) => [
  { rule: 'r', path: { type: 'PathPrefix' as const, value }, headers: [], queryParams: [] },
];

function compileRegex(pattern: string, substitution: string) {
  const problems: FilterProblems = { transform: [], schema: [] };
  const rule = {
    backends: [],
    transform: {
      request: {
        urlRewrite: { path: { type: 'ReplaceRegexMatch', replaceRegexMatch: { pattern, substitution } } },
      },
    },
  } as unknown as Rule;
  const out = compileRuleFilters(rule, prefixMatch('/'), 'spec.rules[0]', problems);
  return { path: out.transform?.request?.path, problems: problems.transform.map((p) => p.message) };
}

describe('ReplaceRegexMatch', () => {
  test("Envoy's substitution syntax becomes String.replace's", () => {
    assert.deepEqual(compileRegex('^/a/(.*)/(.*)$', '/b/\\2/\\1/\\0$x\\\\').path, {
      type: 'ReplaceRegexMatch',
      pattern: '^/a/(.*)/(.*)$',
      substitution: '/b/$2/$1/$&$$x\\',
    });
  });

  test('a bad pattern, a group the pattern lacks, a stray backslash or a non-path character is refused', () => {
    assert.match(compileRegex('(', '/x').problems[0]!, /invalid regular expression: Unterminated group/);
    assert.deepEqual(compileRegex('^/(a)(?:b)$', '/\\2').problems, [
      '\\2 refers to capture group 2, but the pattern has 1',
    ]);
    assert.match(compileRegex('^/a$', '/\\x').problems[0]!, /backslash must be followed/);
    assert.match(compileRegex('^/a$', '/b?c=1').problems[0]!, /"\?" cannot appear in a path/);
    assert.match(compileRegex('^/a$', '/b c').problems[0]!, /" " cannot appear in a path/);
  });
});

test('ReplacePrefixMatch takes the prefix from the rule match and drops trailing slashes', () => {
  const problems: FilterProblems = { transform: [], schema: [] };
  const rule = {
    transform: {
      request: { urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2/' } } },
    },
  } as unknown as Rule;
  assert.deepEqual(compileRuleFilters(rule, prefixMatch('/v1'), 'at', problems).transform?.request?.path, {
    type: 'ReplacePrefixMatch',
    prefix: '/v1',
    replacement: '/v2',
  });
  const exact = [{ ...prefixMatch('/v1')[0]!, path: { type: 'Exact' as const, value: '/v1' } }];
  compileRuleFilters(rule, exact, 'at', problems);
  assert.deepEqual(
    problems.transform.map((p) => p.message),
    ['ReplacePrefixMatch needs the rule to have one PathPrefix match'],
  );
});

test('response maxBodySize is bounded', () => {
  const problems: FilterProblems = { transform: [], schema: [] };
  const rule = { transform: { response: { maxBodySize: '65Mi' } } } as unknown as Rule;
  compileRuleFilters(rule, prefixMatch('/'), 'spec.rules[0]', problems);
  assert.deepEqual(problems.transform, [
    { path: 'spec.rules[0].transform.response.maxBodySize', message: 'must be between 1 byte and 64Mi' },
  ]);
});

test('user JSON is copied with sorted keys', () => {
  const value = { b: [{ z: 1, a: 2 }], a: null };
  assert.equal(JSON.stringify(canonicalJson(value)), '{"a":null,"b":[{"a":2,"z":1}]}');
  assert.equal(JSON.stringify(value), '{"b":[{"z":1,"a":2}],"a":null}', 'the input is not changed');
});

describe('JSON Schemas (json-schema.ts)', () => {
  test('draft-07 by default; 2019-09 and 2020-12 by $schema; others refused', () => {
    assert.equal(schemaProblem({ type: 'object', required: ['a'] }), undefined);
    assert.equal(
      schemaProblem({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' }),
      undefined,
    );
    assert.equal(
      schemaProblem({
        $schema: 'https://json-schema.org/draft/2019-09/schema',
        unevaluatedProperties: false,
      }),
      undefined,
    );
    assert.equal(
      schemaProblem({
        $schema: 'https://json-schema.org/draft/2020-12/schema',
        prefixItems: [{ type: 'string' }],
      }),
      undefined,
    );
    assert.match(
      schemaProblem({ $schema: 'http://json-schema.org/draft-04/schema#' }) ?? '',
      /not supported/,
    );
  });

  test('unknown keywords and formats are errors, not ignored; OpenAPI `example` is allowed', () => {
    assert.match(schemaProblem({ type: 'object', requried: ['a'] }) ?? '', /unknown keyword: "requried"/);
    assert.match(schemaProblem({ type: 'string', format: 'emial' }) ?? '', /unknown format "emial"/);
    assert.equal(schemaProblem({ type: 'string', format: 'email', example: 'a@b.c' }), undefined);
  });

  test('invalid schemas, bad patterns and remote references are refused', () => {
    assert.match(schemaProblem({ type: 'strnig' }) ?? '', /not a valid draft-07 schema/);
    assert.match(schemaProblem({ type: 'string', pattern: '(' }) ?? '', /Invalid regular expression/);
    assert.match(schemaProblem({ $ref: 'https://example.com/s.json' }) ?? '', /can't resolve reference/);
  });

  test('size and depth are bounded', () => {
    const big = { enum: ['x'.repeat(MAX_SCHEMA_BYTES)] };
    assert.match(schemaProblem(big) ?? '', /bytes of JSON/);
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 40; i++) deep = { not: deep };
    assert.match(schemaProblem(deep) ?? '', /nests deeper than 32/);
  });

  test('two schemas with the same $id do not clash (one Ajv instance each)', () => {
    const a = { $id: 'https://example.com/chat', type: 'object' };
    const b = { $id: 'https://example.com/chat', type: 'array' };
    assert.equal(schemaProblem(a), undefined);
    assert.equal(schemaProblem(b), undefined);
  });
});
