/**
 * Authentication of one route: API keys, JWT providers and introspection tried in that order, the
 * first acceptance wins; 401 when nothing was presented or everything was refused; 503 when a method
 * could not decide and none accepted. JWT verifiers and the introspector are fakes with canned
 * answers, synchronous or as Promises.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { apiKeyDigest } from '../../../../src/compiler/route-security.ts';
import type { AuthResult, Identity } from '../../../../src/dataplane/auth/identity.ts';
import type { Introspector } from '../../../../src/dataplane/auth/introspection.ts';
import type { JwtVerifier } from '../../../../src/dataplane/auth/jwt-verifier.ts';
import {
  ANONYMOUS,
  type AuthenticationOutcome,
  type AuthenticatorParts,
  RouteAuthenticator,
} from '../../../../src/dataplane/auth/route-authenticator.ts';
import type {
  CompiledAuth,
  CompiledIntrospection,
  CompiledJwtProvider,
  CredentialSource,
} from '../../../../src/routing-table/types.ts';

const BEARER: CredentialSource = { header: 'authorization', bearer: true };
const X_API_KEY: CredentialSource = { header: 'x-api-key', bearer: false };

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
/** An unsigned token: only its unverified `iss` matters to the authenticator. */
function token(payload: Record<string, unknown>): string {
  return `${b64url({ alg: 'RS256', typ: 'JWT' })}.${b64url(payload)}.c2ln`;
}

function provider(
  name: string,
  issuer: string,
  over: Partial<CompiledJwtProvider> = {},
): CompiledJwtProvider {
  return {
    name,
    source: BEARER,
    issuer,
    audiences: [],
    algorithms: ['RS256'],
    clockSkewMs: 0,
    requiredClaims: [],
    jwks: '{"keys":[]}',
    consumerClaim: 'sub',
    scopesClaim: 'scope',
    forwardClaims: [],
    ...over,
  };
}

function introspection(source: CredentialSource = BEARER): CompiledIntrospection {
  return {
    source,
    endpoint: 'https://idp.invalid/introspect',
    clientId: 'gw',
    clientSecret: 'secret',
    cacheTtlMs: 60_000,
    negativeCacheTtlMs: 5_000,
    timeoutMs: 1_000,
    consumerClaim: 'sub',
  };
}

function auth(over: Partial<CompiledAuth> = {}): CompiledAuth {
  return { route: 'ns/route', jwt: [], anonymous: false, forwardCredentials: false, ...over };
}

function apiKeys(
  source: CredentialSource,
  keys: Record<string, [string, string[]]>,
): CompiledAuth['apiKeys'] {
  return {
    source,
    keys: Object.entries(keys).map(([key, [consumer, groups]]) => ({
      sha256: apiKeyDigest(key),
      consumer,
      groups,
    })),
  };
}

function identity(method: Identity['method'], consumer: string, provider?: string): Identity {
  return {
    method,
    ...(provider ? { provider } : {}),
    consumer,
    groups: [],
    scopes: [],
    claims: { sub: consumer },
  };
}

const accept = (id: Identity): AuthResult => ({ ok: true, identity: id });
const refuse = (
  reason: Extract<AuthResult, { ok: false }>['reason'],
  message: string = reason,
): AuthResult => ({
  ok: false,
  reason,
  message,
});

type Answer = (token: string) => AuthResult | Promise<AuthResult>;

/** A fake verifier that records the tokens it was asked about. */
function fakeJwt(name: string, answer: Answer): JwtVerifier & { seen: string[] } {
  const seen: string[] = [];
  return {
    provider: name,
    seen,
    verify(t) {
      seen.push(t);
      return answer(t);
    },
  };
}

function fakeIntrospector(answer: Answer): Introspector & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    verify(t) {
      seen.push(t);
      return answer(t);
    },
    close() {},
  };
}

function parts(verifiers: JwtVerifier[] = [], introspector?: Introspector): AuthenticatorParts {
  return {
    jwtVerifier: (i) => {
      const v = verifiers[i];
      if (!v) throw new Error(`no verifier ${i}`);
      return v;
    },
    introspector: () => introspector,
  };
}

