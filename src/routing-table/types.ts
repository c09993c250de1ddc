/**
 * The routing table: the one intermediate representation between the compiler and the proxies.
 * Plain, JSON-serialisable data. It is split into parts so that an endpoint change touches one
 * small part: `routes` (everything about matching and per-rule behaviour) and one `endpoints` part
 * per backend endpoint set. Each part carries a content hash; the table hash is derived from the
 * part hashes. Versions (leader term, sequence) are assigned by whoever pushes the table, not here.
 */

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
  loadBalancing: { algorithm: LoadBalancingAlgorithm; hashOn?: { header?: string; cookie?: string } };
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
}

export interface CompiledRateLimitPolicy {
  /** `namespace/name`. */
  id: string;
  scope: 'Local' | 'Global';
  failureMode: 'FailOpen' | 'FailClosed';
  limits: {
    name: string;
    key: { type: string; name?: string }[];
    algorithm: 'FixedWindow' | 'SlidingWindow' | 'TokenBucket';
    amount: number;
    periodMs: number;
    burst: number;
    cost: 'Requests' | 'ModelTokens';
    overrides: { group: string; amount: number }[];
  }[];
  onExceeded: { action: 'Reject' | 'Queue'; maxQueue?: number; maxWaitMs?: number };
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
