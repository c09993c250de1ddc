/**
 * JWT verification: tokens minted here with jose for RS256, ES256 and EdDSA; keys from a static
 * JWKS or from a local JWKS server (127.0.0.1, port 0). Both clocks are injected: the verifier's
 * wall clock for exp/nbf/iat and the registry's for cache ages.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CompactSign,
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTHeaderParameters,
  type JWTPayload,
  SignJWT,
} from 'jose';
import type { AuthFailure, AuthResult } from '../../../../src/dataplane/auth/identity.ts';
import {
  type JwksEvent,
  JwksRegistry,
  type JwksSource,
  staticJwks,
} from '../../../../src/dataplane/auth/jwks-cache.ts';
import { createJwtVerifier, type JwtVerifier } from '../../../../src/dataplane/auth/jwt-verifier.ts';
import type { CompiledJwtProvider } from '../../../../src/routing-table/types.ts';
import { startJwksServer, unreachableUrl } from '../../../support/jwks-server.ts';

const NOW = 1_700_000_000_000;
const ISSUER = 'https://idp.example';
const sec = (ms: number) => Math.floor(ms / 1000);

type Alg = 'RS256' | 'ES256' | 'EdDSA';
interface Signer {
  alg: Alg;
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  jwk: JWK;
}

async function signer(alg: Alg, kid: string): Promise<Signer> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  return { alg, kid, privateKey, publicKey, jwk: { ...(await exportJWK(publicKey)), kid, use: 'sig' } };
}

const rsa = await signer('RS256', 'rsa-1');
const ec = await signer('ES256', 'ec-1');
const ed = await signer('EdDSA', 'ed-1');
const rsa2 = await signer('RS256', 'rsa-2');
const stranger = await signer('RS256', 'rsa-1'); // same kid, other key
const JWKS_TEXT = JSON.stringify({ keys: [rsa.jwk, ec.jwk, ed.jwk] });

/** Claims default to a valid token at NOW; a claim set to undefined is left out. */
async function mint(
  s: Signer,
  claims: Record<string, unknown> = {},
  header: Partial<JWTHeaderParameters> = {},
): Promise<string> {
  const payload: JWTPayload = {};
  const all: Record<string, unknown> = {
    iss: ISSUER,
    aud: 'api',
    sub: 'alice',
    iat: sec(NOW),
    exp: sec(NOW) + 3600,
    ...claims,
  };
  for (const [k, v] of Object.entries(all)) if (v !== undefined) payload[k] = v;
  return new SignJWT(payload).setProtectedHeader({ alg: s.alg, kid: s.kid, ...header }).sign(s.privateKey);
}

function provider(over: Partial<CompiledJwtProvider> = {}): CompiledJwtProvider {
  return {
    name: 'idp',
    source: { header: 'authorization', bearer: true },
    issuer: ISSUER,
    audiences: ['api'],
    algorithms: ['EdDSA', 'ES256', 'RS256'],
    clockSkewMs: 30_000,
    requiredClaims: [],
    consumerClaim: 'sub',
    scopesClaim: 'scope',
    forwardClaims: [],
    ...over,
  };
}

function b64(obj: unknown): string {
  return Buffer.from(JSON.stringify(obj)).toString('base64url');
}

/** A key source that counts lookups. */
function counting(inner: JwksSource): JwksSource & { calls: number } {
  const s = {
    id: inner.id,
    calls: 0,
    getKey(ref: Parameters<JwksSource['getKey']>[0]) {
      s.calls++;
      return inner.getKey(ref);
    },
    prefetch() {},
  };
  return s;
}

function clock(start = NOW) {
  let t = start;
  return {
    now: () => t,
    set(ms: number) {
      t = ms;
    },
    advance(ms: number) {
      t += ms;
    },
  };
}

function verifier(over: Partial<CompiledJwtProvider> = {}, now = () => NOW): JwtVerifier {
  return createJwtVerifier(provider(over), staticJwks(JWKS_TEXT), { now });
}

async function expectOk(v: JwtVerifier, token: string): Promise<AuthResult & { ok: true }> {
  const r = await v.verify(token);
  assert.ok(r.ok, r.ok ? '' : `${r.reason}: ${r.message}`);
  return r;
}

async function expectFail(v: JwtVerifier, token: string, reason: AuthFailure): Promise<string> {
  const r = await v.verify(token);
  assert.equal(r.ok, false, `expected ${reason}`);
  if (r.ok) return '';
  assert.equal(r.reason, reason, r.message);
  assert.ok(r.message.length > 0 && r.message.length < 300, r.message);
  if (token.length > 0) assert.ok(!r.message.includes(token), 'the message must not contain the token');
  const parts = token.split('.');
  for (const p of parts) if (p.length > 20) assert.ok(!r.message.includes(p), 'nor a part of it');
  return r.message;
}