/** The outcome, awaited when the authenticator went asynchronous. */
async function outcome(a: RouteAuthenticator, headers: IncomingHttpHeaders): Promise<AuthenticationOutcome> {
  return await a.authenticate(headers);
}

function isSync(v: AuthenticationOutcome | Promise<AuthenticationOutcome>): v is AuthenticationOutcome {
  return typeof (v as { then?: unknown }).then !== 'function';
}

const MISSING: AuthenticationOutcome = {
  ok: false,
  status: 401,
  method: 'none',
  reason: 'missing',
  message: 'credentials are required',
};

describe('API keys', () => {
  const a = new RouteAuthenticator(
    auth({ apiKeys: apiKeys(X_API_KEY, { 'key-alice': ['alice', ['ml-team']], 'key-bob': ['bob', []] }) }),
    parts(),
  );

  test('a known key gives its consumer and groups, synchronously', () => {
    const r = a.authenticate({ 'x-api-key': 'key-alice' });
    assert.ok(isSync(r));
    assert.deepEqual(r, {
      ok: true,
      identity: { method: 'apiKey', consumer: 'alice', groups: ['ml-team'], scopes: [], claims: {} },
    });
    const bob = a.authenticate({ 'x-api-key': '  key-bob ' });
    assert.ok(isSync(bob) && bob.ok);
    assert.equal(bob.identity.consumer, 'bob');
  });

  test('an unknown key is a 401 unknown_key', () => {
    assert.deepEqual(a.authenticate({ 'x-api-key': 'key-mallory' }), {
      ok: false,
      status: 401,
      method: 'apiKey',
      reason: 'unknown_key',
      message: 'the API key is not known',
    });
  });

  test('keys are compared exactly', () => {
    const r = a.authenticate({ 'x-api-key': 'KEY-ALICE' });
    assert.ok(isSync(r) && !r.ok);
    assert.equal(r.reason, 'unknown_key');
  });

  test('no credential is a 401 missing', () => {
    assert.deepEqual(a.authenticate({}), MISSING);
    assert.deepEqual(a.authenticate({ authorization: 'Bearer key-alice' }), MISSING);
  });

  test('a blank or repeated key header is a 401 malformed', () => {
    const expected: AuthenticationOutcome = {
      ok: false,
      status: 401,
      method: 'apiKey',
      reason: 'malformed',
      message: 'the x-api-key header is malformed',
    };
    assert.deepEqual(a.authenticate({ 'x-api-key': '  ' }), expected);
    assert.deepEqual(a.authenticate({ 'x-api-key': ['key-alice', 'key-bob'] }), expected);
  });

  test('an API key in authorization: Bearer', () => {
    const b = new RouteAuthenticator(auth({ apiKeys: apiKeys(BEARER, { k1: ['svc', []] }) }), parts());
    const r = b.authenticate({ authorization: 'Bearer k1' });
    assert.ok(isSync(r) && r.ok);
    assert.equal(r.identity.consumer, 'svc');
    assert.deepEqual(b.authenticate({ authorization: 'Basic azE=' }), MISSING);
  });
});

describe('anonymous routes', () => {
  const a = new RouteAuthenticator(
    auth({ anonymous: true, apiKeys: apiKeys(X_API_KEY, { k1: ['svc', []] }) }),
    parts(),
  );

  test('no credential gives the anonymous identity', () => {
    assert.deepEqual(a.authenticate({}), { ok: true, identity: ANONYMOUS });
    assert.deepEqual(ANONYMOUS, {
      method: 'anonymous',
      consumer: 'anonymous',
      groups: [],
      scopes: [],
      claims: {},
    });
    assert.ok(Object.isFrozen(ANONYMOUS));
  });

  test('a presented credential is still checked: a valid one identifies the caller', () => {
    const r = a.authenticate({ 'x-api-key': 'k1' });
    assert.ok(isSync(r) && r.ok);
    assert.equal(r.identity.consumer, 'svc');
  });

  test('a refused or malformed credential is a 401, not anonymous', () => {
    const r = a.authenticate({ 'x-api-key': 'nope' });
    assert.ok(isSync(r) && !r.ok);
    assert.equal(r.status, 401);
    assert.equal(r.reason, 'unknown_key');
    const m = a.authenticate({ 'x-api-key': '' });
    assert.ok(isSync(m) && !m.ok);
    assert.equal(m.reason, 'malformed');
  });
});

