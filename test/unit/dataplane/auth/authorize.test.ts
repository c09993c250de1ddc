/**
 * Per-rule authorization: every required scope, any one of the groups, and each claim holding an
 * allowed value (string, number or boolean; a list passes when one element is allowed).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authorize } from '../../../../src/dataplane/auth/authorize.ts';
import type { Identity } from '../../../../src/dataplane/auth/identity.ts';
import type { CompiledAuthorization } from '../../../../src/routing-table/types.ts';

function rule(over: Partial<CompiledAuthorization> = {}): CompiledAuthorization {
  return { scopes: [], groups: [], claims: [], ...over };
}

function who(over: Partial<Identity> = {}): Identity {
  return { method: 'jwt', provider: 'idp', consumer: 'alice', groups: [], scopes: [], claims: {}, ...over };
}

const OK = { ok: true };

test('an empty rule lets any identity through', () => {
  assert.deepEqual(authorize(rule(), who()), OK);
});

describe('scopes: all required', () => {
  const r = rule({ scopes: ['models:read', 'models:write'] });

  test('all present (in any order, with extras) passes', () => {
    assert.deepEqual(authorize(r, who({ scopes: ['models:write', 'admin', 'models:read'] })), OK);
  });

  test('one missing is reported', () => {
    assert.deepEqual(authorize(r, who({ scopes: ['models:read'] })), {
      ok: false,
      missingScopes: ['models:write'],
      message: 'missing scope models:write',
    });
  });

  test('every missing one is reported, in the rule order', () => {
    assert.deepEqual(authorize(r, who({ scopes: ['other'] })), {
      ok: false,
      missingScopes: ['models:read', 'models:write'],
      message: 'missing scope models:read models:write',
    });
  });

  test('scopes are compared exactly', () => {
    const res = authorize(rule({ scopes: ['read'] }), who({ scopes: ['READ', 'read:all'] }));
    assert.equal(res.ok, false);
  });

  test('scopes are checked before groups and claims', () => {
    const res = authorize(
      rule({ scopes: ['read'], groups: ['admins'], claims: [{ name: 'tier', values: ['gold'] }] }),
      who(),
    );
    assert.deepEqual(res, { ok: false, missingScopes: ['read'], message: 'missing scope read' });
  });
});

describe('groups: any of', () => {
  const r = rule({ groups: ['admins', 'ml-team'] });

  test('one of the groups is enough', () => {
    assert.deepEqual(authorize(r, who({ groups: ['ml-team'] })), OK);
    assert.deepEqual(authorize(r, who({ groups: ['guests', 'admins'] })), OK);
  });

  test('none of them is refused, without missing scopes', () => {
    assert.deepEqual(authorize(r, who({ groups: ['guests'] })), {
      ok: false,
      missingScopes: [],
      message: 'the caller is in none of the groups this route allows',
    });
    assert.equal(authorize(r, who()).ok, false);
  });

  test('an API-key identity is authorized by its groups', () => {
    const apiKey: Identity = {
      method: 'apiKey',
      consumer: 'svc',
      groups: ['admins'],
      scopes: [],
      claims: {},
    };
    assert.deepEqual(authorize(r, apiKey), OK);
  });
});

describe('claims', () => {
  const one = (name: string, ...values: string[]) => rule({ claims: [{ name, values }] });

  test('a string claim with an allowed value passes, another value is refused', () => {
    assert.deepEqual(authorize(one('tier', 'gold', 'silver'), who({ claims: { tier: 'silver' } })), OK);
    assert.deepEqual(authorize(one('tier', 'gold'), who({ claims: { tier: 'bronze' } })), {
      ok: false,
      missingScopes: [],
      message: 'claim tier does not hold an allowed value',
    });
  });

  test('string values are compared exactly', () => {
    assert.equal(authorize(one('tier', 'gold'), who({ claims: { tier: 'Gold' } })).ok, false);
    assert.equal(authorize(one('tier', 'gold'), who({ claims: { tier: 'gold ' } })).ok, false);
  });

  test('a missing claim is refused', () => {
    assert.equal(authorize(one('tier', 'gold'), who({ claims: {} })).ok, false);
    assert.equal(authorize(one('tier', 'null'), who({ claims: { tier: null } })).ok, false);
  });

  test('number claims match their decimal text', () => {
    assert.deepEqual(authorize(one('level', '3'), who({ claims: { level: 3 } })), OK);
    assert.deepEqual(authorize(one('level', '1.5'), who({ claims: { level: 1.5 } })), OK);
    assert.equal(authorize(one('level', '3'), who({ claims: { level: 4 } })).ok, false);
    assert.equal(authorize(one('level', '03'), who({ claims: { level: 3 } })).ok, false);
  });

  test('boolean claims match true and false', () => {
    assert.deepEqual(authorize(one('email_verified', 'true'), who({ claims: { email_verified: true } })), OK);
    assert.equal(
      authorize(one('email_verified', 'true'), who({ claims: { email_verified: false } })).ok,
      false,
    );
    assert.deepEqual(authorize(one('beta', 'false'), who({ claims: { beta: false } })), OK);
  });

  test('a list claim passes when any element is allowed', () => {
    assert.deepEqual(authorize(one('roles', 'admin'), who({ claims: { roles: ['viewer', 'admin'] } })), OK);
    assert.deepEqual(authorize(one('ids', '7'), who({ claims: { ids: [1, 7] } })), OK);
    assert.equal(authorize(one('roles', 'admin'), who({ claims: { roles: ['viewer'] } })).ok, false);
    assert.equal(authorize(one('roles', 'admin'), who({ claims: { roles: [] } })).ok, false);
  });

  test('a space-separated string is one value, not a list', () => {
    assert.equal(authorize(one('roles', 'admin'), who({ claims: { roles: 'viewer admin' } })).ok, false);
  });

  test('an object claim is refused, even when it holds an allowed value', () => {
    const r = one('org', 'acme');
    assert.equal(authorize(r, who({ claims: { org: { name: 'acme' } } })).ok, false);
    assert.equal(authorize(r, who({ claims: { org: { toString: () => 'acme' } } })).ok, false);
    assert.equal(authorize(r, who({ claims: { org: [{ name: 'acme' }] } })).ok, false);
  });

  test('a list nested in a list claim is refused', () => {
    // "A list claim passes when any element is allowed": an element that is itself a list is not
    // an allowed value, yet the recursion flattens lists at any depth.
    assert.equal(authorize(one('roles', 'admin'), who({ claims: { roles: [['admin']] } })).ok, false);
  });

  test('inherited properties are not claims', () => {
    assert.equal(authorize(one('toString', 'x'), who({ claims: {} })).ok, false);
    assert.equal(authorize(one('constructor', 'Object'), who({ claims: {} })).ok, false);
  });

  test('every claim must hold: the first failing one is reported', () => {
    const r = rule({
      claims: [
        { name: 'tier', values: ['gold'] },
        { name: 'region', values: ['eu'] },
      ],
    });
    assert.deepEqual(authorize(r, who({ claims: { tier: 'gold', region: 'eu' } })), OK);
    assert.deepEqual(authorize(r, who({ claims: { tier: 'gold', region: 'us' } })), {
      ok: false,
      missingScopes: [],
      message: 'claim region does not hold an allowed value',
    });
    assert.deepEqual(authorize(r, who({ claims: { tier: 'silver', region: 'us' } })), {
      ok: false,
      missingScopes: [],
      message: 'claim tier does not hold an allowed value',
    });
  });

  test('groups are checked before claims', () => {
    const r = rule({ groups: ['admins'], claims: [{ name: 'tier', values: ['gold'] }] });
    const res = authorize(r, who({ claims: { tier: 'silver' } }));
    assert.ok(!res.ok);
    assert.equal(res.message, 'the caller is in none of the groups this route allows');
  });
});
