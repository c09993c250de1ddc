/**
 * CEL fixtures of the response cache's rules (src/api/cache.ts and the spec-level rule that ties
 * `cache` to `auth`), kept apart from cel-fixtures.ts, which spreads them into CEL_FIXTURES.
 */
import { API_VERSION } from '../../../src/api/resources.ts';
import type { CelFixture } from './cel-fixtures.ts';

type Json = Record<string, unknown>;

const route = (cache: Json, spec: Json = {}): Json => ({
  apiVersion: API_VERSION,
  kind: 'ModelRoute',
  metadata: { name: 'chat', namespace: 'ai' },
  spec: {
    rules: [{ backends: [{ name: 'stable', service: { name: 'vllm', port: 8000 } }], cache }],
    ...spec,
  },
});
const auth = { auth: { apiKeys: { secretRefs: [{ name: 'team-a' }] } } };

export const CACHE_CEL_FIXTURES: CelFixture[] = [
  {
    kind: 'ModelRoute',
    rule: 'a cache condition needs bodyFields or headers',
    valid: [
      route({ shared: true, when: [{ bodyFields: [{ path: '/temperature', equals: 0 }] }] }),
      route({ shared: true, when: [{ headers: [{ name: 'x-deterministic', value: 'true' }] }] }),
    ],
    invalid: [
      {
        resource: route({ shared: true, when: [{}] }),
        path: 'spec.rules[0].cache.when[0]',
        message: 'a cache condition needs bodyFields or headers',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'redis is required with store Redis and allowed only with it',
    valid: [
      route({ shared: true, store: 'Redis', redis: { secretRef: { name: 'cache-redis' } } }),
      route({ shared: true }),
    ],
    invalid: [
      {
        resource: route({ shared: true, store: 'Redis' }),
        path: 'spec.rules[0].cache.redis',
        message: 'redis is required with store Redis and allowed only with it',
      },
      {
        note: 'store defaults to Local',
        resource: route({ shared: true, redis: { secretRef: { name: 'cache-redis' } } }),
        path: 'spec.rules[0].cache.redis',
        message: 'redis is required with store Redis and allowed only with it',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'rules[].cache needs spec.auth (the caller is part of the key) unless cache.shared is true',
    valid: [route({}, auth), route({ shared: true }), route({ shared: false }, auth)],
    invalid: [
      {
        note: 'shared defaults to false',
        resource: route({}),
        path: 'spec.auth',
        message: 'rules[].cache needs spec.auth (the caller is part of the key) unless cache.shared is true',
      },
    ],
  },
];
