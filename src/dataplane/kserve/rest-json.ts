/**
 * KServe v2 REST/JSON ⇄ gRPC messages, and the two calls the exchange makes:
 *
 *   translateRequest(op, body, headers?, options?)  → { ok, grpcPath, headers, frame } | { ok: false, reply }
 *   translateResponse(op, upstream, options?)       → RestReply { status, headers, body, code? }
 *
 * Decisions (each tested in test/unit/dataplane/kserve/rest-json.test.ts):
 *
 * - INT64 / UINT64. JSON numbers beyond ±(2^53−1) are not exact once parsed into doubles, so when an
 *   INT64/UINT64 element (or a parameter) holds a number that is not a safe integer, the body is
 *   parsed a second time with source-text access (the JSON.parse reviver's `context.source`) and
 *   plain integer literals are taken digit for digit; the fast parse stays the common path (the
 *   reviver parse is ~20× slower). Decimal strings ("-9223372036854775808") are accepted too. A
 *   value outside the datatype's range, or an unsafe number that is not a plain integer literal
 *   (1e300), is MG_KSERVE_BAD_TENSOR_DATA. Outputs are JSON numbers with every digit (as Triton
 *   writes them): exact, but a JavaScript client needs a reviver with `context.source` or a
 *   big-number parser to keep values beyond 2^53.
 * - Floating point. FP32/FP16/BF16 inputs are rounded to nearest-even from the JSON double; a finite
 *   value that rounds beyond the type's largest finite value is MG_KSERVE_BAD_TENSOR_DATA (not
 *   silently ±Infinity), and so is a JSON literal too large for a double. JSON has no NaN/Infinity:
 *   inputs accept the strings "NaN", "Infinity", "-Infinity", and outputs write non-finite values as
 *   those strings (valid JSON, nothing lost). Outputs print the shortest decimal that reads back as
 *   the same double, so an FP32 value reads back as the identical float32 (1.1f prints
 *   1.100000023841858); -0 prints as -0.
 * - FP16 / BF16. The protocol has no typed field for them: they travel only as raw contents. Inputs
 *   are converted from JSON numbers (IEEE 754 binary16, bfloat16; round to nearest, ties to even,
 *   computed from the double directly, not via float32, so there is no double rounding), and since
 *   raw_input_contents excludes typed contents for every input, a request with any FP16/BF16 input
 *   sends all of its inputs raw. Outputs are decoded exactly to numbers.
 * - BYTES. JSON strings are sent as their UTF-8 bytes. An output tensor whose elements are all
 *   valid UTF-8 is written as strings; if any element is not, every element of that tensor is
 *   base64 (RFC 4648, padded) and the output's parameters get `"content_type": "base64"` (MLServer's
 *   convention for base64 tensors). An input may use the same convention: `"content_type":"base64"`
 *   in its parameters makes the gateway decode its strings, and the parameter is not forwarded.
 * - Binary tensor data extension (Inference-Header-Content-Length, `binary_data_size`,
 *   `binary_data`/`binary_data_output` true) is refused with MG_KSERVE_BINARY_DATA_UNSUPPORTED;
 *   those parameters set to false are accepted and not forwarded.
 * - Data may be flat or nested arrays (flattened row-major, nesting not checked against the shape,
 *   as Triton does); the element count must equal the product of the shape
 *   (MG_KSERVE_SHAPE_MISMATCH, naming the input). Backend outputs whose contents disagree with
 *   their shape are MG_KSERVE_BAD_RESPONSE (502). When an output has raw contents they are used and
 *   any typed contents ignored.
 * - Health: `live`/`ready` true → 200, false → 400 (the spec: "a 4xx status code indicates
 *   false"), with a small JSON body ({"live": b}, {"ready": b}, {"name": m, "ready": b}).
 */
import { isUtf8 } from 'node:buffer';
import { errorReply, JSON_HEADERS, KServeError, KServeErrors, type RestReply } from './errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeGrpcMessage,
  encodeFramed,
  GrpcDeframer,
  grpcCodeName,
  grpcStatusToHttp,
  httpStatusToGrpc,
} from './grpc-frame.ts';
import {
  type DecodedInferOutputTensor,
  type DecodedModelInferResponse,
  type DecodedTensorContents,
  decodeBoolResponse,
  decodeModelInferResponse,
  decodeModelMetadataResponse,
  decodeServerMetadataResponse,
  encodeEmpty,
  encodeModelInferRequest,
  encodeModelRef,
  type InferInputTensor,
  type InferParameter,
  type InferRequestedOutputTensor,
  type Int64,
  type ModelInferRequest,
  type ParamMap,
  type TensorContents,
  type TensorMetadata,
} from './messages.ts';
import { LITTLE_ENDIAN_HOST, ProtoDecodeError, ProtoReader } from './protobuf-wire.ts';
import { grpcPathOf, type KServeOp } from './rest-routes.ts';

export type { RestReply } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// Datatypes

type Family = 'bool' | 'int' | 'uint' | 'int64' | 'uint64' | 'fp32' | 'fp64' | 'fp16' | 'bf16' | 'bytes';

interface DatatypeInfo {
  readonly name: string;
  readonly family: Family;
  /** Bytes per element in raw contents; 0 for BYTES (variable). */
  readonly size: number;
  readonly min: number;
  readonly max: number;
}

function dt(name: string, family: Family, size: number, min = 0, max = 0): DatatypeInfo {
  return { name, family, size, min, max };
}

