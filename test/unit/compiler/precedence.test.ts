import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile } from '../../../src/compiler/compile.ts';
import { compareAge } from '../../../src/compiler/ordering.ts';
import {
  compareCreated,
  comparePrecedence,
  matchIdentity,
  type RankedMatch,
} from '../../../src/compiler/precedence.ts';
import type { CompiledMatch } from '../../../src/routing-table/types.ts';
import { conditionOf, policy, simpleRoute, state } from './helpers.ts';

type MatchOpts = Partial<Omit<CompiledMatch, 'path'>> & {
  created?: string;
  routeKey?: string;
  ruleIndex?: number;
  matchIndex?: number;
};

function ranked(pathType: CompiledMatch['path']['type'], value: string, o: MatchOpts = {}): RankedMatch {
  const match: CompiledMatch = {
    rule: 'r',
    hostname: o.hostname ?? '',
    path: { type: pathType, value },
    headers: o.headers ?? [],
    queryParams: o.queryParams ?? [],
  };
  if (o.method) match.method = o.method;
  if (o.model) match.model = o.model;
  return {
    match,
    created: o.created,
    routeKey: o.routeKey ?? 'default/a',
    ruleIndex: o.ruleIndex ?? 0,
    matchIndex: o.matchIndex ?? 0,
  };
}

const h = (name: string, value = 'x') => ({ name, type: 'Exact' as const, value });
const P = '/v1/chat/completions';

/** Strictly increasing precedence order: each entry wins over every later one. */
const ORDER: [string, RankedMatch][] = [
  ['Exact, longer', ranked('Exact', P)],
  ['Exact, shorter', ranked('Exact', '/v1/models')],
  ['PathPrefix with a method', ranked('PathPrefix', P, { method: 'POST' })],
  ['model Exact, longer', ranked('PathPrefix', P, { model: { type: 'Exact', value: 'llama-3-70b' } })],
  ['model Exact, shorter', ranked('PathPrefix', P, { model: { type: 'Exact', value: 'llama' } })],
  ['model Glob, more literals', ranked('PathPrefix', P, { model: { type: 'Glob', value: 'llama-3-*' } })],
  ['model Glob, fewer literals', ranked('PathPrefix', P, { model: { type: 'Glob', value: 'l*??*' } })],
  ['two headers', ranked('PathPrefix', P, { headers: [h('a'), h('b')] })],
  [
    'one header, two query params',
    ranked('PathPrefix', P, { headers: [h('a')], queryParams: [h('q'), h('r')] }),
  ],
  ['one header, one query param', ranked('PathPrefix', P, { headers: [h('a')], queryParams: [h('q')] })],
  ['one header', ranked('PathPrefix', P, { headers: [h('a')] })],
  ['older route', ranked('PathPrefix', P, { created: '2024-01-01T00:00:00Z', routeKey: 'default/z' })],
  ['newer route', ranked('PathPrefix', P, { created: '2024-06-01T00:00:00Z', routeKey: 'default/y' })],
  ['no creation time, name a', ranked('PathPrefix', P, { routeKey: 'default/a' })],
  ['same route, later match', ranked('PathPrefix', P, { routeKey: 'default/a', matchIndex: 1 })],
  ['same route, later rule', ranked('PathPrefix', P, { routeKey: 'default/a', ruleIndex: 1 })],
  ['name b', ranked('PathPrefix', P, { routeKey: 'default/b' })],
  ['other namespace', ranked('PathPrefix', P, { routeKey: 'other/a' })],
  ['shorter PathPrefix', ranked('PathPrefix', '/v1')],
  ['PathPrefix /', ranked('PathPrefix', '/')],
  ['RegularExpression, longer', ranked('RegularExpression', '/v1/.*/completions')],
  ['RegularExpression, shorter', ranked('RegularExpression', '/.*')],
];

describe('comparePrecedence', () => {
  for (let i = 0; i < ORDER.length; i++) {
    for (let j = i + 1; j < ORDER.length; j++) {
      const [a, x] = ORDER[i]!;
      const [b, y] = ORDER[j]!;
      test(`${a} before ${b}`, () => {
        assert.ok(comparePrecedence(x, y) < 0);
        assert.ok(comparePrecedence(y, x) > 0);
      });
    }
  }

  test('a match is equal to itself', () => {
    for (const [, x] of ORDER) assert.equal(comparePrecedence(x, x), 0);
  });

  test('sorting any permutation gives the table order', () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 200; round++) {
      const shuffled = ORDER.map(([, x]) => x);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const k = Math.floor(random() * (i + 1));
        [shuffled[i], shuffled[k]] = [shuffled[k]!, shuffled[i]!];
      }
      shuffled.sort(comparePrecedence);
      assert.deepEqual(
        shuffled,
        ORDER.map(([, x]) => x),
      );
    }
  });

  test('the hostname is not a precedence key (the proxy buckets by host first)', () => {
    const a = ranked('PathPrefix', '/', { hostname: 'a.example.com' });
    const b = ranked('PathPrefix', '/', { hostname: '*.example.com' });
    assert.equal(comparePrecedence(a, b), 0);
  });
});

