/**
 * The protobuf wire codec: varints (32- and 64-bit, negative int32 as 10 bytes, non-minimal forms),
 * 64-bit values exact as number-or-bigint, fixed-width fields, length-delimited fields and forks
 * whose length needs a longer varint, packed arrays, skipping unknown fields, and truncation errors.
 * Byte forms are compared with protobufjs's Writer.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import protobuf from 'protobufjs';
import {
  type Int64,
  ProtoDecodeError,
  ProtoReader,
  ProtoWriter,
  varint32Size,
  WireType,
} from '../../../../src/dataplane/kserve/protobuf-wire.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function written(fn: (w: ProtoWriter) => void, capacity?: number): Buffer {
  const w = new ProtoWriter(capacity);
  fn(w);
  return Buffer.from(w.finish());
}

const INT64_EDGES: bigint[] = [
  0n,
  1n,
  -1n,
  127n,
  128n,
  2n ** 31n - 1n,
  -(2n ** 31n),
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n - 1n,
  -(2n ** 53n - 1n),
  2n ** 53n,
  -(2n ** 53n),
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
  -(2n ** 63n) + 1n,
];
const UINT64_EDGES: bigint[] = [0n, 1n, 2n ** 32n - 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];

/** The value as the codec represents it: a number when safe, else a bigint. */
function canonical(v: bigint): Int64 {
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : v;
}

describe('varints', () => {
  test('uint32 sizes and bytes match protobufjs', () => {
    for (const v of [0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456, 4294967295]) {
      const mine = written((w) => w.uint32(v));
      assert.equal(hex(mine), hex(protobuf.Writer.create().uint32(v).finish()), `uint32 ${v}`);
      assert.equal(mine.length, varint32Size(v));
      assert.equal(new ProtoReader(mine).uint32(), v);
    }
  });

  test('negative int32 is a 10-byte varint (sign-extended), as protobufjs writes it', () => {
    for (const v of [-1, -2, -128, -(2 ** 31), -123456789]) {
      const mine = written((w) => w.int32(v));
      assert.equal(mine.length, 10, `int32 ${v}`);
      assert.equal(hex(mine), hex(protobuf.Writer.create().int32(v).finish()));
      assert.equal(new ProtoReader(mine).int32(), v);
    }
    assert.equal(hex(written((w) => w.int32(-1))), 'ffffffffffffffffff01');
  });

  test('int64 edge values: protobufjs bytes, exact read back, number when safe and bigint beyond', () => {
    for (const v of INT64_EDGES) {
      const asNumber = canonical(v);
      for (const input of [v, asNumber]) {
        const mine = written((w) => w.int64(input));
        const theirs = protobuf.Writer.create().int64(v.toString()).finish();
        assert.equal(hex(mine), hex(theirs), `int64 ${v} (${typeof input})`);
      }
      const read = new ProtoReader(written((w) => w.int64(v))).int64();
      assert.equal(typeof read, typeof asNumber, `int64 ${v} type`);
      assert.equal(read, asNumber);
    }
  });

  test('uint64 edge values round-trip exactly', () => {
    for (const v of UINT64_EDGES) {
      const mine = written((w) => w.int64(v));
      assert.equal(hex(mine), hex(protobuf.Writer.create().uint64(v.toString()).finish()), `uint64 ${v}`);
      assert.equal(new ProtoReader(mine).uint64(), canonical(v));
    }
    // The same bits read as int64 are the two's complement value.
    assert.equal(new ProtoReader(written((w) => w.int64(2n ** 64n - 1n))).int64(), -1);
  });

  test('a number that is not a safe integer is refused by the writer', () => {
    assert.throws(() => written((w) => w.int64(2 ** 53)), RangeError);
    assert.throws(() => written((w) => w.int64(1.5)), RangeError);
  });

  test('non-minimal varints are accepted', () => {
    // 1 written in 5 and in 10 bytes.
    assert.equal(new ProtoReader(Buffer.from('8180808000', 'hex')).uint32(), 1);
    assert.equal(new ProtoReader(Buffer.from('81808080808080808000', 'hex')).int64(), 1);
    assert.equal(new ProtoReader(Buffer.from('8100', 'hex')).bool(), true);
  });

  test('an 11-byte varint and a truncated varint are decode errors', () => {
    assert.throws(
      () => new ProtoReader(Buffer.from('8080808080808080808001', 'hex')).int64(),
      ProtoDecodeError,
    );
    assert.throws(
      () => new ProtoReader(Buffer.from('8080808080808080808001', 'hex')).uint32(),
      ProtoDecodeError,
    );
    assert.throws(() => new ProtoReader(Buffer.from('8080', 'hex')).uint32(), ProtoDecodeError);
    assert.throws(() => new ProtoReader(Buffer.from('80808080', 'hex')).int64(), ProtoDecodeError);
  });
});