/** The protocol's tensor datatypes (names are case-sensitive). */
export const DATATYPES: ReadonlyMap<string, DatatypeInfo> = new Map(
  [
    dt('BOOL', 'bool', 1),
    dt('UINT8', 'uint', 1, 0, 0xff),
    dt('UINT16', 'uint', 2, 0, 0xffff),
    dt('UINT32', 'uint', 4, 0, 0xffffffff),
    dt('UINT64', 'uint64', 8),
    dt('INT8', 'int', 1, -0x80, 0x7f),
    dt('INT16', 'int', 2, -0x8000, 0x7fff),
    dt('INT32', 'int', 4, -0x80000000, 0x7fffffff),
    dt('INT64', 'int64', 8),
    dt('FP16', 'fp16', 2),
    dt('FP32', 'fp32', 4),
    dt('FP64', 'fp64', 8),
    dt('BF16', 'bf16', 2),
    dt('BYTES', 'bytes', 0),
  ].map((d) => [d.name, d]),
);

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

// ---------------------------------------------------------------------------------------------
// FP16 / BF16

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The bits of a binary float with `eBits` exponent and `mBits` mantissa bits nearest to `v` (ties to
 * even), computed from the double directly. Overflow gives ±Infinity, NaN a quiet NaN.
 */
function toMinifloatBits(v: number, eBits: number, mBits: number): number {
  const bias = (1 << (eBits - 1)) - 1;
  const expAllOnes = (1 << eBits) - 1;
  const inf = expAllOnes << mBits;
  if (Number.isNaN(v)) return inf | (1 << (mBits - 1));
  const sign = v < 0 || Object.is(v, -0) ? 1 << (eBits + mBits) : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a === Number.POSITIVE_INFINITY) return sign | inf;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const minExp = 1 - bias;
  if (e < minExp) {
    // Subnormal: a = q × 2^(minExp − mBits); q = 2^mBits is the smallest normal, which encodes right.
    return sign | roundHalfEven(a * 2 ** (mBits - minExp));
  }
  const q = roundHalfEven(a * 2 ** (mBits - e)); // in [2^mBits, 2^(mBits+1)]; a carry bumps the exponent
  const bits = ((e + bias) << mBits) + (q - (1 << mBits));
  return sign | Math.min(bits, inf);
}

function fromMinifloatBits(bits: number, eBits: number, mBits: number): number {
  const bias = (1 << (eBits - 1)) - 1;
  const expAllOnes = (1 << eBits) - 1;
  const negative = (bits >> (eBits + mBits)) & 1;
  const e = (bits >> mBits) & expAllOnes;
  const m = bits & ((1 << mBits) - 1);
  let v: number;
  if (e === 0) v = m * 2 ** (1 - bias - mBits);
  else if (e === expAllOnes) v = m === 0 ? Number.POSITIVE_INFINITY : Number.NaN;
  else v = (1 + m / 2 ** mBits) * 2 ** (e - bias);
  return negative ? -v : v;
}

/** IEEE 754 binary16 bits of a number (round to nearest even). */
export const toFp16Bits = (v: number): number => toMinifloatBits(v, 5, 10);
export const fromFp16Bits = (bits: number): number => fromMinifloatBits(bits, 5, 10);
/** bfloat16 bits of a number (round to nearest even). */
export const toBf16Bits = (v: number): number => toMinifloatBits(v, 8, 7);
export const fromBf16Bits = (bits: number): number => fromMinifloatBits(bits, 8, 7);

/** The smallest magnitude that rounds to infinity: max finite + half an ulp (a tie goes to infinity). */
const OVERFLOW_AT: Partial<Record<Family, number>> = {
  fp16: 65520,
  bf16: 2 ** 128 - 2 ** 119,
  fp32: 2 ** 128 - 2 ** 103,
};

// ---------------------------------------------------------------------------------------------
// REST request JSON → ModelInferRequest

/** Thrown inside the conversion when an unsafe integer needs the exact (reviver) parse. */
class NeedExactParse extends Error {}

function badRequest(message: string): KServeError {
  return new KServeError(KServeErrors.BadRequest, message);
}

