/**
 * CEL fixtures of protocol translation's rules (src/api/translation.ts and the rule-level rules in
 * model-route.ts that tie `translation` to gRPC backends and keep it apart from composition and
 * active health checks), kept apart from cel-fixtures.ts, which spreads them into CEL_FIXTURES.
 */
import { API_VERSION } from '../../../src/api/resources.ts';
import type { CelFixture } from './cel-fixtures.ts';

type Json = Record<string, unknown>;

const grpc = (name: string, extra: Json = {}): Json => ({
  name,
  service: { name: 'triton', port: 8001 },
  protocol: 'GRPC',
  ...extra,
});
const route = (rule: Json): Json => ({
  apiVersion: API_VERSION,
  kind: 'ModelRoute',
  metadata: { name: 'triton', namespace: 'ai' },
  spec: { rules: [{ backends: [grpc('triton')], ...rule }] },
});
const kserve = { kserveV2: {} };

export const TRANSLATION_CEL_FIXTURES: CelFixture[] = [
  {
    kind: 'ModelRoute',
    rule: 'set exactly one translation (kserveV2)',
    valid: [
      route({ translation: kserve }),
      route({ translation: { kserveV2: { maxResponseSize: '8Mi', rawInputs: true } } }),
    ],
    invalid: [
      {
        resource: route({ translation: {} }),
        path: 'spec.rules[0].translation',
        message: 'set exactly one translation (kserveV2)',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'every backend of a translated rule must have protocol GRPC',
    valid: [
      route({ translation: kserve, backends: [grpc('a'), grpc('b', { weight: 0 })], fallbackBackend: 'b' }),
      route({ backends: [{ name: 'plain', service: { name: 'vllm', port: 8000 } }] }),
    ],
    invalid: [
      {
        note: 'protocol defaults to HTTP',
        resource: route({
          translation: kserve,
          backends: [grpc('a'), { name: 'b', service: { name: 'vllm', port: 8000 } }],
        }),
        path: 'spec.rules[0].translation',
        message: 'every backend of a translated rule must have protocol GRPC',
      },
      {
        resource: route({ translation: kserve, backends: [grpc('a', { protocol: 'H2C' })] }),
        path: 'spec.rules[0].translation',
        message: 'every backend of a translated rule must have protocol GRPC',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'translation and composition do not combine (steps send and read JSON)',
    valid: [route({ translation: kserve })],
    invalid: [
      {
        resource: route({
          translation: kserve,
          composition: { pipeline: { steps: [{ name: 'one', backend: 'triton' }] } },
        }),
        path: 'spec.rules[0].translation',
        message: 'translation and composition do not combine (steps send and read JSON)',
      },
    ],
  },
  {
    kind: 'ModelRoute',
    rule: 'healthCheck does not apply to a translated rule (an HTTP GET cannot probe a gRPC port; use outlierDetection)',
    valid: [route({ translation: kserve, outlierDetection: {} }), route({ healthCheck: {} })],
    invalid: [
      {
        resource: route({ translation: kserve, healthCheck: {} }),
        path: 'spec.rules[0].healthCheck',
        message:
          'healthCheck does not apply to a translated rule (an HTTP GET cannot probe a gRPC port; use outlierDetection)',
      },
    ],
  },
];