describe('fixed-width and length-delimited fields', () => {
  test('float, double, fixed32, fixed64 are little-endian, as protobufjs writes them', () => {
    const mine = written((w) => {
      w.float(1.5);
      w.double(-2.25);
      w.fixed32(0xdeadbeef);
      w.fixed64(-(2n ** 63n));
    });
    const theirs = protobuf.Writer.create()
      .float(1.5)
      .double(-2.25)
      .fixed32(0xdeadbeef)
      .sfixed64('-9223372036854775808')
      .finish();
    assert.equal(hex(mine), hex(theirs));
    const r = new ProtoReader(mine);
    assert.equal(r.float(), 1.5);
    assert.equal(r.double(), -2.25);
    assert.equal(r.fixed32(), 0xdeadbeef);
    assert.equal(r.fixed64(true), -(2n ** 63n));
  });

  test('strings: ASCII, multi-byte UTF-8, and long ones', () => {
    for (const s of [
      '',
      'a',
      'héllo wörld ✓ 🎉',
      'x'.repeat(42),
      'é'.repeat(42),
      'y'.repeat(300),
      '✓'.repeat(100),
    ]) {
      const mine = written((w) => w.string(s), 16);
      assert.equal(
        hex(mine),
        hex(protobuf.Writer.create().string(s).finish()),
        JSON.stringify(s.slice(0, 10)),
      );
      assert.equal(new ProtoReader(mine).string(), s);
    }
  });

  test('fork/ldelim moves the body when its length needs a longer varint', () => {
    for (const n of [0, 1, 127, 128, 300, 16383, 16384, 70000]) {
      const body = Buffer.alloc(n, 7);
      const mine = written((w) => {
        w.tag(1, WireType.LEN);
        w.fork();
        w.raw(body);
        w.ldelim();
        w.tag(2, WireType.VARINT);
        w.uint32(9);
      }, 8);
      const theirs = protobuf.Writer.create().uint32(10).bytes(body).uint32(16).uint32(9).finish();
      assert.equal(hex(mine), hex(theirs), `body of ${n}`);
    }
  });

  test('nested forks', () => {
    const mine = written((w) => {
      w.tag(1, WireType.LEN);
      w.fork();
      w.tag(2, WireType.LEN);
      w.fork();
      w.raw(Buffer.alloc(200, 1));
      w.ldelim();
      w.ldelim();
    });
    const inner = protobuf.Writer.create().uint32(18).bytes(Buffer.alloc(200, 1)).finish();
    assert.equal(hex(mine), hex(protobuf.Writer.create().uint32(10).bytes(inner).finish()));
  });

  test('a length beyond the message end is a decode error', () => {
    assert.throws(() => new ProtoReader(Buffer.from('0561', 'hex')).bytes(), ProtoDecodeError);
    assert.throws(() => new ProtoReader(Buffer.from('0000', 'hex'), 0, 1).float(), ProtoDecodeError);
  });
});

describe('packed repeated scalars', () => {
  test('packed encodings match protobufjs', () => {
    const f32 = Float32Array.from([1, -2.5, 3.25, 0]);
    const mine = written((w) => {
      w.packedFloat(6, f32);
      w.packedFloat(6, [1, -2.5]); // a plain array takes the DataView path
      w.packedDouble(7, Float64Array.from([Math.PI, -0]));
      w.packedInt32(2, [1, -1, 300]);
      w.packedUint32(4, [0, 4294967295]);
      w.packedInt64(3, [0, -1, 2n ** 63n - 1n]);
      w.packedBool(1, [true, false, true]);
      w.packedFloat(9, []); // empty: nothing written
    });
    const pw = protobuf.Writer.create();
    pw.uint32(50).fork();
    for (const v of f32) pw.float(v);
    pw.ldelim();
    pw.uint32(50).fork().float(1).float(-2.5).ldelim();
    pw.uint32(58).fork().double(Math.PI).double(-0).ldelim();
    pw.uint32(18).fork().int32(1).int32(-1).int32(300).ldelim();
    pw.uint32(34).fork().uint32(0).uint32(4294967295).ldelim();
    pw.uint32(26).fork().int64(0).int64(-1).int64('9223372036854775807').ldelim();
    pw.uint32(10).fork().bool(true).bool(false).bool(true).ldelim();
    assert.equal(hex(mine), hex(pw.finish()));
  });

  test('a packed varint field longer than 127 bytes', () => {
    const values = Array.from({ length: 100 }, (_, i) => -i); // 10 bytes each
    const mine = written((w) => w.packedInt32(2, values));
    const pw = protobuf.Writer.create().uint32(18).fork();
    for (const v of values) pw.int32(v);
    assert.equal(hex(mine), hex(pw.ldelim().finish()));
  });
});

describe('skipping', () => {
  test('skips every wire type, and refuses groups', () => {
    const w = new ProtoWriter();
    w.tag(1, WireType.VARINT);
    w.int64(-1);
    w.tag(2, WireType.FIXED64);
    w.double(1);
    w.tag(3, WireType.LEN);
    w.string('skip me');
    w.tag(4, WireType.FIXED32);
    w.float(1);
    w.tag(5, WireType.VARINT);
    w.uint32(42);
    const r = new ProtoReader(w.finish());
    for (let i = 0; i < 4; i++) r.skip(r.tag() & 7);
    assert.equal(r.tag() >>> 3, 5);
    assert.equal(r.uint32(), 42);
    assert.throws(
      () => new ProtoReader(Buffer.from('0b', 'hex')).skip(WireType.START_GROUP),
      ProtoDecodeError,
    );
    assert.throws(() => new ProtoReader(Buffer.from('00', 'hex')).tag(), ProtoDecodeError, 'field number 0');
  });

  test('a reader over a Uint8Array that is not a Buffer, at an offset', () => {
    const backing = new Uint8Array([0xff, 0xff, 0x08, 0x96, 0x01]);
    const r = new ProtoReader(backing.subarray(2));
    assert.equal(r.tag(), 8);
    assert.equal(r.uint32(), 150);
  });
});
