/**
 * Authentication of one route: its methods tried in a fixed order (API keys, JWT providers,
 * introspection); the first that accepts the credential it reads decides (any-of). Built once per
 * table per route; a request costs a header read per method plus whatever the accepting method
 * costs (a digest and a Map lookup for an API key, a cache lookup for a token seen before).
 *
 * Outcomes: an identity; 401 when no credential was presented (unless the route is anonymous) or
 * every presented one was refused; 503 when a method could not decide (its key set or
 * introspection endpoint unreachable) and none accepted.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CompiledAuth, CredentialSource } from '../../routing-table/types.ts';
import { ApiKeyIndex } from './api-keys.ts';
import { readCredential } from './credentials.ts';
import type { AuthFailure, AuthMethod, AuthResult, Identity } from './identity.ts';
import type { Introspector } from './introspection.ts';
import type { JwtVerifier } from './jwt-verifier.ts';

export const ANONYMOUS: Identity = Object.freeze({
  method: 'anonymous',
  consumer: 'anonymous',
  groups: [],
  scopes: [],
  claims: {},
});

export type AuthenticationOutcome =
  | { ok: true; identity: Identity }
  | {
      ok: false;
      /** 401 (no or bad credentials) or 503 (could not be checked). */
      status: 401 | 503;
      /** The method whose answer is reported, or `none` when no credential was presented. */
      method: AuthMethod | 'none';
      reason: AuthFailure | 'missing';
      message: string;
    };

interface Method {
  readonly kind: AuthMethod;
  readonly source: CredentialSource;
  check(credential: string): AuthResult | Promise<AuthResult>;
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** The `iss` of a JWT without verifying it, to send the token to the one provider that can. */
function unverifiedIssuer(token: string): string | undefined {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  if (first <= 0 || second <= first) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8'));
    return typeof payload?.iss === 'string' ? payload.iss : undefined;
  } catch {
    return undefined;
  }
}

export interface AuthenticatorParts {
  jwtVerifier(providerIndex: number): JwtVerifier;
  introspector(): Introspector | undefined;
}

export class RouteAuthenticator {
  readonly auth: CompiledAuth;
  private readonly methods: Method[] = [];
  /** Lower-case headers that carry credentials of this route (removed upstream unless forwarded). */
  readonly credentialHeaders: readonly string[];
  /** Upstream headers set from claims; a client's own values for them are always removed. */
  readonly claimHeaders: readonly string[];
  /** The `WWW-Authenticate` challenges of a 401. */
  readonly challenge: string;

  constructor(auth: CompiledAuth, parts: AuthenticatorParts) {
    this.auth = auth;
    if (auth.apiKeys) {
      const index = new ApiKeyIndex(auth.apiKeys.keys);
      this.methods.push({ kind: 'apiKey', source: auth.apiKeys.source, check: (c) => index.verify(c) });
    }
    // Providers sharing a header are one method: the token's issuer picks the provider.
    const byHeader = new Map<string, { source: CredentialSource; providers: number[] }>();
    auth.jwt.forEach((p, i) => {
      const key = `${p.source.header}\u0000${p.source.bearer}`;
      const group = byHeader.get(key) ?? { source: p.source, providers: [] };
      group.providers.push(i);
      byHeader.set(key, group);
    });
    for (const group of byHeader.values()) {
      const verifiers = group.providers.map((i) => parts.jwtVerifier(i));
      const issuers = group.providers.map((i) => auth.jwt[i]!.issuer);
      const only = verifiers.length === 1 ? verifiers[0]! : undefined;
      this.methods.push({
        kind: 'jwt',
        source: group.source,
        check: only
          ? (c) => only.verify(c)
          : (c) => {
              const iss = unverifiedIssuer(c);
              const at = iss === undefined ? -1 : issuers.indexOf(iss);
              if (at >= 0) return verifiers[at]!.verify(c);
              return iss === undefined
                ? { ok: false, reason: 'malformed', message: 'not a JWT' }
                : { ok: false, reason: 'wrong_issuer', message: 'no provider of this route has this issuer' };
            },
      });
    }
    if (auth.introspection) {
      const introspector = parts.introspector();
      // Without an introspector a token must still be answered (503), never skipped.
      this.methods.push({
        kind: 'introspection',
        source: auth.introspection.source,
        check: introspector
          ? (c) => introspector.verify(c)
          : () => ({ ok: false, reason: 'unavailable', message: 'introspection is not available' }),
      });
    }
    this.credentialHeaders = [...new Set(this.methods.map((m) => m.source.header))];
    this.claimHeaders = [...new Set(auth.jwt.flatMap((p) => p.forwardClaims.map((f) => f.header)))];
    this.challenge = challengeFor(this.methods);
  }

