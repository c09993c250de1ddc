/**
 * The hand-written message codecs against protobufjs loading the same grpc_predict_v2.proto, on
 * seeded random messages: our bytes equal protobufjs's for the same message, protobufjs decodes our
 * bytes to the message we meant, and we decode protobufjs's bytes to it. Also: repeated scalars
 * unpacked or split in pieces, a message field given twice, unknown fields (the OIP/MLServer
 * metadata field 6), and malformed input.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import protobuf from 'protobufjs';
import {
  decodeBoolResponse,
  decodeModelInferRequest,
  decodeModelInferResponse,
  decodeModelMetadataResponse,
  decodeModelRef,
  decodeServerMetadataResponse,
  encodeBoolResponse,
  encodeModelInferRequest,
  encodeModelInferResponse,
  encodeModelMetadataResponse,
  encodeModelRef,
  encodeServerMetadataResponse,
  type InferInputTensor,
  type InferParameter,
  type Int64,
  type ModelInferRequest,
  type ModelInferResponse,
  type ModelMetadataResponse,
  type ParamMap,
  type TensorContents,
} from '../../../../src/dataplane/kserve/messages.ts';
import {
  ProtoDecodeError,
  ProtoReader,
  ProtoWriter,
} from '../../../../src/dataplane/kserve/protobuf-wire.ts';
import { PROTO_PATH } from '../../../support/kserve-grpc-server.ts';

const root = new protobuf.Root().loadSync(PROTO_PATH, { keepCase: true });
const T = (name: string) => root.lookupType(`inference.${name}`);
const TO_OBJECT: protobuf.IConversionOptions = {
  longs: String,
  bytes: String,
  defaults: false,
  oneofs: false,
};

// ---------------------------------------------------------------------------------------------
// Seeded random generation

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  readonly rand: () => number;
  constructor(seed: number) {
    this.rand = mulberry32(seed);
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rand() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.rand() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  array<T>(max: number, f: () => T): T[] {
    return Array.from({ length: this.int(0, max) }, f);
  }
  string(max = 12): string {
    if (this.chance(0.05)) return 'long-'.repeat(this.int(10, 60)); // length varint > 1 byte
    const alphabet = ['a', 'b', 'Z', '0', '_', '-', '.', ' ', 'é', '✓', '🎉', '"', '\\'];
    return this.array(max, () => this.pick(alphabet)).join('');
  }
  nonEmptyString(): string {
    return this.string() || 'x';
  }
  bigint64(signed: boolean): bigint {
    const edges = signed
      ? [0n, -1n, 2n ** 53n, -(2n ** 53n), 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n - 1n]
      : [0n, 1n, 2n ** 53n, 2n ** 64n - 1n, 2n ** 63n];
    if (this.chance(0.3)) return this.pick(edges);
    const hi = BigInt(this.int(0, 0xffffffff));
    const lo = BigInt(this.int(0, 0xffffffff));
    const u = (hi << 32n) | lo;
    const v = this.chance(0.5) ? u >> BigInt(this.int(0, 60)) : u;
    return signed ? BigInt.asIntN(64, v) : v;
  }
  int64(signed: boolean): Int64 {
    const b = this.bigint64(signed);
    const n = Number(b);
    return Number.isSafeInteger(n) ? n : b;
  }
  float32(): number {
    if (this.chance(0.1))
      return this.pick([0, -0, Number.NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38]);
    return Math.fround((this.rand() - 0.5) * 10 ** this.int(-10, 10));
  }
  float64(): number {
    if (this.chance(0.1)) return this.pick([0, -0, Number.NaN, Infinity, Number.MIN_VALUE, Number.MAX_VALUE]);
    return (this.rand() - 0.5) * 10 ** this.int(-300, 300);
  }
  bytes(max = 10): Buffer {
    return Buffer.from(this.array(max, () => this.int(0, 255)));
  }
  param(): InferParameter {
    switch (this.int(0, 4)) {
      case 0:
        return { kind: 'bool', value: this.chance(0.5) };
      case 1:
        return { kind: 'int64', value: this.int64(true) };
      case 2:
        return { kind: 'string', value: this.string() };
      case 3:
        return { kind: 'double', value: this.float64() };
      default:
        return { kind: 'uint64', value: this.int64(false) };
    }
  }
  params(): ParamMap | undefined {
    if (this.chance(0.4)) return undefined;
    const m: ParamMap = new Map();
    // Keys are never integer-like: a JS object (protobufjs's map form) lists those first, and map
    // entry order carries no meaning in protobuf.
    for (let i = this.int(1, 3); i > 0; i--) m.set(this.chance(0.1) ? '' : `k${this.string()}`, this.param());
    return m;
  }
  contents(): TensorContents {
    const c: TensorContents = {};
    const n = () => this.int(1, 8);
    if (this.chance(0.4)) c.bool = Array.from({ length: n() }, () => this.chance(0.5));
    if (this.chance(0.4)) c.int = Array.from({ length: n() }, () => this.int(-(2 ** 31), 2 ** 31 - 1));
    if (this.chance(0.4)) c.int64 = Array.from({ length: n() }, () => this.int64(true));
    if (this.chance(0.4)) c.uint = Array.from({ length: n() }, () => this.int(0, 2 ** 32 - 1));
    if (this.chance(0.4)) c.uint64 = Array.from({ length: n() }, () => this.int64(false));
    if (this.chance(0.4))
      c.fp32 = Float32Array.from({ length: this.chance(0.05) ? 400 : n() }, () => this.float32());
    if (this.chance(0.4)) c.fp64 = Float64Array.from({ length: n() }, () => this.float64());
    if (this.chance(0.4)) c.bytes = Array.from({ length: n() }, () => this.bytes());
    return c;
  }
  tensor(): InferInputTensor {
    const t: InferInputTensor = {
      name: this.string(),
      datatype: this.pick(['FP32', 'INT64', 'BYTES', 'BOOL', 'FP16', '']),
      shape: this.array(4, () => (this.chance(0.1) ? -1 : this.int(0, 5000))),
    };
    const p = this.params();
    if (p) t.parameters = p;
    if (this.chance(0.8)) t.contents = this.contents();
    return t;
  }
  inferRequest(): ModelInferRequest {
    const m: ModelInferRequest = { modelName: this.string(), inputs: this.array(3, () => this.tensor()) };
    if (this.chance(0.5)) m.modelVersion = this.string();
    if (this.chance(0.5)) m.id = this.string();
    const p = this.params();
    if (p) m.parameters = p;
    if (this.chance(0.5)) {
      m.outputs = this.array(3, () => {
        const params = this.params();
        return params ? { name: this.string(), parameters: params } : { name: this.string() };
      });
    }
    if (this.chance(0.3)) m.rawInputContents = this.array(3, () => this.bytes(300));
    return m;
  }
  inferResponse(): ModelInferResponse {
    const m: ModelInferResponse = { modelName: this.string(), outputs: this.array(3, () => this.tensor()) };
    if (this.chance(0.5)) m.modelVersion = this.string();
    if (this.chance(0.5)) m.id = this.string();
    const p = this.params();
    if (p) m.parameters = p;
    if (this.chance(0.3)) m.rawOutputContents = this.array(3, () => this.bytes(300));
    return m;
  }
  metadata(): ModelMetadataResponse {
    const tm = () => ({
      name: this.string(),
      datatype: this.pick(['FP32', 'BYTES', '']),
      shape: this.array(4, () => this.int(-1, 64)),
    });
    return {
      name: this.string(),
      versions: this.array(3, () => this.string()),
      platform: this.string(),
      inputs: this.array(3, tm),
      outputs: this.array(3, tm),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Our objects → protobufjs plain objects (keepCase names, int64 as decimal strings)

type Obj = Record<string, unknown>;
const s64 = (v: Int64) => v.toString();

function pbParam(p: InferParameter): Obj {
  switch (p.kind) {
    case 'bool':
      return { bool_param: p.value };
    case 'int64':
      return { int64_param: s64(p.value) };
    case 'string':
      return { string_param: p.value };
    case 'double':
      return { double_param: p.value };
    case 'uint64':
      return { uint64_param: s64(p.value) };
  }
}

function put(o: Obj, key: string, v: unknown): void {
  if (v === undefined || v === '') return;
  if ((Array.isArray(v) || ArrayBuffer.isView(v)) && (v as ArrayLike<unknown>).length === 0) return;
  o[key] = v;
}

function pbParams(m: ParamMap | undefined): Obj | undefined {
  if (!m) return undefined;
  const o: Obj = {};
  for (const [k, v] of m) o[k] = pbParam(v);
  return o;
}

function pbContents(c: TensorContents): Obj {
  const o: Obj = {};
  put(o, 'bool_contents', c.bool && Array.from(c.bool));
  put(o, 'int_contents', c.int && Array.from(c.int));
  put(o, 'int64_contents', c.int64 && Array.from(c.int64, s64));
  put(o, 'uint_contents', c.uint && Array.from(c.uint));
  put(o, 'uint64_contents', c.uint64 && Array.from(c.uint64, s64));
  put(o, 'fp32_contents', c.fp32 && Array.from(c.fp32));
  put(o, 'fp64_contents', c.fp64 && Array.from(c.fp64));
  put(o, 'bytes_contents', c.bytes && Array.from(c.bytes));
  return o;
}

function pbTensor(t: InferInputTensor): Obj {
  const o: Obj = {};
  put(o, 'name', t.name);
  put(o, 'datatype', t.datatype);
  put(o, 'shape', Array.from(t.shape, s64));
  put(o, 'parameters', pbParams(t.parameters));
  if (t.contents) o.contents = pbContents(t.contents);
  return o;
}

function pbInferRequest(m: ModelInferRequest): Obj {
  const o: Obj = {};
  put(o, 'model_name', m.modelName);
  put(o, 'model_version', m.modelVersion);
  put(o, 'id', m.id);
  put(o, 'parameters', pbParams(m.parameters));
  put(o, 'inputs', m.inputs.map(pbTensor));
  put(
    o,
    'outputs',
    m.outputs?.map((x) => {
      const r: Obj = {};
      put(r, 'name', x.name);
      put(r, 'parameters', pbParams(x.parameters));
      return r;
    }),
  );
  put(o, 'raw_input_contents', m.rawInputContents);
  return o;
}

function pbInferResponse(m: ModelInferResponse): Obj {
  const o: Obj = {};
  put(o, 'model_name', m.modelName);
  put(o, 'model_version', m.modelVersion);
  put(o, 'id', m.id);
  put(o, 'parameters', pbParams(m.parameters));
  put(o, 'outputs', m.outputs.map(pbTensor));
  put(o, 'raw_output_contents', m.rawOutputContents);
  return o;
}

function pbMetadata(m: ModelMetadataResponse): Obj {
  const tm = (t: { name: string; datatype: string; shape: ArrayLike<Int64> }) => {
    const r: Obj = {};
    put(r, 'name', t.name);
    put(r, 'datatype', t.datatype);
    put(r, 'shape', Array.from(t.shape, s64));
    return r;
  };
  const o: Obj = {};
  put(o, 'name', m.name);
  put(o, 'versions', m.versions);
  put(o, 'platform', m.platform);
  put(o, 'inputs', m.inputs.map(tm));
  put(o, 'outputs', m.outputs.map(tm));
  return o;
}

function encodeMine<M>(encode: (w: ProtoWriter, m: M) => void, m: M): Buffer {
  const w = new ProtoWriter(64);
  encode(w, m);
  return Buffer.from(w.finish());
}

function pbEncode(type: string, obj: Obj): Buffer {
  const t = T(type);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

/** protobufjs's reading of bytes, as a comparable plain object. */
function pbRead(type: string, bytes: Uint8Array): unknown {
  const t = T(type);
  return t.toObject(t.decode(bytes), TO_OBJECT);
}

