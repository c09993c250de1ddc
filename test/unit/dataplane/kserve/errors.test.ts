/**
 * The KServe error catalogue tells the truth about HTTP statuses: an entry with a number is sent
 * with that status; MG_KSERVE_UPSTREAM_STATUS has none of its own (`status: 'mapped'`), and its
 * `statuses` are exactly what grpcStatusToHttp gives the non-OK gRPC codes, which is what
 * translateResponse sends.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  errorReply,
  GRPC_MAPPED_HTTP_STATUSES,
  KServeError,
  KServeErrors,
} from '../../../../src/dataplane/kserve/errors.ts';
import { GrpcCode, grpcStatusToHttp } from '../../../../src/dataplane/kserve/grpc-frame.ts';
import { translateResponse } from '../../../../src/dataplane/kserve/rest-json.ts';

/** Every non-OK code of the table, plus codes outside it (mapped to 500). */
const NON_OK_CODES = [...Object.values(GrpcCode).filter((c) => typeof c === 'number' && c !== 0), 17, 99];

describe('KServe error catalogue', () => {
  test('the mapped statuses are exactly what grpcStatusToHttp gives a non-OK gRPC code', () => {
    assert.ok(NON_OK_CODES.length >= 18, 'the gRPC code table was read');
    const mapped = [...new Set(NON_OK_CODES.map((c) => grpcStatusToHttp(Number(c))))].sort((a, b) => a - b);
    assert.deepEqual([...GRPC_MAPPED_HTTP_STATUSES], mapped);
  });

  test('only MG_KSERVE_UPSTREAM_STATUS is mapped; every other entry has a fixed status', () => {
    for (const d of Object.values(KServeErrors)) {
      if (d.code === 'MG_KSERVE_UPSTREAM_STATUS') {
        assert.equal(d.status, 'mapped');
        assert.ok('statuses' in d && d.statuses === GRPC_MAPPED_HTTP_STATUSES);
      } else {
        assert.ok(typeof d.status === 'number' && d.status >= 400 && d.status <= 599, d.code);
      }
    }
  });

  test('an upstream gRPC error is sent with a mapped status from the catalogue, never a fixed one', () => {
    const sent = new Set<number>();
    for (const code of NON_OK_CODES) {
      const reply = translateResponse(
        { kind: 'server_ready' },
        {
          status: 200,
          headers: { 'content-type': 'application/grpc' },
          trailers: { 'grpc-status': String(code) },
          body: [],
        },
      );
      assert.equal(reply.code, 'MG_KSERVE_UPSTREAM_STATUS', `grpc-status ${code}`);
      assert.ok(GRPC_MAPPED_HTTP_STATUSES.includes(reply.status), `grpc-status ${code}: ${reply.status}`);
      sent.add(reply.status);
    }
    assert.deepEqual(
      [...sent].sort((a, b) => a - b),
      [...GRPC_MAPPED_HTTP_STATUSES],
    );
  });

  test('a fixed entry is sent with its own status unless the thrower gives one', () => {
    assert.equal(errorReply(new KServeError(KServeErrors.ShapeMismatch)).status, 400);
    assert.equal(errorReply(new KServeError(KServeErrors.UpstreamStatus, 'busy', 503)).status, 503);
  });
});
