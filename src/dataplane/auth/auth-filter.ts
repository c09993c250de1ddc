/**
 * The authentication and authorization filter (see filters/filter.ts). The factory lives as long
 * as the proxy and owns what must outlive a table: the JWKS key cache, and JWT verifiers and
 * introspectors (with their caches of verified tokens), reused by the next table when their
 * settings did not change. Per table it builds one RouteAuthenticator per route; per rule one
 * filter that authenticates, authorizes, and rewrites the upstream headers:
 *
 * - the credential headers are removed unless the route forwards them (the backend should not
 *   see, log or replay a client's key);
 * - headers set from claims (`forwardClaims`) are always removed from what the client sent first,
 *   so a client cannot claim to be someone else to a backend that trusts them.
 */

import type { CounterCell, CounterFamily } from '../../observability/metric-families.ts';
import type { CompiledRule, RoutingTable } from '../../routing-table/types.ts';
import { Errors } from '../errors.ts';
import type {
  AuthGate,
  Filter,
  FilterContext,
  FilterFactory,
  FilterOutcome,
  Rejection,
} from '../filters/filter.ts';
import { authorize } from './authorize.ts';
import type { Identity } from './identity.ts';
import { createIntrospector, type IntrospectionRequest, type Introspector } from './introspection.ts';
import { type JwksRegistry, staticJwks } from './jwks-cache.ts';
import { createJwtVerifier, type JwtVerifier } from './jwt-verifier.ts';
import { type AuthenticationOutcome, RouteAuthenticator } from './route-authenticator.ts';

const METHODS = ['apiKey', 'jwt', 'introspection', 'anonymous', 'none'] as const;
const OUTCOMES = ['allowed', 'unauthenticated', 'forbidden', 'unavailable'] as const;
type Outcome = (typeof OUTCOMES)[number];

export interface AuthFilterOptions {
  jwks: JwksRegistry;
  /** `modelgate_auth_decisions_total{route, method, outcome}`. */
  decisions: CounterFamily;
  /** Wall clock in ms (token expiry). Default Date.now. */
  now?: () => number;
  /** Tests inject the introspection transport. */
  introspectionRequest?: IntrospectionRequest;
}

/** Things reused across tables when their settings are the same, keyed by those settings. */
class Reuse<T> {
  private current = new Map<string, T>();
  private previous = new Map<string, T>();
  private table: RoutingTable | undefined;

  get(table: RoutingTable, key: string, make: () => T): T {
    if (table !== this.table) {
      // A new table: what the last one used is what this one may reuse. Nothing is closed here
      // (a refused table must not break the one still serving); unused entries are dropped to GC.
      this.table = table;
      this.previous = this.current;
      this.current = new Map();
    }
    let v = this.current.get(key) ?? this.previous.get(key);
    if (v === undefined) v = make();
    this.current.set(key, v);
    return v;
  }
}

interface RouteState {
  authenticator: RouteAuthenticator;
  /** The route's auth settings without its name: routes with equal keys authenticate alike. */
  key: string;
  /** Decision counters by method × outcome, bound on first use. */
  cells: (CounterCell | undefined)[];
}

export class AuthFilterFactory implements FilterFactory {
  readonly name = 'auth';
  private readonly opts: AuthFilterOptions;
  private readonly now: () => number;
  private readonly verifiers = new Reuse<JwtVerifier>();
  private readonly introspectors = new Reuse<Introspector>();
  private builtFor: RoutingTable | undefined;
  private routes = new Map<string, RouteState | undefined>();

