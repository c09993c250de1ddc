/**
 * Encoders and decoders for the KServe v2 messages the REST ⇄ gRPC translation needs, with the
 * field numbers of grpc_predict_v2.proto (the published protocol's; Triton, KServe and MLServer use
 * them).
 *
 * Hand-written rather than a generic reflection codec (protobufjs, proto-loader) because this is the
 * proxy hot path: tensors are written straight from typed arrays (a packed FP32 field is one copy),
 * decoded FP32/FP64 contents become typed arrays by one copy, 64-bit integers become BigInt only
 * when they are beyond 2^53, and nothing is built that the translation does not read. The unit tests
 * compare these encoders byte for byte with protobufjs loading the .proto, and decode each other's
 * output, on seeded random messages.
 *
 * Encoders omit proto3 defaults (empty strings, empty repeated fields), write a set oneof member
 * even when it holds a default, always write both key and value of a map entry, and write fields in
 * field-number order — what protobufjs and protoc do. Decoders fill defaults for absent scalars and
 * accept repeated scalars packed or not, and in several pieces.
 */
import {
  expectWireType,
  FloatVec,
  type Int64,
  ProtoDecodeError,
  type ProtoReader,
  type ProtoWriter,
  WireType,
} from './protobuf-wire.ts';

export type { Int64 } from './protobuf-wire.ts';

export type InferParameter =
  | { kind: 'bool'; value: boolean }
  | { kind: 'int64'; value: Int64 }
  | { kind: 'string'; value: string }
  | { kind: 'double'; value: number }
  | { kind: 'uint64'; value: Int64 };

export type ParamMap = Map<string, InferParameter>;

/** InferTensorContents: the typed repeated field of each datatype family. */
export interface TensorContents {
  bool?: ArrayLike<boolean>;
  int?: ArrayLike<number>;
  int64?: ArrayLike<Int64>;
  uint?: ArrayLike<number>;
  uint64?: ArrayLike<Int64>;
  fp32?: ArrayLike<number>;
  fp64?: ArrayLike<number>;
  bytes?: ArrayLike<Uint8Array>;
}

/** What decodeTensorContents returns: only the fields present on the wire are set. */
export interface DecodedTensorContents {
  bool?: boolean[];
  int?: number[];
  int64?: Int64[];
  uint?: number[];
  uint64?: Int64[];
  fp32?: Float32Array;
  fp64?: Float64Array;
  bytes?: Uint8Array[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: ArrayLike<Int64>;
  parameters?: ParamMap;
  contents?: TensorContents;
}

export interface InferRequestedOutputTensor {
  name: string;
  parameters?: ParamMap;
}

export interface ModelInferRequest {
  modelName: string;
  modelVersion?: string;
  id?: string;
  parameters?: ParamMap;
  inputs: InferInputTensor[];
  outputs?: InferRequestedOutputTensor[];
  rawInputContents?: Uint8Array[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: ArrayLike<Int64>;
  parameters?: ParamMap;
  contents?: TensorContents;
}

export interface ModelInferResponse {
  modelName: string;
  modelVersion?: string;
  id?: string;
  parameters?: ParamMap;
  outputs: InferOutputTensor[];
  rawOutputContents?: Uint8Array[];
}

/** Decoded forms: shapes are arrays, contents DecodedTensorContents. */
export interface DecodedInferInputTensor extends InferInputTensor {
  shape: Int64[];
  contents?: DecodedTensorContents;
}
export interface DecodedModelInferRequest extends ModelInferRequest {
  modelVersion: string;
  id: string;
  inputs: DecodedInferInputTensor[];
  outputs: InferRequestedOutputTensor[];
  rawInputContents: Uint8Array[];
}
export interface DecodedInferOutputTensor extends InferOutputTensor {
  shape: Int64[];
  contents?: DecodedTensorContents;
}
export interface DecodedModelInferResponse extends ModelInferResponse {
  modelVersion: string;
  id: string;
  outputs: DecodedInferOutputTensor[];
  rawOutputContents: Uint8Array[];
}

/** ModelReadyRequest and ModelMetadataRequest (same fields). */
export interface ModelRef {
  name: string;
  version?: string;
}

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: ArrayLike<Int64>;
}

export interface ModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface ServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}

const LEN = WireType.LEN;
const VARINT = WireType.VARINT;

