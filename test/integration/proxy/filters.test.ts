/** The filter interface, exercised with small filters built per rule at table build. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Errors } from '../../../src/dataplane/errors.ts';
import type { FilterFactory } from '../../../src/dataplane/filters/filter.ts';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

let up: TestUpstream;
let gw: TestGateway;
const builds: string[] = [];

/** Adds a header upstream and one to the response, on rules named `tagged`. */
const headerFilter: FilterFactory = {
  name: 'header',
  build(rule) {
    builds.push(rule.id);
    if (rule.name !== 'tagged') return undefined;
    const tag = `rule=${rule.id}`; // computed once per table, not per request
    return {
      name: 'header',
      onRequest(ctx) {
        ctx.upstreamHeaders['x-tag'] = tag;
        delete ctx.upstreamHeaders['x-remove-me'];
        ctx.responseHeaders = { ...ctx.responseHeaders, 'x-tagged': 'yes' };
        return undefined;
      },
    };
  },
};

/** Refuses requests without x-pass, asynchronously (as a filter doing I/O would). */
const gateFilter: FilterFactory = {
  name: 'gate',
  build(rule) {
    if (rule.name !== 'tagged') return undefined;
    return {
      name: 'gate',
      onRequest: async (ctx) => {
        await new Promise((resolve) => setImmediate(resolve));
        if (ctx.req.headers['x-pass'] === 'yes') return undefined;
        return {
          error: { ...Errors.BadRequest, code: 'MG_TEST_DENIED', status: 403 },
          message: 'denied by the test filter',
        };
      },
    };
  },
};

before(async () => {
  up = await startUpstream('up');
  gw = await startGateway(
    route(
      'r',
      `{rules: [{name: tagged, matches: [{path: {value: /tagged}}], backends: [{name: b, urls: ["${up.url}"]}]},
                {name: plain, matches: [{path: {value: /plain}}], backends: [{name: b, urls: ["${up.url}"]}]}]}`,
    ),
    { filters: [headerFilter, gateFilter] },
  );
});
after(async () => {
  await gw.close();
  await up.close();
});

test('filters are built once per rule per table', () => {
  assert.deepEqual(builds.sort(), ['test/r/plain', 'test/r/tagged']);
});

test('a sync filter edits headers both ways, then an async one lets the request through', async () => {
  const r = await send(gw.url, { path: '/tagged', headers: { 'x-pass': 'yes', 'x-remove-me': '1' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-tagged'], 'yes');
  const h = up.received.at(-1)!.headers;
  assert.equal(h['x-tag'], 'rule=test/r/tagged');
  assert.equal(h['x-remove-me'], undefined);
});

test('a refusing filter answers with its error and the upstream sees nothing', async () => {
  const before = up.received.length;
  const r = await send(gw.url, { path: '/tagged' });
  assert.equal(r.status, 403);
  assert.deepEqual(r.json(), {
    error: {
      code: 'MG_TEST_DENIED',
      message: 'denied by the test filter',
      requestId: r.headers['x-request-id'],
    },
  });
  assert.equal(up.received.length, before);
});

test('rules without filters are untouched', async () => {
  const r = await send(gw.url, { path: '/plain' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-tagged'], undefined);
  assert.equal(up.received.at(-1)!.headers['x-tag'], undefined);
});