  constructor(opts: AuthFilterOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  build(rule: CompiledRule, table: RoutingTable): Filter | undefined {
    if (!rule.auth) return undefined;
    const state = this.routeState(rule.route, table);
    // A route whose auth section is missing from the table would be open: refuse the table.
    if (!state)
      throw new Error(`rule ${rule.id} requires authentication but the table has no auth for its route`);
    return new AuthFilter(state, rule, this.opts.decisions);
  }

  private routeState(route: string, table: RoutingTable): RouteState | undefined {
    if (table !== this.builtFor) {
      this.builtFor = table;
      this.routes = new Map();
    }
    if (this.routes.has(route)) return this.routes.get(route);
    const auth = table.routes.auth?.find((a) => a.route === route);
    let state: RouteState | undefined;
    if (auth) {
      const authenticator = new RouteAuthenticator(auth, {
        jwtVerifier: (i) => {
          const p = auth.jwt[i]!;
          return this.verifiers.get(table, JSON.stringify(p), () => {
            const keys =
              p.jwksUri !== undefined ? this.opts.jwks.source(p.jwksUri) : staticJwks(p.jwks ?? '');
            keys.prefetch();
            return createJwtVerifier(p, keys, { now: this.now });
          });
        },
        introspector: () => {
          const c = auth.introspection!;
          return this.introspectors.get(table, JSON.stringify(c), () =>
            createIntrospector(c, {
              now: this.now,
              ...(this.opts.introspectionRequest ? { request: this.opts.introspectionRequest } : {}),
            }),
          );
        },
      });
      state = {
        authenticator,
        key: JSON.stringify({ ...auth, route: '' }),
        cells: new Array(METHODS.length * OUTCOMES.length),
      };
    }
    this.routes.set(route, state);
    return state;
  }
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Why a filter refuses an outcome, and how it counts the refusal. */
interface Refusal {
  rejection: Rejection;
  method: string;
  outcome: Outcome;
}

class AuthFilter implements Filter, AuthGate {
  readonly name = 'auth';
  readonly authGate: AuthGate = this;
  readonly key: string;
  private readonly state: RouteState;
  private readonly rule: CompiledRule;
  private readonly decisions: CounterFamily;

  constructor(state: RouteState, rule: CompiledRule, decisions: CounterFamily) {
    this.state = state;
    this.rule = rule;
    this.decisions = decisions;
    this.key = state.key;
  }

  onRequest(ctx: FilterContext): FilterOutcome | Promise<FilterOutcome> {
    // Authenticated already when the request was routed on its body (AuthGate): only decide.
    if (ctx.authenticated !== undefined) return this.decide(ctx, ctx.authenticated);
    const r = this.state.authenticator.authenticate(ctx.req.headers);
    return isPromise(r) ? r.then((o) => this.decide(ctx, o)) : this.decide(ctx, r);
  }

  authenticate(
    headers: FilterContext['req']['headers'],
  ): AuthenticationOutcome | Promise<AuthenticationOutcome> {
    return this.state.authenticator.authenticate(headers);
  }

  admits(o: AuthenticationOutcome): boolean {
    return this.refusal(o) === undefined;
  }

  refuse(o: AuthenticationOutcome): Rejection {
    const r = this.refusal(o);
    if (r === undefined) throw new Error('refuse() called with an outcome the rule admits');
    this.count(r.method, r.outcome);
    return r.rejection;
  }

  private count(method: string, outcome: Outcome): void {
    const i =
      METHODS.indexOf(method as (typeof METHODS)[number]) * OUTCOMES.length + OUTCOMES.indexOf(outcome);
    let cell = this.state.cells[i];
    if (!cell) {
      cell = this.decisions.child([this.rule.route, method, outcome]);
      this.state.cells[i] = cell;
    }
    cell.value++;
  }

  /** The rule's refusal of an outcome, or undefined when it admits it (allocates nothing then). */
  private refusal(o: AuthenticationOutcome): Refusal | undefined {
    const a = this.state.authenticator;
    if (!o.ok) {
      if (o.status === 503) {
        return { rejection: { error: Errors.AuthUnavailable }, method: o.method, outcome: 'unavailable' };
      }
      return {
        rejection: unauthenticated(a.challenge, o.reason === 'missing' ? undefined : o.message),
        method: o.method,
        outcome: 'unauthenticated',
      };
    }
    const identity = o.identity;
    const rules = this.rule.authorization;
    if (!rules) return undefined;
    const verdict = authorize(rules, identity);
    if (verdict.ok) return undefined;
    // Nobody was identified: asking for credentials is the useful answer, not "forbidden".
    if (identity.method === 'anonymous') {
      return {
        rejection: unauthenticated(a.challenge, undefined),
        method: 'anonymous',
        outcome: 'unauthenticated',
      };
    }
    const headers =
      verdict.missingScopes.length > 0
        ? {
            'www-authenticate': `Bearer realm="modelgate", error="insufficient_scope", scope="${verdict.missingScopes.join(' ')}"`,
          }
        : undefined;
    return {
      rejection: { error: Errors.Forbidden, message: verdict.message, ...(headers ? { headers } : {}) },
      method: identity.method,
      outcome: 'forbidden',
    };
  }

  private decide(ctx: FilterContext, o: AuthenticationOutcome): FilterOutcome {
    const refused = this.refusal(o);
    if (refused) {
      this.count(refused.method, refused.outcome);
      return refused.rejection;
    }
    const identity = (o as Extract<AuthenticationOutcome, { ok: true }>).identity;
    ctx.identity = identity;
    this.rewrite(ctx, identity);
    this.count(identity.method, 'allowed');
    return undefined;
  }

  private rewrite(ctx: FilterContext, identity: Identity): void {
    const a = this.state.authenticator;
    const up = ctx.upstreamHeaders;
    if (!a.auth.forwardCredentials) for (const h of a.credentialHeaders) delete up[h];
    for (const h of a.claimHeaders) delete up[h];
    if (identity.method !== 'jwt') return;
    const provider = a.auth.jwt.find((p) => p.name === identity.provider);
    for (const f of provider?.forwardClaims ?? []) {
      const v = identity.claims[f.claim];
      if (v === undefined || v === null) continue;
      const text = typeof v === 'string' ? v : JSON.stringify(v);
      // A claim is the issuer's data, not ours to trust as a header value.
      if (!hasControlCharacters(text)) up[f.header] = text;
    }
  }
}

function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function unauthenticated(challenge: string, detail: string | undefined): Rejection {
  // RFC 6750 §3.1: a presented but refused token gets error="invalid_token".
  const value = detail
    ? challenge.replace('Bearer realm="modelgate"', 'Bearer realm="modelgate", error="invalid_token"')
    : challenge;
  return {
    error: Errors.Unauthenticated,
    ...(detail ? { message: `invalid credentials: ${detail}` } : {}),
    headers: { 'www-authenticate': value },
  };
}