describe('any-of, in order', () => {
  test('an API key refused on authorization, then a JWT provider accepts the same header', async () => {
    const alice = identity('jwt', 'alice', 'idp');
    const jwt = fakeJwt('idp', () => accept(alice));
    const a = new RouteAuthenticator(
      auth({ apiKeys: apiKeys(BEARER, { k1: ['svc', []] }), jwt: [provider('idp', 'https://idp.test')] }),
      parts([jwt]),
    );
    const t = token({ iss: 'https://idp.test', sub: 'alice' });
    const r = a.authenticate({ authorization: `Bearer ${t}` });
    assert.ok(isSync(r));
    assert.deepEqual(r, { ok: true, identity: alice });
    assert.deepEqual(jwt.seen, [t]);
  });

  test('the same, with an asynchronous verifier', async () => {
    const alice = identity('jwt', 'alice', 'idp');
    const a = new RouteAuthenticator(
      auth({ apiKeys: apiKeys(BEARER, { k1: ['svc', []] }), jwt: [provider('idp', 'https://idp.test')] }),
      parts([fakeJwt('idp', async () => accept(alice))]),
    );
    const r = a.authenticate({ authorization: `Bearer ${token({ iss: 'https://idp.test' })}` });
    assert.equal(isSync(r), false);
    assert.deepEqual(await r, { ok: true, identity: alice });
  });

  test('an accepting API key stops there: later methods are not asked', () => {
    const jwt = fakeJwt('idp', () => accept(identity('jwt', 'x', 'idp')));
    const intro = fakeIntrospector(() => accept(identity('introspection', 'y')));
    const a = new RouteAuthenticator(
      auth({
        apiKeys: apiKeys(BEARER, { k1: ['svc', []] }),
        jwt: [provider('idp', 'https://idp.test')],
        introspection: introspection(),
      }),
      parts([jwt], intro),
    );
    const r = a.authenticate({ authorization: 'Bearer k1' });
    assert.ok(isSync(r) && r.ok);
    assert.equal(r.identity.method, 'apiKey');
    assert.deepEqual(jwt.seen, []);
    assert.deepEqual(intro.seen, []);
  });

  test('JWT refused (asynchronously), introspection accepts', async () => {
    const bob = identity('introspection', 'bob');
    const jwt = fakeJwt('idp', async () => refuse('bad_signature'));
    const intro = fakeIntrospector(async () => accept(bob));
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')], introspection: introspection() }),
      parts([jwt], intro),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer opaque' }), { ok: true, identity: bob });
    assert.deepEqual(jwt.seen, ['opaque']);
    assert.deepEqual(intro.seen, ['opaque']);
  });

  test('each method reads its own header', async () => {
    const jwt = fakeJwt('idp', () => accept(identity('jwt', 'alice', 'idp')));
    const a = new RouteAuthenticator(
      auth({ apiKeys: apiKeys(X_API_KEY, { k1: ['svc', []] }), jwt: [provider('idp', 'https://idp.test')] }),
      parts([jwt]),
    );
    // a bad API key and a good token: the token accepts
    const r = await outcome(a, { 'x-api-key': 'bad', authorization: 'Bearer t' });
    assert.ok(r.ok);
    assert.equal(r.identity.consumer, 'alice');
    // only the token
    const t = await outcome(a, { authorization: 'Bearer t' });
    assert.ok(t.ok);
  });

  test('when all refuse, the first method refusal is reported', async () => {
    const a = new RouteAuthenticator(
      auth({
        apiKeys: apiKeys(BEARER, { k1: ['svc', []] }),
        jwt: [provider('idp', 'https://idp.test')],
        introspection: introspection(),
      }),
      parts(
        [fakeJwt('idp', () => refuse('expired', 'the token has expired'))],
        fakeIntrospector(async () => refuse('inactive')),
      ),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer zzz' }), {
      ok: false,
      status: 401,
      method: 'apiKey',
      reason: 'unknown_key',
      message: 'the API key is not known',
    });
  });

  test('a malformed header and a refusal: the first is reported', async () => {
    const a = new RouteAuthenticator(
      auth({ apiKeys: apiKeys(X_API_KEY, { k1: ['svc', []] }), jwt: [provider('idp', 'https://idp.test')] }),
      parts([fakeJwt('idp', () => refuse('expired'))]),
    );
    const r = await outcome(a, { 'x-api-key': ' ', authorization: 'Bearer t' });
    assert.ok(!r.ok);
    assert.equal(r.method, 'apiKey');
    assert.equal(r.reason, 'malformed');
  });
});

