import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import type { Identity } from '../../../../src/dataplane/auth/identity.ts';
import type { FilterContext } from '../../../../src/dataplane/filters/filter.ts';
import { keyBuilder } from '../../../../src/dataplane/ratelimit/limit-key.ts';
import type { CompiledRule } from '../../../../src/routing-table/types.ts';

function ctx(over: {
  headers?: Record<string, string | string[]>;
  identity?: Identity;
  model?: string;
  ip?: string;
}): FilterContext {
  return {
    req: { headers: over.headers ?? {} } as unknown as IncomingMessage,
    res: undefined as unknown as FilterContext['res'],
    requestId: 'r',
    rule: { route: 'ml/chat' } as CompiledRule,
    model: over.model,
    upstreamHeaders: {},
    path: '/',
    hostRewrite: undefined,
    responseHeaders: undefined,
    identity: over.identity,
    clientIp: over.ip ?? '10.0.0.1',
    body: undefined,
    observers: undefined,
  };
}

const alice: Identity = {
  method: 'jwt',
  consumer: 'alice',
  groups: [],
  scopes: [],
  claims: { org: 'acme', n: 7 },
};

test('single parts', () => {
  assert.equal(keyBuilder([{ type: 'Consumer' }])(ctx({ identity: alice })), 'alice');
  assert.equal(keyBuilder([{ type: 'ClientIP' }])(ctx({ ip: '203.0.113.9' })), '203.0.113.9');
  assert.equal(keyBuilder([{ type: 'Claim', name: 'org' }])(ctx({ identity: alice })), 'acme');
  assert.equal(keyBuilder([{ type: 'Claim', name: 'n' }])(ctx({ identity: alice })), '7');
  assert.equal(keyBuilder([{ type: 'Header', name: 'x-team' }])(ctx({ headers: { 'x-team': 'a' } })), 'a');
  assert.equal(keyBuilder([{ type: 'Model' }])(ctx({ model: 'llama' })), 'llama');
  assert.equal(keyBuilder([{ type: 'Route' }])(ctx({})), 'ml/chat');
});

test('a missing part is the shared empty bucket: leaving a header out does not escape the limit', () => {
  const k = keyBuilder([{ type: 'Header', name: 'x-team' }]);
  assert.equal(k(ctx({})), '');
  assert.equal(keyBuilder([{ type: 'Consumer' }])(ctx({})), '');
});

test('combined parts cannot collide across the separator', () => {
  const k = keyBuilder([
    { type: 'Header', name: 'a' },
    { type: 'Header', name: 'b' },
  ]);
  const one = k(ctx({ headers: { a: 'x|y', b: 'z' } }));
  const two = k(ctx({ headers: { a: 'x', b: 'y|z' } }));
  assert.notEqual(one, two);
  assert.equal(k(ctx({ headers: { a: 'x', b: 'y' } })), 'x\u001fy');
});
