/**
 * ModelRoute: matches requests (hostname, path, method, headers, query, model name) and sends them
 * to weighted backends. This schema is the single source of truth: the TypeScript type, the CRD in
 * crds/, `modelgate validate` and the compiler's admission check all derive from it.
 */
import { type Static, Type } from '@sinclair/typebox';
import { CacheSchema } from './cache.ts';
import { CompositionSchema } from './composition.ts';
import {
  AuthorizationSchema,
  AuthSchema,
  BackendCredentialsSchema,
  CorsSchema,
  RouteTlsSchema,
} from './route-security.ts';
import {
  ByteSize,
  cel,
  DnsLabel,
  Duration,
  HeaderName,
  List,
  ObjectName,
  Str,
  StringEnum,
} from './schema-helpers.ts';
import { ConditionsSchema } from './status.ts';
import { TransformSchema, ValidationSchema } from './transform.ts';
import { TranslationSchema } from './translation.ts';

export const PathMatchType = ['Exact', 'PathPrefix', 'RegularExpression'] as const;
export const StringMatchType = ['Exact', 'RegularExpression'] as const;
export const ModelMatchType = ['Exact', 'Glob'] as const;
export const HttpMethod = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'CONNECT',
  'TRACE',
] as const;
export const BackendProtocol = ['HTTP', 'H2C', 'GRPC'] as const;
export const LoadBalancingAlgorithm = ['RoundRobin', 'LeastRequest', 'PeakEWMA', 'ConsistentHash'] as const;
export const RetryOn = ['connect-failure', 'reset', 'timeout', '5xx', '502', '503', '504', '429'] as const;

const Hostname = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
  description: 'A lowercase DNS name, optionally with a leading `*.` wildcard label.',
});

export const PathMatchSchema = Type.Object(
  {
    type: StringEnum(PathMatchType, {
      default: 'PathPrefix',
      description:
        'Exact, PathPrefix (segment-wise: /v1 matches /v1/x but not /v1x) or RegularExpression. Default PathPrefix.',
    }),
    value: Str(1024, { minLength: 1, default: '/', description: 'The path or pattern. Default `/`.' }),
  },
  {
    additionalProperties: false,
    description: 'Matches the normalised request path.',
    ...cel({
      rule: "self.type == 'RegularExpression' || self.value.startsWith('/')",
      message: 'an Exact or PathPrefix path must start with /',
      fieldPath: '.value',
    }),
  },
);

export const StringMatchSchema = Type.Object(
  {
    name: HeaderName('Header or query parameter name; header names match case-insensitively.'),
    type: StringEnum(StringMatchType, {
      default: 'Exact',
      description: 'Exact or RegularExpression. Default Exact.',
    }),
    value: Str(4096, { description: 'The value or pattern to match.' }),
  },
  {
    additionalProperties: false,
    description: 'One header or query parameter that must be present with a matching value.',
  },
);

export const ModelMatchSchema = Type.Object(
  {
    type: StringEnum(ModelMatchType, {
      default: 'Exact',
      description:
        'Exact, or Glob where `*` matches any run of characters and `?` one character. Default Exact.',
    }),
    value: Str(256, { minLength: 1, description: 'The model name or glob.' }),
  },
  {
    additionalProperties: false,
    description:
      'Matches the model name, read from the JSON body `model` field or the `x-model` header. When both are present and differ the request is refused (400 MG_MODEL_MISMATCH).',
  },
);

export const MatchSchema = Type.Object(
  {
    path: Type.Optional(PathMatchSchema),
    method: Type.Optional(StringEnum(HttpMethod, { description: 'HTTP method. Any when unset.' })),
    headers: Type.Optional(
      List(StringMatchSchema, 16, { description: 'All must match.', 'x-kubernetes-list-type': 'atomic' }),
    ),
    queryParams: Type.Optional(
      List(StringMatchSchema, 16, { description: 'All must match.', 'x-kubernetes-list-type': 'atomic' }),
    ),
    model: Type.Optional(ModelMatchSchema),
  },
  { additionalProperties: false, description: 'All given conditions must hold (AND).' },
);

export const ServiceRefSchema = Type.Object(
  {
    name: DnsLabel("Service name, in the route's namespace."),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Service port number.' }),
  },
  {
    additionalProperties: false,
    description: 'A Kubernetes Service; its EndpointSlices give the endpoints. Exclusive with urls.',
  },
);

const SecretRefSchema = (description: string) =>
  Type.Object(
    { name: ObjectName("Secret name, in the route's namespace.") },
    { additionalProperties: false, description },
  );