test('a valid token of each algorithm verifies, and the identity is built from its claims', async () => {
  const v = createJwtVerifier(provider({ groupsClaim: 'groups' }), staticJwks(JWKS_TEXT), { now: () => NOW });
  for (const s of [rsa, ec, ed]) {
    const token = await mint(s, { sub: `user-${s.alg}`, scope: 'read  write', groups: ['a', 1, 'b'], x: 1 });
    const r = await expectOk(v, token);
    assert.deepEqual(r.identity, {
      method: 'jwt',
      provider: 'idp',
      consumer: `user-${s.alg}`,
      groups: ['a', 'b'],
      scopes: ['read', 'write'],
      claims: {
        iss: ISSUER,
        aud: 'api',
        sub: `user-${s.alg}`,
        iat: sec(NOW),
        exp: sec(NOW) + 3600,
        scope: 'read  write',
        groups: ['a', 1, 'b'],
        x: 1,
      },
    });
    assert.ok(Object.isFrozen(r.identity) && Object.isFrozen(r.identity.claims));
  }
  // Without groupsClaim, groups are empty; scopes from a list; a numeric consumer claim.
  const r = await expectOk(verifier(), await mint(ec, { sub: 42, scope: ['a', 'b'], groups: ['g'] }));
  assert.equal(r.identity.consumer, '42');
  assert.deepEqual(r.identity.groups, []);
  assert.deepEqual(r.identity.scopes, ['a', 'b']);
  // A token without kid uses the only key fitting its alg.
  await expectOk(verifier(), await mint(ed, {}, { kid: undefined }));
});

test('exp, nbf and iat are checked with the clock skew', async () => {
  const c = clock();
  const v = verifier({}, c.now);
  await expectFail(v, await mint(rsa, { exp: sec(NOW) - 31 }), 'expired');
  await expectOk(v, await mint(rsa, { exp: sec(NOW) - 10 }));
  await expectFail(v, await mint(ec, { nbf: sec(NOW) + 31 }), 'not_yet_valid');
  await expectOk(v, await mint(ec, { nbf: sec(NOW) + 10 }));
  await expectFail(v, await mint(ed, { iat: sec(NOW) + 31 }), 'not_yet_valid');
  await expectOk(v, await mint(ed, { iat: sec(NOW) + 10 }));
  // exp exactly reached is expired without skew.
  const strict = verifier({ clockSkewMs: 0 }, c.now);
  await expectFail(strict, await mint(rsa, { exp: sec(NOW) }), 'expired');
  await expectOk(strict, await mint(rsa, { exp: sec(NOW) + 1 }));
  await expectFail(strict, await mint(rsa, { nbf: sec(NOW) + 1 }), 'not_yet_valid');
  await expectOk(strict, await mint(rsa, { nbf: sec(NOW) }));
  // Non-numeric dates are malformed; a token without exp is accepted.
  await expectFail(v, await mint(rsa, { exp: 'tomorrow' }), 'malformed');
  await expectFail(v, await mint(rsa, { nbf: null }), 'malformed');
  await expectOk(v, await mint(rsa, { exp: undefined, iat: undefined }));
});

test('issuer must match exactly', async () => {
  const v = verifier();
  await expectFail(v, await mint(rsa, { iss: 'https://evil.example' }), 'wrong_issuer');
  await expectFail(v, await mint(rsa, { iss: ISSUER + '/' }), 'wrong_issuer');
  await expectFail(v, await mint(rsa, { iss: undefined }), 'wrong_issuer');
  await expectFail(v, await mint(rsa, { iss: [ISSUER] }), 'wrong_issuer');
});

test('audience: any of the provider audiences; not checked when the list is empty', async () => {
  const v = verifier({ audiences: ['api', 'other'] });
  await expectFail(v, await mint(ec, { aud: 'someone-else' }), 'wrong_audience');
  await expectFail(v, await mint(ec, { aud: undefined }), 'wrong_audience');
  await expectFail(v, await mint(ec, { aud: ['x', 'y'] }), 'wrong_audience');
  await expectOk(v, await mint(ec, { aud: ['x', 'other'] }));
  await expectOk(v, await mint(ec, { aud: 'api' }));
  const any = verifier({ audiences: [] });
  await expectOk(any, await mint(ec, { aud: 'someone-else' }));
  await expectOk(any, await mint(ec, { aud: undefined }));
});

