/** Routing precedence and path normalisation, end to end through real sockets. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const NAMES = [
  'exact',
  'prefix',
  'longer',
  'regex',
  'post-model',
  'post',
  'header',
  'wild',
  'any',
  'admin',
  'public',
];
let ups: Record<string, TestUpstream> = {};
let gw: TestGateway;

before(async () => {
  ups = Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await startUpstream(n)] as const)));
  const b = (n: string) => `[{name: b, urls: ["${ups[n]!.url}"]}]`;
  gw = await startGateway(
    route(
      'exact',
      `{hostnames: [api.example.com], rules: [{matches: [{path: {type: Exact, value: /v1/models}}], backends: ${b('exact')}}]}`,
    ) +
      route(
        'prefix',
        `{hostnames: [api.example.com], rules: [{matches: [{path: {value: /v1}}], backends: ${b('prefix')}}]}`,
      ) +
      route(
        'longer',
        `{hostnames: [api.example.com], rules: [{matches: [{path: {value: /v1/chat}}], backends: ${b('longer')}}]}`,
      ) +
      route(
        'regex',
        `{hostnames: [api.example.com], rules: [{matches: [{path: {type: RegularExpression, value: "/v2/models/[^/]+/infer"}}], backends: ${b('regex')}}]}`,
      ) +
      route(
        'chat',
        `{hostnames: [api.example.com], rules: [
          {name: post-model, matches: [{path: {value: /v1/chat}, method: POST, model: {value: llama}}], backends: ${b('post-model')}},
          {name: post, matches: [{path: {value: /v1/chat}, method: POST}], backends: ${b('post')}},
          {name: header, matches: [{path: {value: /v1/chat}, headers: [{name: X-Tenant, value: acme}]}], backends: ${b('header')}}]}`,
      ) +
      route('wild', `{hostnames: ["*.example.com"], rules: [{backends: ${b('wild')}}]}`) +
      route('any', `{rules: [{backends: ${b('any')}}]}`) +
      route(
        'admin',
        `{hostnames: [secure.test], rules: [{matches: [{path: {value: /admin}}], backends: ${b('admin')}}]}`,
      ) +
      route(
        'public',
        `{hostnames: [secure.test], rules: [{matches: [{path: {value: /api}}], backends: ${b('public')}}]}`,
      ),
  );
});

after(async () => {
  await gw.close();
  await Promise.all(Object.values(ups).map((u) => u.close()));
});

async function upstreamFor(opts: {
  host?: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}) {
  const r = await send(gw.url, {
    method: opts.method,
    path: opts.path,
    headers: { host: opts.host ?? 'api.example.com', ...opts.headers },
    body: opts.body,
  });
  return r.status === 200
    ? String(r.headers['x-upstream'])
    : `${r.status} ${r.json<{ error: { code: string } }>().error.code}`;
}

describe('precedence', () => {
  const cases: [string, Parameters<typeof upstreamFor>[0], string][] = [
    ['Exact beats every prefix', { path: '/v1/models' }, 'exact'],
    ['a longer prefix beats a shorter one', { path: '/v1/chat/x', method: 'GET' }, 'longer'],
    ['prefixes match whole segments', { path: '/v1chat' }, 'wild'],
    ['a trailing slash still matches the prefix', { path: '/v1/' }, 'prefix'],
    ['regex only when no prefix matches', { path: '/v2/models/m/infer' }, 'regex'],
    ['regex matches the whole path', { path: '/v2/models/m/infer/x' }, 'wild'],
    [
      'method and model beat method alone',
      { path: '/v1/chat', method: 'POST', body: '{"model":"llama"}' },
      'post-model',
    ],
    [
      'another model falls to the method-only rule',
      { path: '/v1/chat', method: 'POST', body: '{"model":"qwen"}' },
      'post',
    ],
    [
      'x-model header selects the model too',
      { path: '/v1/chat', method: 'POST', headers: { 'x-model': 'llama' } },
      'post-model',
    ],
    ['method beats headers', { path: '/v1/chat', method: 'POST', headers: { 'x-tenant': 'acme' } }, 'post'],
    [
      'headers match case-insensitively by name',
      { path: '/v1/chat', headers: { 'X-TENANT': 'acme' } },
      'header',
    ],
    ['an exact host falls back to its wildcard', { path: '/elsewhere' }, 'wild'],
    ['a wildcard covers deeper subdomains', { host: 'a.b.example.com', path: '/' }, 'wild'],
    ['the wildcard does not cover the bare domain', { host: 'example.com', path: '/' }, 'any'],
    [
      'host matching ignores the port and case',
      { host: 'API.Example.COM:8080', path: '/v1/models' },
      'exact',
    ],
    ['anything else goes to the catch-all', { host: 'other.test', path: '/v1/models' }, 'any'],
  ];
  for (const [name, req, expected] of cases) {
    test(name, async () => assert.equal(await upstreamFor(req), expected));
  }
});

describe('path normalisation', () => {
  const cases: [string, string, string, string][] = [
    ['dot-segments cannot climb out of a prefix', '/api/../admin', 'admin', '/admin'],
    ['encoded dots are dot-segments', '/api/%2e%2e/admin', 'admin', '/admin'],
    ['an encoded slash cannot hide a dot-segment', '/api/..%2Fadmin', 'admin', '/admin'],
    ['backslashes are slashes', '/api/..%5cadmin', 'admin', '/admin'],
    ['duplicate slashes merge', '//api//v1', 'public', '/api/v1'],
    ['encoded letters decode', '/%61pi/x', 'public', '/api/x'],
    [
      'the query is forwarded untouched',
      '/api/x?next=../admin&a=%2F',
      'public',
      '/api/x?next=../admin&a=%2F',
    ],
  ];
  for (const [name, path, upstream, forwarded] of cases) {
    test(name, async () => {
      const before = ups[upstream]!.received.length;
      const r = await send(gw.url, { path, headers: { host: 'secure.test' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-upstream'], upstream);
      assert.equal(
        ups[upstream]!.received[before]!.url,
        forwarded,
        'the upstream sees the path that was matched',
      );
    });
  }
  test('invalid escapes and NUL are refused before routing', async () => {
    const hits = NAMES.reduce((n, k) => n + ups[k]!.received.length, 0);
    for (const path of ['/api/%zz', '/api/%00', '/api/..;/admin']) {
      const r = await send(gw.url, { path, headers: { host: 'secure.test' } });
      assert.equal(r.status, 400, path);
      assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_BAD_PATH');
    }
    assert.equal(
      NAMES.reduce((n, k) => n + ups[k]!.received.length, 0),
      hits,
      'no upstream saw them',
    );
  });
});

test('no route: 404 with a JSON error and a request id', async (t) => {
  const only = await startGateway(
    route('one', `{hostnames: [a.test], rules: [{backends: [{name: b, urls: ["${ups.any!.url}"]}]}]}`),
  );
  t.after(() => only.close());
  const r = await send(only.url, { path: '/nothing', headers: { host: 'b.test' } });
  assert.equal(r.status, 404);
  const body = r.json<{ error: { code: string; message: string; requestId: string } }>();
  assert.equal(body.error.code, 'MG_NO_ROUTE');
  assert.equal(body.error.requestId, r.headers['x-request-id']);
  assert.equal(r.headers['content-type'], 'application/json');
});
