/**
 * A small protobuf wire-format writer and reader for the KServe v2 translation (the proxy hot
 * path): varints, fixed32/64, length-delimited fields, packed repeated scalars, and 64-bit integers
 * that stay exact.
 *
 * 64-bit integers are `number | bigint`: a value within ±(2^53−1) is a number, anything beyond is a
 * bigint, so INT64/UINT64 tensor elements round-trip exactly without paying for BigInt on the common
 * small values. Writers accept either form (a number must be a safe integer).
 *
 * Encoding is canonical (minimal varints, fields in number order by the callers, packed repeated
 * scalars, proto3 defaults omitted by the callers), which is what protobufjs and protoc emit, so the
 * bytes can be compared with theirs. Decoding follows the protobuf rules: unknown fields are skipped,
 * repeated scalars are accepted packed or unpacked, a repeated field may appear in several pieces,
 * and varints may be non-minimal (up to 10 bytes; int32 negatives are 10-byte varints).
 */

export type Int64 = number | bigint;

export const WireType = {
  VARINT: 0,
  FIXED64: 1,
  LEN: 2,
  START_GROUP: 3,
  END_GROUP: 4,
  FIXED32: 5,
} as const;

const TWO_32 = 4294967296;
const MASK_32 = 0xffffffffn;

/** Whether this machine stores typed arrays little-endian (protobuf fixed-width fields are LE). */
export const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The message is not valid protobuf (truncated, a bad varint, an unsupported wire type). */
export class ProtoDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtoDecodeError';
  }
}

