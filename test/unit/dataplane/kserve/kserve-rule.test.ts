/**
 * The translated rule's two small decisions: what status a gRPC answer is judged by (retries and
 * passive health), and the grpc-timeout sent for the rule's first-byte timeout. The whole path is
 * in test/integration/proxy/kserve.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grpcJudgedStatus, grpcTimeoutValue } from '../../../../src/dataplane/kserve/kserve-rule.ts';

test('a gRPC answer is judged by its grpc-status, from the trailers or a trailers-only head', () => {
  assert.equal(grpcJudgedStatus(200, {}, { 'grpc-status': '0' }), 200);
  assert.equal(grpcJudgedStatus(200, {}, { 'grpc-status': '14' }), 503, 'UNAVAILABLE');
  assert.equal(grpcJudgedStatus(200, {}, { 'grpc-status': '13' }), 500, 'INTERNAL');
  assert.equal(grpcJudgedStatus(200, {}, { 'grpc-status': '4' }), 504, 'DEADLINE_EXCEEDED');
  assert.equal(grpcJudgedStatus(200, { 'grpc-status': '5' }, {}), 404, 'trailers-only NOT_FOUND');
  assert.equal(grpcJudgedStatus(200, { 'grpc-status': '0' }, { 'grpc-status': '3' }), 400, 'trailers win');
  assert.equal(grpcJudgedStatus(200, {}, {}), 502, 'no status: a broken answer');
  assert.equal(grpcJudgedStatus(200, {}, { 'grpc-status': 'x' }), 502);
  assert.equal(grpcJudgedStatus(503, {}, {}), 503, 'an HTTP answer keeps its status');
});

test('grpc-timeout: milliseconds up to 8 digits, then seconds', () => {
  assert.equal(grpcTimeoutValue(300_000), '300000m');
  assert.equal(grpcTimeoutValue(0.4), '1m');
  assert.equal(grpcTimeoutValue(99_999_999), '99999999m');
  assert.equal(grpcTimeoutValue(100_000_000), '100000S');
});
