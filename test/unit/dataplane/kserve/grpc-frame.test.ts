/**
 * gRPC framing: the 5-byte prefix, reassembly across every chunk split (byte by byte, random
 * splits, frames spanning chunks and several frames per chunk), refused and decoded compression,
 * size limits, gRPC → HTTP status mapping (google/rpc/code.proto) and grpc-message decoding.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import { KServeError } from '../../../../src/dataplane/kserve/errors.ts';
import {
  decodeGrpcMessage,
  encodeFramed,
  frameMessage,
  GrpcCode,
  GrpcDeframer,
  grpcCodeName,
  grpcStatusToHttp,
  httpStatusToGrpc,
} from '../../../../src/dataplane/kserve/grpc-frame.ts';
import { encodeModelRef } from '../../../../src/dataplane/kserve/messages.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

function compressedFrame(payload: Buffer): Buffer {
  const f = frameMessage(payload);
  f[0] = 1;
  return f;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KServeError, String(e));
    return e.code;
  }
  assert.fail('expected a KServeError');
}

describe('framing', () => {
  test('the prefix is a zero flag and the big-endian length', () => {
    const f = frameMessage(Buffer.from('abc'));
    assert.equal(f.toString('hex'), '0000000003616263');
    assert.equal(frameMessage(new Uint8Array(0)).toString('hex'), '0000000000');
  });

  test('encodeFramed writes the message after the prefix without a copy, same bytes as frameMessage', () => {
    const framed = encodeFramed(encodeModelRef, { name: 'resnet', version: '2' }, 1);
    assert.equal(framed.toString('hex'), '000000000b0a067265736e657412013' + '2');
    const big = encodeFramed(encodeModelRef, { name: 'n'.repeat(70000), version: '' });
    assert.equal(big.readUInt32BE(1), big.length - 5);
  });
});

describe('GrpcDeframer', () => {
  const messages = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(70000, 9), Buffer.from([1, 2, 3])];
  const stream = Buffer.concat(messages.map(frameMessage));

  function collect(chunks: Uint8Array[], d = new GrpcDeframer()): Buffer[] {
    const out: Buffer[] = [];
    for (const c of chunks) out.push(...d.push(c));
    d.end();
    return out;
  }

  test('one chunk holding several frames', () => {
    assert.deepEqual(collect([stream]), messages);
  });

  test('byte by byte', () => {
    const chunks = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    assert.deepEqual(collect(chunks), messages);
  });

  test('random splits, including splits inside the 5-byte prefix', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const r = rng(seed);
      const chunks: Uint8Array[] = [];
      for (let i = 0; i < stream.length; ) {
        const n = r() < 0.3 ? 1 + Math.floor(r() * 6) : 1 + Math.floor(r() * 40000);
        // Copies into fresh Uint8Arrays (not Buffers) at odd offsets, as sockets might hand them over.
        const piece = new Uint8Array(n + 3).subarray(3);
        piece.set(stream.subarray(i, i + n));
        chunks.push(piece.subarray(0, Math.min(n, stream.length - i)));
        i += n;
      }
      assert.deepEqual(collect(chunks), messages, `seed ${seed}`);
    }
  });

  test('a stream ending inside a frame (header or body) is MG_KSERVE_BAD_RESPONSE', () => {
    for (const cut of [1, 4, 5, 7]) {
      const d = new GrpcDeframer();
      d.push(frameMessage(Buffer.from('hello')).subarray(0, cut));
      assert.equal(
        codeOf(() => d.end()),
        'MG_KSERVE_BAD_RESPONSE',
        `cut at ${cut}`,
      );
    }
  });

  test('an invalid flag byte is MG_KSERVE_BAD_RESPONSE', () => {
    const f = frameMessage(Buffer.from('x'));
    f[0] = 2;
    assert.equal(
      codeOf(() => new GrpcDeframer().push(f)),
      'MG_KSERVE_BAD_RESPONSE',
    );
  });

  test('a message over the limit is refused from its header', () => {
    const d = new GrpcDeframer({ maxMessageBytes: 10 });
    assert.equal(
      codeOf(() => d.push(Buffer.from([0, 0, 0, 0, 11]))),
      'MG_KSERVE_RESPONSE_TOO_LARGE',
    );
    assert.deepEqual(new GrpcDeframer({ maxMessageBytes: 10 }).push(frameMessage(Buffer.alloc(10))), [
      Buffer.alloc(10),
    ]);
  });

  test('compressed frames: refused without a supported grpc-encoding', () => {
    const f = compressedFrame(gzipSync(Buffer.from('hi')));
    assert.equal(
      codeOf(() => new GrpcDeframer().push(f)),
      'MG_KSERVE_COMPRESSED_RESPONSE',
    );
    assert.equal(
      codeOf(() => new GrpcDeframer({ encoding: 'identity' }).push(f)),
      'MG_KSERVE_COMPRESSED_RESPONSE',
    );
    assert.equal(
      codeOf(() => new GrpcDeframer({ encoding: 'snappy' }).push(f)),
      'MG_KSERVE_COMPRESSED_RESPONSE',
    );
  });

  test('compressed frames: gzip and deflate are decoded, within the size limit', () => {
    const payload = Buffer.alloc(5000, 'z');
    const gz = compressedFrame(gzipSync(payload));
    assert.deepEqual(collect([gz.subarray(0, 3), gz.subarray(3)], new GrpcDeframer({ encoding: 'gzip' })), [
      payload,
    ]);
    const df = compressedFrame(deflateSync(payload));
    assert.deepEqual(collect([df], new GrpcDeframer({ encoding: ' Deflate ' })), [payload]);
    // Uncompressed frames still pass with an encoding named.
    assert.deepEqual(collect([frameMessage(payload)], new GrpcDeframer({ encoding: 'gzip' })), [payload]);
    assert.equal(
      codeOf(() => new GrpcDeframer({ encoding: 'gzip', maxMessageBytes: 4000 }).push(gz)),
      'MG_KSERVE_RESPONSE_TOO_LARGE',
    );
    assert.equal(
      codeOf(() => new GrpcDeframer({ encoding: 'gzip' }).push(compressedFrame(Buffer.from('not gzip')))),
      'MG_KSERVE_COMPRESSED_RESPONSE',
    );
  });
});

describe('status mapping', () => {
  test('gRPC code → HTTP status, as google/rpc/code.proto maps them', () => {
    const expected: Record<keyof typeof GrpcCode, number> = {
      OK: 200,
      CANCELLED: 499,
      UNKNOWN: 500,
      INVALID_ARGUMENT: 400,
      DEADLINE_EXCEEDED: 504,
      NOT_FOUND: 404,
      ALREADY_EXISTS: 409,
      PERMISSION_DENIED: 403,
      RESOURCE_EXHAUSTED: 429,
      FAILED_PRECONDITION: 400,
      ABORTED: 409,
      OUT_OF_RANGE: 400,
      UNIMPLEMENTED: 501,
      INTERNAL: 500,
      UNAVAILABLE: 503,
      DATA_LOSS: 500,
      UNAUTHENTICATED: 401,
    };
    for (const [name, code] of Object.entries(GrpcCode)) {
      assert.equal(grpcStatusToHttp(code), expected[name as keyof typeof GrpcCode], name);
      assert.equal(grpcCodeName(code), name);
    }
    assert.equal(grpcStatusToHttp(17), 500);
    assert.equal(grpcStatusToHttp(-1), 500);
    assert.equal(grpcCodeName(42), 'CODE_42');
  });

  test('HTTP status of a non-gRPC answer → gRPC code (http-grpc-status-mapping.md)', () => {
    assert.equal(httpStatusToGrpc(400), GrpcCode.INTERNAL);
    assert.equal(httpStatusToGrpc(401), GrpcCode.UNAUTHENTICATED);
    assert.equal(httpStatusToGrpc(403), GrpcCode.PERMISSION_DENIED);
    assert.equal(httpStatusToGrpc(404), GrpcCode.UNIMPLEMENTED);
    for (const s of [429, 502, 503, 504]) assert.equal(httpStatusToGrpc(s), GrpcCode.UNAVAILABLE);
    assert.equal(httpStatusToGrpc(500), GrpcCode.UNKNOWN);
  });
});

describe('decodeGrpcMessage', () => {
  test('percent-decoding of UTF-8, lenient on malformed escapes', () => {
    assert.equal(decodeGrpcMessage(undefined), '');
    assert.equal(decodeGrpcMessage('plain text'), 'plain text');
    assert.equal(decodeGrpcMessage('model %27x%27 not found'), "model 'x' not found");
    assert.equal(decodeGrpcMessage(encodeURIComponent('héllo ✓ 🎉 100%')), 'héllo ✓ 🎉 100%');
    assert.equal(decodeGrpcMessage('50%'), '50%');
    assert.equal(decodeGrpcMessage('%zz%4'), '%zz%4');
    assert.equal(decodeGrpcMessage('%FF'), '\uFFFD');
    // node:http2 hands raw header bytes over as latin1: a UTF-8 sender's bytes are recovered.
    assert.equal(decodeGrpcMessage(Buffer.from('é%21', 'utf8').toString('latin1')), 'é!');
  });
});