function preview(v: unknown): string {
  if (typeof v === 'bigint') return v.toString();
  if (v === undefined) return 'undefined';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

function badElement(input: string, datatype: string, index: number, v: unknown, why: string): KServeError {
  return new KServeError(
    KServeErrors.BadTensorData,
    `input '${input}' (${datatype}) element ${index}: ${preview(v)} ${why}`,
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const PLAIN_INT = /^-?\d+$/;

function flatten(data: unknown[]): unknown[] {
  for (let i = 0; i < data.length; i++) {
    if (Array.isArray(data[i])) {
      const out: unknown[] = [];
      flattenInto(data, out, 0);
      return out;
    }
  }
  return data;
}

function flattenInto(a: unknown[], out: unknown[], depth: number): void {
  if (depth > 64) throw badRequest('tensor data is nested more than 64 levels deep');
  for (let i = 0; i < a.length; i++) {
    const v = a[i];
    if (Array.isArray(v)) flattenInto(v, out, depth + 1);
    else out.push(v);
  }
}

function parseShape(shape: unknown, input: string): number[] {
  if (!Array.isArray(shape)) throw badRequest(`input '${input}': "shape" must be an array of integers`);
  const out: number[] = new Array(shape.length);
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw badRequest(
        `input '${input}': shape dimension ${i} (${preview(d)}) is not a non-negative integer`,
      );
    }
    out[i] = d;
  }
  return out;
}

function elementCount(shape: ArrayLike<number>): number {
  let n = 1;
  for (let i = 0; i < shape.length; i++) n *= shape[i]!;
  return n;
}

function nonFiniteString(v: unknown): number | undefined {
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  return undefined;
}

/** A float element: a finite JSON number (bigint from the exact parse included) or a non-finite string. */
function floatElement(v: unknown, input: string, datatype: string, i: number, overflowAt?: number): number {
  if (typeof v === 'number') {
    if (v - v !== 0) throw badElement(input, datatype, i, v, 'is too large for a double');
    if (overflowAt !== undefined && (v >= overflowAt || v <= -overflowAt)) {
      throw badElement(input, datatype, i, v, `is beyond the range of ${datatype}`);
    }
    return v;
  }
  if (typeof v === 'bigint') return floatElement(Number(v), input, datatype, i, overflowAt);
  const nf = nonFiniteString(v);
  if (nf === undefined) {
    throw badElement(
      input,
      datatype,
      i,
      v,
      'is not a number (non-finite values are "NaN", "Infinity", "-Infinity")',
    );
  }
  return nf;
}

/** An INT64/UINT64 element as number (safe) or bigint, or NeedExactParse for an unsafe number. */
function int64Element(
  v: unknown,
  input: string,
  datatype: string,
  i: number,
  exact: boolean,
  unsigned: boolean,
): Int64 {
  let b: bigint;
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) {
      if (unsigned && v < 0) throw badElement(input, datatype, i, v, 'is negative');
      return v;
    }
    if (!exact && Number.isInteger(v)) throw new NeedExactParse();
    throw badElement(
      input,
      datatype,
      i,
      v,
      'is not an integer of the datatype (write it as a plain integer)',
    );
  } else if (typeof v === 'bigint') {
    b = v;
  } else if (typeof v === 'string' && PLAIN_INT.test(v) && v.length <= 21) {
    b = BigInt(v);
  } else {
    throw badElement(input, datatype, i, v, 'is not an integer (a JSON number or a decimal string)');
  }
  if (unsigned ? b < 0n || b > UINT64_MAX : b < INT64_MIN || b > INT64_MAX) {
    throw badElement(input, datatype, i, v, `is out of the range of ${datatype}`);
  }
  const n = Number(b);
  return Number.isSafeInteger(n) ? n : b;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function bytesElement(v: unknown, input: string, i: number, base64: boolean): Uint8Array {
  if (typeof v !== 'string') throw badElement(input, 'BYTES', i, v, 'is not a string');
  if (!base64) return Buffer.from(v, 'utf8');
  if (!BASE64.test(v) || v.length % 4 === 1) throw badElement(input, 'BYTES', i, v, 'is not base64');
  return Buffer.from(v, 'base64');
}

/** Converted tensor elements: typed contents, or the raw bytes when the request goes raw. */
interface Converted {
  contents?: TensorContents;
  raw?: Uint8Array;
  bytes: number;
}

function u8(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function intsToRaw(values: ArrayLike<number>, size: number, signed: boolean): Uint8Array {
  const n = values.length;
  if (size === 1) return signed ? u8(Int8Array.from(values)) : Uint8Array.from(values);
  const out = Buffer.allocUnsafe(n * size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (size === 2) {
      if (signed) view.setInt16(i * 2, v, true);
      else view.setUint16(i * 2, v, true);
    } else if (signed) view.setInt32(i * 4, v, true);
    else view.setUint32(i * 4, v, true);
  }
  return out;
}

function int64sToRaw(values: ArrayLike<Int64>): Uint8Array {
  const out = Buffer.allocUnsafe(values.length * 8);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    out.writeBigUInt64LE(BigInt.asUintN(64, typeof v === 'bigint' ? v : BigInt(v)), i * 8);
  }
  return out;
}

function floatsToRaw(values: Float32Array | Float64Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return u8(values);
  const size = values.BYTES_PER_ELEMENT;
  const out = Buffer.allocUnsafe(values.length * size);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < values.length; i++) {
    if (size === 4) view.setFloat32(i * 4, values[i]!, true);
    else view.setFloat64(i * 8, values[i]!, true);
  }
  return out;
}

function bytesToRaw(elements: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const e of elements) total += 4 + e.length;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const e of elements) {
    out.writeUInt32LE(e.length, pos);
    out.set(e, pos + 4);
    pos += 4 + e.length;
  }
  return out;
}