// ---------------------------------------------------------------------------------------------
// Shared pieces

function writeString(w: ProtoWriter, field: number, s: string | undefined): void {
  if (s === undefined || s.length === 0) return;
  w.tag(field, LEN);
  w.string(s);
}

function writeParameter(w: ProtoWriter, p: InferParameter): void {
  switch (p.kind) {
    case 'bool':
      w.tag(1, VARINT);
      w.bool(p.value);
      return;
    case 'int64':
      w.tag(2, VARINT);
      w.int64(p.value);
      return;
    case 'string':
      w.tag(3, LEN);
      w.string(p.value);
      return;
    case 'double':
      w.tag(4, WireType.FIXED64);
      w.double(p.value);
      return;
    case 'uint64':
      w.tag(5, VARINT);
      w.int64(p.value);
      return;
  }
}

/** map<string, InferParameter> as repeated entries {key = 1, value = 2}. */
function writeParamMap(w: ProtoWriter, field: number, params: ParamMap | undefined): void {
  if (params === undefined) return;
  for (const [key, value] of params) {
    w.tag(field, LEN);
    w.fork();
    w.tag(1, LEN);
    w.string(key);
    w.tag(2, LEN);
    w.fork();
    writeParameter(w, value);
    w.ldelim();
    w.ldelim();
  }
}

function readParameter(r: ProtoReader, end: number): InferParameter {
  let p: InferParameter = { kind: 'string', value: '' };
  while (r.pos < end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, VARINT);
        p = { kind: 'bool', value: r.bool() };
        break;
      case 2:
        expectWireType(t, VARINT);
        p = { kind: 'int64', value: r.int64() };
        break;
      case 3:
        expectWireType(t, LEN);
        p = { kind: 'string', value: r.string() };
        break;
      case 4:
        expectWireType(t, WireType.FIXED64);
        p = { kind: 'double', value: r.double() };
        break;
      case 5:
        expectWireType(t, VARINT);
        p = { kind: 'uint64', value: r.uint64() };
        break;
      default:
        r.skip(t & 7);
    }
  }
  return p;
}

function readParamEntry(r: ProtoReader, into: ParamMap): void {
  within(r, (r, end) => {
    let key = '';
    // An entry without a value (or a value with no member set) reads as an empty string.
    let value: InferParameter = { kind: 'string', value: '' };
    while (r.pos < end) {
      const t = r.tag();
      switch (t >>> 3) {
        case 1:
          expectWireType(t, LEN);
          key = r.string();
          break;
        case 2:
          expectWireType(t, LEN);
          value = within(r, readParameter);
          break;
        default:
          r.skip(t & 7);
      }
    }
    into.set(key, value);
  });
}

/** Reads the body of a length-delimited field with the reader's bound narrowed to it. */
function within<T>(r: ProtoReader, read: (r: ProtoReader, end: number) => T): T {
  const end = r.delimitedEnd();
  const outer = r.end;
  r.end = end;
  const v = read(r, end);
  if (r.pos !== end) throw new ProtoDecodeError('nested message overran its length');
  r.end = outer;
  return v;
}

/** A repeated varint field, packed (wire type 2) or one element (its scalar wire type). */
function readRepeatedVarint<T>(r: ProtoReader, tag: number, out: T[], read: () => T): void {
  if ((tag & 7) === LEN) {
    const end = r.delimitedEnd();
    const outer = r.end;
    r.end = end;
    while (r.pos < end) out.push(read());
    r.end = outer;
    return;
  }
  expectWireType(tag, VARINT);
  out.push(read());
}

function readRepeatedFloat(r: ProtoReader, tag: number, vec: FloatVec, width: 4 | 8): void {
  if ((tag & 7) === LEN) {
    const bytes = r.bytes();
    if (bytes.length % width !== 0) {
      throw new ProtoDecodeError(
        `packed field ${tag >>> 3}: ${bytes.length} bytes is not a multiple of ${width}`,
      );
    }
    vec.pushBytes(bytes);
    return;
  }
  expectWireType(tag, width === 4 ? WireType.FIXED32 : WireType.FIXED64);
  vec.push(width === 4 ? r.float() : r.double());
}

function writeShape(w: ProtoWriter, field: number, shape: ArrayLike<Int64>): void {
  w.packedInt64(field, shape);
}