/** Our decoded message as the protobufjs plain object it stands for (defaults dropped). */
function normalise(v: unknown): unknown {
  if (v instanceof Map) {
    const o: Obj = {};
    for (const [k, x] of v) o[k] = normalise(x);
    return o;
  }
  if (typeof v === 'bigint') return v.toString();
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString('hex');
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v === 'object' && v !== null) {
    const o: Obj = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined || x === '') continue;
      if (
        (Array.isArray(x) || (ArrayBuffer.isView(x) && !(x instanceof Uint8Array))) &&
        (x as unknown[]).length === 0
      )
        continue;
      o[k] = normalise(x);
    }
    return o;
  }
  return v;
}

function paramNorm(p: InferParameter): unknown {
  return { kind: p.kind, value: typeof p.value === 'bigint' ? p.value.toString() : p.value };
}

/** Compares a decoded message with the one encoded, through normalise. */
function sameMessage(decoded: unknown, original: unknown, label: string): void {
  const fix = (v: unknown): unknown => {
    const n = normalise(v);
    return JSON.parse(
      JSON.stringify(n, (_k, x) => {
        if (typeof x === 'number') {
          if (Number.isNaN(x)) return 'NaN';
          if (!Number.isFinite(x)) return String(x);
          if (Object.is(x, -0)) return '-0';
          return x;
        }
        if (x && typeof x === 'object' && 'kind' in x && 'value' in x) return paramNorm(x as InferParameter);
        return x;
      }),
    );
  };
  assert.deepStrictEqual(fix(decoded), fix(original), label);
}