describe('several JWT providers on one header', () => {
  const ALICE = identity('jwt', 'alice', 'corp');
  const BOB = identity('jwt', 'bob', 'partner');

  function setup() {
    const corp = fakeJwt('corp', () => accept(ALICE));
    const partner = fakeJwt('partner', async () => accept(BOB));
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('corp', 'https://corp.test'), provider('partner', 'https://partner.test')] }),
      parts([corp, partner]),
    );
    return { a, corp, partner };
  }

  test('the unverified iss picks the provider', async () => {
    const { a, corp, partner } = setup();
    const t1 = token({ iss: 'https://corp.test', sub: 'alice' });
    const t2 = token({ iss: 'https://partner.test', sub: 'bob' });
    assert.deepEqual(a.authenticate({ authorization: `Bearer ${t1}` }), { ok: true, identity: ALICE });
    assert.deepEqual(await outcome(a, { authorization: `Bearer ${t2}` }), { ok: true, identity: BOB });
    assert.deepEqual(corp.seen, [t1]);
    assert.deepEqual(partner.seen, [t2]);
  });

  test('an issuer of no provider is a 401 wrong_issuer, and no verifier is asked', () => {
    const { a, corp, partner } = setup();
    assert.deepEqual(a.authenticate({ authorization: `Bearer ${token({ iss: 'https://evil.test' })}` }), {
      ok: false,
      status: 401,
      method: 'jwt',
      reason: 'wrong_issuer',
      message: 'no provider of this route has this issuer',
    });
    assert.deepEqual(corp.seen, []);
    assert.deepEqual(partner.seen, []);
  });

  test('a token that is not a JWT, or has no string iss, is a 401 malformed', () => {
    const { a, corp, partner } = setup();
    const notJwt: AuthenticationOutcome = {
      ok: false,
      status: 401,
      method: 'jwt',
      reason: 'malformed',
      message: 'not a JWT',
    };
    for (const t of [
      'opaque-token',
      'one.dot',
      '.starts.withdot',
      `${b64url({})}.!!!notbase64json.sig`,
      token({ sub: 'alice' }),
      token({ iss: 42 }),
      `${b64url({})}.${Buffer.from('null').toString('base64url')}.sig`,
    ]) {
      assert.deepEqual(a.authenticate({ authorization: `Bearer ${t}` }), notJwt, t);
    }
    assert.deepEqual(corp.seen, []);
    assert.deepEqual(partner.seen, []);
  });

  test('the issuer is matched exactly', () => {
    const { a } = setup();
    const r = a.authenticate({ authorization: `Bearer ${token({ iss: 'https://corp.test/' })}` });
    assert.ok(isSync(r) && !r.ok);
    assert.equal(r.reason, 'wrong_issuer');
  });

  test('providers on different headers are separate methods', async () => {
    const corp = fakeJwt('corp', () => refuse('expired'));
    const other = fakeJwt('other', () => accept(BOB));
    const a = new RouteAuthenticator(
      auth({
        jwt: [
          provider('corp', 'https://corp.test'),
          provider('other', 'https://other.test', { source: { header: 'x-id-token', bearer: false } }),
        ],
      }),
      parts([corp, other]),
    );
    // a single provider per header: no issuer routing, the verifier gets any token
    const r = await outcome(a, { authorization: 'Bearer opaque', 'x-id-token': 'whatever' });
    assert.deepEqual(r, { ok: true, identity: BOB });
    assert.deepEqual(corp.seen, ['opaque']);
    assert.deepEqual(other.seen, ['whatever']);
  });
});

