/**
 * The filter interface. Every per-route function of the gateway that acts on a request before it
 * goes upstream (authentication, rate limiting, caching, transformation) is a Filter, built once
 * per rule per table by its factory, which validates and precomputes everything it can; the
 * per-request part then does no re-validation and avoids allocation.
 *
 * A filter answers synchronously unless it needs I/O: the composed chain stays synchronous until a
 * filter returns a Promise, so a route with only CPU-bound filters pays no promise per request.
 *
 * CPU budget per request on the bench's bare path (documented in the README; checked in bench/):
 *   header manipulation ≤ 1 µs · API-key lookup ≤ 15 µs · JWT with a cached key ≤ 15 µs ·
 *   local rate limit ≤ 5 µs · global rate limit ≤ 30 µs (+1 Redis round trip) · cache hit ≤ 30 µs
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CompiledRule, RoutingTable } from '../../routing-table/types.ts';
import type { Identity } from '../auth/identity.ts';
import type { AuthenticationOutcome } from '../auth/route-authenticator.ts';
import type { ErrorDefinition } from '../errors.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';

export interface FilterContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  readonly rule: CompiledRule;
  /** The model the request names, when the route read it. */
  readonly model: string | undefined;
  /** Headers that will be sent upstream; filters may add, change or delete entries. */
  readonly upstreamHeaders: OutgoingHeaders;
  /**
   * The path sent upstream (normalised, without the query, which is kept as it is). A filter may
   * replace it; logs and metrics keep the client's.
   */
  path: string;
  /**
   * The Host header sent upstream when a filter sets it; it then wins over the client's Host and
   * over a URL backend's own host (the proxy sets Host per attempt, after the filters).
   */
  hostRewrite: string | undefined;
  /** Headers added to the client response (created on first use). */
  responseHeaders: OutgoingHeaders | undefined;
  /** Who is calling, once the auth filter has run (rate limiting and hashing read it). */
  identity: Identity | undefined;
  /** The client's address (through trusted proxies, the forwarded one): IP-keyed limits use it. */
  readonly clientIp: string;
  /**
   * The request body, when it is in memory: the route read it to find the model, or a filter of
   * the rule declared `readsBody`. A filter may replace it (the gateway then sends the new bytes
   * with a matching content-length); undefined for a request without a body. Filters before the
   * first that reads it (authentication) run before it is read (FilterChain.beforeBody), so they
   * see it only when routing read it.
   */
  body: Buffer | undefined;
  /** Filters that must see the response or the end of the exchange add themselves here. */
  observers: ExchangeObserver[] | undefined;
  /**
   * The caller's authentication, when the proxy did it before the rule was known (to route on
   * the model it must read the body, and it reads it only for callers a candidate rule admits:
   * see AuthGate). The auth filter then authorizes this outcome instead of authenticating again.
   */
  readonly authenticated?: AuthenticationOutcome | undefined;
  /**
   * The backend the request will go to, chosen now instead of after the filters (the weighted
   * pick, then the rollout's preview, override and stickiness, with the identity known so far) and
   * kept: the exchange then sends the request there, or to the rule's fallbackBackend when it has
   * no endpoint. Undefined when every weight is 0. Call it as `ctx.chooseBackend()`. Absent where
   * no backend is chosen per request (WebSocket upgrades). The cache keys on its model revision.
   */
  chooseBackend?(): ChosenBackend | undefined;
}

/** What a filter learns of the backend chosen for a request. */
export interface ChosenBackend {
  readonly name: string;
  readonly modelRevision: string | undefined;
}

/** Rewrites a response body on its way to the client (one chunk at a time). */
export interface BodyTransformer {
  /** Bytes to forward now for this upstream chunk (may hold some back, or drop some). */
  data(chunk: Buffer): Buffer | undefined;
  /** The upstream ended: bytes still held, if any. */
  end(): Buffer | undefined;
  /** The output may differ in length from the input: the gateway drops content-length. */
  readonly changesLength: boolean;
  /** Model tokens the answer used, when this transformer meters them (rollout counters read it). */
  tokens?(): number;
}

/**
 * Two transformers in a row: upstream bytes go through `first`, its output through `second`. The
 * first that meters tokens is the one asked.
 */
export function chainTransformers(first: BodyTransformer, second: BodyTransformer): BodyTransformer {
  const tokens = first.tokens ?? second.tokens;
  const owner = first.tokens ? first : second;
  const chained: BodyTransformer = {
    data(chunk) {
      const out = first.data(chunk);
      return out === undefined || out.length === 0 ? undefined : second.data(out);
    },
    end() {
      const rest = first.end();
      const a = rest !== undefined && rest.length > 0 ? second.data(rest) : undefined;
      const b = second.end();
      if (a === undefined || a.length === 0) return b;
      return b === undefined || b.length === 0 ? a : Buffer.concat([a, b]);
    },
    changesLength: first.changesLength || second.changesLength,
  };
  if (tokens) chained.tokens = () => tokens.call(owner);
  return chained;
}

/** How an exchange ended, for observers. */
export interface ExchangeEnd {
  /** The status the client got (499 when it went away first). */
  readonly status: number;
  /** An upstream response started reaching the client. */
  readonly responseStarted: boolean;
  readonly clientAborted: boolean;
  /** The response was cut before its end (client gone, upstream error mid-body). */
  readonly incomplete: boolean;
  /** Name of the backend of the last upstream attempt; absent when none was made. */
  readonly backend?: string;
}

