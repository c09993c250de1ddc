/**
 * `admitCustomResource`: schema errors as precise `path: message` pairs, defaults applied as the
 * API server applies them, and the caller's object left alone.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { API_VERSION } from '../../../src/api/resources.ts';
import { admitCustomResource, type FieldError } from '../../../src/api/validate.ts';

type Json = Record<string, unknown>;

const modelRoute = (spec: Json, metadata: Json = { name: 'chat', namespace: 'ai' }): Json => ({
  apiVersion: API_VERSION,
  kind: 'ModelRoute',
  metadata,
  spec,
});
const backend = (extra: Json = {}): Json => ({
  name: 'stable',
  service: { name: 'vllm', port: 8000 },
  ...extra,
});
const withRule = (rule: Json): Json => modelRoute({ rules: [{ backends: [backend()], ...rule }] });
const withBackend = (extra: Json): Json => withRule({ backends: [backend(extra)] });

function errorsOf(raw: unknown): FieldError[] {
  const result = admitCustomResource(raw);
  assert.equal(result.ok, false, 'expected the resource to be refused');
  return result.ok ? [] : result.errors;
}

function admitted(raw: unknown): Json {
  const result = admitCustomResource(raw);
  assert.ok(result.ok, `expected admission, got ${JSON.stringify(!result.ok && result.errors)}`);
  return result.resource as unknown as Json;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('schema errors', () => {
  const cases: [string, unknown, FieldError[]][] = [
    [
      'unknown field in spec',
      modelRoute({ rules: [{ backends: [backend()] }], hostname: 'llm.example.com' }),
      [{ path: 'spec.hostname', message: 'unknown field' }],
    ],
    [
      'unknown field deep in a list',
      withBackend({ weigth: 2 }),
      [{ path: 'spec.rules[0].backends[0].weigth', message: 'unknown field' }],
    ],
    [
      'missing required field',
      modelRoute({ rules: [{ name: 'chat' }] }),
      [{ path: 'spec.rules[0].backends', message: 'required field is missing' }],
    ],
    [
      'missing required field in a nested object',
      withBackend({ service: { name: 'vllm' } }),
      [{ path: 'spec.rules[0].backends[0].service.port', message: 'required field is missing' }],
    ],
    [
      'missing spec',
      { apiVersion: API_VERSION, kind: 'ModelRoute', metadata: { name: 'chat' } },
      [{ path: 'spec', message: 'required field is missing' }],
    ],
    [
      'enum',
      withRule({ loadBalancing: { algorithm: 'Random' } }),
      [
        {
          path: 'spec.rules[0].loadBalancing.algorithm',
          message: 'must be one of: RoundRobin, LeastRequest, PeakEWMA, ConsistentHash',
        },
      ],
    ],
    [
      'bad duration',
      withRule({ timeouts: { connect: '5 seconds' } }),
      [
        {
          path: 'spec.rules[0].timeouts.connect',
          message: 'must be a duration such as 500ms, 2s, 5m or 1h30m',
        },
      ],
    ],
    [
      'bad byte size',
      modelRoute({ rules: [{ backends: [backend()] }], maxRequestBodySize: '64MB' }),
      [{ path: 'spec.maxRequestBodySize', message: 'must be a byte size such as 512Ki, 64Mi or 1048576' }],
    ],
    [
      'URL with a path',
      withBackend({ service: undefined, urls: ['http://10.0.0.1:8000', 'https://api.example.com/v1'] }),
      [
        {
          path: 'spec.rules[0].backends[0].urls[1]',
          message: 'must be an http:// or https:// origin without a path or credentials',
        },
      ],
    ],
    [
      'URL with credentials',
      withBackend({ service: undefined, urls: ['https://user:secret@api.example.com'] }),
      [
        {
          path: 'spec.rules[0].backends[0].urls[0]',
          message: 'must be an http:// or https:// origin without a path or credentials',
        },
      ],
    ],
    [
      'URL with another scheme',
      withBackend({ service: undefined, urls: ['ftp://files.example.com'] }),
      [
        {
          path: 'spec.rules[0].backends[0].urls[0]',
          message: 'must be an http:// or https:// origin without a path or credentials',
        },
      ],
    ],
    [
      'DNS label',
      withBackend({ name: 'Stable_V1' }),
      [{ path: 'spec.rules[0].backends[0].name', message: 'must be a lowercase DNS label (a-z, 0-9, -)' }],
    ],
    [
      'integer bounds',
      withBackend({ weight: -1 }),
      [{ path: 'spec.rules[0].backends[0].weight', message: 'must be >= 0' }],
    ],
    [
      'wrong type',
      withBackend({ service: { name: 'vllm', port: '8000' } }),
      [{ path: 'spec.rules[0].backends[0].service.port', message: 'must be integer' }],
    ],
    [
      'list bounds',
      modelRoute({ rules: [] }),
      [{ path: 'spec.rules', message: 'must NOT have fewer than 1 items' }],
    ],
    [
      'bad metadata.name',
      modelRoute({ rules: [{ backends: [backend()] }] }, { name: 'Chat_Route' }),
      [{ path: 'metadata.name', message: 'must be a lowercase DNS subdomain of at most 253 characters' }],
    ],
    [
      'metadata.name too long',
      modelRoute({ rules: [{ backends: [backend()] }] }, { name: 'a'.repeat(254) }),
      [{ path: 'metadata.name', message: 'must be a lowercase DNS subdomain of at most 253 characters' }],
    ],
    [
      'missing metadata.name',
      modelRoute({ rules: [{ backends: [backend()] }] }, { namespace: 'ai' }),
      [{ path: 'metadata.name', message: 'must be a lowercase DNS subdomain of at most 253 characters' }],
    ],
    [
      'bad metadata.namespace',
      modelRoute({ rules: [{ backends: [backend()] }] }, { name: 'chat', namespace: 'team.ai' }),
      [{ path: 'metadata.namespace', message: 'must be a lowercase DNS label of at most 63 characters' }],
    ],
    [
      'missing metadata',
      { apiVersion: API_VERSION, kind: 'ModelRoute', spec: { rules: [{ backends: [backend()] }] } },
      [{ path: 'metadata', message: 'required field is missing' }],
    ],
    [
      'wrong apiVersion',
      { ...withRule({}), apiVersion: 'modelgate.dev/v1' },
      [{ path: 'apiVersion', message: `must be ${API_VERSION}` }],
    ],
    [
      'unknown kind',
      { ...withRule({}), kind: 'Gateway' },
      [{ path: 'kind', message: 'unknown kind Gateway' }],
    ],
    ['not a mapping', ['ModelRoute'], [{ path: '', message: 'a resource must be a YAML mapping' }]],
    ['null', null, [{ path: '', message: 'a resource must be a YAML mapping' }]],
  ];

  for (const [name, raw, expected] of cases) {
    test(name, () => {
      assert.deepEqual(errorsOf(JSON.parse(JSON.stringify(raw))), expected);
    });
  }

  test('every error is reported at once, metadata and apiVersion included', () => {
    const raw = {
      apiVersion: 'v1',
      kind: 'ModelRoute',
      metadata: { name: 'Bad' },
      spec: { rules: [{ backends: [backend({ weight: 'heavy' })] }], color: 'blue' },
    };
    assert.deepEqual(errorsOf(raw), [
      { path: 'apiVersion', message: `must be ${API_VERSION}` },
      { path: 'metadata.name', message: 'must be a lowercase DNS subdomain of at most 253 characters' },
      { path: 'spec.color', message: 'unknown field' },
      { path: 'spec.rules[0].backends[0].weight', message: 'must be integer' },
    ]);
  });

  test('CEL rules run only on schema-valid input, as in the API server', () => {
    // Two backends named alike (a CEL rule) and an unknown field (the schema): only the latter.
    const raw = withRule({ backends: [backend(), backend({ bogus: true })] });
    assert.deepEqual(errorsOf(raw), [{ path: 'spec.rules[0].backends[1].bogus', message: 'unknown field' }]);
  });

  test('status is not admitted from files: only spec is checked', () => {
    assert.ok(admitCustomResource({ ...withRule({}), status: { anything: true } }).ok);
  });
});

describe('defaults', () => {
  test('ModelRoute: backend weight and protocol, path match, load balancing, timeouts, retries, body size', () => {
    const out = admitted(
      modelRoute({
        rules: [
          {
            matches: [{ path: {} }, { path: { type: 'Exact', value: '/v1/models' } }],
            backends: [backend()],
          },
        ],
      }),
    );
    const spec = out.spec as Json;
    assert.equal(spec.maxRequestBodySize, '64Mi');
    const [rule] = spec.rules as Json[];
    assert.ok(rule);
    assert.deepEqual(rule.backends, [
      { name: 'stable', service: { name: 'vllm', port: 8000 }, weight: 1, protocol: 'HTTP' },
    ]);
    assert.deepEqual(rule.matches, [
      { path: { type: 'PathPrefix', value: '/' } },
      { path: { type: 'Exact', value: '/v1/models' } },
    ]);
    assert.deepEqual(rule.loadBalancing, { algorithm: 'LeastRequest' });
    assert.deepEqual(rule.timeouts, { connect: '5s', firstByte: '300s', idle: '300s' });
    assert.deepEqual(rule.retries, {
      attempts: 1,
      retryOn: ['connect-failure', 'reset'],
      budgetPercent: 20,
      maxReplayBodySize: '1Mi',
    });
    // Optional features without a default stay off.
    assert.equal(rule.healthCheck, undefined);
    assert.equal(rule.outlierDetection, undefined);
    assert.equal(rule.name, undefined);
  });

  test('ModelRoute: defaults fill the gaps of partly written objects and never overwrite values', () => {
    const out = admitted(
      withRule({
        loadBalancing: { algorithm: 'RoundRobin' },
        timeouts: { firstByte: '30s' },
        retries: { retryOn: ['503'] },
        healthCheck: {},
        backends: [backend({ weight: 0 }), backend({ name: 'canary', weight: 5, protocol: 'H2C' })],
      }),
    );
    const [rule] = (out.spec as { rules: Json[] }).rules;
    assert.ok(rule);
    assert.deepEqual(rule.loadBalancing, { algorithm: 'RoundRobin' });
    assert.deepEqual(rule.timeouts, { firstByte: '30s', connect: '5s', idle: '300s' });
    assert.deepEqual(rule.retries, {
      retryOn: ['503'],
      attempts: 1,
      budgetPercent: 20,
      maxReplayBodySize: '1Mi',
    });
    assert.deepEqual(rule.healthCheck, {
      path: '/health',
      interval: '5s',
      timeout: '1s',
      unhealthyThreshold: 3,
      healthyThreshold: 2,
    });
    assert.deepEqual(
      (rule.backends as Json[]).map((b) => [b.weight, b.protocol]),
      [
        [0, 'HTTP'],
        [5, 'H2C'],
      ],
    );
  });

  test('RateLimitPolicy: target group and kind, scope, failure mode, algorithm, cost, onExceeded action', () => {
    const out = admitted({
      apiVersion: API_VERSION,
      kind: 'RateLimitPolicy',
      metadata: { name: 'tiers' },
      spec: {
        targetRefs: [{ name: 'chat' }],
        limits: [{ name: 'per-consumer', key: [{ type: 'Consumer' }], amount: 100, period: '1m' }],
        onExceeded: {},
      },
    });
    assert.deepEqual(out.spec, {
      targetRefs: [{ name: 'chat', group: 'modelgate.dev', kind: 'ModelRoute' }],
      limits: [
        {
          name: 'per-consumer',
          key: [{ type: 'Consumer' }],
          amount: 100,
          period: '1m',
          algorithm: 'TokenBucket',
          cost: 'Requests',
        },
      ],
      onExceeded: { action: 'Reject' },
      scope: 'Local',
      failureMode: 'FailOpen',
    });
  });

  test('CanaryRollout: manual weight 0 and analysis defaults', () => {
    const out = admitted({
      apiVersion: API_VERSION,
      kind: 'CanaryRollout',
      metadata: { name: 'chat-v2' },
      spec: {
        routeRef: { name: 'chat' },
        stableBackend: 'v1',
        canaryBackend: 'v2',
        steps: [{ analysis: { maxErrorRate: 0.02 } }],
      },
    });
    const spec = out.spec as Json;
    assert.equal(spec.weight, 0);
    assert.deepEqual(spec.steps, [
      { analysis: { maxErrorRate: 0.02, interval: '1m', minRequests: 100, failureLimit: 0, intervals: 1 } },
    ]);
  });
});

describe('the input is not mutated', () => {
  test('admission returns a defaulted copy and leaves the (frozen) input as it was', () => {
    const raw = withRule({ matches: [{ path: {} }], timeouts: {} });
    const before = structuredClone(raw);
    const result = admitCustomResource(deepFreeze(raw));
    assert.ok(result.ok);
    assert.deepEqual(raw, before);
    assert.notEqual(result.resource, raw);
    assert.notEqual(result.resource.spec, raw.spec);
    // The copy is independent: changing it does not reach the input.
    (result.resource.spec as { hostnames?: string[] }).hostnames = ['changed.example.com'];
    assert.deepEqual(raw, before);
  });

  test('a refused resource is not mutated either', () => {
    const raw = deepFreeze(withRule({ timeouts: { connect: 'soon' } }));
    const before = structuredClone(raw);
    assert.equal(admitCustomResource(raw).ok, false);
    assert.deepEqual(raw, before);
  });
});

describe('list types', () => {
  test('a set list refuses duplicates, as the API server does', () => {
    assert.deepEqual(
      errorsOf(
        modelRoute({ hostnames: ['a.example.com', 'a.example.com'], rules: [{ backends: [backend()] }] }),
      ),
      [{ path: 'spec.hostnames[1]', message: 'duplicate value' }],
    );
    assert.deepEqual(errorsOf(withRule({ retries: { retryOn: ['reset', 'reset'] } })), [
      { path: 'spec.rules[0].retries.retryOn[1]', message: 'duplicate value' },
    ]);
  });
});