export const BackendTlsSchema = Type.Object(
  {
    caSecretRef: Type.Optional(
      SecretRefSchema(
        'Secret whose `ca.crt` holds the CA bundle that signs the upstream; default: the system CAs.',
      ),
    ),
    serverName: Type.Optional(
      Str(253, {
        minLength: 1,
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
        description:
          'SNI and the name the certificate must carry; default: the URL host, or <service>.<namespace>.svc for a Service.',
      }),
    ),
    clientCertificateSecretRef: Type.Optional(
      SecretRefSchema(
        'A kubernetes.io/tls Secret (tls.crt, tls.key) presented to the upstream (mutual TLS).',
      ),
    ),
    insecureSkipVerify: Type.Boolean({
      default: false,
      description: 'Accept any upstream certificate. For tests only; never in production. Default false.',
    }),
  },
  {
    additionalProperties: false,
    description: 'TLS to the upstream: https URLs, or a Service spoken to over TLS.',
  },
);

export const BackendSchema = Type.Object(
  {
    name: DnsLabel('Backend name, unique within the rule; used by CanaryRollout, metrics and logs.'),
    weight: Type.Integer({
      minimum: 0,
      maximum: 1000000,
      default: 1,
      description: 'Relative share of traffic. Default 1. Zero receives no traffic.',
    }),
    service: Type.Optional(ServiceRefSchema),
    urls: Type.Optional(
      List(
        Type.String({
          maxLength: 2048,
          pattern: '^https?://[^/?#@\\s]+/?$',
          description: 'http:// or https:// origin, optionally with port; no path, no credentials.',
        }),
        16,
        { minItems: 1, description: 'Static upstream origins (standalone mode, external services).' },
      ),
    ),
    protocol: StringEnum(BackendProtocol, {
      default: 'HTTP',
      description:
        'Upstream protocol: HTTP (HTTP/1.1, or HTTP/2 via ALPN on https), H2C, GRPC. Default HTTP.',
    }),
    modelRevision: Type.Optional(
      Str(128, { description: 'Model revision served by this backend; keys caches and canary reports.' }),
    ),
    tls: Type.Optional(BackendTlsSchema),
    credentials: Type.Optional(BackendCredentialsSchema),
  },
  {
    additionalProperties: false,
    description:
      'One destination of the rule: a Service or static URLs, with its share of the traffic and how to reach it.',
    ...cel(
      {
        rule: 'has(self.service) != has(self.urls)',
        message: 'exactly one of service or urls must be set',
      },
      {
        rule: "!has(self.tls) || !has(self.urls) || self.urls.all(u, u.startsWith('https://'))",
        message: 'tls applies to https:// URLs only',
        fieldPath: '.tls',
      },
    ),
  },
);

export const LoadBalancingSchema = Type.Object(
  {
    algorithm: StringEnum(LoadBalancingAlgorithm, {
      default: 'LeastRequest',
      description:
        'RoundRobin (smooth weighted), LeastRequest (power of two choices on in-flight counts), PeakEWMA (latency), ConsistentHash. Default LeastRequest: inference latency varies too much per request for round robin.',
    }),
    consistentHash: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(HeaderName('Hash on this request header.')),
          cookie: Type.Optional(Str(256, { minLength: 1, description: 'Hash on this cookie.' })),
          consumer: Type.Optional(
            Type.Boolean({
              description:
                'Hash on the authenticated consumer (API key consumer or token subject); needs spec.auth.',
            }),
          ),
        },
        {
          additionalProperties: false,
          description: 'The hash key for ConsistentHash: a request header, a cookie or the consumer.',
          ...cel({
            rule: '[has(self.header), has(self.cookie), has(self.consumer) && self.consumer].filter(x, x).size() == 1',
            message: 'exactly one of header, cookie or consumer must be set',
          }),
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description: 'How endpoints are chosen. Default LeastRequest.',
    ...cel({
      rule: "(self.algorithm == 'ConsistentHash') == has(self.consistentHash)",
      message: 'consistentHash is required with algorithm ConsistentHash and allowed only with it',
    }),
  },
);

export const TimeoutsSchema = Type.Object(
  {
    connect: Duration('Time to establish an upstream connection. Default 5s.', { default: '5s' }),
    firstByte: Duration(
      'Time from sending the request to the first response byte. Default 300s (long prompts).',
      {
        default: '300s',
      },
    ),
    idle: Duration('Longest silence on an open request or stream. Default 300s.', { default: '300s' }),
  },
  {
    additionalProperties: false,
    default: {},
    description: 'Upstream timeouts; defaults suit long inference.',
  },
);

