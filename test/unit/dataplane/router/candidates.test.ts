/**
 * Router.candidates: the rules a request could reach whatever model its body names, which the
 * proxy checks the caller against before reading the body (auth/admission.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Router } from '../../../../src/dataplane/router/router.ts';
import type { CompiledMatch } from '../../../../src/routing-table/types.ts';

function match(rule: string, over: Partial<CompiledMatch> = {}): CompiledMatch {
  return {
    rule,
    hostname: '',
    path: { type: 'PathPrefix', value: '/v1' },
    headers: [],
    queryParams: [],
    ...over,
  };
}

const model = (value: string, type: 'Exact' | 'Glob' = 'Exact') => ({ model: { type, value } });
const request = (
  over: { host?: string; path?: string; method?: string; headers?: Record<string, string> } = {},
) => ({
  host: over.host ?? 'llm.test',
  path: over.path ?? '/v1/chat',
  query: '',
  method: over.method ?? 'POST',
  headers: over.headers ?? {},
  model: undefined,
});

test('every model-matching rule whose other conditions hold, up to the first without a model', () => {
  const router = new Router(
    [
      match('a', { hostname: 'llm.test', ...model('a-1') }),
      match('get-only', { hostname: 'llm.test', method: 'GET', ...model('g') }),
      match('b', { hostname: 'llm.test', ...model('b-*', 'Glob') }),
      match('a', { hostname: 'llm.test', ...model('a-2') }),
      match('catch-all', { hostname: 'llm.test' }),
      match('never', { hostname: 'llm.test', ...model('n') }),
      match('any-host', model('x')),
    ],
    (id) => id,
  );
  assert.deepEqual(router.candidates(request()), ['a', 'b', 'catch-all']);
});

test('exact hosts, then wildcards, then any host, as route() walks them', () => {
  const router = new Router(
    [
      match('exact', { hostname: 'llm.test', ...model('a') }),
      match('wild', { hostname: '*.test', ...model('b') }),
      match('any', model('c')),
      match('other-path', { hostname: 'llm.test', path: { type: 'Exact', value: '/v2' }, ...model('d') }),
      match('needs-header', {
        hostname: 'llm.test',
        headers: [{ name: 'x-team', type: 'Exact', value: 'red' }],
        ...model('e'),
      }),
    ],
    (id) => id,
  );
  assert.deepEqual(router.candidates(request()), ['exact', 'wild', 'any']);
  assert.deepEqual(router.candidates(request({ headers: { 'x-team': 'red' } })), [
    'exact',
    'needs-header',
    'wild',
    'any',
  ]);
  assert.deepEqual(router.candidates(request({ host: 'other.test' })), ['wild', 'any']);
  // The first rule route() would ask the body for is always the first candidate.
  const r = router.route(request());
  assert.equal(r.kind, 'needs-model');
  assert.equal(r.kind === 'needs-model' && r.match.rule, 'exact');
});