/**
 * A filter's view of the rest of the exchange: the response head (which may install a body
 * transformer) and the end, called exactly once however the exchange ended, so that whatever a
 * filter took at admission (an in-flight slot, a token reservation) is always given back.
 */
export interface ExchangeObserver {
  /**
   * `headers` are the upstream's; `clientHeaders` are what the client will get (hop-by-hop
   * headers removed, the filters' responseHeaders added), which the observer may change.
   */
  onResponseStart?(
    status: number,
    headers: Record<string, string | string[] | undefined>,
    clientHeaders: OutgoingHeaders,
  ): BodyTransformer | undefined;
  onEnd(end: ExchangeEnd): void;
}

/** A filter's refusal: the gateway answers with this error and the request goes no further. */
export interface Rejection {
  error: ErrorDefinition;
  message?: string;
  headers?: Record<string, string>;
}

/**
 * A filter's own answer (a cache hit): the gateway sends it instead of going upstream. It reaches
 * the client as an upstream answer would: the response side of the chain (observers, response
 * transforms, the filters' responseHeaders, CORS headers, compression) applies to it.
 */
export interface Answer {
  answer: {
    /** Below 500: the response path would take a 5xx for an upstream failure to retry. */
    status: number;
    /** As an upstream would send them; hop-by-hop headers are dropped, as for upstream answers. */
    headers: Record<string, string | string[]>;
    body: Buffer;
  };
}

export type FilterOutcome = Rejection | Answer | undefined;

export interface Filter {
  readonly name: string;
  /** The filter needs the request body in memory (bounded by the route's maxRequestBodySize). */
  readonly readsBody?: boolean;
  /** Who may call the rule, asked before the rule is chosen (only the auth filter has one). */
  readonly authGate?: AuthGate;
  onRequest(ctx: FilterContext): FilterOutcome | Promise<FilterOutcome>;
}

/**
 * A rule's authentication and authorization, usable before the request is routed: a request
 * routed on the model in its body is read only once the caller is known to be admitted by one of
 * the rules the body could select (exchange.ts), so that nobody without credentials makes the
 * gateway buffer and parse a body.
 */
export interface AuthGate {
  /** Gates with the same key authenticate alike (same settings, whichever route they belong to). */
  readonly key: string;
  /** The route's authentication (no authorization, nothing counted). */
  authenticate(headers: IncomingMessage['headers']): AuthenticationOutcome | Promise<AuthenticationOutcome>;
  /** Whether the rule admits this outcome (authorization included); nothing counted. */
  admits(outcome: AuthenticationOutcome): boolean;
  /** The rule's refusal of an outcome it does not admit, counted as the filter counts it. */
  refuse(outcome: AuthenticationOutcome): Rejection;
}

export interface FilterFactory {
  readonly name: string;
  /** The filter for this rule, or undefined when the rule does not use it. Called at table build. */
  build(rule: CompiledRule, table: RoutingTable): Filter | undefined;
  /** The table is in service (a refused table never gets here): release what it no longer uses. */
  applied?(table: RoutingTable): void;
  /** The proxy is stopping. */
  close?(): Promise<void>;
}

export type FilterChain = ((ctx: FilterContext) => FilterOutcome | Promise<FilterOutcome>) & {
  /** Some filter of the chain reads the request body. */
  readsBody?: boolean;
  /**
   * When some filter reads the body: the filters before the first that does (authentication
   * first of all), which run before the gateway reads the body (undefined when there are none),
   * and the rest, which run once it is in memory.
   */
  beforeBody?: FilterChain | undefined;
  withBody?: FilterChain;
  /** The auth filter's gate, when the rule has authentication. */
  authGate?: AuthGate;
};

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T> | undefined)?.then === 'function';
}

/** One function that runs `filters` in order; undefined when there are none. */
export function composeFilters(filters: readonly Filter[]): FilterChain | undefined {
  if (filters.length === 0) return undefined;
  if (filters.length === 1) {
    const only = filters[0]!;
    return (ctx) => only.onRequest(ctx);
  }
  const runFrom = (ctx: FilterContext, start: number): FilterOutcome | Promise<FilterOutcome> => {
    for (let i = start; i < filters.length; i++) {
      const out = filters[i]!.onRequest(ctx);
      if (isPromise(out)) {
        return out.then((r) => (r !== undefined ? r : runFrom(ctx, i + 1)));
      }
      if (out !== undefined) return out;
    }
    return undefined;
  };
  return (ctx) => runFrom(ctx, 0);
}

/** Builds the chain of one rule from the factories, in factory order. */
export function buildChain(
  factories: readonly FilterFactory[],
  rule: CompiledRule,
  table: RoutingTable,
): FilterChain | undefined {
  const filters: Filter[] = [];
  for (const f of factories) {
    const filter = f.build(rule, table);
    if (filter) filters.push(filter);
  }
  const chain = composeFilters(filters);
  if (!chain) return chain;
  const gate = filters.find((f) => f.authGate !== undefined)?.authGate;
  if (gate) chain.authGate = gate;
  const firstReader = filters.findIndex((f) => f.readsBody === true);
  if (firstReader >= 0) {
    chain.readsBody = true;
    chain.beforeBody = composeFilters(filters.slice(0, firstReader));
    chain.withBody = composeFilters(filters.slice(firstReader))!;
  }
  return chain;
}