describe('503 when a method could not decide', () => {
  test('unavailable JWT and refused introspection: 503 wins', async () => {
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')], introspection: introspection() }),
      parts(
        [fakeJwt('idp', () => refuse('unavailable', 'keys unreachable'))],
        fakeIntrospector(async () => refuse('inactive')),
      ),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer t' }), {
      ok: false,
      status: 503,
      method: 'jwt',
      reason: 'unavailable',
      message: 'keys unreachable',
    });
  });

  test('refused API key then unavailable introspection: 503 wins over the earlier 401', async () => {
    const a = new RouteAuthenticator(
      auth({ apiKeys: apiKeys(BEARER, { k1: ['svc', []] }), introspection: introspection() }),
      parts(
        [],
        fakeIntrospector(async () => refuse('unavailable', 'endpoint down')),
      ),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer nope' }), {
      ok: false,
      status: 503,
      method: 'introspection',
      reason: 'unavailable',
      message: 'endpoint down',
    });
  });

  test('a rejected promise counts as unavailable', async () => {
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')] }),
      parts([fakeJwt('idp', () => Promise.reject(new Error('boom')))]),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer t' }), {
      ok: false,
      status: 503,
      method: 'jwt',
      reason: 'unavailable',
      message: 'the credential could not be checked',
    });
  });

  test('an unavailable method does not stop a later one from accepting', async () => {
    const carol = identity('introspection', 'carol');
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')], introspection: introspection() }),
      parts(
        [fakeJwt('idp', async () => refuse('unavailable'))],
        fakeIntrospector(() => accept(carol)),
      ),
    );
    assert.deepEqual(await outcome(a, { authorization: 'Bearer t' }), { ok: true, identity: carol });
  });

  test('between two unavailable methods, the first is reported', async () => {
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')], introspection: introspection() }),
      parts(
        [fakeJwt('idp', async () => refuse('unavailable', 'first'))],
        fakeIntrospector(() => refuse('unavailable', 'second')),
      ),
    );
    const r = await outcome(a, { authorization: 'Bearer t' });
    assert.ok(!r.ok);
    assert.equal(r.status, 503);
    assert.equal(r.message, 'first');
  });

  test('unavailable then a malformed header of a later method: still 503', async () => {
    const a = new RouteAuthenticator(
      auth({
        jwt: [provider('idp', 'https://idp.test')],
        introspection: introspection({ header: 'x-token', bearer: false }),
      }),
      parts(
        [fakeJwt('idp', async () => refuse('unavailable'))],
        fakeIntrospector(() => accept(identity('introspection', 'z'))),
      ),
    );
    const r = await outcome(a, { authorization: 'Bearer t', 'x-token': '' });
    assert.ok(!r.ok);
    assert.equal(r.status, 503);
    assert.equal(r.method, 'jwt');
  });
  test('introspection configured but no introspector: a token is a 503 and its header is still a credential header', () => {
    // AuthenticatorParts.introspector() may return undefined; the constructor then silently omits
    // the method, so a presented token is not checked at all (fail-open on anonymous routes) and
    // its custom header is left out of credentialHeaders (forwarded upstream).
    const c = auth({ introspection: introspection({ header: 'x-token', bearer: false }), anonymous: true });
    const a = new RouteAuthenticator(c, parts([], undefined));
    const r = a.authenticate({ 'x-token': 'opaque' });
    assert.ok(isSync(r) && !r.ok);
    assert.equal(r.status, 503);
    assert.deepEqual(a.credentialHeaders, ['x-token']);
  });
});