function convertData(
  flat: unknown[],
  info: DatatypeInfo,
  input: string,
  raw: boolean,
  exact: boolean,
  base64: boolean,
): Converted {
  const n = flat.length;
  const name = info.name;
  switch (info.family) {
    case 'bool': {
      for (let i = 0; i < n; i++) {
        if (typeof flat[i] !== 'boolean') throw badElement(input, name, i, flat[i], 'is not a boolean');
      }
      const values = flat as boolean[];
      if (!raw) return { contents: { bool: values }, bytes: n };
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = values[i] ? 1 : 0;
      return { raw: out, bytes: n };
    }
    case 'int':
    case 'uint': {
      const values = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        let v = flat[i];
        if (typeof v === 'bigint') v = Number(v); // only from the exact parse; out of range below
        if (typeof v !== 'number' || !Number.isInteger(v) || v < info.min || v > info.max) {
          throw badElement(input, name, i, flat[i], `is not an integer in [${info.min}, ${info.max}]`);
        }
        values[i] = v === 0 ? 0 : v; // no -0
      }
      if (!raw) {
        return { contents: info.family === 'int' ? { int: values } : { uint: values }, bytes: n * 5 };
      }
      return { raw: intsToRaw(values, info.size, info.family === 'int'), bytes: n * info.size };
    }
    case 'int64':
    case 'uint64': {
      const unsigned = info.family === 'uint64';
      const values = new Array<Int64>(n);
      for (let i = 0; i < n; i++) values[i] = int64Element(flat[i], input, name, i, exact, unsigned);
      if (!raw) {
        return { contents: unsigned ? { uint64: values } : { int64: values }, bytes: n * 10 };
      }
      return { raw: int64sToRaw(values), bytes: n * 8 };
    }
    case 'fp32': {
      const values = new Float32Array(n);
      const limit = OVERFLOW_AT.fp32!;
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        // The common case inline: a finite number in range.
        if (typeof v === 'number' && v < limit && v > -limit) values[i] = v;
        else values[i] = floatElement(v, input, name, i, limit);
      }
      return raw ? { raw: floatsToRaw(values), bytes: n * 4 } : { contents: { fp32: values }, bytes: n * 4 };
    }
    case 'fp64': {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = flat[i];
        if (typeof v === 'number' && v - v === 0) values[i] = v;
        else values[i] = floatElement(v, input, name, i);
      }
      return raw ? { raw: floatsToRaw(values), bytes: n * 8 } : { contents: { fp64: values }, bytes: n * 8 };
    }
    case 'fp16':
    case 'bf16': {
      const toBits = info.family === 'fp16' ? toFp16Bits : toBf16Bits;
      const limit = OVERFLOW_AT[info.family]!;
      const out = Buffer.allocUnsafe(n * 2);
      for (let i = 0; i < n; i++)
        out.writeUInt16LE(toBits(floatElement(flat[i], input, name, i, limit)), i * 2);
      return { raw: out, bytes: n * 2 };
    }
    case 'bytes': {
      const values = new Array<Uint8Array>(n);
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        values[i] = bytesElement(flat[i], input, i, base64);
        bytes += values[i]!.length + 4;
      }
      return raw ? { raw: bytesToRaw(values), bytes } : { contents: { bytes: values }, bytes };
    }
  }
}

interface ParamContext {
  exact: boolean;
  where: string;
}

/** A JSON parameters object → InferParameter map; `skip` names members handled by the gateway. */
function toParamMap(
  obj: unknown,
  ctx: ParamContext,
  skip?: (key: string, value: unknown) => boolean,
): ParamMap | undefined {
  if (obj === undefined) return undefined;
  if (!isPlainObject(obj)) throw badRequest(`${ctx.where}: "parameters" must be an object`);
  let map: ParamMap | undefined;
  for (const key of Object.keys(obj)) {
    const v = obj[key];
    if (skip?.(key, v)) continue;
    let p: InferParameter;
    if (typeof v === 'boolean') p = { kind: 'bool', value: v };
    else if (typeof v === 'string') p = { kind: 'string', value: v };
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) p = { kind: 'int64', value: v };
      else if (!ctx.exact && Number.isInteger(v) && Math.abs(v) < 2 ** 64) throw new NeedExactParse();
      else if (Number.isFinite(v)) p = { kind: 'double', value: v };
      else throw badRequest(`${ctx.where}: parameter '${key}' is too large for a double`);
    } else if (typeof v === 'bigint') {
      if (v >= INT64_MIN && v <= INT64_MAX) p = { kind: 'int64', value: v };
      else if (v >= 0n && v <= UINT64_MAX) p = { kind: 'uint64', value: v };
      else p = { kind: 'double', value: Number(v) };
    } else {
      throw badRequest(`${ctx.where}: parameter '${key}' must be a string, number or boolean`);
    }
    map ??= new Map();
    map.set(key, p);
  }
  return map;
}

function binaryRefused(what: string): KServeError {
  return new KServeError(
    KServeErrors.BinaryDataUnsupported,
    `${what}: the binary tensor data extension is not supported by the gateway; send tensor data as JSON`,
  );
}

/** Handles a `binary_data*` parameter: true is refused, false is dropped. */
function binaryFlag(where: string, key: string, value: unknown): boolean {
  if (value === true) throw binaryRefused(`${where}: "${key}": true`);
  if (value === false) return true;
  throw badRequest(`${where}: parameter '${key}' must be a boolean`);
}

export interface InferRequestOptions {
  /** Send every input as raw_input_contents (Triton's preferred form); default typed contents. */
  rawInputs?: boolean;
}

export interface ConvertedInferRequest {
  message: ModelInferRequest;
  /** Estimated encoded size, for the writer's first allocation. */
  sizeHint: number;
}

