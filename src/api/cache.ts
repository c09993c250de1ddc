/**
 * The response cache of a ModelRoute rule (`rules[].cache`). Part of the ModelRoute schema
 * (model-route.ts); split out because it is a concern of its own. The proxy side is
 * src/dataplane/cache/, the semantics are in the README ("Response cache").
 *
 * The conditions under `when` read like the rule's `matches`: any entry may hold (OR), and within
 * an entry every condition must (AND). Body fields are named by RFC 6901 JSON Pointers, as the
 * transform feature names them.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ByteSize, cel, Duration, HeaderName, List, ObjectName, Str, StringEnum } from './schema-helpers.ts';

/** An RFC 6901 JSON Pointer to a member (never the whole body): `/temperature`, `/options/seed`. */
const MemberPointer = (description: string) =>
  Str(1024, { minLength: 1, pattern: '^(/([^~]|~[01])*)+$', description });

export const CacheBodyFieldSchema = Type.Object(
  {
    path: MemberPointer(
      'RFC 6901 JSON Pointer into the JSON request body (`/temperature`; `~1` escapes `/`, `~0` escapes `~`); on an array a token is an index.',
    ),
    equals: Type.Unsafe<unknown>({
      'x-kubernetes-preserve-unknown-fields': true,
      description:
        'The JSON value the field must have (numbers compare by value: 0 equals 0.0). A missing field equals nothing: a request without `temperature` is not `temperature: 0`, since servers default it to 1.',
    }),
  },
  { additionalProperties: false, description: 'A field of the JSON request body that must have this value.' },
);

export const CacheHeaderConditionSchema = Type.Object(
  {
    name: HeaderName('Request header name, case-insensitive.'),
    value: Str(4096, { description: 'The exact value.' }),
  },
  { additionalProperties: false, description: 'A request header that must have this value.' },
);

export const CacheConditionSchema = Type.Object(
  {
    bodyFields: Type.Optional(
      List(CacheBodyFieldSchema, 8, {
        minItems: 1,
        description: 'All must hold. The body must be JSON (gzip, deflate and br bodies are decoded).',
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
    headers: Type.Optional(
      List(CacheHeaderConditionSchema, 8, {
        minItems: 1,
        description: 'All must hold.',
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Marks a request deterministic when every condition given holds: the same input to the same model revision gives the same answer.',
    ...cel({
      rule: 'has(self.bodyFields) || has(self.headers)',
      message: 'a cache condition needs bodyFields or headers',
    }),
  },
);

export const CacheRedisSchema = Type.Object(
  {
    secretRef: Type.Object(
      { name: ObjectName("Secret name, in the route's namespace.") },
      {
        additionalProperties: false,
        description:
          'A Secret with `url` (redis://host:port[/db] or rediss://), optional `username`, `password`, and `cluster` ("true" for Redis Cluster, the url being one seed node) — the shape a RateLimitPolicy uses.',
      },
    ),
    timeout: Duration(
      'Longest wait for Redis; a lookup that takes longer is a miss. Default 50ms, at most 5s.',
      { default: '50ms' },
    ),
  },
  { additionalProperties: false, description: 'The Redis that the proxies share answers through.' },
);

export const CacheCoalescingSchema = Type.Object(
  {
    maxWaiters: Type.Integer({
      minimum: 0,
      maximum: 100000,
      default: 1000,
      description:
        'Identical requests (per proxy) that wait for the one already on its way upstream instead of going themselves; more go upstream. 0 turns coalescing off. Default 1000.',
    }),
    maxWait: Duration(
      "Longest a request waits for that answer before it goes upstream itself. Default 60s, at most 10m (the first request is bounded by the rule's timeouts anyway).",
      { default: '60s' },
    ),
  },
  {
    additionalProperties: false,
    default: {},
    description:
      'Concurrent identical requests reach the backend once: the first goes upstream, the others wait for its answer. When that answer cannot be stored (an error, a stream, too large) or its client goes away, the waiters go upstream themselves.',
  },
);

export const CacheSchema = Type.Object(
  {
    ttl: Duration(
      "How long an answer is served. The answer's own Cache-Control max-age or s-maxage can only shorten it. Default 5m, at most 24h.",
      { default: '5m' },
    ),
    maxEntrySize: ByteSize('Largest answer stored; larger ones pass uncached. Default 1Mi, at most 64Mi.', {
      default: '1Mi',
    }),
    keyHeaders: Type.Optional(
      List(HeaderName('A request header name, case-insensitive.'), 16, {
        description:
          'Request headers (as sent upstream) that are part of the key, besides the method, host, path and query, the body, the model revision and the caller. Answers that Vary on another header are not stored.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    shared: Type.Boolean({
      default: false,
      description:
        'Answers do not depend on who asks: every caller shares them. Default false: the authenticated caller is part of the key (the route needs spec.auth), and requests with no caller, or the anonymous one, are not cached.',
    }),
    when: Type.Optional(
      List(CacheConditionSchema, 8, {
        minItems: 1,
        description:
          'Which requests are deterministic, so cacheable: any entry may hold. Unset: every request of the rule (a deterministic model, such as embeddings).',
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
    store: StringEnum(['Local', 'Redis'] as const, {
      default: 'Local',
      description:
        "Local: in each proxy's memory (bounded by the GatewayConfig cache.maxBytes, least recently used first out). Redis: shared by every proxy. Default Local.",
    }),
    redis: Type.Optional(CacheRedisSchema),
    coalescing: Type.Optional(CacheCoalescingSchema),
  },
  {
    additionalProperties: false,
    description:
      "Serve repeated deterministic requests from a cache keyed by the model revision of the backend chosen, so a new revision never serves an older one's answers. Only complete 200 answers that are not streamed; Cache-Control is honoured. Runs after authentication, validation, rate limiting (a hit still counts) and transforms.",
    ...cel({
      rule: "(self.store == 'Redis') == has(self.redis)",
      message: 'redis is required with store Redis and allowed only with it',
      fieldPath: '.redis',
    }),
  },
);

export type Cache = Static<typeof CacheSchema>;
export type CacheCondition = Static<typeof CacheConditionSchema>;
