/**
 * Which requests get an access line: `enabled: false` drops every line of the route, errors
 * included; otherwise errors (5xx answers and the gateway's own error codes) bypass `sampleRate`,
 * which samples the rest (successes and the upstream's 4xx answers). README and
 * docs/operations.md say exactly this (test/unit/docs/readme.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessLog } from '../../../src/observability/access-log.ts';
import { createLogger } from '../../../src/observability/logger.ts';

const never = () => 0.999;
/** Lines go nowhere: these tests ask only which requests would get one. */
const logger = createLogger({ destination: { write: () => {} } }).logger;
const log = new AccessLog(logger, never);

test('enabled: false drops every line, errors included', () => {
  const off = { enabled: false, sampleRate: 1 };
  assert.equal(log.wants(off, 200, ''), false);
  assert.equal(log.wants(off, 503, ''), false);
  assert.equal(log.wants(off, 429, 'MG_RATE_LIMITED'), false);
  assert.equal(log.wants(off, 500, 'MG_INTERNAL'), false);
});

test('while enabled, errors bypass sampling and the rest is sampled', () => {
  const none = { enabled: true, sampleRate: 0 };
  assert.equal(log.wants(none, 502, ''), true, 'an upstream 5xx');
  assert.equal(log.wants(none, 404, 'MG_NO_ROUTE'), true, 'a gateway error code');
  assert.equal(log.wants(none, 200, ''), false);
  assert.equal(log.wants(none, 404, ''), false, "the upstream's own 4xx is sampled like a success");
  assert.equal(log.wants({ enabled: true, sampleRate: 1 }, 200, ''), true);
  assert.equal(new AccessLog(logger, () => 0.1).wants({ enabled: true, sampleRate: 0.5 }, 200, ''), true);
});

test('a request without route settings (no route matched) is always logged', () => {
  assert.equal(log.wants(undefined, 200, ''), true);
  assert.equal(log.wants(undefined, 404, 'MG_NO_ROUTE'), true);
});