/** Bytes a varint of this unsigned 32-bit value takes. */
export function varint32Size(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/** Splits a 64-bit integer into its two's complement low and high 32-bit halves (unsigned). */
function split64(v: Int64, out: { lo: number; hi: number }): void {
  if (typeof v === 'bigint') {
    const u = BigInt.asUintN(64, v);
    out.lo = Number(u & MASK_32);
    out.hi = Number(u >> 32n);
    return;
  }
  if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
  if (v >= 0) {
    out.lo = v >>> 0;
    out.hi = Math.floor(v / TWO_32) >>> 0;
    return;
  }
  const a = -v;
  let lo = a >>> 0;
  let hi = Math.floor(a / TWO_32) >>> 0;
  // Two's complement negation of the 64-bit magnitude.
  lo = (~lo + 1) >>> 0;
  hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
  out.lo = lo;
  out.hi = hi;
}

/**
 * Writes protobuf into a growable Buffer. Nested messages use fork()/ldelim(): one byte is reserved
 * for the length and the body is moved only when its length needs a longer varint; callers that
 * know a length up front (bytes, packed fixed-width arrays) write it directly.
 */
export class ProtoWriter {
  buf: Buffer;
  view: DataView;
  pos: number;
  private readonly forks: number[] = [];
  private readonly split = { lo: 0, hi: 0 };

  constructor(capacity = 256) {
    this.buf = Buffer.allocUnsafe(Math.max(16, capacity));
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.pos = 0;
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** An unsigned 32-bit varint. */
  uint32(v: number): void {
    this.ensure(5);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 0x7f) {
      buf[pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** A signed 32-bit varint: negatives take 10 bytes (sign-extended to 64 bits), as protobuf requires. */
  int32(v: number): void {
    if (v >= 0) this.uint32(v);
    else this.varint64(v >>> 0, 0xffffffff);
  }

  /** A varint of the 64-bit value hi:lo (both unsigned 32-bit halves). */
  varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (hi > 0 || lo > 0x7f) {
      buf[pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[pos++] = lo;
    this.pos = pos;
  }

  /** int64 / uint64 varint (the bit patterns agree; uint64 callers pass non-negative values). */
  int64(v: Int64): void {
    if (typeof v === 'number' && v >= 0 && v < TWO_32 && Number.isInteger(v)) {
      this.uint32(v);
      return;
    }
    split64(v, this.split);
    this.varint64(this.split.lo, this.split.hi);
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  tag(field: number, wireType: number): void {
    this.uint32(((field << 3) | wireType) >>> 0);
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v >>> 0, true);
    this.pos += 4;
  }

  float(v: number): void {
    this.ensure(4);
    this.view.setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.view.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  fixed64(v: Int64): void {
    split64(v, this.split);
    this.ensure(8);
    this.view.setUint32(this.pos, this.split.lo, true);
    this.view.setUint32(this.pos + 4, this.split.hi, true);
    this.pos += 8;
  }

  /** Raw bytes, no length prefix. */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Length-delimited bytes (the tag is the caller's). */
  bytes(bytes: Uint8Array): void {
    this.uint32(bytes.length);
    this.raw(bytes);
  }

  /** Length-delimited UTF-8 (the tag is the caller's). */
  string(s: string): void {
    const n = s.length;
    if (n < 43) {
      // At most 126 UTF-8 bytes: a one-byte length, filled in after the text is written.
      this.ensure(1 + n * 3);
      const buf = this.buf;
      const start = this.pos;
      let pos = start + 1;
      let ascii = true;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          ascii = false;
          break;
        }
        buf[pos++] = c;
      }
      if (!ascii) pos = start + 1 + buf.write(s, start + 1, 'utf8');
      buf[start] = pos - start - 1;
      this.pos = pos;
      return;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.uint32(len);
    this.ensure(len);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
  }

  /** Starts a length-delimited body (after its tag): reserve one length byte. */
  fork(): void {
    this.ensure(1);
    this.forks.push(this.pos);
    this.pos += 1;
  }

  /** Ends the body fork() started and writes its length in front of it. */
  ldelim(): void {
    const start = this.forks.pop();
    if (start === undefined) throw new Error('ldelim without fork');
    const len = this.pos - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      return;
    }
    const extra = varint32Size(len) - 1;
    this.ensure(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    this.pos += extra;
    const end = this.pos;
    this.pos = start;
    this.uint32(len);
    this.pos = end;
  }

  /** A packed repeated float field (skipped when empty). */
  packedFloat(field: number, values: ArrayLike<number>): void {
    const n = values.length;
    if (n === 0) return;
    this.tag(field, WireType.LEN);
    this.uint32(n * 4);
    this.ensure(n * 4);
    if (LITTLE_ENDIAN_HOST && values instanceof Float32Array) {
      this.buf.set(new Uint8Array(values.buffer, values.byteOffset, n * 4), this.pos);
      this.pos += n * 4;
      return;
    }
    const view = this.view;
    let pos = this.pos;
    for (let i = 0; i < n; i++, pos += 4) view.setFloat32(pos, values[i]!, true);
    this.pos = pos;
  }

  /** A packed repeated double field (skipped when empty). */
  packedDouble(field: number, values: ArrayLike<number>): void {
    const n = values.length;
    if (n === 0) return;
    this.tag(field, WireType.LEN);
    this.uint32(n * 8);
    this.ensure(n * 8);
    if (LITTLE_ENDIAN_HOST && values instanceof Float64Array) {
      this.buf.set(new Uint8Array(values.buffer, values.byteOffset, n * 8), this.pos);
      this.pos += n * 8;
      return;
    }
    const view = this.view;
    let pos = this.pos;
    for (let i = 0; i < n; i++, pos += 8) view.setFloat64(pos, values[i]!, true);
    this.pos = pos;
  }

  /** A packed repeated int32 field (skipped when empty). */
  packedInt32(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    this.tag(field, WireType.LEN);
    this.fork();
    for (let i = 0; i < values.length; i++) this.int32(values[i]!);
    this.ldelim();
  }

  /** A packed repeated uint32 field (skipped when empty). */
  packedUint32(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    this.tag(field, WireType.LEN);
    this.fork();
    for (let i = 0; i < values.length; i++) this.uint32(values[i]!);
    this.ldelim();
  }

  /** A packed repeated int64/uint64 field (skipped when empty). */
  packedInt64(field: number, values: ArrayLike<Int64>): void {
    if (values.length === 0) return;
    this.tag(field, WireType.LEN);
    this.fork();
    for (let i = 0; i < values.length; i++) this.int64(values[i]!);
    this.ldelim();
  }

  /** A packed repeated bool field (skipped when empty). */
  packedBool(field: number, values: ArrayLike<boolean>): void {
    const n = values.length;
    if (n === 0) return;
    this.tag(field, WireType.LEN);
    this.uint32(n);
    this.ensure(n);
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < n; i++) buf[pos++] = values[i] ? 1 : 0;
    this.pos = pos;
  }

  /** The bytes written so far (a view of the internal buffer, not a copy). */
  finish(): Buffer {
    if (this.forks.length > 0) throw new Error('finish with an open fork');
    return this.buf.subarray(0, this.pos);
  }
}

/** The 64-bit value hi:lo (unsigned halves) as a number when safe, else a bigint. */
function toInt64(lo: number, hi: number, signed: boolean): Int64 {
  const h = signed ? hi | 0 : hi;
  const v = h * TWO_32 + lo;
  if (Number.isSafeInteger(v)) return v;
  const u = (BigInt(hi) << 32n) | BigInt(lo);
  return signed ? BigInt.asIntN(64, u) : u;
}

/**
 * Reads protobuf from a byte range. Length-delimited fields are returned as views, not copies.
 * Every read is bounds-checked and throws ProtoDecodeError past the end.
 */
export class ProtoReader {
  readonly buf: Buffer;
  readonly view: DataView;
  pos: number;
  end: number;
  /** The halves of the last varint64() read. */
  lo = 0;
  hi = 0;

  constructor(bytes: Uint8Array, start = 0, end = bytes.length) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    this.pos = start;
    this.end = end;
  }

  private truncated(): never {
    throw new ProtoDecodeError('message truncated');
  }

  /** A varint, keeping its low 32 bits (unsigned). Reads and checks all of a 10-byte varint. */
  uint32(): number {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let v = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) this.truncated();
      const b = buf[pos++]!;
      v |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return v >>> 0;
      }
    }
    if (pos >= end) this.truncated();
    let b = buf[pos++]!;
    v |= (b & 0x0f) << 28;
    // Bytes 6-10 carry the high half: dropped for 32-bit fields, but they must be there.
    for (let i = 0; b >= 0x80 && i < 5; i++) {
      if (pos >= end) this.truncated();
      b = buf[pos++]!;
    }
    if (b >= 0x80) throw new ProtoDecodeError('varint longer than 10 bytes');
    this.pos = pos;
    return v >>> 0;
  }

  int32(): number {
    return this.uint32() | 0;
  }

  /** Reads a varint into this.lo / this.hi. */
  varint64(): void {
    const buf = this.buf;
    const end = this.end;
    let pos = this.pos;
    let lo = 0;
    let hi = 0;
    let b = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      if (pos >= end) this.truncated();
      b = buf[pos++]!;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        this.lo = lo >>> 0;
        this.hi = 0;
        return;
      }
    }
    if (pos >= end) this.truncated();
    b = buf[pos++]!;
    lo |= (b & 0x7f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (let shift = 3; shift < 32; shift += 7) {
        if (pos >= end) this.truncated();
        b = buf[pos++]!;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
      if (b >= 0x80) throw new ProtoDecodeError('varint longer than 10 bytes');
    }
    this.pos = pos;
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }

  int64(): Int64 {
    this.varint64();
    return toInt64(this.lo, this.hi, true);
  }

  uint64(): Int64 {
    this.varint64();
    return toInt64(this.lo, this.hi, false);
  }

  bool(): boolean {
    this.varint64();
    return this.lo !== 0 || this.hi !== 0;
  }

  fixed32(): number {
    if (this.pos + 4 > this.end) this.truncated();
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  float(): number {
    if (this.pos + 4 > this.end) this.truncated();
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.end) this.truncated();
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  fixed64(signed: boolean): Int64 {
    if (this.pos + 8 > this.end) this.truncated();
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    return toInt64(lo, hi, signed);
  }

  /** A length prefix, checked against the remaining bytes; returns the end of the delimited body. */
  delimitedEnd(): number {
    const len = this.uint32();
    const end = this.pos + len;
    if (end > this.end) this.truncated();
    return end;
  }

  /** Length-delimited bytes, as a view into the message. */
  bytes(): Buffer {
    const end = this.delimitedEnd();
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  string(): string {
    const end = this.delimitedEnd();
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return s;
  }

  /** Skips one field's value of this wire type. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint64();
        return;
      case WireType.FIXED64:
        if (this.pos + 8 > this.end) this.truncated();
        this.pos += 8;
        return;
      case WireType.LEN:
        this.pos = this.delimitedEnd();
        return;
      case WireType.FIXED32:
        if (this.pos + 4 > this.end) this.truncated();
        this.pos += 4;
        return;
      default:
        throw new ProtoDecodeError(`unsupported wire type ${wireType}`);
    }
  }

  /** Reads a tag; the field number is tag >>> 3 and the wire type tag & 7. Field 0 is invalid. */
  tag(): number {
    const t = this.uint32();
    if (t >>> 3 === 0) throw new ProtoDecodeError('field number 0');
    return t;
  }
}

/** Expects wire type `want` for a singular field. */
export function expectWireType(tag: number, want: number): void {
  if ((tag & 7) !== want) {
    throw new ProtoDecodeError(`field ${tag >>> 3}: wire type ${tag & 7}, expected ${want}`);
  }
}

/** A growable Float32Array / Float64Array, for repeated float fields that may arrive in pieces. */
export class FloatVec {
  private arr: Float32Array | Float64Array;
  length = 0;
  private readonly width: 4 | 8;

  constructor(width: 4 | 8, capacity = 16) {
    this.width = width;
    this.arr = width === 4 ? new Float32Array(capacity) : new Float64Array(capacity);
  }

  private reserve(n: number): void {
    if (this.length + n <= this.arr.length) return;
    const cap = Math.max(this.length + n, this.arr.length * 2);
    const next = this.width === 4 ? new Float32Array(cap) : new Float64Array(cap);
    next.set(this.arr.subarray(0, this.length));
    this.arr = next;
  }

  push(v: number): void {
    this.reserve(1);
    this.arr[this.length++] = v;
  }

  /** Appends little-endian elements from bytes (whose length is a multiple of the width). */
  pushBytes(bytes: Uint8Array): void {
    const n = bytes.length / this.width;
    this.reserve(n);
    if (LITTLE_ENDIAN_HOST) {
      new Uint8Array(this.arr.buffer, this.length * this.width, bytes.length).set(bytes);
    } else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let i = 0; i < n; i++) {
        this.arr[this.length + i] =
          this.width === 4 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true);
      }
    }
    this.length += n;
  }

  /** The elements: the array itself when it is exactly full (the usual single packed piece). */
  done(): Float32Array | Float64Array {
    return this.length === this.arr.length ? this.arr : this.arr.subarray(0, this.length);
  }
}
