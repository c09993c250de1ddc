/**
 * Reading a credential: `authorization: Bearer <token>` (scheme case-insensitive) or a bare value in
 * a custom header; a header sent twice is malformed.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { readCredential } from '../../../../src/dataplane/auth/credentials.ts';
import type { CredentialSource } from '../../../../src/routing-table/types.ts';

const BEARER: CredentialSource = { header: 'authorization', bearer: true };
const API_KEY: CredentialSource = { header: 'x-api-key', bearer: false };

const NONE = { kind: 'none' };
const MALFORMED = { kind: 'malformed' };
const present = (value: string) => ({ kind: 'present', value });

describe('Bearer in authorization', () => {
  const read = (authorization: IncomingHttpHeaders['authorization']) =>
    readCredential(authorization === undefined ? {} : { authorization }, BEARER);

  test('no header is no credential', () => {
    assert.deepEqual(read(undefined), NONE);
    assert.deepEqual(readCredential({ 'x-api-key': 'k' }, BEARER), NONE);
  });

  test('the token follows the scheme', () => {
    assert.deepEqual(read('Bearer abc.def.ghi'), present('abc.def.ghi'));
  });

  test('the scheme is case-insensitive', () => {
    assert.deepEqual(read('bearer tok'), present('tok'));
    assert.deepEqual(read('BEARER tok'), present('tok'));
    assert.deepEqual(read('bEaReR tok'), present('tok'));
  });

  test('spaces around the token are trimmed', () => {
    assert.deepEqual(read('Bearer    tok  '), present('tok'));
  });

  test('another scheme is not a credential of this method', () => {
    assert.deepEqual(read('Basic dXNlcjpwYXNz'), NONE);
    assert.deepEqual(read('Digest username="u"'), NONE);
    assert.deepEqual(read('Token tok'), NONE);
    assert.deepEqual(read('Bearertok'), NONE);
    assert.deepEqual(read('tok'), NONE);
    assert.deepEqual(read(''), NONE);
  });

  test('an empty bearer token is malformed', () => {
    assert.deepEqual(read('Bearer '), MALFORMED);
    assert.deepEqual(read('Bearer    '), MALFORMED);
  });

  test('the scheme without any token is malformed', () => {
    // Node strips trailing whitespace from header values, so a client sending `Bearer ` with an
    // empty token reaches readCredential as `Bearer`: under 7 characters, treated as another
    // scheme (none). On an anonymous route that request is let through as anonymous.
    assert.deepEqual(read('Bearer'), MALFORMED);
  });

  test('a token containing a space is malformed', () => {
    assert.deepEqual(read('Bearer abc def'), MALFORMED);
    assert.deepEqual(read('Bearer a, Bearer b'), MALFORMED);
  });

  test('a repeated header (array) is malformed', () => {
    assert.deepEqual(
      readCredential({ authorization: ['Bearer a', 'Bearer b'] } as unknown as IncomingHttpHeaders, BEARER),
      MALFORMED,
    );
    assert.deepEqual(
      readCredential({ authorization: ['Bearer a'] } as unknown as IncomingHttpHeaders, BEARER),
      MALFORMED,
    );
  });
});

describe('bare value in a custom header', () => {
  test('the value is trimmed', () => {
    assert.deepEqual(readCredential({ 'x-api-key': '  k-123  ' }, API_KEY), present('k-123'));
    assert.deepEqual(readCredential({ 'x-api-key': 'k-123' }, API_KEY), present('k-123'));
  });

  test('the value is taken as it is: no scheme is stripped, inner spaces are kept', () => {
    assert.deepEqual(readCredential({ 'x-api-key': 'Bearer k' }, API_KEY), present('Bearer k'));
    assert.deepEqual(readCredential({ 'x-api-key': 'a b' }, API_KEY), present('a b'));
  });

  test('an absent header is no credential', () => {
    assert.deepEqual(readCredential({ authorization: 'Bearer tok' }, API_KEY), NONE);
  });

  test('an empty or blank value is malformed', () => {
    assert.deepEqual(readCredential({ 'x-api-key': '' }, API_KEY), MALFORMED);
    assert.deepEqual(readCredential({ 'x-api-key': '   ' }, API_KEY), MALFORMED);
  });

  test('a repeated header (array) is malformed', () => {
    assert.deepEqual(readCredential({ 'x-api-key': ['k1', 'k2'] }, API_KEY), MALFORMED);
  });

  test('authorization read bare (bearer: false) keeps the whole value', () => {
    const bare: CredentialSource = { header: 'authorization', bearer: false };
    assert.deepEqual(readCredential({ authorization: ' Basic xyz ' }, bare), present('Basic xyz'));
  });
});