function convertInferRequest(
  body: unknown,
  op: { model: string; version: string },
  options: InferRequestOptions,
  exact: boolean,
): ConvertedInferRequest {
  if (!isPlainObject(body)) throw badRequest('the inference request must be a JSON object');
  const { id, parameters, inputs, outputs } = body;
  if (id !== undefined && typeof id !== 'string') throw badRequest('"id" must be a string');
  if (!Array.isArray(inputs)) throw badRequest('"inputs" must be an array of input tensors');
  if (outputs !== undefined && !Array.isArray(outputs)) throw badRequest('"outputs" must be an array');

  // Datatypes first: one FP16/BF16 input sends every input raw.
  const infos: DatatypeInfo[] = new Array(inputs.length);
  let raw = options.rawInputs === true;
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i];
    if (!isPlainObject(input)) throw badRequest(`inputs[${i}] must be an object`);
    if (typeof input.name !== 'string' || input.name.length === 0) {
      throw badRequest(`inputs[${i}]: "name" must be a non-empty string`);
    }
    if (typeof input.datatype !== 'string')
      throw badRequest(`input '${input.name}': "datatype" must be a string`);
    const info = DATATYPES.get(input.datatype);
    if (info === undefined) {
      throw new KServeError(
        KServeErrors.UnsupportedDatatype,
        `input '${input.name}': datatype '${input.datatype}' is not one of ${[...DATATYPES.keys()].join(', ')}`,
      );
    }
    if (info.family === 'fp16' || info.family === 'bf16') raw = true;
    infos[i] = info;
  }

  let sizeHint = 256 + op.model.length + (typeof id === 'string' ? id.length : 0);
  const messageInputs: InferInputTensor[] = new Array(inputs.length);
  const rawContents: Uint8Array[] = [];
  for (let i = 0; i < inputs.length; i++) {
    const input = inputs[i] as Record<string, unknown>;
    const name = input.name as string;
    const info = infos[i]!;
    const shape = parseShape(input.shape, name);
    let base64 = false;
    const params = toParamMap(input.parameters, { exact, where: `input '${name}'` }, (key, value) => {
      if (key === 'binary_data_size') throw binaryRefused(`input '${name}': "binary_data_size"`);
      if (key === 'content_type' && value === 'base64' && info.family === 'bytes') {
        base64 = true;
        return true;
      }
      return false;
    });
    if (!Array.isArray(input.data)) throw badRequest(`input '${name}': "data" must be an array`);
    const flat = flatten(input.data);
    const count = elementCount(shape);
    if (flat.length !== count) {
      throw new KServeError(
        KServeErrors.ShapeMismatch,
        `input '${name}': shape [${shape.join(',')}] needs ${count} elements, data has ${flat.length}`,
      );
    }
    const converted = convertData(flat, info, name, raw, exact, base64);
    sizeHint += converted.bytes + 32 + name.length + shape.length * 10;
    const tensor: InferInputTensor = { name, datatype: info.name, shape };
    if (params) tensor.parameters = params;
    if (raw) rawContents.push(converted.raw!);
    else tensor.contents = converted.contents!;
    messageInputs[i] = tensor;
  }

  const message: ModelInferRequest = { modelName: op.model, inputs: messageInputs };
  if (op.version) message.modelVersion = op.version;
  if (typeof id === 'string' && id.length > 0) message.id = id;
  const requestParams = toParamMap(parameters, { exact, where: 'request' }, (key, value) =>
    key === 'binary_data_output' ? binaryFlag('request', key, value) : false,
  );
  if (requestParams) message.parameters = requestParams;
  if (outputs !== undefined) {
    const requested: InferRequestedOutputTensor[] = [];
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i];
      if (!isPlainObject(o) || typeof o.name !== 'string' || o.name.length === 0) {
        throw badRequest(`outputs[${i}] must be an object with a non-empty "name"`);
      }
      const where = `output '${o.name}'`;
      const p = toParamMap(o.parameters, { exact, where }, (key, value) =>
        key === 'binary_data' ? binaryFlag(where, key, value) : false,
      );
      requested.push(p ? { name: o.name, parameters: p } : { name: o.name });
    }
    if (requested.length > 0) message.outputs = requested;
  }
  if (raw) message.rawInputContents = rawContents;
  return { message, sizeHint };
}

function parseJson(text: string, exact: boolean): unknown {
  if (!exact) return JSON.parse(text);
  return JSON.parse(text, (_key: string, value: unknown, context?: { source?: string }) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) {
      const src = context?.source;
      if (src !== undefined && PLAIN_INT.test(src)) return BigInt(src);
    }
    return value;
  });
}

/**
 * The ModelInferRequest for a v2 REST inference body. Throws KServeError (4xx) for a body the
 * gateway refuses.
 */
export function restInferRequestToMessage(
  body: Uint8Array | string,
  op: { model: string; version: string },
  options: InferRequestOptions = {},
): ConvertedInferRequest {
  const text =
    typeof body === 'string'
      ? body
      : Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
  let parsed: unknown;
  try {
    parsed = parseJson(text, false);
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
  try {
    return convertInferRequest(parsed, op, options, false);
  } catch (e) {
    if (!(e instanceof NeedExactParse)) throw e;
  }
  return convertInferRequest(parseJson(text, true), op, options, true);
}

// ---------------------------------------------------------------------------------------------
// ModelInferResponse → REST JSON

function badResponse(message: string): KServeError {
  return new KServeError(KServeErrors.BadResponse, message);
}

function numberJson(v: number): string {
  if (v - v !== 0) return Number.isNaN(v) ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
  if (v === 0 && 1 / v < 0) return '-0';
  return String(v);
}

/** A JSON array of numbers: non-finite values as strings, -0 kept. */
export function numbersJson(values: ArrayLike<number>): string {
  const n = values.length;
  let plain = true;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v - v !== 0 || (v === 0 && 1 / v < 0)) {
      plain = false;
      break;
    }
  }
  if (plain) {
    // join is cheaper for short arrays; JSON.stringify of a plain array prints long ones ~1.5×
    // faster (measured on node 24: ~100 vs ~150 ns per element). Both print the shortest
    // round-tripping decimal of each double.
    if (n < 64) return `[${Array.prototype.join.call(values, ',')}]`;
    const plainArray = new Array<number>(n);
    for (let i = 0; i < n; i++) plainArray[i] = values[i]!;
    return JSON.stringify(plainArray);
  }
  const parts = new Array<string>(n);
  for (let i = 0; i < n; i++) parts[i] = numberJson(values[i]!);
  return `[${parts.join(',')}]`;
}

function joinJson(values: ArrayLike<unknown>): string {
  return `[${Array.prototype.join.call(values, ',')}]`;
}

