/**
 * The cluster examples in examples/kubernetes/ are what a user `kubectl apply`s: each file loads
 * with the manifest loader, passes the generated CRDs (schema with defaults, then the CEL rules, as
 * the API server would), its built-in objects pass the Kubernetes schemas, and it compiles with
 * every resource Accepted and its references resolved. Then what each one is there to show.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { ajv } from '../../../src/api/ajv.ts';
import { evaluateRules } from '../../../src/api/cel.ts';
import type { JsonSchema } from '../../../src/api/crd.ts';
import { type CanaryRollout, GROUP } from '../../../src/api/resources.ts';
import { admitCustomResource } from '../../../src/api/validate.ts';
import { compile } from '../../../src/compiler/compile.ts';
import { loadManifests } from '../../../src/sources/files/load.ts';
import { generatedCrds, openApiSchema, parseCrd } from '../api/crd-helpers.ts';
import { type K8sObject, kubernetesProblems, parseStream } from '../chart/chart-helpers.ts';

const DIR = join(import.meta.dirname, '..', '..', '..', 'examples', 'kubernetes');
const FILES = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function load(file: string) {
  const text = readFileSync(join(DIR, file), 'utf8');
  const loaded = loadManifests([{ file, text }]);
  assert.deepEqual(
    loaded.problems.map((p) => p.message),
    [],
    file,
  );
  return { objects: parseStream(text), loaded, result: compile(loaded.state) };
}

/** Errors of a custom resource against its CRD file in crds/: schema (defaults applied), then CEL. */
function crdErrors(o: K8sObject): string[] {
  const found = generatedCrds().find((c) => c.def.kind === o.kind);
  assert.ok(found?.text, `no CRD for ${o.kind}`);
  const schema = openApiSchema(parseCrd(found.text));
  const copy = structuredClone(o) as K8sObject & { spec: unknown };
  const validate = ajv.compile(schema);
  if (!validate(copy)) return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
  const spec = (schema.properties as Record<string, JsonSchema>).spec!;
  return evaluateRules(spec as unknown as TSchema, copy.spec, 'spec').map((e) => `${e.path}: ${e.message}`);
}

test('the cluster examples are the ones documented', () => {
  assert.deepEqual(FILES, [
    'canary-rollout-steps.yaml',
    'kserve-v2-classifier-cache.yaml',
    'llm-chat.yaml',
    'openai-llm-token-limits.yaml',
  ]);
});

for (const file of FILES) {
  test(`${file}: valid for the API server and the compiler, every resource Accepted with resolved references`, async () => {
    const { objects, result } = load(file);
    for (const o of objects) {
      const what = `${file}: ${o.kind} ${o.metadata.namespace}/${o.metadata.name}`;
      assert.ok(o.metadata.namespace, `${what}: a namespace, as kubectl apply -f needs for a shared file`);
      if (o.apiVersion.startsWith(`${GROUP}/`)) {
        const admitted = admitCustomResource(o);
        assert.ok(admitted.ok, `${what}: ${JSON.stringify(!admitted.ok && admitted.errors)}`);
        assert.deepEqual(crdErrors(o), [], what);
      } else {
        assert.deepEqual(await kubernetesProblems(o), [], what);
      }
    }
    const custom = objects.filter((o) => o.apiVersion.startsWith(`${GROUP}/`));
    assert.equal(result.statuses.length, custom.length);
    for (const s of result.statuses) {
      for (const type of ['Accepted', 'ResolvedRefs']) {
        const c = s.status.conditions.find((x) => x.type === type);
        assert.equal(c?.status, 'True', `${file}: ${s.kind} ${s.namespace}/${s.name} ${type}: ${c?.message}`);
      }
    }
  });
}

test('openai-llm-token-limits.yaml: model-routed vLLM backends, API keys, limits counted in model tokens', () => {
  const { result } = load('openai-llm-token-limits.yaml');
  const rules = result.table.routes.rules.filter((r) => r.route === 'llm/openai');
  assert.deepEqual([...new Set(rules.map((r) => r.backends.map((b) => b.name).join()))].sort(), [
    'llama',
    'mistral',
  ]);
  assert.ok(result.table.routes.features?.includes('auth'), 'the route authenticates');
  assert.ok(result.table.routes.features?.includes('rateLimit'), 'the policy is enforced');
  const policy = result.statuses.find((s) => s.kind === 'RateLimitPolicy')!;
  assert.deepEqual((policy.status as { attachedRoutes?: string[] }).attachedRoutes, ['llm/openai']);
  const { objects } = load('openai-llm-token-limits.yaml');
  const limits = (
    objects.find((o) => o.kind === 'RateLimitPolicy') as K8sObject & { spec: { limits: { cost?: string }[] } }
  ).spec.limits;
  assert.ok(limits.filter((l) => l.cost === 'ModelTokens').length >= 2);
});

test('kserve-v2-classifier-cache.yaml: v2 REST clients, Triton over gRPC, inference cached and metadata not', () => {
  const { result } = load('kserve-v2-classifier-cache.yaml');
  const rules = result.table.routes.rules.filter((r) => r.route === 'vision/classifier') as {
    cache?: unknown;
    translation?: unknown;
    backends: { protocol?: string }[];
  }[];
  assert.deepEqual(result.table.routes.features, ['cache', 'translation']);
  assert.equal(rules.length, 2);
  for (const r of rules) {
    assert.ok(r.translation, 'every rule is translated');
    assert.ok(r.backends.every((b) => b.protocol === 'GRPC'));
  }
  assert.deepEqual(
    rules.map((r) => r.cache !== undefined),
    [true, false],
    'inference is cached; metadata and readiness are not',
  );
});

test('canary-rollout-steps.yaml: the rollout governs the route and its steps steer the weights', () => {
  const { loaded } = load('canary-rollout-steps.yaml');
  const rollout = loaded.state.canaryRollouts[0]!;
  assert.deepEqual(
    rollout.spec.steps?.map((s) => Object.keys(s)[0]),
    ['setWeight', 'pause', 'analysis', 'setWeight', 'analysis', 'setWeight', 'pause', 'setWeight'],
  );
  // The weights the table serves as the engine moves through the steps.
  for (const weight of [0, 5, 25, 50, 100]) {
    const result = compile({
      ...loaded.state,
      canaryRollouts: [{ ...rollout, status: { stepWeight: weight } } as CanaryRollout],
    });
    const status = result.statuses.find((s) => s.kind === 'CanaryRollout')!;
    assert.equal((status.status as { servedWeight?: number }).servedWeight, weight);
    const rule = result.table.routes.rules.find((r) => r.route === 'assistant/assistant')!;
    assert.deepEqual(
      rule.backends.map((b) => [b.name, b.weight]),
      [
        ['stable', (100 - weight) * 100],
        ['canary', weight * 100],
      ],
    );
  }
});