test('alg none is refused', async () => {
  const payload = b64({ iss: ISSUER, aud: 'api', sub: 'alice', exp: sec(NOW) + 3600 });
  const src = counting(staticJwks(JWKS_TEXT));
  const v = createJwtVerifier(provider({ algorithms: ['RS256', 'none'] }), src, { now: () => NOW });
  await expectFail(v, `${b64({ alg: 'none' })}.${payload}.`, 'alg_not_allowed');
  await expectFail(v, `${b64({ alg: 'none', kid: 'rsa-1' })}.${payload}.`, 'alg_not_allowed');
  await expectFail(v, `${b64({ alg: 'NONE' })}.${payload}.`, 'alg_not_allowed');
  assert.equal(src.calls, 0);
});

test('HS256 signed with the RSA public key as the HMAC secret is refused (key confusion)', async () => {
  const pem = new TextEncoder().encode(await exportSPKI(rsa.publicKey));
  const token = await new SignJWT({ iss: ISSUER, aud: 'api', sub: 'mallory', exp: sec(NOW) + 3600 })
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
    .sign(pem);
  const src = counting(staticJwks(JWKS_TEXT));
  // Even with HS256 in the provider's list.
  const v = createJwtVerifier(provider({ algorithms: ['HS256', 'RS256'] }), src, { now: () => NOW });
  await expectFail(v, token, 'alg_not_allowed');
  // Also with the JWK form of the public key bytes, and with a JWKS holding an oct key.
  const jwkBytes = new TextEncoder().encode(JSON.stringify(rsa.jwk));
  const token2 = await new SignJWT({ iss: ISSUER, aud: 'api', sub: 'mallory' })
    .setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' })
    .sign(jwkBytes);
  await expectFail(v, token2, 'alg_not_allowed');
  assert.equal(src.calls, 0);
  const withOct = staticJwks(JSON.stringify({ keys: [{ kty: 'oct', kid: 'h', k: 'c2VjcmV0' }, rsa.jwk] }));
  const v2 = createJwtVerifier(provider({ algorithms: ['HS256', 'RS256'] }), withOct, { now: () => NOW });
  const token3 = await new SignJWT({ iss: ISSUER, aud: 'api', sub: 'mallory' })
    .setProtectedHeader({ alg: 'HS256', kid: 'h' })
    .sign(new TextEncoder().encode('secret'));
  await expectFail(v2, token3, 'alg_not_allowed');
});

test('an alg outside the allow-list is refused; so is a key that does not fit the alg', async () => {
  const v = verifier({ algorithms: ['RS256'] });
  await expectFail(v, await mint(ec), 'alg_not_allowed');
  await expectFail(v, await mint(ed), 'alg_not_allowed');
  await expectOk(v, await mint(rsa));
  // An ES256 header naming the RSA key's kid.
  const ecWithRsaKid = { ...ec, kid: 'rsa-1' };
  await expectFail(verifier(), await mint(ecWithRsaKid), 'unknown_kid');
});

test('required claims and the consumer claim must be present', async () => {
  const v = verifier({ requiredClaims: ['tenant', 'email'] });
  await expectFail(v, await mint(rsa, { tenant: 't1' }), 'missing_claim');
  await expectFail(v, await mint(rsa, { tenant: null, email: 'a@b' }), 'missing_claim');
  await expectOk(v, await mint(rsa, { tenant: 't1', email: 'a@b' }));
  const plain = verifier();
  await expectFail(plain, await mint(rsa, { sub: undefined }), 'missing_claim');
  await expectFail(plain, await mint(rsa, { sub: '' }), 'missing_claim');
  await expectFail(plain, await mint(rsa, { sub: { id: 1 } }), 'missing_claim');
  const byEmail = verifier({ consumerClaim: 'email' });
  const r = await expectOk(byEmail, await mint(rsa, { email: 'bob@example.com' }));
  assert.equal(r.identity.consumer, 'bob@example.com');
});

test('a tampered payload, a foreign key or a cut signature fail the signature check', async () => {
  const v = verifier();
  for (const s of [rsa, ec, ed]) {
    const [h, , sig] = (await mint(s)).split('.');
    const evil = b64({ iss: ISSUER, aud: 'api', sub: 'admin', exp: sec(NOW) + 3600 });
    await expectFail(v, `${h}.${evil}.${sig}`, 'bad_signature');
    await expectFail(v, `${h}.${evil}.${sig!.slice(0, -4)}`, 'bad_signature');
  }
  await expectFail(v, await mint(stranger), 'bad_signature');
});