export const RetriesSchema = Type.Object(
  {
    attempts: Type.Integer({
      minimum: 0,
      maximum: 10,
      default: 1,
      description: 'Retries after the first try. Default 1.',
    }),
    retryOn: List(StringEnum(RetryOn), 8, {
      default: ['connect-failure', 'reset'],
      description: 'Conditions that allow a retry. Default connect-failure and reset.',
      'x-kubernetes-list-type': 'set',
    }),
    budgetPercent: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 20,
      description: 'Retries may add at most this share of live requests. Default 20.',
    }),
    maxReplayBodySize: ByteSize(
      'Largest request body kept for replay; larger requests are not retried. Default 1Mi.',
      {
        default: '1Mi',
      },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Retries, only before the first response byte reaches the client. Default: 1 retry on connect-failure or reset.',
  },
);

export const HealthCheckSchema = Type.Object(
  {
    path: Str(1024, {
      pattern: '^/',
      default: '/health',
      description: 'HTTP path probed with GET. Default /health.',
    }),
    interval: Duration('Time between probes. Default 5s.', { default: '5s' }),
    timeout: Duration('Probe timeout. Default 1s.', { default: '1s' }),
    unhealthyThreshold: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 3,
      description: 'Failures to mark down. Default 3.',
    }),
    healthyThreshold: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 2,
      description: 'Successes to mark up. Default 2.',
    }),
  },
  { additionalProperties: false, description: 'Active health checking; off when unset.' },
);

export const OutlierDetectionSchema = Type.Object(
  {
    consecutiveErrors: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 5,
      description: 'Consecutive 5xx, connect errors or timeouts that eject an endpoint. Default 5.',
    }),
    baseEjectionTime: Duration('First ejection time, doubled on each repeat. Default 30s.', {
      default: '30s',
    }),
    maxEjectionTime: Duration('Ceiling on the ejection time. Default 300s.', { default: '300s' }),
    maxEjectionPercent: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 50,
      description: "Largest share of a backend's endpoints ejected at once. Default 50.",
    }),
  },
  { additionalProperties: false, description: 'Passive outlier ejection; off when unset.' },
);

