/**
 * RateLimitPolicy: limits attached to ModelRoutes by `targetRefs`, in the style of Gateway API
 * policy attachment. Each proxy enforces them in its rate-limit filter: Local scope in-process,
 * Global scope in Redis (one atomic script call per request), excess rejected with 429 or queued.
 */
import { type Static, Type } from '@sinclair/typebox';
import { cel, DnsLabel, Duration, HeaderName, List, ObjectName, Str, StringEnum } from './schema-helpers.ts';
import { ConditionsSchema } from './status.ts';

export const LimitKeyType = ['Consumer', 'ClientIP', 'Claim', 'Header', 'Model', 'Route'] as const;
export const LimitAlgorithm = ['FixedWindow', 'SlidingWindow', 'TokenBucket'] as const;

export const TargetRefSchema = Type.Object(
  {
    group: StringEnum(['modelgate.dev'] as const, {
      default: 'modelgate.dev',
      description: 'Always modelgate.dev.',
    }),
    kind: StringEnum(['ModelRoute'] as const, { default: 'ModelRoute', description: 'Always ModelRoute.' }),
    name: ObjectName("Name of a ModelRoute in the policy's namespace."),
  },
  {
    additionalProperties: false,
    description: "A ModelRoute in the policy's namespace that the limits apply to.",
  },
);