test('garbage, wrong part counts and non-base64url tokens are malformed', async () => {
  const v = verifier();
  const good = await mint(rsa);
  const [h, p, s] = good.split('.') as [string, string, string];
  const cases = [
    '',
    'garbage',
    `${h}.${p}`,
    `${h}.${p}.${s}.${s}`,
    `.${p}.${s}`,
    `${h}..${s}`,
    `${h}.${p}.`,
    `${h}!.${p}.${s}`,
    `${h}.${p}.${s}==`,
    `${h}.${p}+/.${s}`,
    `${b64('just a string')}.${p}.${s}`,
    `${Buffer.from('{not json').toString('base64url')}.${p}.${s}`,
    `${b64({ kid: 'rsa-1' })}.${p}.${s}`,
    `${b64({ alg: 'RS256', kid: 7 })}.${p}.${s}`,
    'x'.repeat(20_000),
  ];
  for (const token of cases) await expectFail(v, token, 'malformed');
  // A validly signed token whose payload is not a JSON object.
  const arrayPayload = await new CompactSign(new TextEncoder().encode('[1,2]'))
    .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
    .sign(rsa.privateKey);
  await expectFail(v, arrayPayload, 'malformed');
  // An unknown critical header is refused.
  const critHeader = b64({ alg: 'RS256', kid: 'rsa-1', crit: ['x-unknown'], 'x-unknown': 1 });
  const input = `${critHeader}.${p}`;
  const critSig = await crypto.subtle.sign(
    'RSASSA-PKCS1-v1_5',
    rsa.privateKey,
    new TextEncoder().encode(input),
  );
  await expectFail(v, `${input}.${Buffer.from(critSig).toString('base64url')}`, 'malformed');
});

test('verified tokens are cached: the second verify is synchronous and does not call the key source', async () => {
  const src = counting(staticJwks(JWKS_TEXT));
  const c = clock();
  const v = createJwtVerifier(provider(), src, { now: c.now });
  const token = await mint(ec);
  const first = v.verify(token);
  assert.ok(first instanceof Promise);
  const r1 = await first;
  assert.ok(r1.ok);
  assert.equal(src.calls, 1);
  const second = v.verify(token);
  assert.ok(!(second instanceof Promise), 'a cached token is answered synchronously');
  assert.equal(second, r1);
  assert.equal(src.calls, 1);
  // After 5 minutes the token is verified again, even if it lives longer.
  c.advance(5 * 60_000);
  const third = v.verify(token);
  assert.ok(third instanceof Promise);
  assert.ok((await third).ok);
  assert.equal(src.calls, 2);
  // Failures are not cached.
  const bad = await mint(ec, { iss: 'https://evil.example' });
  await expectFail(v, bad, 'wrong_issuer');
  await expectFail(v, bad, 'wrong_issuer');
  assert.equal(src.calls, 4);
});

test('a cached token is not served past its exp', async () => {
  const src = counting(staticJwks(JWKS_TEXT));
  const c = clock();
  const v = createJwtVerifier(provider({ clockSkewMs: 0 }), src, { now: c.now });
  const token = await mint(rsa, { exp: sec(NOW) + 60 });
  await expectOk(v, token);
  c.set(NOW + 59_999);
  assert.ok(!(v.verify(token) instanceof Promise));
  c.set(NOW + 60_000);
  const r = v.verify(token);
  assert.ok(r instanceof Promise, 'at exp the cache entry is gone');
  const res = await r;
  assert.equal(res.ok ? 'ok' : res.reason, 'expired');
  assert.equal(src.calls, 2);

  // With a skew the token is still accepted after exp, but only by a full verification.
  const skewed = createJwtVerifier(provider({ clockSkewMs: 30_000 }), src, { now: c.now });
  c.set(NOW);
  await expectOk(skewed, token);
  c.set(NOW + 70_000);
  const late = skewed.verify(token);
  assert.ok(late instanceof Promise);
  assert.ok((await late).ok);
  assert.ok(skewed.verify(token) instanceof Promise, 'a token past exp is never cached');
  c.set(NOW + 90_000);
  await expectFail(skewed, token, 'expired');
});

test('the verified-token cache is LRU-bounded by cacheSize', async () => {
  const src = counting(staticJwks(JWKS_TEXT));
  const v = createJwtVerifier(provider(), src, { now: () => NOW, cacheSize: 2 });
  const [a, b, c] = [
    await mint(ed, { sub: 'a' }),
    await mint(ed, { sub: 'b' }),
    await mint(ed, { sub: 'c' }),
  ];
  await expectOk(v, a);
  await expectOk(v, b);
  assert.ok(!(v.verify(a) instanceof Promise)); // a is now the most recent
  await expectOk(v, c); // evicts b
  assert.ok(!(v.verify(a) instanceof Promise));
  assert.ok(!(v.verify(c) instanceof Promise));
  assert.ok(v.verify(b) instanceof Promise);
  const none = createJwtVerifier(provider(), src, { now: () => NOW, cacheSize: 0 });
  await expectOk(none, a);
  assert.ok(none.verify(a) instanceof Promise);
});