describe('malformed headers', () => {
  const a = new RouteAuthenticator(
    auth({ jwt: [provider('idp', 'https://idp.test')], anonymous: true }),
    parts([fakeJwt('idp', () => accept(identity('jwt', 'alice', 'idp')))]),
  );
  const MALFORMED: AuthenticationOutcome = {
    ok: false,
    status: 401,
    method: 'jwt',
    reason: 'malformed',
    message: 'the authorization header is malformed',
  };

  test('an empty bearer token or one with a space is a 401 malformed, even on an anonymous route', () => {
    assert.deepEqual(a.authenticate({ authorization: 'Bearer ' }), MALFORMED);
    assert.deepEqual(a.authenticate({ authorization: 'Bearer a b' }), MALFORMED);
  });

  test('a repeated authorization header is a 401 malformed', () => {
    assert.deepEqual(
      a.authenticate({ authorization: ['Bearer a', 'Bearer b'] } as unknown as IncomingHttpHeaders),
      MALFORMED,
    );
  });

  test('another scheme is no credential: anonymous here', () => {
    assert.deepEqual(a.authenticate({ authorization: 'Basic dTpw' }), { ok: true, identity: ANONYMOUS });
  });
});

describe('credentialHeaders, claimHeaders and challenge', () => {
  test('every method, deduplicated', () => {
    const a = new RouteAuthenticator(
      auth({
        apiKeys: apiKeys(X_API_KEY, { k: ['c', []] }),
        jwt: [
          provider('corp', 'https://corp.test', {
            forwardClaims: [
              { claim: 'sub', header: 'x-user' },
              { claim: 'email', header: 'x-email' },
            ],
          }),
          provider('partner', 'https://partner.test', {
            forwardClaims: [{ claim: 'sub', header: 'x-user' }],
          }),
        ],
        introspection: introspection(),
      }),
      parts(
        [fakeJwt('corp', () => refuse('expired')), fakeJwt('partner', () => refuse('expired'))],
        fakeIntrospector(() => refuse('inactive')),
      ),
    );
    assert.deepEqual(a.credentialHeaders, ['x-api-key', 'authorization']);
    assert.deepEqual(a.claimHeaders, ['x-user', 'x-email']);
    assert.equal(a.challenge, 'ApiKey realm="modelgate", header="x-api-key", Bearer realm="modelgate"');
  });

  test('a bearer API key and a JWT provider on a custom header', () => {
    const a = new RouteAuthenticator(
      auth({
        apiKeys: apiKeys(BEARER, { k: ['c', []] }),
        jwt: [provider('idp', 'https://idp.test', { source: { header: 'x-jwt', bearer: false } })],
      }),
      parts([fakeJwt('idp', () => refuse('expired'))]),
    );
    assert.deepEqual(a.credentialHeaders, ['authorization', 'x-jwt']);
    assert.deepEqual(a.claimHeaders, []);
    assert.equal(a.challenge, 'ApiKey realm="modelgate", Bearer realm="modelgate", header="x-jwt"');
  });

  test('JWT only', () => {
    const a = new RouteAuthenticator(
      auth({ jwt: [provider('idp', 'https://idp.test')] }),
      parts([fakeJwt('idp', () => refuse('expired'))]),
    );
    assert.deepEqual(a.credentialHeaders, ['authorization']);
    assert.equal(a.challenge, 'Bearer realm="modelgate"');
  });

  test('the compiled auth is kept, and each verifier is asked for once at construction', () => {
    const asked: number[] = [];
    const c = auth({ jwt: [provider('a', 'https://a.test'), provider('b', 'https://b.test')] });
    const a = new RouteAuthenticator(c, {
      jwtVerifier: (i) => {
        asked.push(i);
        return fakeJwt(String(i), () => refuse('expired'));
      },
      introspector: () => {
        throw new Error('introspection is not configured');
      },
    });
    assert.equal(a.auth, c);
    assert.deepEqual(asked, [0, 1]);
  });
});