/** Copies little-endian raw bytes into a new aligned typed array. */
function copyTyped<T extends ArrayBufferView>(raw: Uint8Array, make: (n: number) => T, size: number): T {
  const out = make(raw.length / size);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw);
    return out;
  }
  // Big-endian host: reverse each element's bytes.
  const dst = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < raw.length; i += size)
    for (let j = 0; j < size; j++) dst[i + j] = raw[i + size - 1 - j]!;
  return out;
}

function splitRawBytes(raw: Uint8Array, count: number, output: string): Uint8Array[] {
  // Every element takes at least its 4-byte length: checked before allocating for `count`.
  if (count * 4 > raw.length) {
    throw badResponse(
      `output '${output}': raw BYTES contents of ${raw.length} bytes cannot hold ${count} elements`,
    );
  }
  const out: Uint8Array[] = new Array(count);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    if (pos + 4 > raw.length)
      throw badResponse(`output '${output}': raw BYTES contents end inside element ${i}`);
    const len = view.getUint32(pos, true);
    pos += 4;
    if (pos + len > raw.length)
      throw badResponse(`output '${output}': raw BYTES contents end inside element ${i}`);
    out[i] = raw.subarray(pos, pos + len);
    pos += len;
  }
  if (pos !== raw.length) {
    throw badResponse(
      `output '${output}': raw BYTES contents hold more than the ${count} elements of its shape`,
    );
  }
  return out;
}

function bytesJson(elements: Uint8Array[], forceBase64: boolean): { json: string; base64: boolean } {
  let base64 = forceBase64;
  if (!base64) {
    for (const e of elements) {
      if (!isUtf8(e)) {
        base64 = true;
        break;
      }
    }
  }
  const parts = new Array<string>(elements.length);
  for (let i = 0; i < elements.length; i++) {
    const b = elements[i]!;
    const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    parts[i] = base64 ? `"${buf.toString('base64')}"` : JSON.stringify(buf.toString('utf8'));
  }
  return { json: `[${parts.join(',')}]`, base64 };
}

function halfsJson(bits: Uint16Array, family: 'fp16' | 'bf16'): string {
  const from = family === 'fp16' ? fromFp16Bits : fromBf16Bits;
  const values = new Float64Array(bits.length);
  for (let i = 0; i < bits.length; i++) values[i] = from(bits[i]!);
  return numbersJson(values);
}

function rawDataJson(
  raw: Uint8Array,
  info: DatatypeInfo,
  count: number,
  output: string,
  forceBase64: boolean,
): { json: string; base64: boolean } {
  if (info.family === 'bytes') return bytesJson(splitRawBytes(raw, count, output), forceBase64);
  if (raw.length !== count * info.size) {
    throw badResponse(
      `output '${output}': raw contents are ${raw.length} bytes, its shape and ${info.name} need ${count * info.size}`,
    );
  }
  let json: string;
  switch (info.name) {
    case 'BOOL': {
      const parts = new Array<string>(count);
      for (let i = 0; i < count; i++) parts[i] = raw[i] ? 'true' : 'false';
      json = `[${parts.join(',')}]`;
      break;
    }
    case 'UINT8':
      json = joinJson(raw);
      break;
    case 'INT8':
      json = joinJson(new Int8Array(raw.buffer, raw.byteOffset, raw.length));
      break;
    case 'UINT16':
      json = joinJson(copyTyped(raw, (n) => new Uint16Array(n), 2));
      break;
    case 'INT16':
      json = joinJson(copyTyped(raw, (n) => new Int16Array(n), 2));
      break;
    case 'UINT32':
      json = joinJson(copyTyped(raw, (n) => new Uint32Array(n), 4));
      break;
    case 'INT32':
      json = joinJson(copyTyped(raw, (n) => new Int32Array(n), 4));
      break;
    case 'UINT64':
      json = joinJson(copyTyped(raw, (n) => new BigUint64Array(n), 8));
      break;
    case 'INT64':
      json = joinJson(copyTyped(raw, (n) => new BigInt64Array(n), 8));
      break;
    case 'FP32':
      json = numbersJson(copyTyped(raw, (n) => new Float32Array(n), 4));
      break;
    case 'FP64':
      json = numbersJson(copyTyped(raw, (n) => new Float64Array(n), 8));
      break;
    default: // FP16, BF16
      json = halfsJson(
        copyTyped(raw, (n) => new Uint16Array(n), 2),
        info.family as 'fp16' | 'bf16',
      );
  }
  return { json, base64: false };
}

function typedDataJson(
  c: DecodedTensorContents | undefined,
  info: DatatypeInfo,
  count: number,
  output: string,
  forceBase64: boolean,
): { json: string; base64: boolean } {
  if (info.family === 'fp16' || info.family === 'bf16') {
    if (count === 0) return { json: '[]', base64: false };
    throw badResponse(`output '${output}': ${info.name} contents must be sent as raw_output_contents`);
  }
  const values: ArrayLike<unknown> | undefined =
    info.family === 'bool'
      ? c?.bool
      : info.family === 'int'
        ? c?.int
        : info.family === 'uint'
          ? c?.uint
          : info.family === 'int64'
            ? c?.int64
            : info.family === 'uint64'
              ? c?.uint64
              : info.family === 'fp32'
                ? c?.fp32
                : info.family === 'fp64'
                  ? c?.fp64
                  : c?.bytes;
  const n = values?.length ?? 0;
  if (n !== count) {
    throw badResponse(
      `output '${output}': its shape holds ${count} elements, its ${info.name} contents ${n}`,
    );
  }
  if (values === undefined) return { json: '[]', base64: false };
  switch (info.family) {
    case 'fp32':
    case 'fp64':
      return { json: numbersJson(values as ArrayLike<number>), base64: false };
    case 'bytes':
      return bytesJson(values as Uint8Array[], forceBase64);
    default:
      return { json: joinJson(values), base64: false };
  }
}