// --- with a JWKS server -----------------------------------------------------------------------

test('unknown kid storm: 1,000 verifications with random kids cause at most 3 JWKS fetches', async (t) => {
  const server = await startJwksServer({ keys: [rsa.jwk, ed.jwk] });
  const jwksClock = clock(0);
  const registry = new JwksRegistry({ now: jwksClock.now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const v = createJwtVerifier(provider(), registry.source(server.url), { now: () => NOW });
  await expectOk(v, await mint(rsa));
  assert.equal(server.requests, 1);
  jwksClock.advance(10_000);
  const tokens: string[] = [];
  for (let i = 0; i < 1000; i++)
    tokens.push(await mint({ ...ed, kid: crypto.randomUUID() }, { sub: `u${i}` }));
  const results = await Promise.all(tokens.map((tok) => v.verify(tok)));
  for (const r of results) assert.equal(r.ok ? 'ok' : r.reason, 'unknown_kid');
  // And sequentially, as a client retrying would.
  for (const tok of tokens.slice(0, 200)) {
    const r = await v.verify(tok);
    assert.equal(r.ok ? 'ok' : r.reason, 'unknown_kid');
  }
  assert.ok(server.requests <= 3, `${server.requests} fetches`);
  assert.equal(server.requests, 2);
  await expectOk(v, await mint(ed));
});

test('key rotation: a token with the new kid verifies after one refetch', async (t) => {
  const server = await startJwksServer({ keys: [rsa.jwk] });
  const jwksClock = clock(0);
  const registry = new JwksRegistry({ now: jwksClock.now });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const v = createJwtVerifier(provider(), registry.source(server.url), { now: () => NOW });
  await expectOk(v, await mint(rsa));
  server.setKeys({ keys: [rsa.jwk, rsa2.jwk] });
  jwksClock.advance(10_000);
  await expectOk(v, await mint(rsa2));
  assert.equal(server.requests, 2);
  await expectOk(v, await mint(rsa, { sub: 'again' }));
  assert.equal(server.requests, 2);
});

test('JWKS server down: cached keys verify until maxStale, then unavailable; back up: verifies', async (t) => {
  const server = await startJwksServer({ keys: [ec.jwk] });
  const jwksClock = clock(0);
  const failed: JwksEvent[] = [];
  let onFailed: (() => void) | undefined;
  const registry = new JwksRegistry({
    now: jwksClock.now,
    onEvent: (e) => {
      if (e.kind !== 'fetch_failed') return;
      failed.push(e);
      onFailed?.();
    },
  });
  t.after(async () => {
    registry.close();
    await server.close();
  });
  const nextFailure = () =>
    new Promise<void>((resolve) => {
      onFailed = resolve;
    });
  const v = createJwtVerifier(provider(), registry.source(server.url), { now: () => NOW, cacheSize: 0 });
  await expectOk(v, await mint(ec));

  server.setMode('error500');
  jwksClock.advance(300_000); // past max-age: background refetch, which fails
  const f1 = nextFailure();
  await expectOk(v, await mint(ec, { sub: 'b' }));
  await f1;
  jwksClock.advance(3_600_000 - 300_000); // exactly maxStale
  const f2 = nextFailure();
  await expectOk(v, await mint(ec, { sub: 'c' }));
  await f2;
  assert.equal(failed.length, 2);

  jwksClock.advance(1);
  await expectFail(v, await mint(ec, { sub: 'd' }), 'unavailable');
  jwksClock.advance(10_000);
  const msg = await expectFail(v, await mint(ec, { sub: 'e' }), 'unavailable');
  assert.match(msg, /HTTP 500/);

  server.setMode('ok');
  jwksClock.advance(10_000);
  await expectOk(v, await mint(ec, { sub: 'f' }));
});

test('a JWKS server that is never reachable makes verification unavailable', async (t) => {
  const url = await unreachableUrl();
  const registry = new JwksRegistry({ now: clock(0).now });
  t.after(() => registry.close());
  const v = createJwtVerifier(provider(), registry.source(url), { now: () => NOW });
  await expectFail(v, await mint(rsa), 'unavailable');
  await expectFail(v, await mint(rsa, { sub: 'b' }), 'unavailable');
});
