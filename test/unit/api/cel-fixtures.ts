/**
 * One entry per CEL rule in the spec schemas: resources that pass it and resources that break it
 * (and nothing else), with the error admission must report. cel-rules.test.ts runs them through
 * `admitCustomResource` and fails when a rule has no entry here, so a new rule needs fixtures.
 *
 * Resources are whole and minimal; the invalid ones differ from a valid one only where the rule
 * looks, and several rely on defaulting (an unset path type is PathPrefix, an unset algorithm is
 * TokenBucket), which runs before the rules as in the API server.
 */
import { API_VERSION, type CustomResource } from '../../../src/api/resources.ts';
import { CACHE_CEL_FIXTURES } from './cache-cel-fixtures.ts';
import { TRANSLATION_CEL_FIXTURES } from './translation-cel-fixtures.ts';

type Json = Record<string, unknown>;

export interface InvalidCase {
  /** Why this case breaks the rule, when it is not obvious. */
  note?: string;
  resource: Json;
  /** The one error admission must report: path (with indexes) and the rule's message. */
  path: string;
  message: string;
}

export interface CelFixture {
  kind: CustomResource['kind'];
  /** The rule, named by its message (or its rule text when messages collide). */
  rule: string;
  /** Resources that reach the rule and pass it. */
  valid: Json[];
  invalid: InvalidCase[];
}

const meta = { name: 'chat', namespace: 'ai' };

// ModelRoute

const service = { name: 'vllm', port: 8000 };
const backend = (name: string, extra: Json = {}): Json => ({ name, service, ...extra });
const rule = (extra: Json = {}): Json => ({ backends: [backend('stable')], ...extra });
const modelRoute = (...rules: Json[]): Json => ({
  apiVersion: API_VERSION,
  kind: 'ModelRoute',
  metadata: meta,
  spec: { hostnames: ['llm.example.com'], rules },
});
const pathMatch = (path: Json): Json => rule({ matches: [{ path }] });
const backends = (...list: Json[]): Json => modelRoute(rule({ backends: list }));
const loadBalancing = (lb: Json): Json => modelRoute(rule({ loadBalancing: lb }));
const secured = (spec: Json, ...rules: Json[]): Json => {
  const r = modelRoute(...(rules.length > 0 ? rules : [rule()]));
  return { ...r, spec: { ...(r.spec as Json), ...spec } };
};
const jwtProvider = (extra: Json = {}): Json => ({
  name: 'idp',
  issuer: 'https://idp.example.com',
  jwksUri: 'https://idp.example.com/jwks.json',
  ...extra,
});
const keysAuth = { apiKeys: { secretRefs: [{ name: 'team-a' }] } };
const transformed = (transform: Json, extra: Json = {}): Json => modelRoute(rule({ transform, ...extra }));
const pathRewrite = (path: Json, extra: Json = {}): Json =>
  transformed({ request: { urlRewrite: { path } } }, extra);
const bodyOps = (direction: 'request' | 'response', ...ops: Json[]): Json =>
  transformed({ [direction]: { body: ops } });
const composed = (composition: Json, extra: Json = {}): Json =>
  modelRoute(rule({ backends: [backend('tok'), backend('llm')], composition, ...extra }));
const step = (name: string, backendName = 'tok', extra: Json = {}): Json => ({
  name,
  backend: backendName,
  ...extra,
});
const pipeline = (...steps: Json[]): Json => ({ pipeline: { steps } });
const fanOut = (...branches: Json[]): Json => ({ fanOut: { branches } });