  authenticate(headers: IncomingHttpHeaders): AuthenticationOutcome | Promise<AuthenticationOutcome> {
    return this.from(headers, 0, undefined);
  }

  private from(
    headers: IncomingHttpHeaders,
    start: number,
    refused: AuthenticationOutcome | undefined,
  ): AuthenticationOutcome | Promise<AuthenticationOutcome> {
    let worst = refused;
    for (let i = start; i < this.methods.length; i++) {
      const m = this.methods[i]!;
      const credential = readCredential(headers, m.source);
      if (credential.kind === 'none') continue;
      if (credential.kind === 'malformed') {
        worst = pickWorst(worst, {
          ok: false,
          status: 401,
          method: m.kind,
          reason: 'malformed',
          message: `the ${m.source.header} header is malformed`,
        });
        continue;
      }
      const r = m.check(credential.value);
      if (isPromise(r)) {
        return r.then(
          (settled) => this.settle(headers, i, settled, m.kind, worst),
          () => this.settle(headers, i, unavailable(), m.kind, worst),
        );
      }
      if (r.ok) return r;
      worst = pickWorst(worst, refusal(r, m.kind));
    }
    if (worst) return worst;
    if (this.auth.anonymous) return { ok: true, identity: ANONYMOUS };
    return { ok: false, status: 401, method: 'none', reason: 'missing', message: 'credentials are required' };
  }

  private settle(
    headers: IncomingHttpHeaders,
    i: number,
    r: AuthResult,
    kind: AuthMethod,
    worst: AuthenticationOutcome | undefined,
  ): AuthenticationOutcome | Promise<AuthenticationOutcome> {
    if (r.ok) return r;
    return this.from(headers, i + 1, pickWorst(worst, refusal(r, kind)));
  }
}

function unavailable(): AuthResult {
  return { ok: false, reason: 'unavailable', message: 'the credential could not be checked' };
}

function refusal(r: Extract<AuthResult, { ok: false }>, method: AuthMethod): AuthenticationOutcome {
  return {
    ok: false,
    status: r.reason === 'unavailable' ? 503 : 401,
    method,
    reason: r.reason,
    message: r.message,
  };
}

/**
 * Of two refusals, the one reported: "could not check" (503) wins over "refused" (401), because a
 * client whose valid token could not be checked should retry rather than re-authenticate; among
 * equals, the first method's.
 */
function pickWorst(a: AuthenticationOutcome | undefined, b: AuthenticationOutcome): AuthenticationOutcome {
  if (!a || a.ok) return b;
  if (b.ok) return a;
  return b.status > a.status ? b : a;
}

function challengeFor(methods: readonly Method[]): string {
  const parts = new Set<string>();
  for (const m of methods) {
    const scheme = m.kind === 'apiKey' ? 'ApiKey' : 'Bearer';
    // RFC 6750 names no header parameter; it tells a client of a custom header where the credential goes.
    parts.add(
      m.source.bearer
        ? `${scheme} realm="modelgate"`
        : `${scheme} realm="modelgate", header="${m.source.header}"`,
    );
  }
  return [...parts].join(', ');
}
