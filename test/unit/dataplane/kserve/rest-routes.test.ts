/**
 * The v2 REST paths and methods as operations: every endpoint with and without a version,
 * percent-decoded names, trailing slash and query string, 404 for anything else under /v2 and 405
 * (with `allow`) for a wrong method.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { grpcPathOf, isV2Path, parseRestRoute } from '../../../../src/dataplane/kserve/rest-routes.ts';

function op(method: string, path: string): unknown {
  const r = parseRestRoute(method, path);
  assert.ok(r.ok, `${method} ${path}: ${r.ok ? '' : r.error.message}`);
  return r.op;
}

function refused(method: string | undefined, path: string): { code: string; status: number; allow?: string } {
  const r = parseRestRoute(method, path);
  assert.ok(!r.ok, `${method} ${path} should be refused`);
  return {
    code: r.error.code,
    status: r.error.status,
    ...(r.headers?.allow ? { allow: r.headers.allow } : {}),
  };
}

describe('parseRestRoute', () => {
  test('health and server metadata', () => {
    assert.deepEqual(op('GET', '/v2/health/live'), { kind: 'server_live' });
    assert.deepEqual(op('GET', '/v2/health/ready'), { kind: 'server_ready' });
    assert.deepEqual(op('GET', '/v2'), { kind: 'server_metadata' });
    assert.deepEqual(op('GET', '/v2/'), { kind: 'server_metadata' });
  });

  test('model endpoints with and without a version', () => {
    assert.deepEqual(op('GET', '/v2/models/resnet'), {
      kind: 'model_metadata',
      model: 'resnet',
      version: '',
    });
    assert.deepEqual(op('GET', '/v2/models/resnet/versions/3'), {
      kind: 'model_metadata',
      model: 'resnet',
      version: '3',
    });
    assert.deepEqual(op('GET', '/v2/models/resnet/ready'), {
      kind: 'model_ready',
      model: 'resnet',
      version: '',
    });
    assert.deepEqual(op('GET', '/v2/models/resnet/versions/2/ready'), {
      kind: 'model_ready',
      model: 'resnet',
      version: '2',
    });
    assert.deepEqual(op('POST', '/v2/models/resnet/infer'), {
      kind: 'model_infer',
      model: 'resnet',
      version: '',
    });
    assert.deepEqual(op('POST', '/v2/models/resnet/versions/7/infer'), {
      kind: 'model_infer',
      model: 'resnet',
      version: '7',
    });
  });

  test('names that look like keywords, percent-encoding, trailing slash, query', () => {
    assert.deepEqual(op('GET', '/v2/models/ready'), { kind: 'model_metadata', model: 'ready', version: '' });
    assert.deepEqual(op('GET', '/v2/models/versions/ready'), {
      kind: 'model_ready',
      model: 'versions',
      version: '',
    });
    assert.deepEqual(op('POST', '/v2/models/my%20model/versions/v%2F1/infer'), {
      kind: 'model_infer',
      model: 'my model',
      version: 'v/1',
    });
    assert.deepEqual(op('POST', '/v2/models/m/infer/'), { kind: 'model_infer', model: 'm', version: '' });
    assert.deepEqual(op('GET', '/v2/health/ready?verbose=1'), { kind: 'server_ready' });
  });

  test('other paths under /v2 are MG_KSERVE_NOT_FOUND', () => {
    for (const path of [
      '/v2/health',
      '/v2/health/startup',
      '/v2/models',
      '/v2/models/',
      '/v2/models/m/versions',
      '/v2/models/m/versions/1/stats',
      '/v2/models/m/stats',
      '/v2/models/m/config',
      '/v2/models/m/generate',
      '/v2/repository/index',
      '/v2/models//infer',
      '/v2/models/%E0%A4%A/infer',
      '/v2/models/m/versions//infer',
      '/v3/models/m/infer',
      '/v2x',
      '/',
    ]) {
      assert.deepEqual(refused('GET', path), { code: 'MG_KSERVE_NOT_FOUND', status: 404 }, path);
    }
  });

  test('a wrong method is MG_KSERVE_METHOD_NOT_ALLOWED with allow', () => {
    assert.deepEqual(refused('GET', '/v2/models/m/infer'), {
      code: 'MG_KSERVE_METHOD_NOT_ALLOWED',
      status: 405,
      allow: 'POST',
    });
    for (const [method, path] of [
      ['POST', '/v2/health/live'],
      ['DELETE', '/v2/models/m'],
      ['HEAD', '/v2/health/ready'],
      ['PUT', '/v2'],
      [undefined, '/v2/models/m/ready'],
    ] as const) {
      assert.deepEqual(refused(method, path), {
        code: 'MG_KSERVE_METHOD_NOT_ALLOWED',
        status: 405,
        allow: 'GET',
      });
    }
  });

  test('gRPC paths and the /v2 namespace', () => {
    const path = (m: string, p: string) => {
      const r = parseRestRoute(m, p);
      assert.ok(r.ok);
      return grpcPathOf(r.op);
    };
    assert.equal(path('GET', '/v2/health/live'), '/inference.GRPCInferenceService/ServerLive');
    assert.equal(path('GET', '/v2/health/ready'), '/inference.GRPCInferenceService/ServerReady');
    assert.equal(path('GET', '/v2'), '/inference.GRPCInferenceService/ServerMetadata');
    assert.equal(path('GET', '/v2/models/m'), '/inference.GRPCInferenceService/ModelMetadata');
    assert.equal(path('GET', '/v2/models/m/ready'), '/inference.GRPCInferenceService/ModelReady');
    assert.equal(path('POST', '/v2/models/m/infer'), '/inference.GRPCInferenceService/ModelInfer');
    assert.equal(isV2Path('/v2'), true);
    assert.equal(isV2Path('/v2/models/x'), true);
    assert.equal(isV2Path('/v2?x'), true);
    assert.equal(isV2Path('/v20'), false);
    assert.equal(isV2Path('/v1/models/x:predict'), false);
  });
});