export const RuleSchema = Type.Object(
  {
    name: Type.Optional(
      DnsLabel('Rule name, unique in the route; default `rule-<index>`. Used in metrics and status.'),
    ),
    matches: Type.Optional(
      List(MatchSchema, 16, { description: 'Any may match (OR). Empty or unset matches every request.' }),
    ),
    backends: List(BackendSchema, 16, {
      minItems: 1,
      description: 'Where matching requests go, split by weight.',
      ...cel(
        {
          rule: 'self.all(b, self.exists_one(c, c.name == b.name))',
          message: 'backend names must be unique',
        },
        { rule: 'self.exists(b, b.weight > 0)', message: 'at least one backend must have a non-zero weight' },
      ),
    }),
    fallbackBackend: Type.Optional(
      DnsLabel(
        'A backend of this rule (usually weight 0, e.g. a smaller model) that serves when the chosen backend has no endpoint available.',
      ),
    ),
    loadBalancing: Type.Optional(LoadBalancingSchema),
    timeouts: Type.Optional(TimeoutsSchema),
    retries: Type.Optional(RetriesSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    outlierDetection: Type.Optional(OutlierDetectionSchema),
    authorization: Type.Optional(AuthorizationSchema),
    validation: Type.Optional(ValidationSchema),
    transform: Type.Optional(TransformSchema),
    composition: Type.Optional(CompositionSchema),
    cache: Type.Optional(CacheSchema),
    translation: Type.Optional(TranslationSchema),
  },
  {
    additionalProperties: false,
    description:
      'One rule: the requests it matches, the backends they go to, and how they are handled on the way (timeouts, retries, auth, transforms...).',
    ...cel(
      {
        rule: '!has(self.fallbackBackend) || self.backends.exists(b, b.name == self.fallbackBackend)',
        message: 'fallbackBackend must name a backend of this rule',
        fieldPath: '.fallbackBackend',
      },
      {
        rule: '!has(self.composition) || ((!has(self.composition.pipeline) || self.composition.pipeline.steps.all(s, self.backends.exists(b, b.name == s.backend))) && (!has(self.composition.fanOut) || self.composition.fanOut.branches.all(s, self.backends.exists(b, b.name == s.backend))))',
        message: 'composition steps and branches must name backends of this rule',
        fieldPath: '.composition',
      },
      {
        rule: '!has(self.composition) || !has(self.fallbackBackend)',
        message: 'fallbackBackend does not apply to a composed rule (each step names its backend)',
        fieldPath: '.fallbackBackend',
      },
      {
        rule: "!has(self.translation) || self.backends.all(b, b.protocol == 'GRPC')",
        message: 'every backend of a translated rule must have protocol GRPC',
        fieldPath: '.translation',
      },
      {
        rule: '!has(self.translation) || !has(self.composition)',
        message: 'translation and composition do not combine (steps send and read JSON)',
        fieldPath: '.translation',
      },
      {
        rule: '!has(self.translation) || !has(self.healthCheck)',
        message:
          'healthCheck does not apply to a translated rule (an HTTP GET cannot probe a gRPC port; use outlierDetection)',
        fieldPath: '.healthCheck',
      },
      {
        // As Gateway API: the prefix to replace must be known, so exactly one PathPrefix match (or
        // none, which matches every path under /).
        rule: "!has(self.transform) || !has(self.transform.request) || !has(self.transform.request.urlRewrite) || !has(self.transform.request.urlRewrite.path) || self.transform.request.urlRewrite.path.type != 'ReplacePrefixMatch' || !has(self.matches) || self.matches.size() == 0 || (self.matches.size() == 1 && (!has(self.matches[0].path) || self.matches[0].path.type == 'PathPrefix'))",
        message:
          'urlRewrite.path ReplacePrefixMatch needs the rule to have one match, with a PathPrefix path (or none)',
        fieldPath: '.transform',
      },
    ),
  },
);

export const ModelRouteSpecSchema = Type.Object(
  {
    hostnames: Type.Optional(
      List(Hostname, 16, {
        description: 'Hosts this route serves; empty serves any host.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    maxRequestBodySize: ByteSize(
      'Largest request body accepted (413 above). Default 64Mi, sized for multimodal prompts.',
      {
        default: '64Mi',
      },
    ),
    compression: Type.Object(
      {
        enabled: Type.Boolean({
          default: false,
          description:
            'Compress responses (br or gzip, as the client accepts) that the upstream sent uncompressed. Event streams are never compressed. Default false.',
        }),
        minBytes: Type.Integer({
          minimum: 0,
          maximum: 1073741824,
          default: 1024,
          description: 'Responses declaring a smaller Content-Length are sent as they are. Default 1024.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Response compression at the gateway.' },
    ),
    accessLog: Type.Object(
      {
        enabled: Type.Boolean({
          default: true,
          description: 'Write access-log lines for this route. Default true.',
        }),
        sampleRate: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 1,
          description:
            "Share of the other requests logged (0..1): successes, and the upstream's 4xx answers. Errors (5xx answers and the gateway's own error codes) are always logged while enabled. Default 1.",
        }),
      },
      { additionalProperties: false, default: {}, description: 'Access logging for this route.' },
    ),
    auth: Type.Optional(AuthSchema),
    cors: Type.Optional(CorsSchema),
    tls: Type.Optional(RouteTlsSchema),
    rules: List(RuleSchema, 64, {
      minItems: 1,
      description:
        "Rules in order of the user's intent; precedence among matches is computed, see the README.",
      ...cel({
        rule: '!self.exists(r, has(r.name)) || self.all(r, !has(r.name) || self.exists_one(q, has(q.name) && q.name == r.name))',
        message: 'rule names must be unique',
      }),
    }),
  },
  {
    additionalProperties: false,
    ...cel(
      {
        rule: 'has(self.auth) || self.rules.all(r, !has(r.authorization))',
        message: 'rules[].authorization needs spec.auth',
        fieldPath: '.auth',
      },
      {
        // Without a caller the key could only use the client address, which mixes the users behind
        // one NAT; answers that are the same for everyone say so with shared: true.
        rule: 'has(self.auth) || self.rules.all(r, !has(r.cache) || r.cache.shared)',
        message: 'rules[].cache needs spec.auth (the caller is part of the key) unless cache.shared is true',
        fieldPath: '.auth',
      },
    ),
  },
);

export const ModelRouteStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Generation the status describes.' }),
    ),
    conditions: Type.Optional(ConditionsSchema),
  },
  { additionalProperties: false },
);

export type PathMatch = Static<typeof PathMatchSchema>;
export type StringMatch = Static<typeof StringMatchSchema>;
export type ModelMatch = Static<typeof ModelMatchSchema>;
export type Match = Static<typeof MatchSchema>;
export type Backend = Static<typeof BackendSchema>;
export type Rule = Static<typeof RuleSchema>;
export type ModelRouteSpec = Static<typeof ModelRouteSpecSchema>;
export type ModelRouteStatus = Static<typeof ModelRouteStatusSchema>;
