/**
 * JWT verification for one provider: the JWS signature with jose (`compactVerify`, with the key
 * the key source resolves for the token's alg and kid), then the claims checked here (exp, nbf,
 * iat with the clock skew; iss; aud; required claims; the consumer claim), every failure mapped to
 * a stable AuthFailure code with a short message that never contains the token.
 *
 * `none` and HMAC algorithms are never accepted, whatever the provider's list says: an HS256 token
 * "signed" with the issuer's RSA public key as the HMAC secret is refused before any key lookup.
 *
 * Verified tokens are cached (clients reuse a token for its whole life; Envoy's jwt_authn does the
 * same): the token string maps to its frozen AuthResult until min(exp, verification + 5 min), LRU-
 * bounded. A hit is synchronous and costs a Map lookup and a clock read. A cached token stays
 * accepted for at most 5 min after its key leaves the JWKS. Failures are not cached.
 */
import { type CryptoKey, compactVerify } from 'jose';
import type { CompiledJwtProvider } from '../../routing-table/types.ts';
import { type AuthFailure, type AuthResult, claimList, type Identity } from './identity.ts';
import { type JwksSource, type KeyResult, SUPPORTED_ALGORITHMS } from './jwks-cache.ts';

export interface JwtVerifier {
  /** The provider's name. */
  readonly provider: string;
  /** Synchronous for a cached token; never throws. */
  verify(token: string): AuthResult | Promise<AuthResult>;
}

export interface JwtVerifierOptions {
  /** Wall clock in ms, for exp, nbf and iat. Default Date.now. */
  now?: () => number;
  /** Verified tokens kept; 0 disables the cache. Default 10,000. */
  cacheSize?: number;
}

/** How long a verified token is served from the cache at most (its exp bounds it too). */
export const VERIFIED_TOKEN_TTL_MS = 5 * 60_000;
/** Longer tokens are refused without parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

interface CacheEntry {
  result: AuthResult;
  expiresAt: number;
}

function fail(reason: AuthFailure, message: string): AuthResult {
  return { ok: false, reason, message };
}

const MALFORMED_SHAPE: AuthResult = Object.freeze(
  fail('malformed', 'not a JWT: expected three base64url parts separated by dots'),
);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeJson(part: string): unknown {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** A NumericDate claim in ms; undefined when absent, NaN when not a finite number. */
function numericDate(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  return typeof v === 'number' && Number.isFinite(v) ? v * 1000 : Number.NaN;
}

/** jose's errors by code; anything else (a key that cannot verify this alg) is a bad signature. */
function joseFailure(err: unknown): AuthResult {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return fail('bad_signature', 'signature verification failed');
    case 'ERR_JWS_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return fail('malformed', `invalid JWS: ${(err as Error).message}`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return fail('alg_not_allowed', 'alg not allowed');
    default:
      return fail(
        'bad_signature',
        `the key cannot verify this token: ${(err as Error)?.message ?? String(err)}`,
      );
  }
}