/** The five rules of a JSON body operation, once per direction (each location has its own messages). */
function bodyOpFixtures(direction: 'request' | 'response'): CelFixture[] {
  const at = `spec.rules[0].transform.${direction}.body`;
  const ops = (...list: Json[]) => bodyOps(direction, ...list);
  const fixture = (message: string, valid: Json[][], invalid: [Json, string, string?][]): CelFixture => ({
    kind: 'ModelRoute',
    rule: `${direction} body: ${message}`,
    valid: valid.map((list) => ops(...list)),
    invalid: invalid.map(([op, field, note]) => ({
      ...(note ? { note } : {}),
      resource: ops({ op: 'Remove', path: '/ok' }, op),
      path: `${at}[1]${field}`,
      message: `${direction} body: ${message}`,
    })),
  });
  return [
    fixture(
      'from is required with op Rename and allowed only with it',
      [[{ op: 'Rename', from: '/max_tokens', path: '/max_completion_tokens' }]],
      [
        [{ op: 'Rename', path: '/b' }, '.from'],
        [{ op: 'Remove', path: '/a', from: '/b' }, '.from'],
      ],
    ),
    fixture(
      'value is required with op Set and allowed only with it',
      [
        [
          { op: 'Set', path: '/stream', value: false },
          { op: 'Set', path: '/meta/tags/-', value: { a: [1] } },
        ],
      ],
      [
        [{ op: 'Set', path: '/a' }, '.value'],
        [{ op: 'Unwrap', path: '/a', value: 1 }, '.value'],
      ],
    ),
    fixture(
      'under is required with op Wrap and allowed only with it',
      [[{ op: 'Wrap', path: '', under: 'input' }]],
      [
        [{ op: 'Wrap', path: '/a' }, '.under'],
        [{ op: 'Set', path: '/a', value: 1, under: 'x' }, '.under'],
      ],
    ),
    fixture(
      'path "" (the whole body) is allowed only with op Set or Wrap',
      [
        [
          { op: 'Set', path: '', value: {} },
          { op: 'Wrap', path: '', under: 'data' },
          { op: 'Unwrap', path: '/data' },
        ],
      ],
      [
        [{ op: 'Remove', path: '' }, '.path'],
        [{ op: 'Unwrap', path: '' }, '.path', 'the whole body has no parent to replace'],
      ],
    ),
    fixture(
      'from must not be the whole body, nor path, nor a parent of path',
      [
        [
          { op: 'Rename', from: '/a', path: '/ab' },
          { op: 'Rename', from: '/a~1b', path: '/c/0' },
        ],
      ],
      [
        [{ op: 'Rename', from: '/a', path: '/a/b' }, '.from'],
        [{ op: 'Rename', from: '', path: '/a' }, '.from'],
        [{ op: 'Rename', from: '/a', path: '/a' }, '.from'],
      ],
    ),
  ];
}

// RateLimitPolicy

const limit = (name: string, extra: Json = {}): Json => ({
  name,
  key: [{ type: 'Consumer' }],
  amount: 100,
  period: '1m',
  ...extra,
});
const policy = (spec: Json = {}): Json => ({
  apiVersion: API_VERSION,
  kind: 'RateLimitPolicy',
  metadata: { name: 'tiers', namespace: 'ai' },
  spec: { targetRefs: [{ name: 'chat' }], limits: [limit('per-consumer')], ...spec },
});
const keys = (...key: Json[]): Json => policy({ limits: [limit('per-key', { key })] });

// CanaryRollout

const rollout = (spec: Json = {}): Json => ({
  apiVersion: API_VERSION,
  kind: 'CanaryRollout',
  metadata: { name: 'chat-v2', namespace: 'ai' },
  spec: { routeRef: { name: 'chat' }, stableBackend: 'v1', canaryBackend: 'v2', ...spec },
});
const overrideHeader = (header: Json): Json => rollout({ override: { header } });