const SEEDS = 250;

describe('hand-written codecs agree with protobufjs on random messages', () => {
  test('ModelInferRequest', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const m = new Gen(seed).inferRequest();
      const mine = encodeMine(encodeModelInferRequest, m);
      const theirs = pbEncode('ModelInferRequest', pbInferRequest(m));
      assert.equal(mine.toString('hex'), theirs.toString('hex'), `seed ${seed}: bytes`);
      assert.deepStrictEqual(
        pbRead('ModelInferRequest', mine),
        pbRead('ModelInferRequest', theirs),
        `seed ${seed}: protobufjs reads ours`,
      );
      sameMessage(decodeModelInferRequest(new ProtoReader(theirs)), m, `seed ${seed}: we read protobufjs's`);
    }
  });

  test('ModelInferResponse', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const m = new Gen(seed * 7919).inferResponse();
      const mine = encodeMine(encodeModelInferResponse, m);
      const theirs = pbEncode('ModelInferResponse', pbInferResponse(m));
      assert.equal(mine.toString('hex'), theirs.toString('hex'), `seed ${seed}: bytes`);
      sameMessage(decodeModelInferResponse(new ProtoReader(theirs)), m, `seed ${seed}: we read protobufjs's`);
    }
  });

  test('ModelMetadataResponse', () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const m = new Gen(seed * 31).metadata();
      const mine = encodeMine(encodeModelMetadataResponse, m);
      const theirs = pbEncode('ModelMetadataResponse', pbMetadata(m));
      assert.equal(mine.toString('hex'), theirs.toString('hex'), `seed ${seed}: bytes`);
      sameMessage(decodeModelMetadataResponse(new ProtoReader(theirs)), m, `seed ${seed}: decoded`);
    }
  });

  test('health, server metadata and model references', () => {
    for (let seed = 1; seed <= 50; seed++) {
      const g = new Gen(seed);
      const ref = { name: g.string(), version: g.string() };
      for (const type of ['ModelReadyRequest', 'ModelMetadataRequest']) {
        const bytes = encodeMine(encodeModelRef, ref);
        const o: Obj = {};
        put(o, 'name', ref.name);
        put(o, 'version', ref.version);
        assert.equal(bytes.toString('hex'), pbEncode(type, o).toString('hex'));
        assert.deepStrictEqual(decodeModelRef(new ProtoReader(bytes)), ref);
      }
      const sm = { name: g.string(), version: g.string(), extensions: g.array(4, () => g.string()) };
      const smObj: Obj = {};
      put(smObj, 'name', sm.name);
      put(smObj, 'version', sm.version);
      put(smObj, 'extensions', sm.extensions);
      const smBytes = encodeMine(encodeServerMetadataResponse, sm);
      assert.equal(smBytes.toString('hex'), pbEncode('ServerMetadataResponse', smObj).toString('hex'));
      assert.deepStrictEqual(decodeServerMetadataResponse(new ProtoReader(smBytes)), sm);
    }
    for (const [type, field] of [
      ['ServerLiveResponse', 'live'],
      ['ServerReadyResponse', 'ready'],
      ['ModelReadyResponse', 'ready'],
    ] as const) {
      for (const value of [true, false]) {
        const bytes = encodeMine(encodeBoolResponse, value);
        assert.equal(bytes.toString('hex'), pbEncode(type, value ? { [field]: true } : {}).toString('hex'));
        assert.equal(decodeBoolResponse(new ProtoReader(pbEncode(type, { [field]: value }))), value);
      }
    }
    // The request messages without fields encode to nothing.
    assert.equal(pbEncode('ServerLiveRequest', {}).length, 0);
  });
});

