/**
 * Table features: the compiler lists the optional capabilities the rules use, and a proxy refuses
 * a table needing one it does not implement (keeping the table it serves) instead of serving the
 * rule without it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { GatewayProxy } from '../../../src/dataplane/proxy.ts';
import { featuresOf, TABLE_FEATURES, unknownFeatures } from '../../../src/routing-table/features.ts';
import { compileYaml } from '../../support/gateway.ts';

const plain = `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  rules:
    - backends: [{name: main, urls: ["http://127.0.0.1:9"]}]
`;

const validated = `apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  rules:
    - backends: [{name: main, urls: ["http://127.0.0.1:9"]}]
      validation: {jsonSchema: {type: object, required: [model]}}
      transform: {request: {headers: {set: [{name: x-tenant, value: acme}]}}}
`;

test('the compiler lists the features a table uses, and none for a plain one', () => {
  assert.equal(compileYaml(plain).routes.features, undefined);
  assert.deepEqual(compileYaml(validated).routes.features, ['transform', 'validation']);
  assert.deepEqual(featuresOf({ rules: [] }), []);
});

test('every listed feature is known to this build', () => {
  assert.deepEqual(unknownFeatures([...TABLE_FEATURES]), []);
  assert.deepEqual(unknownFeatures(undefined), []);
  assert.deepEqual(unknownFeatures(['validation', 'teleport']), ['teleport']);
});

test('a proxy refuses a table needing a feature it does not implement and keeps serving the last good one', async (t) => {
  const proxy = new GatewayProxy({ logger: pino({ level: 'silent' }) });
  t.after(() => proxy.close());
  const good = compileYaml(validated);
  assert.deepEqual(proxy.apply(good, 'v1'), { ok: true });
  const future = structuredClone(good);
  future.routes.features = [...(future.routes.features ?? []), 'teleport'];
  const result = proxy.apply(future, 'v2');
  assert.equal(result.ok, false);
  assert.match(
    (result as { reason: string }).reason,
    /table needs teleport, which this proxy does not implement/,
  );
  assert.equal(proxy.table?.version, 'v1');
});
