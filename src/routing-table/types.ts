/**
 * The routing table: the one intermediate representation between the compiler and the proxies.
 * Plain, JSON-serialisable data. It is split into parts so that an endpoint change touches one
 * small part: `routes` (everything about matching and per-rule behaviour) and one `endpoints` part
 * per backend endpoint set. Each part carries a content hash; the table hash is derived from the
 * part hashes. Versions (leader term, sequence) are assigned by whoever pushes the table, not here.
 */

import type { CompiledCache } from './cache.ts';
import type { CompiledComposition } from './composition.ts';
import type { CompiledTranslation } from './translation.ts';

export type * from './cache.ts';
export type * from './composition.ts';
export type * from './translation.ts';

/**
 * Bumped on any incompatible change of this file's shapes. A proxy refuses a table whose
 * schemaVersion it does not know; a controller can keep emitting an older version for older proxies.
 */
export const TABLE_SCHEMA_VERSION = 1;

/** Sum of the normalised backend weights of every rule. */
export const WEIGHT_TOTAL = 10000;

export interface RoutingTable {
  /** IR schema version, see TABLE_SCHEMA_VERSION. */
  schemaVersion: number;
  /** Hash of the routes part hash and every endpoints part key and hash. */
  hash: string;
  routes: RoutesPart;
  /** Endpoint sets by key (see EndpointsKey), keys sorted. */
  endpoints: Record<string, EndpointsPart>;
}

export interface RoutesPart {
  /** Content hash of this part (without the field itself). */
  hash: string;
  /** Every accepted rule, sorted by id. */
  rules: CompiledRule[];
  /** Every match, one per hostname, in precedence order (first match wins within a host bucket). */
  matches: CompiledMatch[];
  /** Rate-limit policies referenced by rules, sorted by id. */
  rateLimitPolicies: CompiledRateLimitPolicy[];
  /** Model names and globs used by matches, sorted: the only values the `model` metric label takes. */
  models: string[];
  /** Authentication of routes that have it, sorted by route; absent when no route does. */
  auth?: CompiledAuth[];
  /** Certificates for HTTPS listeners, sorted by route; absent when no route terminates TLS. */
  tls?: CompiledTlsCertificate[];
  /**
   * Optional capabilities the rules use (features.ts), sorted; a proxy refuses a table naming one
   * it does not implement. Absent when none is used.
   */
  features?: string[];
}

/** How a credential is read: `authorization` with the Bearer scheme, any other header bare. */
export interface CredentialSource {
  /** Lower-case header name. */
  header: string;
  /** True for `authorization`: the value must be `Bearer <credential>`. */
  bearer: boolean;
}

/** One API key: only its digest reaches the proxy. */
export interface CompiledApiKey {
  /** base64url SHA-256 of the key. Redacted whenever the table is printed. */
  sha256: string;
  consumer: string;
  groups: string[];
}

export interface CompiledJwtProvider {
  name: string;
  source: CredentialSource;
  issuer: string;
  /** Empty: `aud` is not checked. */
  audiences: string[];
  /** JWS `alg` values accepted (asymmetric only). */
  algorithms: string[];
  clockSkewMs: number;
  requiredClaims: string[];
  /** Fetched and cached by the proxy. */
  jwksUri?: string;
  /** A JWKS document (JSON text) from a Secret; public keys only. */
  jwks?: string;
  consumerClaim: string;
  groupsClaim?: string;
  scopesClaim: string;
  /** Lower-case upstream header names. */
  forwardClaims: { claim: string; header: string }[];
}

export interface CompiledIntrospection {
  source: CredentialSource;
  endpoint: string;
  clientId: string;
  /** Redacted whenever the table is printed. */
  clientSecret: string;
  cacheTtlMs: number;
  negativeCacheTtlMs: number;
  timeoutMs: number;
  consumerClaim: string;
  groupsClaim?: string;
}

export interface CompiledAuth {
  /** `namespace/route`: applies to every rule of that route. */
  route: string;
  apiKeys?: { source: CredentialSource; keys: CompiledApiKey[] };
  jwt: CompiledJwtProvider[];
  introspection?: CompiledIntrospection;
  anonymous: boolean;
  forwardCredentials: boolean;
}

export interface CompiledAuthorization {
  scopes: string[];
  groups: string[];
  claims: { name: string; values: string[] }[];
}

