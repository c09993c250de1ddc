import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ResourceStatus } from '../../../src/compiler/compile.ts';
import {
  GenerationLedger,
  type ProxyAckView,
  programmedCondition,
} from '../../../src/controlplane/programmed.ts';

const route = (generation: number, accepted = true): ResourceStatus => ({
  kind: 'ModelRoute',
  namespace: 'ml',
  name: 'chat',
  status: {
    observedGeneration: generation,
    conditions: [
      {
        type: 'Accepted',
        status: accepted ? 'True' : 'False',
        reason: accepted ? 'Accepted' : 'Invalid',
        message: '',
      },
    ],
  },
});

const proxy = (id: string, applied?: [number, number], refused?: [number, number, string]): ProxyAckView => ({
  id,
  connected: true,
  applied: applied && { term: applied[0], seq: applied[1] },
  refused: refused && { version: { term: refused[0], seq: refused[1] }, reason: refused[2] },
});

test('Programmed follows the ACKs of every connected proxy for the generation in question', () => {
  const ledger = new GenerationLedger();
  ledger.record({ term: 1, seq: 1 }, [route(1)]);
  ledger.record({ term: 1, seq: 2 }, [route(1)]); // same generation: still first seen in 1.1
  ledger.record({ term: 1, seq: 3 }, [route(2)]);
  const c = (proxies: ProxyAckView[], g = 2) => programmedCondition(route(g), ledger, proxies);

  assert.equal(c([]).status, 'Unknown', 'nobody connected');
  assert.deepEqual(
    [c([proxy('a', [1, 3]), proxy('b', [1, 2])]).status, c([proxy('a', [1, 3]), proxy('b', [1, 2])]).message],
    ['Unknown', '1/2 proxies at table 1.3 or newer; waiting for b'],
  );
  const done = c([proxy('a', [1, 3]), proxy('b', [2, 1])]);
  assert.equal(done.status, 'True');
  assert.equal(done.message, '2/2 proxies at table 1.3 or newer');
  const refused = c([proxy('a', [1, 3]), proxy('b', [1, 2], [1, 3, 'cannot build table'])]);
  assert.equal(refused.status, 'False');
  assert.equal(refused.message, 'b refused table 1.3: cannot build table');
  assert.equal(programmedCondition(route(2, false), ledger, [proxy('a', [1, 3])]).status, 'False');
  const disconnected = { ...proxy('gone'), connected: false };
  assert.equal(c([proxy('a', [1, 3]), disconnected]).status, 'True', 'only connected proxies count');
});
