import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  hashEndpointsPart,
  hashRoutesPart,
  tableHash,
  withEndpointsPart,
} from '../../../src/routing-table/hash.ts';
import type { RoutingTable } from '../../../src/routing-table/types.ts';

const routes = hashRoutesPart({ rules: [], matches: [], rateLimitPolicies: [], models: [] });
const a = hashEndpointsPart([{ address: '10.0.0.1', port: 80, scheme: 'http', state: 'ready' }]);
const b = hashEndpointsPart([{ address: '10.0.0.2', port: 80, scheme: 'http', state: 'ready' }]);

function table(endpoints: RoutingTable['endpoints']): RoutingTable {
  return { schemaVersion: 1, hash: tableHash(1, routes, endpoints), routes, endpoints };
}

test('part hashes follow content; the table hash follows part hashes', () => {
  assert.notEqual(a.hash, b.hash);
  assert.equal(hashEndpointsPart([...a.endpoints]).hash, a.hash);
  const t1 = table({ 'service/ns/a:80': a, 'service/ns/b:80': b });
  const t2 = withEndpointsPart(t1, 'service/ns/a:80', b);
  assert.notEqual(t2.hash, t1.hash);
  assert.equal(t2.routes, t1.routes, 'the routes part is shared, not rebuilt');
  assert.equal(withEndpointsPart(t2, 'service/ns/a:80', a).hash, t1.hash);
  assert.deepEqual(Object.keys(t1.endpoints), ['service/ns/a:80', 'service/ns/b:80'], 'input unchanged');
});

test('adding and removing parts keeps keys sorted, so the hash matches a table built in order', () => {
  const t1 = table({ 'service/ns/b:80': b });
  const added = withEndpointsPart(t1, 'service/ns/a:80', a);
  assert.deepEqual(Object.keys(added.endpoints), ['service/ns/a:80', 'service/ns/b:80']);
  assert.equal(added.hash, table({ 'service/ns/a:80': a, 'service/ns/b:80': b }).hash);
  const removed = withEndpointsPart(added, 'service/ns/b:80', undefined);
  assert.equal(removed.hash, table({ 'service/ns/a:80': a }).hash);
});