function int64Json(v: Int64): string {
  return typeof v === 'bigint' ? v.toString() : String(v);
}

function paramValueJson(p: InferParameter): string {
  switch (p.kind) {
    case 'bool':
      return p.value ? 'true' : 'false';
    case 'string':
      return JSON.stringify(p.value);
    case 'double':
      return numberJson(p.value);
    default:
      return int64Json(p.value);
  }
}

function paramsJson(params: ParamMap): string {
  const parts: string[] = [];
  for (const [k, v] of params) parts.push(`${JSON.stringify(k)}:${paramValueJson(v)}`);
  return `{${parts.join(',')}}`;
}

function checkShape(shape: Int64[], what: string, allowVariable = false): number {
  let count = 1;
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i]!;
    if (typeof d !== 'number' || (d < 0 && !(allowVariable && d === -1))) {
      throw badResponse(`${what}: shape dimension ${i} (${int64Json(d)}) is not valid`);
    }
    count *= d;
  }
  if (!allowVariable && !Number.isSafeInteger(count)) throw badResponse(`${what}: shape is too large`);
  return count;
}

function outputJson(o: DecodedInferOutputTensor, raw: Uint8Array | undefined): string {
  const what = `output '${o.name}'`;
  const info = DATATYPES.get(o.datatype);
  if (info === undefined) {
    throw new KServeError(
      KServeErrors.UnsupportedOutputDatatype,
      `${what}: datatype '${o.datatype}' is not a KServe v2 datatype`,
    );
  }
  const count = checkShape(o.shape, what);
  const ct = o.parameters?.get('content_type');
  const forceBase64 = info.family === 'bytes' && ct?.kind === 'string' && ct.value === 'base64';
  const data =
    raw !== undefined
      ? rawDataJson(raw, info, count, o.name, forceBase64)
      : typedDataJson(o.contents, info, count, o.name, forceBase64);
  let params = o.parameters;
  if (data.base64 && !forceBase64) {
    params = new Map(params);
    params.set('content_type', { kind: 'string', value: 'base64' });
  }
  let s = `{"name":${JSON.stringify(o.name)},"datatype":${JSON.stringify(o.datatype)},"shape":[${o.shape.join(',')}]`;
  if (params && params.size > 0) s += `,"parameters":${paramsJson(params)}`;
  return `${s},"data":${data.json}}`;
}

/** The v2 REST inference response JSON for a decoded ModelInferResponse. Throws KServeError (502). */
export function inferResponseToRestJson(m: DecodedModelInferResponse): string {
  const raws = m.rawOutputContents;
  if (raws.length > 0 && raws.length !== m.outputs.length) {
    throw badResponse(`${raws.length} raw_output_contents for ${m.outputs.length} outputs`);
  }
  let s = `{"model_name":${JSON.stringify(m.modelName)}`;
  if (m.modelVersion) s += `,"model_version":${JSON.stringify(m.modelVersion)}`;
  if (m.id) s += `,"id":${JSON.stringify(m.id)}`;
  if (m.parameters && m.parameters.size > 0) s += `,"parameters":${paramsJson(m.parameters)}`;
  const outs = new Array<string>(m.outputs.length);
  for (let i = 0; i < m.outputs.length; i++)
    outs[i] = outputJson(m.outputs[i]!, raws.length > 0 ? raws[i] : undefined);
  return `${s},"outputs":[${outs.join(',')}]}`;
}

function tensorMetadataJson(t: TensorMetadata & { shape: Int64[] }, what: string): unknown {
  checkShape(t.shape, `${what} '${t.name}'`, true);
  return { name: t.name, datatype: t.datatype, shape: t.shape };
}

// ---------------------------------------------------------------------------------------------
// The exchange's calls

export interface TranslateRequestOptions extends InferRequestOptions {
  /** Advertise gzip/deflate in grpc-accept-encoding (compressed responses are decoded). Default: identity only. */
  acceptCompressed?: boolean;
}

export interface GrpcCall {
  ok: true;
  /** The HTTP/2 `:path`, e.g. `/inference.GRPCInferenceService/ModelInfer`. */
  grpcPath: string;
  /** Request headers besides the pseudo-headers (`:method` POST, `:path`, `:authority`, `:scheme`). */
  headers: Record<string, string>;
  /** The request body: one length-prefixed gRPC message. */
  frame: Buffer;
}

export type RequestTranslation = GrpcCall | { ok: false; reply: RestReply };

type HeaderBag = Record<string, string | string[] | number | undefined>;

