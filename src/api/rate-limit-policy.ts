/**
 * RateLimitPolicy: limits attached to ModelRoutes by `targetRefs`, in the style of Gateway API
 * policy attachment. Enforcement lands with the rate-limit work; this schema is complete enough
 * that the compiler can validate policies and place them in the routing table.
 */
import { type Static, Type } from '@sinclair/typebox';
import { cel, DnsLabel, Duration, List, ObjectName, Str, StringEnum } from './schema-helpers.ts';
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
  { additionalProperties: false },
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
    algorithm: StringEnum(LimitAlgorithm, { default: 'TokenBucket', description: 'Default TokenBucket.' }),
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
          { additionalProperties: false },
        ),
        16,
        { description: 'Per-tier amounts, by consumer group; the first matching group wins.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...cel({
      rule: "!has(self.burst) || self.algorithm == 'TokenBucket'",
      message: 'burst applies only to TokenBucket',
    }),
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
  },
  {
    additionalProperties: false,
    description: 'What happens to a request over a limit. Default: rejected with 429.',
    ...cel({
      rule: "self.action == 'Queue' ? has(self.maxQueue) && has(self.maxWait) : !has(self.maxQueue) && !has(self.maxWait)",
      message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
    }),
  },
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
  },
  { additionalProperties: false },
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