export function createJwtVerifier(
  provider: CompiledJwtProvider,
  keys: JwksSource,
  opts: JwtVerifierOptions = {},
): JwtVerifier {
  const now = opts.now ?? Date.now;
  const cacheSize = Math.max(0, Math.floor(opts.cacheSize ?? 10_000));
  const allowed = new Set(provider.algorithms.filter((a) => SUPPORTED_ALGORITHMS.has(a)));
  const skew = Math.max(0, provider.clockSkewMs);
  const audiences = new Set(provider.audiences);
  const { issuer, requiredClaims, consumerClaim, groupsClaim, scopesClaim, name: providerName } = provider;
  /** Insertion order is recency order: a hit moves its entry to the end. */
  const cache = new Map<string, CacheEntry>();

  function checkClaims(claims: Record<string, unknown>, t: number): AuthResult | number {
    const exp = numericDate(claims.exp);
    const nbf = numericDate(claims.nbf);
    const iat = numericDate(claims.iat);
    if (Number.isNaN(exp)) return fail('malformed', 'exp is not a number');
    if (Number.isNaN(nbf)) return fail('malformed', 'nbf is not a number');
    if (Number.isNaN(iat)) return fail('malformed', 'iat is not a number');
    if (exp !== undefined && t >= exp + skew) return fail('expired', 'token expired');
    if (nbf !== undefined && t < nbf - skew) return fail('not_yet_valid', 'token not valid yet (nbf)');
    if (iat !== undefined && iat > t + skew) return fail('not_yet_valid', 'token issued in the future (iat)');
    if (claims.iss !== issuer) return fail('wrong_issuer', `issuer is not ${JSON.stringify(issuer)}`);
    if (audiences.size > 0) {
      const aud = claims.aud;
      let match = false;
      if (typeof aud === 'string') match = audiences.has(aud);
      else if (Array.isArray(aud)) match = aud.some((a) => typeof a === 'string' && audiences.has(a));
      if (!match) return fail('wrong_audience', 'no accepted audience in aud');
    }
    for (const c of requiredClaims) {
      if (claims[c] === undefined || claims[c] === null) {
        return fail('missing_claim', `required claim ${JSON.stringify(c)} is missing`);
      }
    }
    return exp ?? Number.POSITIVE_INFINITY;
  }

  function identityOf(claims: Record<string, unknown>): AuthResult {
    const raw = claims[consumerClaim];
    let consumer: string;
    if (typeof raw === 'string' && raw.length > 0) consumer = raw;
    else if (typeof raw === 'number' && Number.isFinite(raw)) consumer = String(raw);
    else return fail('missing_claim', `consumer claim ${JSON.stringify(consumerClaim)} is missing`);
    const identity: Identity = {
      method: 'jwt',
      provider: providerName,
      consumer,
      groups: Object.freeze(groupsClaim === undefined ? [] : claimList(claims[groupsClaim])),
      scopes: Object.freeze(claimList(claims[scopesClaim])),
      claims: Object.freeze(claims),
    };
    return Object.freeze({ ok: true as const, identity: Object.freeze(identity) });
  }

  function remember(token: string, result: AuthResult, expMs: number, t: number): void {
    if (cacheSize === 0) return;
    const expiresAt = Math.min(expMs, t + VERIFIED_TOKEN_TTL_MS);
    if (expiresAt <= t) return;
    cache.set(token, { result, expiresAt });
    if (cache.size > cacheSize) cache.delete(cache.keys().next().value as string);
  }

  async function verifySignature(token: string, key: CryptoKey, alg: string): Promise<AuthResult> {
    let payload: Uint8Array;
    try {
      payload = (await compactVerify(token, key, { algorithms: [alg] })).payload;
    } catch (err) {
      return joseFailure(err);
    }
    let claims: unknown;
    try {
      claims = JSON.parse(
        Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'),
      );
    } catch {
      claims = undefined;
    }
    if (!isObject(claims)) return fail('malformed', 'the payload is not a JSON object');
    const t = now();
    const checked = checkClaims(claims, t);
    if (typeof checked !== 'number') return checked;
    const result = identityOf(claims);
    if (result.ok) remember(token, result, checked, t);
    return result;
  }

  function withKey(token: string, k: KeyResult, alg: string): AuthResult | Promise<AuthResult> {
    if (!k.ok) return fail(k.reason, k.message);
    return verifySignature(token, k.key, alg);
  }

  function verifyUncached(token: string): AuthResult | Promise<AuthResult> {
    const d1 = token.indexOf('.');
    const d2 = d1 < 0 ? -1 : token.indexOf('.', d1 + 1);
    if (d1 <= 0 || d2 < 0 || token.indexOf('.', d2 + 1) !== -1) return MALFORMED_SHAPE;
    const h = token.slice(0, d1);
    const p = token.slice(d1 + 1, d2);
    const s = token.slice(d2 + 1);
    if (!BASE64URL.test(h) || !BASE64URL.test(p) || (s.length > 0 && !BASE64URL.test(s)))
      return MALFORMED_SHAPE;
    const header = decodeJson(h);
    if (!isObject(header)) return fail('malformed', 'the JWS header is not a JSON object');
    const { alg, kid } = header;
    if (typeof alg !== 'string') return fail('malformed', 'the JWS header has no alg');
    if (!allowed.has(alg)) {
      return fail('alg_not_allowed', `alg ${JSON.stringify(alg.slice(0, 32))} is not allowed`);
    }
    if (kid !== undefined && typeof kid !== 'string') return fail('malformed', 'kid is not a string');
    if (s.length === 0) return fail('malformed', 'the token has no signature');
    let k: KeyResult | Promise<KeyResult>;
    try {
      k = keys.getKey({ alg, kid });
    } catch (err) {
      return fail('unavailable', `key lookup failed: ${(err as Error)?.message ?? String(err)}`);
    }
    if (k instanceof Promise) {
      return k.then(
        (r) => withKey(token, r, alg),
        (err: unknown) => fail('unavailable', `key lookup failed: ${(err as Error)?.message ?? String(err)}`),
      );
    }
    return withKey(token, k, alg);
  }

  return {
    provider: providerName,
    verify(token: string): AuthResult | Promise<AuthResult> {
      if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_LENGTH) {
        return MALFORMED_SHAPE;
      }
      const hit = cache.get(token);
      if (hit !== undefined) {
        if (now() < hit.expiresAt) {
          cache.delete(token);
          cache.set(token, hit);
          return hit.result;
        }
        cache.delete(token);
      }
      return verifyUncached(token);
    },
  };
}