function header(h: HeaderBag | undefined, name: string): string | undefined {
  const v = h?.[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : String(v);
}

/**
 * The gRPC call for a v2 REST request: `op` from parseRestRoute, `body` the REST body (inference
 * only; ignored for GET endpoints), `headers` the REST request headers (lower-case names) to refuse
 * the binary extension. Never throws: a refused request comes back as a REST error reply.
 */
export function translateRequest(
  op: KServeOp,
  body: Uint8Array | string | undefined,
  headers?: HeaderBag,
  options: TranslateRequestOptions = {},
): RequestTranslation {
  try {
    let frame: Buffer;
    switch (op.kind) {
      case 'server_live':
      case 'server_ready':
      case 'server_metadata':
        frame = encodeFramed(encodeEmpty, undefined, 0);
        break;
      case 'model_ready':
      case 'model_metadata':
        frame = encodeFramed(encodeModelRef, { name: op.model, version: op.version }, 64);
        break;
      case 'model_infer': {
        if (header(headers, 'inference-header-content-length') !== undefined) {
          throw binaryRefused('Inference-Header-Content-Length');
        }
        const { message, sizeHint } = restInferRequestToMessage(body ?? '', op, options);
        frame = encodeFramed(encodeModelInferRequest, message, sizeHint);
        break;
      }
    }
    const grpcHeaders: Record<string, string> = {
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': options.acceptCompressed ? 'identity,deflate,gzip' : 'identity',
    };
    return { ok: true, grpcPath: grpcPathOf(op), headers: grpcHeaders, frame };
  } catch (e) {
    if (e instanceof KServeError) return { ok: false, reply: errorReply(e) };
    throw e;
  }
}

export interface GrpcUpstreamResponse {
  /** The HTTP/2 `:status` of the upstream response. */
  status: number;
  /** Response headers (lower-case names); carry grpc-status for a trailers-only response. */
  headers: HeaderBag;
  /** The response body as received: one buffer or the chunks in order. */
  body: Uint8Array | readonly Uint8Array[];
  /** Trailers, where grpc-status / grpc-message normally are. */
  trailers?: HeaderBag;
}

export interface TranslateResponseOptions {
  /** Largest response message accepted (bytes, after decompression). */
  maxMessageBytes?: number;
}

function okJson(status: number, body: string): RestReply {
  return { status, headers: { ...JSON_HEADERS }, body };
}

function decodeWith<T>(message: Buffer, decode: (r: ProtoReader) => T): T {
  try {
    return decode(new ProtoReader(message));
  } catch (e) {
    if (e instanceof ProtoDecodeError)
      throw badResponse(`the gRPC response message is not valid protobuf (${e.message})`);
    throw e;
  }
}

/**
 * The REST reply for a finished gRPC call. Never throws: an upstream gRPC error becomes
 * MG_KSERVE_UPSTREAM_STATUS with the mapped HTTP status; a malformed answer MG_KSERVE_BAD_RESPONSE.
 */
export function translateResponse(
  op: KServeOp,
  upstream: GrpcUpstreamResponse,
  options: TranslateResponseOptions = {},
): RestReply {
  try {
    const grpcStatus = header(upstream.trailers, 'grpc-status') ?? header(upstream.headers, 'grpc-status');
    if (upstream.status !== 200) {
      const code = httpStatusToGrpc(upstream.status);
      throw new KServeError(
        KServeErrors.UpstreamStatus,
        `the inference server answered HTTP ${upstream.status} instead of a gRPC response`,
        grpcStatusToHttp(code),
        { grpc_status: grpcCodeName(code) },
      );
    }
    const contentType = header(upstream.headers, 'content-type');
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      throw badResponse(
        `the inference server answered content-type ${contentType ?? '(none)'}, not application/grpc`,
      );
    }
    if (grpcStatus === undefined) throw badResponse('the gRPC call ended without a grpc-status');
    const code = /^\d+$/.test(grpcStatus.trim()) ? Number(grpcStatus.trim()) : Number.NaN;
    if (Number.isNaN(code)) throw badResponse(`invalid grpc-status '${grpcStatus}'`);
    if (code !== 0) {
      const message =
        decodeGrpcMessage(
          header(upstream.trailers, 'grpc-message') ?? header(upstream.headers, 'grpc-message'),
        ) || `the inference server returned gRPC status ${grpcCodeName(code)}`;
      throw new KServeError(KServeErrors.UpstreamStatus, message, grpcStatusToHttp(code), {
        grpc_status: grpcCodeName(code),
      });
    }
    const deframer = new GrpcDeframer({
      maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      encoding: header(upstream.headers, 'grpc-encoding'),
    });
    const messages: Buffer[] = [];
    const chunks = upstream.body instanceof Uint8Array ? [upstream.body] : upstream.body;
    for (const chunk of chunks) for (const m of deframer.push(chunk)) messages.push(m);
    deframer.end();
    if (messages.length !== 1) {
      throw badResponse(`a unary gRPC response must hold one message, this one holds ${messages.length}`);
    }
    const message = messages[0]!;
    switch (op.kind) {
      case 'server_live': {
        const live = decodeWith(message, decodeBoolResponse);
        return okJson(live ? 200 : 400, live ? '{"live":true}' : '{"live":false}');
      }
      case 'server_ready': {
        const ready = decodeWith(message, decodeBoolResponse);
        return okJson(ready ? 200 : 400, ready ? '{"ready":true}' : '{"ready":false}');
      }
      case 'model_ready': {
        const ready = decodeWith(message, decodeBoolResponse);
        return okJson(ready ? 200 : 400, JSON.stringify({ name: op.model, ready }));
      }
      case 'server_metadata':
        return okJson(200, JSON.stringify(decodeWith(message, decodeServerMetadataResponse)));
      case 'model_metadata': {
        const m = decodeWith(message, decodeModelMetadataResponse);
        const out: Record<string, unknown> = { name: m.name };
        if (m.versions.length > 0) out.versions = m.versions;
        out.platform = m.platform;
        out.inputs = m.inputs.map((t) => tensorMetadataJson(t, 'input'));
        out.outputs = m.outputs.map((t) => tensorMetadataJson(t, 'output'));
        return okJson(200, JSON.stringify(out));
      }
      case 'model_infer':
        return okJson(200, inferResponseToRestJson(decodeWith(message, decodeModelInferResponse)));
    }
  } catch (e) {
    if (e instanceof KServeError) return errorReply(e);
    throw e;
  }
}