export const LimitKeySchema = Type.Object(
  {
    type: StringEnum(LimitKeyType, {
      description:
        'Consumer (the authenticated identity), ClientIP (from the trusted hop), Claim (a JWT claim), Header, Model, Route.',
    }),
    name: Type.Optional(
      Str(256, { minLength: 1, description: 'Claim or header name; required for Claim and Header.' }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'One part of the key: the limit keeps a separate budget per distinct value of all parts together.',
    ...cel({
      rule: "(self.type == 'Claim' || self.type == 'Header') == has(self.name)",
      message: 'name is required for Claim and Header keys and not allowed for others',
    }),
  },
);

export const LimitSchema = Type.Object(
  {
    name: DnsLabel('Limit name, unique in the policy; shown in RateLimit-Policy headers and metrics.'),
    key: List(LimitKeySchema, 4, {
      minItems: 1,
      description: 'The parts that together identify who is counted.',
      'x-kubernetes-list-type': 'atomic',
    }),
    algorithm: StringEnum(LimitAlgorithm, {
      default: 'TokenBucket',
      description:
        'How units are counted over time. FixedWindow: amount per period, windows aligned for every key (up to twice the amount across a boundary). SlidingWindow: the last period estimated from the current and previous window (smooths the boundary). TokenBucket: a bucket of amount + burst, refilled at amount per period, starting full. Default TokenBucket.',
    }),
    amount: Type.Integer({ minimum: 1, maximum: 1000000000000, description: 'Allowed units per period.' }),
    period: Duration('The window, or the refill period for TokenBucket.'),
    burst: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 1000000000000,
        description: 'Extra units a TokenBucket can hold above amount.',
      }),
    ),
    cost: StringEnum(['Requests', 'ModelTokens'] as const, {
      default: 'Requests',
      description: 'What is counted: Requests, or ModelTokens from the response usage. Default Requests.',
    }),
    completionTokensEstimate: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10000000,
        description:
          'ModelTokens only (refused with cost Requests): tokens reserved for the answer when the request sets no max_tokens (then reconciled with the real usage). 256 when unset.',
      }),
    ),
    overrides: Type.Optional(
      List(
        Type.Object(
          {
            group: Str(256, { minLength: 1, description: 'Consumers in this group get this amount.' }),
            amount: Type.Integer({
              minimum: 0,
              maximum: 1000000000000,
              description: 'Allowed units per period.',
            }),
          },
          {
            additionalProperties: false,
            description: "A tier: callers in this group get this amount instead of the limit's.",
          },
        ),
        16,
        { description: 'Per-tier amounts, by consumer group; the first matching group wins.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      'One named limit: a key, an algorithm, an amount per period, and what is counted. Every limit of the policy must admit a request.',
    ...cel(
      {
        rule: "!has(self.burst) || self.algorithm == 'TokenBucket'",
        message: 'burst applies only to TokenBucket',
      },
      {
        rule: "!has(self.completionTokensEstimate) || self.cost == 'ModelTokens'",
        message: 'completionTokensEstimate applies only to cost ModelTokens',
      },
    ),
  },
);

export const PrioritySchema = Type.Object(
  {
    group: Type.Optional(Str(256, { minLength: 1, description: 'Consumers in this group.' })),
    header: Type.Optional(
      Type.Object(
        {
          name: HeaderName('Request header name.'),
          value: Str(256, { description: 'Exact value.' }),
        },
        { additionalProperties: false, description: 'Requests carrying this header value.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'One priority level: the requests it matches.',
    ...cel({ rule: 'has(self.group) != has(self.header)', message: 'set exactly one of group or header' }),
  },
);

export const OnExceededSchema = Type.Object(
  {
    action: StringEnum(['Reject', 'Queue'] as const, {
      default: 'Reject',
      description: 'Reject with 429, or Queue.',
    }),
    maxQueue: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100000, description: 'Queue bound per route.' }),
    ),
    maxWait: Type.Optional(Duration('Longest a request waits in the queue.')),
    priorities: Type.Optional(
      List(PrioritySchema, 8, {
        description:
          'Queue levels, highest first: a request takes the first level it matches; the rest wait behind every level.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'What happens to a request over a limit. Default: rejected with 429.',
    ...cel(
      {
        rule: "self.action == 'Queue' ? has(self.maxQueue) && has(self.maxWait) : !has(self.maxQueue) && !has(self.maxWait)",
        message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
      },
      {
        rule: "!has(self.priorities) || self.action == 'Queue'",
        message: 'priorities apply only to action Queue',
      },
    ),
  },
);

export const RedisRefSchema = Type.Object(
  {
    secretRef: Type.Object(
      { name: ObjectName("Secret name, in the policy's namespace.") },
      {
        additionalProperties: false,
        description:
          'A Secret with `url` (redis://host:port[/db] or rediss://), optional `username`, `password`, and `cluster` ("true" for Redis Cluster, the url being one seed node).',
      },
    ),
    timeout: Type.Optional(
      Duration('Longest wait for Redis before failureMode applies. Default 50ms.', { default: '50ms' }),
    ),
  },
  { additionalProperties: false, description: 'The Redis that Global limits count in.' },
);

export const RateLimitPolicySpecSchema = Type.Object(
  {
    targetRefs: List(TargetRefSchema, 16, { minItems: 1, description: 'Routes this policy applies to.' }),
    scope: StringEnum(['Local', 'Global'] as const, {
      default: 'Local',
      description: 'Local: counted in each proxy. Global: counted in Redis across proxies. Default Local.',
    }),
    failureMode: StringEnum(['FailOpen', 'FailClosed'] as const, {
      default: 'FailOpen',
      description: 'What Global limits do when Redis is unreachable. Default FailOpen.',
    }),
    limits: List(LimitSchema, 16, {
      minItems: 1,
      description: 'Every limit must admit a request.',
      ...cel({
        rule: 'self.all(l, self.exists_one(m, m.name == l.name))',
        message: 'limit names must be unique',
      }),
    }),
    onExceeded: Type.Optional(OnExceededSchema),
    redis: Type.Optional(RedisRefSchema),
    splitAcrossProxies: Type.Optional(
      Type.Boolean({
        description:
          'Local only: each proxy enforces amount divided by the number of proxies the controller sees (approximate: traffic is rarely spread evenly).',
      }),
    ),
    maxInFlight: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 1000000,
        description:
          'Per route and per proxy: requests in flight to the backends at most; excess is handled as onExceeded says.',
      }),
    ),
  },
  {
    additionalProperties: false,
    ...cel(
      {
        rule: "self.scope == 'Global' ? has(self.redis) : !has(self.redis)",
        message: 'redis is required with scope Global and allowed only with it',
      },
      {
        rule: "!has(self.splitAcrossProxies) || !self.splitAcrossProxies || self.scope == 'Local'",
        message: 'splitAcrossProxies applies only to scope Local',
      },
    ),
  },
);

export const RateLimitPolicyStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Generation the status describes.' }),
    ),
    attachedRoutes: Type.Optional(
      List(Str(253), 16, {
        description: 'Routes the policy is enforced on.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    conditions: Type.Optional(ConditionsSchema),
  },
  { additionalProperties: false },
);

export type TargetRef = Static<typeof TargetRefSchema>;
export type LimitKey = Static<typeof LimitKeySchema>;
export type Limit = Static<typeof LimitSchema>;
export type RateLimitPolicySpec = Static<typeof RateLimitPolicySpecSchema>;
export type RateLimitPolicyStatus = Static<typeof RateLimitPolicyStatusSchema>;