describe('decoding rules', () => {
  test('repeated scalars unpacked, packed in several pieces, and mixed, keep their order', () => {
    // InferTensorContents built by hand: fp32 (6) packed [1,2], unpacked 3, packed [4];
    // int64 (3) unpacked -1, packed [2^53, 5]; bool (1) unpacked true; uint (4) packed.
    const w = protobuf.Writer.create();
    w.uint32(50).fork().float(1).float(2).ldelim();
    w.uint32((6 << 3) | 5).float(3);
    w.uint32(50).fork().float(4).ldelim();
    w.uint32((3 << 3) | 0).int64(-1);
    w.uint32(26).fork().int64('9007199254740992').int64(5).ldelim();
    w.uint32((1 << 3) | 0).bool(true);
    w.uint32(34).fork().uint32(7).ldelim();
    w.uint32((7 << 3) | 1).double(-0.5);
    const contents = w.finish();
    const input = protobuf.Writer.create().uint32(10).string('x').uint32(42).bytes(contents).finish();
    const req = protobuf.Writer.create().uint32(42).bytes(input).finish();
    const m = decodeModelInferRequest(new ProtoReader(req));
    const c = m.inputs[0]!.contents!;
    assert.deepStrictEqual(Array.from(c.fp32!), [1, 2, 3, 4]);
    assert.deepStrictEqual(c.int64, [-1, 2n ** 53n, 5]);
    assert.deepStrictEqual(c.bool, [true]);
    assert.deepStrictEqual(c.uint, [7]);
    assert.deepStrictEqual(Array.from(c.fp64!), [-0.5]);
    // And protobufjs reads the same.
    const theirs = T('ModelInferRequest').toObject(T('ModelInferRequest').decode(req), TO_OBJECT) as {
      inputs: Array<{ contents: { fp32_contents: number[] } }>;
    };
    assert.deepStrictEqual(theirs.inputs[0]!.contents.fp32_contents, [1, 2, 3, 4]);
  });

  test('a contents field given twice merges (repeated fields append)', () => {
    const c1 = protobuf.Writer.create().uint32(50).fork().float(1).ldelim().finish();
    const c2 = protobuf.Writer.create()
      .uint32(50)
      .fork()
      .float(2)
      .ldelim()
      .uint32(66)
      .bytes(Buffer.from('z'))
      .finish();
    const out = protobuf.Writer.create()
      .uint32(10)
      .string('y')
      .uint32(42)
      .bytes(c1)
      .uint32(42)
      .bytes(c2)
      .finish();
    const res = protobuf.Writer.create().uint32(42).bytes(out).finish();
    const m = decodeModelInferResponse(new ProtoReader(res));
    assert.deepStrictEqual(Array.from(m.outputs[0]!.contents!.fp32!), [1, 2]);
    assert.equal(Buffer.from(m.outputs[0]!.contents!.bytes![0]!).toString(), 'z');
  });

  test('unknown fields are skipped: metadata field 6 as OIP (map<string,string>) or MLServer sends it', () => {
    const entry = protobuf.Writer.create().uint32(10).string('k').uint32(18).string('v').finish();
    const w = protobuf.Writer.create().uint32(10).string('m').uint32(50).bytes(entry);
    w.uint32(26)
      .string('onnx')
      .uint32((99 << 3) | 5)
      .fixed32(1)
      .uint32((98 << 3) | 1)
      .fixed64(1);
    const m = decodeModelMetadataResponse(new ProtoReader(w.finish()));
    assert.deepStrictEqual(m, { name: 'm', versions: [], platform: 'onnx', inputs: [], outputs: [] });
  });

  test('a parameter without a value member reads as an empty string', () => {
    const entry = protobuf.Writer.create().uint32(10).string('p').finish();
    const m = decodeModelInferResponse(
      new ProtoReader(protobuf.Writer.create().uint32(34).bytes(entry).finish()),
    );
    assert.deepStrictEqual(m.parameters, new Map([['p', { kind: 'string', value: '' }]]));
  });

  test('malformed messages are ProtoDecodeError', () => {
    const bad = [
      'f201', // a field whose length runs past the end
      '2a05', // inputs (5): length 5 of 0 bytes
      '2a020a05', // nested message whose string overruns the nested length
      '0a', // tag without value
      '2a03320201', // packed fp32 of 1 byte (inside contents)... contents length mismatch
      '08ff', // truncated varint
      '0d00000000', // model_name with wire type 5
    ];
    for (const h of bad) {
      assert.throws(
        () => decodeModelInferResponse(new ProtoReader(Buffer.from(h, 'hex'))),
        ProtoDecodeError,
        h,
      );
    }
    // packed fp32 whose length is not a multiple of 4
    const c = protobuf.Writer.create().uint32(50).bytes(Buffer.alloc(5)).finish();
    const out = protobuf.Writer.create().uint32(42).bytes(c).finish();
    const res = protobuf.Writer.create().uint32(42).bytes(out).finish();
    assert.throws(() => decodeModelInferResponse(new ProtoReader(res)), /multiple of 4/);
  });
});