describe('compareCreated', () => {
  const old = '2024-01-01T00:00:00Z';
  const recent = '2024-06-01T00:00:00Z';
  test('older first', () => {
    assert.ok(compareCreated(old, recent) < 0);
    assert.ok(compareCreated(recent, old) > 0);
    assert.equal(compareCreated(old, old), 0);
  });
  test('without a creation time counts as newest; two without tie', () => {
    assert.ok(compareCreated(recent, undefined) < 0);
    assert.ok(compareCreated(undefined, old) > 0);
    assert.equal(compareCreated(undefined, undefined), 0);
  });
  test('an unparseable creation time counts as absent', () => {
    assert.equal(compareCreated('yesterday', undefined), 0);
    assert.ok(compareCreated(old, 'yesterday') < 0);
  });
  test('compareAge is a total order when only some have a creation time', () => {
    const items = [
      { key: 'ns/z', created: old },
      { key: 'ns/m', created: undefined },
      { key: 'ns/a', created: recent },
      { key: 'ns/b', created: undefined },
      { key: 'ns/c', created: 'not a time' },
    ];
    const expected = ['ns/z', 'ns/a', 'ns/b', 'ns/c', 'ns/m'];
    const perms = (l: typeof items): (typeof items)[] =>
      l.length <= 1
        ? [l]
        : l.flatMap((x, i) => perms([...l.slice(0, i), ...l.slice(i + 1)]).map((p) => [x, ...p]));
    for (const p of perms(items)) {
      assert.deepEqual(
        [...p].sort(compareAge).map((x) => x.key),
        expected,
      );
    }
  });
});

describe('matchIdentity', () => {
  test('condition order does not matter, values and hosts do', () => {
    const a = ranked('PathPrefix', '/', { headers: [h('a', '1'), h('b', '2')] }).match;
    const b = ranked('PathPrefix', '/', { headers: [h('b', '2'), h('a', '1')] }).match;
    const c = ranked('PathPrefix', '/', { headers: [h('a', '1'), h('b', '3')] }).match;
    const d = ranked('PathPrefix', '/', {
      headers: [h('a', '1'), h('b', '2')],
      hostname: 'x.example.com',
    }).match;
    assert.equal(matchIdentity(a), matchIdentity(b));
    assert.notEqual(matchIdentity(a), matchIdentity(c));
    assert.notEqual(matchIdentity(a), matchIdentity(d));
  });
  test('a header and a query parameter with the same name and value differ', () => {
    const a = ranked('PathPrefix', '/', { headers: [h('a')] }).match;
    const b = ranked('PathPrefix', '/', { queryParams: [h('a')] }).match;
    assert.notEqual(matchIdentity(a), matchIdentity(b));
  });
});

/** Files carry no creation time, so the golden cases cannot show this; cluster objects do. */
describe('creation time in compile()', () => {
  const OLD = '2024-01-01T00:00:00Z';
  const NEW = '2025-01-01T00:00:00Z';

  test('the older route wins an identical-match conflict, whatever its name', () => {
    const { statuses, table } = compile(
      state({
        modelRoutes: [
          simpleRoute('a-newer', { path: { value: '/v1' } }, { creationTimestamp: NEW }),
          simpleRoute('b-older', { path: { value: '/v1' } }, { creationTimestamp: OLD }),
        ],
      }),
    );
    assert.equal(conditionOf(statuses, 'ModelRoute', 'b-older', 'Accepted').status, 'True');
    const lost = conditionOf(statuses, 'ModelRoute', 'a-newer', 'Accepted');
    assert.equal(lost.status, 'False');
    assert.equal(lost.reason, 'Conflicted');
    assert.match(lost.message, /shadowed by ModelRoute default\/b-older/);
    assert.deepEqual(
      table.routes.matches.map((m) => m.rule),
      ['default/b-older/rule-0'],
    );
  });

  test('without creation times, namespace/name decides', () => {
    const { statuses } = compile(
      state({
        modelRoutes: [
          simpleRoute('b', { path: { value: '/v1' } }),
          simpleRoute('a', { path: { value: '/v1' } }),
        ],
      }),
    );
    assert.equal(conditionOf(statuses, 'ModelRoute', 'a', 'Accepted').status, 'True');
    assert.equal(conditionOf(statuses, 'ModelRoute', 'b', 'Accepted').status, 'False');
  });

  test('the older policy wins a route; with mixed creation times the result does not depend on input order', () => {
    const route = simpleRoute('r');
    const policies = [
      policy('z', ['r'], { creationTimestamp: OLD }),
      policy('m', ['r']),
      policy('a', ['r'], { creationTimestamp: NEW }),
    ];
    const orders = [
      [0, 1, 2],
      [0, 2, 1],
      [1, 0, 2],
      [1, 2, 0],
      [2, 0, 1],
      [2, 1, 0],
    ];
    const results = orders.map((o) =>
      JSON.stringify(compile(state({ modelRoutes: [route], rateLimitPolicies: o.map((i) => policies[i]!) }))),
    );
    assert.equal(new Set(results).size, 1);
    const { table, statuses } = compile(state({ modelRoutes: [route], rateLimitPolicies: policies }));
    assert.equal(table.routes.rules[0]!.rateLimitPolicy, 'default/z');
    assert.equal(conditionOf(statuses, 'RateLimitPolicy', 'a', 'Accepted').reason, 'Conflicted');
    assert.equal(conditionOf(statuses, 'RateLimitPolicy', 'm', 'Accepted').reason, 'Conflicted');
  });
});
