/**
 * Admission before the body (auth/admission.ts): which callers may make the gateway read a body it
 * needs to route, and how much of it. Gates are fakes that count their calls.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { admit, type Candidate } from '../../../../src/dataplane/auth/admission.ts';
import type { AuthenticationOutcome } from '../../../../src/dataplane/auth/route-authenticator.ts';
import { Errors } from '../../../../src/dataplane/errors.ts';
import type { AuthGate, Rejection } from '../../../../src/dataplane/filters/filter.ts';

const MISSING: AuthenticationOutcome = {
  ok: false,
  status: 401,
  method: 'none',
  reason: 'missing',
  message: 'credentials are required',
};

/** A gate that accepts `x-key: <key>` (as consumer `key`) and admits consumers in `allow`. */
function gate(
  key: string,
  opts: { allow?: string[]; async?: boolean } = {},
): AuthGate & { calls: number; refused: number } {
  const g = {
    key,
    calls: 0,
    refused: 0,
    authenticate(headers: IncomingHttpHeaders) {
      g.calls++;
      const o: AuthenticationOutcome =
        headers['x-key'] === key
          ? { ok: true, identity: { method: 'apiKey', consumer: key, groups: [], scopes: [], claims: {} } }
          : MISSING;
      return opts.async ? Promise.resolve(o) : o;
    },
    admits(o: AuthenticationOutcome) {
      return o.ok && (opts.allow === undefined || opts.allow.includes(o.identity.consumer));
    },
    refuse(o: AuthenticationOutcome): Rejection {
      assert.ok(!g.admits(o));
      g.refused++;
      return { error: o.ok ? Errors.Forbidden : Errors.Unauthenticated, message: `refused by ${key}` };
    },
  };
  return g;
}

const c = (g: AuthGate | undefined, limit: number): Candidate => ({ gate: g, limit });

describe('admit', () => {
  test('no candidate has authentication: the largest limit, nothing authenticated', () => {
    const a = admit([c(undefined, 10), c(undefined, 30), c(undefined, 20)], {});
    assert.deepEqual(a, { ok: true, limit: 30, outcomes: undefined });
  });

  test('one authentication shared by every candidate is asked once', () => {
    const g = gate('a');
    const refused = admit([c(g, 10), c(g, 20)], {});
    assert.ok(!(refused instanceof Promise) && !refused.ok);
    assert.equal(refused.rejection.error, Errors.Unauthenticated);
    assert.equal(g.calls, 1);
    assert.equal(g.refused, 1, 'the refusal is counted once');
    const admitted = admit([c(g, 10), c(g, 20)], { 'x-key': 'a' });
    assert.ok(!(admitted instanceof Promise) && admitted.ok);
    assert.equal(admitted.limit, 20);
    assert.equal(admitted.outcomes?.get('a')?.ok, true);
    assert.equal(g.calls, 2);
    assert.equal(g.refused, 1, 'an admission counts nothing (the rule’s filter does)');
  });

  test('the limit is the largest among the candidates that admit the caller', () => {
    const wide = gate('a', { allow: ['nobody'] });
    const narrow = gate('a');
    const a = admit([c(wide, 100), c(narrow, 5)], { 'x-key': 'a' });
    assert.ok(!(a instanceof Promise) && a.ok);
    assert.equal(a.limit, 5);
  });

  test('nobody admits: the first candidate answers, whatever the others would say', () => {
    const first = gate('a', { allow: ['nobody'] });
    const second = gate('b');
    const a = admit([c(first, 10), c(second, 10)], { 'x-key': 'a' });
    assert.ok(!(a instanceof Promise) && !a.ok);
    assert.equal(a.rejection.error, Errors.Forbidden);
    assert.equal(a.rejection.message, 'refused by a');
    assert.equal(second.refused, 0);
  });

  test('a public candidate admits everyone, within its own limit', () => {
    const a = admit([c(gate('a'), 64), c(undefined, 1)], {});
    assert.ok(!(a instanceof Promise) && a.ok);
    assert.equal(a.limit, 1);
  });

  test('different authentications are each asked once, asynchronous ones awaited', async () => {
    const a = gate('a', { async: true });
    const b = gate('b');
    const r = admit([c(a, 10), c(b, 20), c(a, 30)], { 'x-key': 'b' });
    assert.ok(r instanceof Promise);
    const settled = await r;
    assert.ok(settled.ok);
    assert.equal(settled.limit, 20);
    assert.equal(a.calls, 1);
    assert.equal(b.calls, 1);
    assert.equal(settled.outcomes?.get('a')?.ok, false);
    assert.equal(settled.outcomes?.get('b')?.ok, true);
  });
});