// ---------------------------------------------------------------------------------------------
// InferTensorContents

export function writeTensorContents(w: ProtoWriter, c: TensorContents): void {
  if (c.bool) w.packedBool(1, c.bool);
  if (c.int) w.packedInt32(2, c.int);
  if (c.int64) w.packedInt64(3, c.int64);
  if (c.uint) w.packedUint32(4, c.uint);
  if (c.uint64) w.packedInt64(5, c.uint64);
  if (c.fp32) w.packedFloat(6, c.fp32);
  if (c.fp64) w.packedDouble(7, c.fp64);
  if (c.bytes) {
    for (let i = 0; i < c.bytes.length; i++) {
      w.tag(8, LEN);
      w.bytes(c.bytes[i]!);
    }
  }
}

export function readTensorContents(r: ProtoReader, end: number): DecodedTensorContents {
  const c: DecodedTensorContents = {};
  let fp32: FloatVec | undefined;
  let fp64: FloatVec | undefined;
  while (r.pos < end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        c.bool ??= [];
        readRepeatedVarint(r, t, c.bool, () => r.bool());
        break;
      case 2:
        c.int ??= [];
        readRepeatedVarint(r, t, c.int, () => r.int32());
        break;
      case 3:
        c.int64 ??= [];
        readRepeatedVarint(r, t, c.int64, () => r.int64());
        break;
      case 4:
        c.uint ??= [];
        readRepeatedVarint(r, t, c.uint, () => r.uint32());
        break;
      case 5:
        c.uint64 ??= [];
        readRepeatedVarint(r, t, c.uint64, () => r.uint64());
        break;
      case 6:
        fp32 ??= new FloatVec(4, 0);
        readRepeatedFloat(r, t, fp32, 4);
        break;
      case 7:
        fp64 ??= new FloatVec(8, 0);
        readRepeatedFloat(r, t, fp64, 8);
        break;
      case 8:
        expectWireType(t, LEN);
        c.bytes ??= [];
        c.bytes.push(r.bytes());
        break;
      default:
        r.skip(t & 7);
    }
  }
  if (fp32) c.fp32 = fp32.done() as Float32Array;
  if (fp64) c.fp64 = fp64.done() as Float64Array;
  return c;
}

// ---------------------------------------------------------------------------------------------
// ModelInferRequest

function writeInputTensor(w: ProtoWriter, t: InferInputTensor): void {
  writeString(w, 1, t.name);
  writeString(w, 2, t.datatype);
  writeShape(w, 3, t.shape);
  writeParamMap(w, 4, t.parameters);
  if (t.contents) {
    w.tag(5, LEN);
    w.fork();
    writeTensorContents(w, t.contents);
    w.ldelim();
  }
}

function writeRequestedOutput(w: ProtoWriter, o: InferRequestedOutputTensor): void {
  writeString(w, 1, o.name);
  writeParamMap(w, 2, o.parameters);
}

export function encodeModelInferRequest(w: ProtoWriter, m: ModelInferRequest): void {
  writeString(w, 1, m.modelName);
  writeString(w, 2, m.modelVersion);
  writeString(w, 3, m.id);
  writeParamMap(w, 4, m.parameters);
  for (const input of m.inputs) {
    w.tag(5, LEN);
    w.fork();
    writeInputTensor(w, input);
    w.ldelim();
  }
  if (m.outputs) {
    for (const output of m.outputs) {
      w.tag(6, LEN);
      w.fork();
      writeRequestedOutput(w, output);
      w.ldelim();
    }
  }
  if (m.rawInputContents) {
    for (const raw of m.rawInputContents) {
      w.tag(7, LEN);
      w.bytes(raw);
    }
  }
}

function readTensorHeader(
  r: ProtoReader,
  end: number,
): {
  name: string;
  datatype: string;
  shape: Int64[];
  parameters?: ParamMap;
  contents?: DecodedTensorContents;
} {
  const t: {
    name: string;
    datatype: string;
    shape: Int64[];
    parameters?: ParamMap;
    contents?: DecodedTensorContents;
  } = { name: '', datatype: '', shape: [] };
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag, LEN);
        t.name = r.string();
        break;
      case 2:
        expectWireType(tag, LEN);
        t.datatype = r.string();
        break;
      case 3:
        readRepeatedVarint(r, tag, t.shape, () => r.int64());
        break;
      case 4:
        expectWireType(tag, LEN);
        t.parameters ??= new Map();
        readParamEntry(r, t.parameters);
        break;
      case 5:
        expectWireType(tag, LEN);
        // A message field given twice merges; contents fields are all repeated, so merging appends.
        t.contents = mergeContents(t.contents, within(r, readTensorContents));
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return t;
}