export interface CompiledCors {
  /** Exact origins (lower-case), `*`, or `https://*.example.com` patterns. */
  allowOrigins: string[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  allowCredentials: boolean;
  maxAgeS: number;
}

export interface CompiledTlsCertificate {
  /** `namespace/route` that provides it. */
  route: string;
  /** The route's hostnames (exact or `*.` wildcards); empty: the default certificate. */
  hostnames: string[];
  certificatePem: string;
  /** Redacted whenever the table is printed. */
  privateKey: string;
  /** Present when clients of these hostnames must present a certificate signed by these CAs. */
  clientCaPem?: string;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type StringMatchType = 'Exact' | 'RegularExpression';

export interface CompiledMatch {
  /** Id of the CompiledRule this match selects. */
  rule: string;
  /** '' for any host, `*.example.com` for a wildcard, or an exact lowercase host. */
  hostname: string;
  path: { type: PathMatchType; value: string };
  /** Upper-case method, or absent for any. */
  method?: string;
  /** Header names are lower-case. All must match. */
  headers: { name: string; type: StringMatchType; value: string }[];
  queryParams: { name: string; type: StringMatchType; value: string }[];
  model?: { type: 'Exact' | 'Glob'; value: string };
}

export type LoadBalancingAlgorithm = 'RoundRobin' | 'LeastRequest' | 'PeakEWMA' | 'ConsistentHash';
export type BackendProtocol = 'HTTP' | 'H2C' | 'GRPC';

export interface CompiledRule {
  /** `namespace/route/rule`. */
  id: string;
  /** `namespace/route`. */
  route: string;
  /** The rule's name (explicit, or `rule-<index>`). */
  name: string;
  /** metadata.generation of the route this rule came from. */
  generation: number;
  /** Largest request body accepted, in bytes. */
  maxRequestBodyBytes: number;
  /** Response compression at the gateway; off unless the route asks for it. */
  compression: { enabled: boolean; minBytes: number };
  /** Access logging: off, or on with this share of successful requests (errors always logged). */
  accessLog: { enabled: boolean; sampleRate: number };
  /** True when any match of this rule needs the model name (so the proxy reads the body). */
  readsModel: boolean;
  backends: CompiledBackend[];
  /** hashOn.consumer: hash on the authenticated caller (the route must have auth). */
  loadBalancing: {
    algorithm: LoadBalancingAlgorithm;
    hashOn?: { header?: string; cookie?: string; consumer?: boolean };
  };
  /** Milliseconds. */
  timeouts: { connectMs: number; firstByteMs: number; idleMs: number };
  retries: { attempts: number; retryOn: string[]; budgetPercent: number; maxReplayBodyBytes: number };
  healthCheck?: {
    path: string;
    intervalMs: number;
    timeoutMs: number;
    unhealthyThreshold: number;
    healthyThreshold: number;
  };
  outlierDetection?: {
    consecutiveErrors: number;
    baseEjectionMs: number;
    maxEjectionMs: number;
    maxEjectionPercent: number;
  };
  /** Backend (by name) that serves when the chosen one has no endpoint available. */
  fallbackBackend?: string;
  /** Id (`namespace/name`) of the RateLimitPolicy enforced on this rule. */
  rateLimitPolicy?: string;
  /** Present when a CanaryRollout governs two of this rule's backends. */
  canary?: CompiledCanary;
  /** True when the route has `auth` (see RoutesPart.auth). */
  auth?: boolean;
  authorization?: CompiledAuthorization;
  cors?: CompiledCors;
  /** Plaintext requests are redirected to https (308), to this port when set. */
  httpsRedirect?: { port?: number };
  /** The request body must satisfy this JSON Schema (400 otherwise); absent: not validated. */
  validation?: CompiledValidation;
  /** Request and response rewrites; absent when the rule has none. */
  transform?: CompiledTransform;
  /** A pipeline or fan-out over this rule's backends (their weights then do not apply). */
  composition?: CompiledComposition;
  /** The rule's response cache; absent when it has none. */
  cache?: CompiledCache;
  /** Clients and backends speak different protocols (KServe v2 REST ⇄ gRPC); absent: no translation. */
  translation?: CompiledTranslation;
}

export interface CompiledValidation {
  /**
   * The JSON Schema, keys sorted; its dialect and the options it is compiled with are in
   * json-schema.ts. The compiler has checked that it compiles.
   */
  jsonSchema: Record<string, unknown>;
}

/** Header changes, applied in field order: remove, then set, then add. Names are lower-case. */
export interface CompiledHeaderOps {
  remove: string[];
  /** Replaces whatever value the message has. */
  set: { name: string; value: string }[];
  /** Appended after the values the message has. */
  add: { name: string; value: string }[];
}

/**
 * One change to a JSON body. Paths are RFC 6901 JSON Pointers already split into unescaped
 * tokens (`[]` is the whole body); on an array a token is an index, and `-` is the end.
 */
export type CompiledBodyOp =
  | { op: 'Remove'; path: string[] }
  | { op: 'Rename'; from: string[]; path: string[] }
  | { op: 'Set'; path: string[]; value: unknown }
  | { op: 'Wrap'; path: string[]; under: string }
  | { op: 'Unwrap'; path: string[] };

export type CompiledPathRewrite =
  | { type: 'ReplaceFullPath'; path: string }
  /** `prefix` is the rule's PathPrefix, without a trailing `/` (`/` for the root); `replacement` likewise, `''` for none. */
  | { type: 'ReplacePrefixMatch'; prefix: string; replacement: string }
  /** Every match of `pattern` (JavaScript syntax, global) is replaced; `substitution` is in String.replace syntax ($1, $&). */
  | { type: 'ReplaceRegexMatch'; pattern: string; substitution: string };

export interface CompiledTransform {
  request?: {
    headers?: CompiledHeaderOps;
    /** The Host header sent upstream. */
    hostname?: string;
    path?: CompiledPathRewrite;
    body?: CompiledBodyOp[];
  };
  response?: {
    headers?: CompiledHeaderOps;
    /** Applied to 2xx JSON answers that are not streamed and fit in maxBodyBytes. */
    body?: CompiledBodyOp[];
    /** Largest answer held in memory for `body`, in bytes. */
    maxBodyBytes: number;
  };
}

/** TLS to an upstream, with the PEM material resolved from Secrets. */
export interface CompiledUpstreamTls {
  /** SNI and the name the upstream certificate must carry. */
  serverName: string;
  /** CA bundle (PEM); absent: the system CAs. */
  caPem?: string;
  /** Client certificate chain (PEM) for mutual TLS. */
  certificatePem?: string;
  /** Client private key (PEM). Redacted whenever the table is printed. */
  privateKey?: string;
  insecureSkipVerify: boolean;
}

export interface CompiledBackend {
  name: string;
  /** Normalised share: the weights of a rule sum to WEIGHT_TOTAL (or all are 0). */
  weight: number;
  /** Key of this backend's part in RoutingTable.endpoints. */
  endpoints: string;
  protocol: BackendProtocol;
  modelRevision?: string;
  /** TLS to the upstream (https URLs, or a Service spoken to over TLS). */
  tls?: CompiledUpstreamTls;
  /** Why this backend cannot serve (its TLS Secret is missing, say); it is treated as having no endpoint. */
  unavailable?: string;
  /** A header the gateway sets upstream (a hosted API's key); `headerValue` is redacted when printed. */
  credentials?: { header: string; headerValue: string };
}

export interface CompiledCanary {
  /** `namespace/name` of the CanaryRollout. */
  rollout: string;
  stableBackend: string;
  canaryBackend: string;
  /** Canary share in percent that the weights above already reflect. */
  weightPercent: number;
  stickiness?: { header?: string; cookie?: string; consumer?: boolean };
  override?: { header: string; always?: string; never?: string };
  /** Requests for this host, or with this header value (lower-case name), always get the canary. */
  preview?: { hostname: string } | { header: string; value: string };
  /** A share of stable's requests copied to the canary, answers discarded. */
  mirror?: { percent: number; maxInFlight: number };
  /** Present for BlueGreen (absent: Canary). */
  strategy?: 'BlueGreen';
}

export interface CompiledLimit {
  name: string;
  key: { type: string; name?: string }[];
  algorithm: 'FixedWindow' | 'SlidingWindow' | 'TokenBucket';
  amount: number;
  periodMs: number;
  burst: number;
  cost: 'Requests' | 'ModelTokens';
  overrides: { group: string; amount: number }[];
  /** ModelTokens only: tokens reserved for the answer when the request sets no max_tokens. */
  completionTokensEstimate?: number;
}

/** One queue level: requests of a consumer group, or carrying a header value (lower-case name). */
export type CompiledPriority = { group: string } | { header: string; value: string };

/** Where Global limits are counted. `password` is redacted whenever the table is printed. */
export interface CompiledRedis {
  url: string;
  username?: string;
  password?: string;
  cluster: boolean;
  timeoutMs: number;
}

export interface CompiledRateLimitPolicy {
  /** `namespace/name`. */
  id: string;
  scope: 'Local' | 'Global';
  failureMode: 'FailOpen' | 'FailClosed';
  limits: CompiledLimit[];
  onExceeded: {
    action: 'Reject' | 'Queue';
    maxQueue?: number;
    maxWaitMs?: number;
    /** Highest first; requests matching none wait behind all of them. */
    priorities?: CompiledPriority[];
  };
  /** Global scope: the Redis to count in; absent when its Secret is unusable (see redisUnavailable). */
  redis?: CompiledRedis;
  /** Global scope without a usable Redis: why. Proxies then act as if Redis were down (failureMode). */
  redisUnavailable?: string;
  /** Local scope: each proxy enforces amount ÷ the number of proxies it is told of. */
  splitAcrossProxies?: boolean;
  /** Per route and proxy: requests in flight to the backends at most. */
  maxInFlight?: number;
}

/** Whether an endpoint takes new requests (`ready`) or only finishes what it has (`draining`). */
export type EndpointState = 'ready' | 'draining';

export interface CompiledEndpoint {
  /** IPv4 or IPv6 literal (no brackets), or a DNS name. */
  address: string;
  port: number;
  scheme: 'http' | 'https';
  state: EndpointState;
  /** Topology zone, when the EndpointSlice names one. */
  zone?: string;
}

export interface EndpointsPart {
  /** Content hash of `endpoints`. */
  hash: string;
  /** Sorted by address, port. */
  endpoints: CompiledEndpoint[];
}