export const CEL_FIXTURES: CelFixture[] = [
  {
    kind: 'ModelRoute',
    rule: 'set secretRefs or secretSelector',
    valid: [
      secured({ auth: keysAuth }),
      secured({ auth: { apiKeys: { secretSelector: { matchLabels: { team: 'a' } } } } }),
    ],
    invalid: [
      {
        resource: secured({ auth: { apiKeys: { header: 'x-api-key' } } }),
        path: 'spec.auth.apiKeys',
        message: 'set secretRefs or secretSelector',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'exactly one of jwksUri or jwksSecretRef must be set',
    valid: [
      secured({ auth: { jwt: [jwtProvider()] } }),
      secured({
        auth: {
          jwt: [jwtProvider({ jwksUri: undefined, jwksSecretRef: { name: 'jwks', key: 'jwks.json' } })],
        },
      }),
    ],
    invalid: [
      {
        resource: secured({
          auth: { jwt: [jwtProvider({ jwksSecretRef: { name: 'jwks', key: 'jwks.json' } })] },
        }),
        path: 'spec.auth.jwt[0]',
        message: 'exactly one of jwksUri or jwksSecretRef must be set',
      },
      {
        resource: secured({ auth: { jwt: [jwtProvider({ jwksUri: undefined })] } }),
        path: 'spec.auth.jwt[0]',
        message: 'exactly one of jwksUri or jwksSecretRef must be set',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'provider names must be unique',
    valid: [secured({ auth: { jwt: [jwtProvider(), jwtProvider({ name: 'other' })] } })],
    invalid: [
      {
        resource: secured({
          auth: { jwt: [jwtProvider(), jwtProvider({ issuer: 'https://b.example.com' })] },
        }),
        path: 'spec.auth.jwt',
        message: 'provider names must be unique',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'set at least one of apiKeys, jwt or introspection (or anonymous)',
    valid: [secured({ auth: keysAuth }), secured({ auth: { anonymous: true } })],
    invalid: [
      {
        resource: secured({ auth: {} }),
        path: 'spec.auth',
        message: 'set at least one of apiKeys, jwt or introspection (or anonymous)',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'allowCredentials cannot be combined with the origin *',
    valid: [
      secured({ cors: { allowOrigins: ['*'] } }),
      secured({ cors: { allowOrigins: ['https://app.example.com'], allowCredentials: true } }),
    ],
    invalid: [
      {
        resource: secured({
          cors: { allowOrigins: ['https://app.example.com', '*'], allowCredentials: true },
        }),
        path: 'spec.cors',
        message: 'allowCredentials cannot be combined with the origin *',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'rules[].authorization needs spec.auth',
    valid: [secured({ auth: keysAuth }, rule({ authorization: { groups: ['gold'] } })), secured({})],
    invalid: [
      {
        resource: secured({}, rule(), rule({ name: 'admin', authorization: { groups: ['gold'] } })),
        path: 'spec.auth',
        message: 'rules[].authorization needs spec.auth',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'rule names must be unique',
    valid: [
      modelRoute(rule({ name: 'chat' }), rule({ name: 'embeddings' }), rule(), rule()),
      modelRoute(rule(), rule()),
    ],
    invalid: [
      {
        resource: modelRoute(rule({ name: 'chat' }), rule(), rule({ name: 'chat' })),
        path: 'spec.rules',
        message: 'rule names must be unique',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'an Exact or PathPrefix path must start with /',
    valid: [
      modelRoute(
        pathMatch({ type: 'Exact', value: '/v1/chat/completions' }),
        pathMatch({ type: 'PathPrefix', value: '/v1' }),
        pathMatch({ type: 'RegularExpression', value: '^/v[0-9]+/.*' }),
        pathMatch({}),
      ),
    ],
    invalid: [
      {
        resource: modelRoute(pathMatch({ type: 'Exact', value: 'v1/chat/completions' })),
        path: 'spec.rules[0].matches[0].path.value',
        message: 'an Exact or PathPrefix path must start with /',
      },
      {
        note: 'the type defaults to PathPrefix before the rule runs',
        resource: modelRoute(rule(), pathMatch({ value: 'v1' })),
        path: 'spec.rules[1].matches[0].path.value',
        message: 'an Exact or PathPrefix path must start with /',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'backend names must be unique',
    valid: [backends(backend('stable'), backend('canary'))],
    invalid: [
      {
        resource: backends(backend('stable'), backend('canary'), backend('stable', { weight: 5 })),
        path: 'spec.rules[0].backends',
        message: 'backend names must be unique',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'at least one backend must have a non-zero weight',
    valid: [
      backends(backend('stable', { weight: 0 }), backend('canary')),
      backends(backend('stable', { weight: 1000000 })),
    ],
    invalid: [
      {
        resource: backends(backend('stable', { weight: 0 }), backend('canary', { weight: 0 })),
        path: 'spec.rules[0].backends',
        message: 'at least one backend must have a non-zero weight',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'fallbackBackend must name a backend of this rule',
    valid: [
      modelRoute(
        rule({ backends: [backend('big'), backend('small', { weight: 0 })], fallbackBackend: 'small' }),
      ),
      modelRoute(rule()),
    ],
    invalid: [
      {
        resource: modelRoute(rule({ fallbackBackend: 'missing' })),
        path: 'spec.rules[0].fallbackBackend',
        message: 'fallbackBackend must name a backend of this rule',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'tls applies to https:// URLs only',
    valid: [
      backends({ name: 'hosted', urls: ['https://api.example.com'], tls: { serverName: 'api.example.com' } }),
      backends(backend('in-cluster', { tls: { caSecretRef: { name: 'ca' } } })),
    ],
    invalid: [
      {
        resource: backends({
          name: 'plain',
          urls: ['https://a.example.com', 'http://b.example.com'],
          tls: {},
        }),
        path: 'spec.rules[0].backends[0].tls',
        message: 'tls applies to https:// URLs only',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'exactly one of service or urls must be set',
    valid: [
      backends(backend('in-cluster'), { name: 'external', urls: ['https://api.example.com'] }),
      backends({ name: 'static', urls: ['http://10.0.0.1:8000', 'http://10.0.0.2:8000/'] }),
    ],
    invalid: [
      {
        resource: backends(backend('stable'), backend('both', { urls: ['http://10.0.0.1:8000'] })),
        path: 'spec.rules[0].backends[1]',
        message: 'exactly one of service or urls must be set',
      },
      {
        resource: backends({ name: 'neither' }),
        path: 'spec.rules[0].backends[0]',
        message: 'exactly one of service or urls must be set',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'consistentHash is required with algorithm ConsistentHash and allowed only with it',
    valid: [
      loadBalancing({ algorithm: 'ConsistentHash', consistentHash: { header: 'x-session-id' } }),
      loadBalancing({ algorithm: 'PeakEWMA' }),
      loadBalancing({}),
    ],
    invalid: [
      {
        resource: loadBalancing({ algorithm: 'ConsistentHash' }),
        path: 'spec.rules[0].loadBalancing',
        message: 'consistentHash is required with algorithm ConsistentHash and allowed only with it',
      },
      {
        note: 'the algorithm defaults to LeastRequest',
        resource: loadBalancing({ consistentHash: { cookie: 'session' } }),
        path: 'spec.rules[0].loadBalancing',
        message: 'consistentHash is required with algorithm ConsistentHash and allowed only with it',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'exactly one of header, cookie or consumer must be set',
    valid: [
      loadBalancing({ algorithm: 'ConsistentHash', consistentHash: { header: 'x-session-id' } }),
      loadBalancing({ algorithm: 'ConsistentHash', consistentHash: { cookie: 'session' } }),
      loadBalancing({ algorithm: 'ConsistentHash', consistentHash: { consumer: true } }),
    ],
    invalid: [
      {
        resource: loadBalancing({
          algorithm: 'ConsistentHash',
          consistentHash: { header: 'x-session-id', cookie: 'session' },
        }),
        path: 'spec.rules[0].loadBalancing.consistentHash',
        message: 'exactly one of header, cookie or consumer must be set',
      },
      {
        resource: loadBalancing({ algorithm: 'ConsistentHash', consistentHash: {} }),
        path: 'spec.rules[0].loadBalancing.consistentHash',
        message: 'exactly one of header, cookie or consumer must be set',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'urlRewrite.path ReplacePrefixMatch needs the rule to have one match, with a PathPrefix path (or none)',
    valid: [
      pathRewrite(
        { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
        { matches: [{ path: { type: 'PathPrefix', value: '/v1' } }] },
      ),
      pathRewrite({ type: 'ReplacePrefixMatch', replacePrefixMatch: '' }),
      pathRewrite(
        { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2/' },
        { matches: [{ method: 'POST' }] },
      ),
      pathRewrite(
        { type: 'ReplaceFullPath', replaceFullPath: '/v2/chat' },
        { matches: [{ path: { type: 'Exact', value: '/a' } }, { path: { value: '/b' } }] },
      ),
    ],
    invalid: [
      {
        resource: pathRewrite(
          { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
          { matches: [{ path: { type: 'Exact', value: '/v1' } }] },
        ),
        path: 'spec.rules[0].transform',
        message:
          'urlRewrite.path ReplacePrefixMatch needs the rule to have one match, with a PathPrefix path (or none)',
      },
      {
        note: 'with two prefixes the one to replace is not known',
        resource: pathRewrite(
          { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' },
          { matches: [{ path: { value: '/v1' } }, { path: { value: '/beta' } }] },
        ),
        path: 'spec.rules[0].transform',
        message:
          'urlRewrite.path ReplacePrefixMatch needs the rule to have one match, with a PathPrefix path (or none)',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'request headers: hop-by-hop headers, content-length and host cannot be modified (the Host header is set by urlRewrite.hostname)',
    valid: [
      transformed({
        request: {
          headers: {
            set: [{ name: 'X-Tenant', value: 'acme' }],
            add: [{ name: 'x-tag', value: 'a' }],
            remove: ['x-debug', 'authorization'],
          },
        },
      }),
    ],
    invalid: [
      ['set', { set: [{ name: 'Host', value: 'other.example.com' }] }],
      ['remove', { remove: ['x-debug', 'Connection'] }],
      ['add', { add: [{ name: 'content-length', value: '0' }] }],
    ].map(([, headers]) => ({
      resource: transformed({ request: { headers } }),
      path: 'spec.rules[0].transform.request.headers',
      message:
        'request headers: hop-by-hop headers, content-length and host cannot be modified (the Host header is set by urlRewrite.hostname)',
    })),
  },
  {
    kind: 'ModelRoute',
    rule: 'response headers: hop-by-hop headers and content-length cannot be modified',
    valid: [
      transformed({
        response: { headers: { remove: ['server'], set: [{ name: 'cache-control', value: 'no-store' }] } },
      }),
    ],
    invalid: [
      {
        resource: transformed({ response: { headers: { remove: ['Transfer-Encoding'] } } }),
        path: 'spec.rules[0].transform.response.headers',
        message: 'response headers: hop-by-hop headers and content-length cannot be modified',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'replaceFullPath is required with type ReplaceFullPath and allowed only with it',
    valid: [pathRewrite({ type: 'ReplaceFullPath', replaceFullPath: '/v2/chat' })],
    invalid: [
      {
        resource: pathRewrite({ type: 'ReplaceFullPath' }),
        path: 'spec.rules[0].transform.request.urlRewrite.path.replaceFullPath',
        message: 'replaceFullPath is required with type ReplaceFullPath and allowed only with it',
      },
      {
        resource: pathRewrite({
          type: 'ReplaceRegexMatch',
          replaceRegexMatch: { pattern: '^/v1', substitution: '/v2' },
          replaceFullPath: '/x',
        }),
        path: 'spec.rules[0].transform.request.urlRewrite.path.replaceFullPath',
        message: 'replaceFullPath is required with type ReplaceFullPath and allowed only with it',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'replacePrefixMatch is required with type ReplacePrefixMatch and allowed only with it',
    valid: [pathRewrite({ type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' })],
    invalid: [
      {
        resource: pathRewrite({ type: 'ReplacePrefixMatch' }),
        path: 'spec.rules[0].transform.request.urlRewrite.path.replacePrefixMatch',
        message: 'replacePrefixMatch is required with type ReplacePrefixMatch and allowed only with it',
      },
      {
        resource: pathRewrite({ type: 'ReplaceFullPath', replaceFullPath: '/x', replacePrefixMatch: '/y' }),
        path: 'spec.rules[0].transform.request.urlRewrite.path.replacePrefixMatch',
        message: 'replacePrefixMatch is required with type ReplacePrefixMatch and allowed only with it',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'replaceRegexMatch is required with type ReplaceRegexMatch and allowed only with it',
    valid: [
      pathRewrite({
        type: 'ReplaceRegexMatch',
        replaceRegexMatch: { pattern: '^/models/([^/]+)/infer$', substitution: '/v2/models/\\1/infer' },
      }),
    ],
    invalid: [
      {
        resource: pathRewrite({ type: 'ReplaceRegexMatch' }),
        path: 'spec.rules[0].transform.request.urlRewrite.path.replaceRegexMatch',
        message: 'replaceRegexMatch is required with type ReplaceRegexMatch and allowed only with it',
      },
    ],
  },
  ...bodyOpFixtures('request'),
  ...bodyOpFixtures('response'),
  {
    kind: 'ModelRoute',
    rule: 'set exactly one of pipeline or fanOut',
    valid: [composed(pipeline(step('a'))), composed(fanOut(step('a')))],
    invalid: [
      {
        resource: composed({}),
        path: 'spec.rules[0].composition',
        message: 'set exactly one of pipeline or fanOut',
      },
      {
        resource: composed({ ...pipeline(step('a')), ...fanOut(step('b')) }),
        path: 'spec.rules[0].composition',
        message: 'set exactly one of pipeline or fanOut',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'step names must be unique',
    valid: [composed(pipeline(step('a'), step('b', 'llm'), step('c')))],
    invalid: [
      {
        resource: composed(pipeline(step('a'), step('a', 'llm'))),
        path: 'spec.rules[0].composition.pipeline.steps',
        message: 'step names must be unique',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'branch names must be unique',
    valid: [composed(fanOut(step('a'), step('b'), step('c', 'llm')))],
    invalid: [
      {
        resource: composed(fanOut(step('a'), step('b'), step('b', 'llm'))),
        path: 'spec.rules[0].composition.fanOut.branches',
        message: 'branch names must be unique',
      },
    ],
  },
  ...(['step', 'branch'] as const).map(
    (what): CelFixture => ({
      kind: 'ModelRoute',
      rule: `${what} request: set exactly one of from or value`,
      valid: [
        composed(
          (what === 'step' ? pipeline : fanOut)(
            step('a', 'tok', {
              request: [
                { from: '$request/text', to: '/input' },
                { value: { top_k: 1 }, to: '/options' },
              ],
            }),
          ),
        ),
      ],
      invalid: [
        [{ to: '/input' }, 'neither'],
        [{ from: '/a', value: 1, to: '/input' }, 'both'],
      ].map(([mapping, note]) => ({
        note: note as string,
        resource: composed(
          (what === 'step' ? pipeline : fanOut)(
            step('a', 'tok', { request: [{ from: '/ok', to: '/ok' }, mapping] }),
          ),
        ),
        path: `spec.rules[0].composition.${what === 'step' ? 'pipeline.steps' : 'fanOut.branches'}[0].request[1]`,
        message: `${what} request: set exactly one of from or value`,
      })),
    }),
  ),
  {
    kind: 'ModelRoute',
    rule: 'composition steps and branches must name backends of this rule',
    valid: [composed(pipeline(step('a', 'tok'), step('b', 'llm'))), composed(fanOut(step('a', 'llm')))],
    invalid: [
      {
        resource: composed(pipeline(step('a', 'tok'), step('b', 'gpt'))),
        path: 'spec.rules[0].composition',
        message: 'composition steps and branches must name backends of this rule',
      },
      {
        resource: composed(fanOut(step('a', 'gpt'))),
        path: 'spec.rules[0].composition',
        message: 'composition steps and branches must name backends of this rule',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'fallbackBackend does not apply to a composed rule (each step names its backend)',
    valid: [
      modelRoute(
        rule({ backends: [backend('big'), backend('small', { weight: 0 })], fallbackBackend: 'small' }),
      ),
    ],
    invalid: [
      {
        resource: composed(pipeline(step('a')), { fallbackBackend: 'llm' }),
        path: 'spec.rules[0].fallbackBackend',
        message: 'fallbackBackend does not apply to a composed rule (each step names its backend)',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'limit names must be unique',
    valid: [policy({ limits: [limit('per-consumer'), limit('per-ip', { key: [{ type: 'ClientIP' }] })] })],
    invalid: [
      {
        resource: policy({ limits: [limit('per-consumer'), limit('per-consumer', { amount: 5 })] }),
        path: 'spec.limits',
        message: 'limit names must be unique',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'burst applies only to TokenBucket',
    valid: [
      policy({ limits: [limit('bucket', { burst: 50 })] }),
      policy({ limits: [limit('window', { algorithm: 'SlidingWindow' })] }),
    ],
    invalid: [
      {
        resource: policy({ limits: [limit('ok'), limit('window', { algorithm: 'FixedWindow', burst: 50 })] }),
        path: 'spec.limits[1]',
        message: 'burst applies only to TokenBucket',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'name is required for Claim and Header keys and not allowed for others',
    valid: [
      keys({ type: 'Claim', name: 'tenant' }, { type: 'Header', name: 'x-team' }, { type: 'Model' }),
      keys({ type: 'Route' }),
    ],
    invalid: [
      {
        resource: keys({ type: 'Model' }, { type: 'Claim' }),
        path: 'spec.limits[0].key[1]',
        message: 'name is required for Claim and Header keys and not allowed for others',
      },
      {
        resource: keys({ type: 'ClientIP', name: 'x-forwarded-for' }),
        path: 'spec.limits[0].key[0]',
        message: 'name is required for Claim and Header keys and not allowed for others',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'maxQueue and maxWait are required with action Queue and allowed only with it',
    valid: [
      policy({ onExceeded: { action: 'Queue', maxQueue: 100, maxWait: '10s' } }),
      policy({ onExceeded: { action: 'Reject' } }),
      policy({ onExceeded: {} }),
    ],
    invalid: [
      {
        resource: policy({ onExceeded: { action: 'Queue', maxQueue: 100 } }),
        path: 'spec.onExceeded',
        message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
      },
      {
        resource: policy({ onExceeded: { action: 'Queue', maxWait: '10s' } }),
        path: 'spec.onExceeded',
        message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
      },
      {
        note: 'the action defaults to Reject',
        resource: policy({ onExceeded: { maxWait: '10s' } }),
        path: 'spec.onExceeded',
        message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
      },
      {
        resource: policy({ onExceeded: { action: 'Reject', maxQueue: 100 } }),
        path: 'spec.onExceeded',
        message: 'maxQueue and maxWait are required with action Queue and allowed only with it',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'completionTokensEstimate applies only to cost ModelTokens',
    valid: [policy({ limits: [limit('tokens', { cost: 'ModelTokens', completionTokensEstimate: 512 })] })],
    invalid: [
      {
        resource: policy({ limits: [limit('requests', { completionTokensEstimate: 512 })] }),
        path: 'spec.limits[0]',
        message: 'completionTokensEstimate applies only to cost ModelTokens',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'priorities apply only to action Queue',
    valid: [
      policy({
        onExceeded: { action: 'Queue', maxQueue: 10, maxWait: '1s', priorities: [{ group: 'gold' }] },
      }),
    ],
    invalid: [
      {
        resource: policy({ onExceeded: { priorities: [{ group: 'gold' }] } }),
        path: 'spec.onExceeded',
        message: 'priorities apply only to action Queue',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'set exactly one of group or header',
    valid: [
      policy({
        onExceeded: {
          action: 'Queue',
          maxQueue: 10,
          maxWait: '1s',
          priorities: [{ group: 'gold' }, { header: { name: 'x-priority', value: 'high' } }],
        },
      }),
    ],
    invalid: [
      {
        resource: policy({
          onExceeded: {
            action: 'Queue',
            maxQueue: 10,
            maxWait: '1s',
            priorities: [{ group: 'gold', header: { name: 'x-priority', value: 'high' } }],
          },
        }),
        path: 'spec.onExceeded.priorities[0]',
        message: 'set exactly one of group or header',
      },
      {
        resource: policy({ onExceeded: { action: 'Queue', maxQueue: 10, maxWait: '1s', priorities: [{}] } }),
        path: 'spec.onExceeded.priorities[0]',
        message: 'set exactly one of group or header',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'redis is required with scope Global and allowed only with it',
    valid: [policy({ scope: 'Global', redis: { secretRef: { name: 'redis' } } }), policy()],
    invalid: [
      {
        resource: policy({ scope: 'Global' }),
        path: 'spec',
        message: 'redis is required with scope Global and allowed only with it',
      },
      {
        note: 'the scope defaults to Local',
        resource: policy({ redis: { secretRef: { name: 'redis' } } }),
        path: 'spec',
        message: 'redis is required with scope Global and allowed only with it',
      },
    ],
  },
  {
    kind: 'RateLimitPolicy',
    rule: 'splitAcrossProxies applies only to scope Local',
    valid: [
      policy({ splitAcrossProxies: true }),
      policy({ scope: 'Global', redis: { secretRef: { name: 'r' } }, splitAcrossProxies: false }),
    ],
    invalid: [
      {
        resource: policy({ scope: 'Global', redis: { secretRef: { name: 'r' } }, splitAcrossProxies: true }),
        path: 'spec',
        message: 'splitAcrossProxies applies only to scope Local',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'BlueGreen needs a preview (hostname or header)',
    valid: [rollout({ strategy: 'BlueGreen', preview: { hostname: 'preview.example.com' } })],
    invalid: [
      {
        resource: rollout({ strategy: 'BlueGreen' }),
        path: 'spec',
        message: 'BlueGreen needs a preview (hostname or header)',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'BlueGreen switches all at once: weights are 0 or 100',
    valid: [
      rollout({
        strategy: 'BlueGreen',
        preview: { header: { name: 'x-preview', value: '1' } },
        steps: [{ pause: {} }, { setWeight: 100 }],
      }),
      rollout({ weight: 30, steps: [{ setWeight: 30 }] }),
    ],
    invalid: [
      {
        resource: rollout({ strategy: 'BlueGreen', preview: { hostname: 'p.example.com' }, weight: 50 }),
        path: 'spec',
        message: 'BlueGreen switches all at once: weights are 0 or 100',
      },
      {
        resource: rollout({
          strategy: 'BlueGreen',
          preview: { hostname: 'p.example.com' },
          steps: [{ setWeight: 20 }],
        }),
        path: 'spec',
        message: 'BlueGreen switches all at once: weights are 0 or 100',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'set exactly one of hostname or header',
    valid: [rollout({ preview: { header: { name: 'x-preview', value: 'yes' } } })],
    invalid: [
      {
        resource: rollout({ preview: {} }),
        path: 'spec.preview',
        message: 'set exactly one of hostname or header',
      },
      {
        resource: rollout({
          preview: { hostname: 'p.example.com', header: { name: 'x-preview', value: 'yes' } },
        }),
        path: 'spec.preview',
        message: 'set exactly one of hostname or header',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'stableBackend and canaryBackend must differ',
    valid: [rollout()],
    invalid: [
      {
        resource: rollout({ canaryBackend: 'v1' }),
        path: 'spec',
        message: 'stableBackend and canaryBackend must differ',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'each step sets exactly one of setWeight, pause or analysis',
    valid: [
      rollout({
        steps: [
          { setWeight: 10 },
          { pause: { duration: '10m' } },
          { analysis: { maxErrorRate: 0.01, maxLatencyP99Ratio: 1.5 } },
          { setWeight: 0 },
          { pause: {} },
        ],
      }),
    ],
    invalid: [
      {
        resource: rollout({ steps: [{ setWeight: 10 }, { setWeight: 50, pause: {} }] }),
        path: 'spec.steps[1]',
        message: 'each step sets exactly one of setWeight, pause or analysis',
      },
      {
        resource: rollout({ steps: [{}] }),
        path: 'spec.steps[0]',
        message: 'each step sets exactly one of setWeight, pause or analysis',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'set exactly one of header, cookie or consumer',
    valid: [
      rollout({ stickiness: { header: 'x-user-id' } }),
      rollout({ stickiness: { cookie: 'session' } }),
      rollout({ stickiness: { consumer: true } }),
      rollout({ stickiness: { cookie: 'session', consumer: false } }),
    ],
    invalid: [
      {
        resource: rollout({ stickiness: { header: 'x-user-id', cookie: 'session' } }),
        path: 'spec.stickiness',
        message: 'set exactly one of header, cookie or consumer',
      },
      {
        note: 'consumer: false does not count as set',
        resource: rollout({ stickiness: { consumer: false } }),
        path: 'spec.stickiness',
        message: 'set exactly one of header, cookie or consumer',
      },
      {
        resource: rollout({ stickiness: {} }),
        path: 'spec.stickiness',
        message: 'set exactly one of header, cookie or consumer',
      },
    ],
  },
  {
    kind: 'CanaryRollout',
    rule: 'set always or never (or both, with different values)',
    valid: [
      overrideHeader({ name: 'x-canary', always: 'true' }),
      overrideHeader({ name: 'x-canary', never: 'false' }),
      overrideHeader({ name: 'x-canary', always: 'yes', never: 'no' }),
    ],
    invalid: [
      {
        resource: overrideHeader({ name: 'x-canary' }),
        path: 'spec.override.header',
        message: 'set always or never (or both, with different values)',
      },
      {
        resource: overrideHeader({ name: 'x-canary', always: '1', never: '1' }),
        path: 'spec.override.header',
        message: 'set always or never (or both, with different values)',
      },
    ],
  },
  ...CACHE_CEL_FIXTURES,
  ...TRANSLATION_CEL_FIXTURES,
];