function concatFloat<T extends Float32Array | Float64Array>(a: T, b: T): T {
  const out = new (a.constructor as new (n: number) => T)(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function mergeContents(
  a: DecodedTensorContents | undefined,
  b: DecodedTensorContents,
): DecodedTensorContents {
  if (!a) return b;
  if (b.bool) a.bool = a.bool ? a.bool.concat(b.bool) : b.bool;
  if (b.int) a.int = a.int ? a.int.concat(b.int) : b.int;
  if (b.int64) a.int64 = a.int64 ? a.int64.concat(b.int64) : b.int64;
  if (b.uint) a.uint = a.uint ? a.uint.concat(b.uint) : b.uint;
  if (b.uint64) a.uint64 = a.uint64 ? a.uint64.concat(b.uint64) : b.uint64;
  if (b.fp32) a.fp32 = a.fp32 ? concatFloat(a.fp32, b.fp32) : b.fp32;
  if (b.fp64) a.fp64 = a.fp64 ? concatFloat(a.fp64, b.fp64) : b.fp64;
  if (b.bytes) a.bytes = a.bytes ? a.bytes.concat(b.bytes) : b.bytes;
  return a;
}

function readRequestedOutput(r: ProtoReader, end: number): InferRequestedOutputTensor {
  const o: InferRequestedOutputTensor = { name: '' };
  while (r.pos < end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        o.name = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        o.parameters ??= new Map();
        readParamEntry(r, o.parameters);
        break;
      default:
        r.skip(t & 7);
    }
  }
  return o;
}

export function decodeModelInferRequest(r: ProtoReader): DecodedModelInferRequest {
  const m: DecodedModelInferRequest = {
    modelName: '',
    modelVersion: '',
    id: '',
    inputs: [],
    outputs: [],
    rawInputContents: [],
  };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        m.modelName = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        m.modelVersion = r.string();
        break;
      case 3:
        expectWireType(t, LEN);
        m.id = r.string();
        break;
      case 4:
        expectWireType(t, LEN);
        m.parameters ??= new Map();
        readParamEntry(r, m.parameters);
        break;
      case 5:
        expectWireType(t, LEN);
        m.inputs.push(within(r, readTensorHeader));
        break;
      case 6:
        expectWireType(t, LEN);
        m.outputs.push(within(r, readRequestedOutput));
        break;
      case 7:
        expectWireType(t, LEN);
        m.rawInputContents.push(r.bytes());
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// ModelInferResponse

export function encodeModelInferResponse(w: ProtoWriter, m: ModelInferResponse): void {
  writeString(w, 1, m.modelName);
  writeString(w, 2, m.modelVersion);
  writeString(w, 3, m.id);
  writeParamMap(w, 4, m.parameters);
  for (const output of m.outputs) {
    w.tag(5, LEN);
    w.fork();
    writeInputTensor(w, output); // InferOutputTensor has the same fields and numbers.
    w.ldelim();
  }
  if (m.rawOutputContents) {
    for (const raw of m.rawOutputContents) {
      w.tag(6, LEN);
      w.bytes(raw);
    }
  }
}

export function decodeModelInferResponse(r: ProtoReader): DecodedModelInferResponse {
  const m: DecodedModelInferResponse = {
    modelName: '',
    modelVersion: '',
    id: '',
    outputs: [],
    rawOutputContents: [],
  };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        m.modelName = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        m.modelVersion = r.string();
        break;
      case 3:
        expectWireType(t, LEN);
        m.id = r.string();
        break;
      case 4:
        expectWireType(t, LEN);
        m.parameters ??= new Map();
        readParamEntry(r, m.parameters);
        break;
      case 5:
        expectWireType(t, LEN);
        m.outputs.push(within(r, readTensorHeader));
        break;
      case 6:
        expectWireType(t, LEN);
        m.rawOutputContents.push(r.bytes());
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Health and metadata

/** ModelReadyRequest / ModelMetadataRequest: name = 1, version = 2. */
export function encodeModelRef(w: ProtoWriter, m: ModelRef): void {
  writeString(w, 1, m.name);
  writeString(w, 2, m.version);
}

export function decodeModelRef(r: ProtoReader): Required<ModelRef> {
  const m = { name: '', version: '' };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        m.name = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        m.version = r.string();
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}

/** ServerLiveRequest, ServerReadyRequest, ServerMetadataRequest: no fields. */
export function encodeEmpty(_w: ProtoWriter, _m?: unknown): void {}

/** ServerLiveResponse (live = 1), ServerReadyResponse / ModelReadyResponse (ready = 1). */
export function encodeBoolResponse(w: ProtoWriter, value: boolean): void {
  if (!value) return;
  w.tag(1, VARINT);
  w.bool(true);
}

export function decodeBoolResponse(r: ProtoReader): boolean {
  let value = false;
  while (r.pos < r.end) {
    const t = r.tag();
    if (t >>> 3 === 1) {
      expectWireType(t, VARINT);
      value = r.bool();
    } else {
      r.skip(t & 7);
    }
  }
  return value;
}

export function encodeServerMetadataResponse(w: ProtoWriter, m: ServerMetadataResponse): void {
  writeString(w, 1, m.name);
  writeString(w, 2, m.version);
  for (const e of m.extensions) {
    w.tag(3, LEN);
    w.string(e);
  }
}

export function decodeServerMetadataResponse(r: ProtoReader): ServerMetadataResponse {
  const m: ServerMetadataResponse = { name: '', version: '', extensions: [] };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        m.name = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        m.version = r.string();
        break;
      case 3:
        expectWireType(t, LEN);
        m.extensions.push(r.string());
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}

function writeTensorMetadata(w: ProtoWriter, t: TensorMetadata): void {
  writeString(w, 1, t.name);
  writeString(w, 2, t.datatype);
  writeShape(w, 3, t.shape);
}

function readTensorMetadata(r: ProtoReader, end: number): TensorMetadata & { shape: Int64[] } {
  const t = { name: '', datatype: '', shape: [] as Int64[] };
  while (r.pos < end) {
    const tag = r.tag();
    switch (tag >>> 3) {
      case 1:
        expectWireType(tag, LEN);
        t.name = r.string();
        break;
      case 2:
        expectWireType(tag, LEN);
        t.datatype = r.string();
        break;
      case 3:
        readRepeatedVarint(r, tag, t.shape, () => r.int64());
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return t;
}

export function encodeModelMetadataResponse(w: ProtoWriter, m: ModelMetadataResponse): void {
  writeString(w, 1, m.name);
  for (const v of m.versions) {
    w.tag(2, LEN);
    w.string(v);
  }
  writeString(w, 3, m.platform);
  for (const t of m.inputs) {
    w.tag(4, LEN);
    w.fork();
    writeTensorMetadata(w, t);
    w.ldelim();
  }
  for (const t of m.outputs) {
    w.tag(5, LEN);
    w.fork();
    writeTensorMetadata(w, t);
    w.ldelim();
  }
}

export interface DecodedModelMetadataResponse extends ModelMetadataResponse {
  inputs: Array<TensorMetadata & { shape: Int64[] }>;
  outputs: Array<TensorMetadata & { shape: Int64[] }>;
}

export function decodeModelMetadataResponse(r: ProtoReader): DecodedModelMetadataResponse {
  const m = {
    name: '',
    versions: [] as string[],
    platform: '',
    inputs: [] as Array<TensorMetadata & { shape: Int64[] }>,
    outputs: [] as Array<TensorMetadata & { shape: Int64[] }>,
  };
  while (r.pos < r.end) {
    const t = r.tag();
    switch (t >>> 3) {
      case 1:
        expectWireType(t, LEN);
        m.name = r.string();
        break;
      case 2:
        expectWireType(t, LEN);
        m.versions.push(r.string());
        break;
      case 3:
        expectWireType(t, LEN);
        m.platform = r.string();
        break;
      case 4:
        expectWireType(t, LEN);
        m.inputs.push(within(r, readTensorMetadata));
        break;
      case 5:
        expectWireType(t, LEN);
        m.outputs.push(within(r, readTensorMetadata));
        break;
      default:
        r.skip(t & 7);
    }
  }
  return m;
}
