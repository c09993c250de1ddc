/**
 * v2 REST JSON ⇄ gRPC messages, in-process: every datatype through a request, an echoing response
 * (typed and raw) and back to JSON, exactly; INT64/UINT64 beyond 2^53 (strings and literals);
 * FP16/BF16 rounding; BYTES UTF-8 and base64; nested data and shape checks; parameters; the binary
 * extension refused; backend answers that disagree with their shapes; and translateResponse's
 * handling of gRPC statuses, health and metadata.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { encodeFramed, frameMessage, GrpcDeframer } from '../../../../src/dataplane/kserve/grpc-frame.ts';
import {
  type DecodedModelInferRequest,
  decodeModelInferRequest,
  encodeBoolResponse,
  encodeModelInferResponse,
  encodeModelMetadataResponse,
  encodeServerMetadataResponse,
  type ModelInferResponse,
} from '../../../../src/dataplane/kserve/messages.ts';
import { ProtoReader } from '../../../../src/dataplane/kserve/protobuf-wire.ts';
import {
  fromBf16Bits,
  fromFp16Bits,
  type GrpcCall,
  type GrpcUpstreamResponse,
  numbersJson,
  restInferRequestToMessage,
  toBf16Bits,
  toFp16Bits,
  translateRequest,
  translateResponse,
} from '../../../../src/dataplane/kserve/rest-json.ts';
import type { KServeOp } from '../../../../src/dataplane/kserve/rest-routes.ts';

const INFER: KServeOp = { kind: 'model_infer', model: 'm', version: '' };

/** JSON.parse keeping integers beyond 2^53 exact (as bigint), the way a careful client would. */
function parseExact(text: string): unknown {
  return JSON.parse(text, (_k, v, ctx?: { source?: string }) =>
    typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source && /^-?\d+$/.test(ctx.source)
      ? BigInt(ctx.source)
      : v,
  );
}

function requestFrame(body: unknown, options: { rawInputs?: boolean } = {}, op: KServeOp = INFER): GrpcCall {
  const t = translateRequest(op, typeof body === 'string' ? body : JSON.stringify(body), {}, options);
  assert.ok(t.ok, t.ok ? '' : t.reply.body);
  return t;
}

function decodeRequestFrame(frame: Buffer): DecodedModelInferRequest {
  const messages = new GrpcDeframer().push(frame);
  assert.equal(messages.length, 1);
  return decodeModelInferRequest(new ProtoReader(messages[0]!));
}

function refusal(
  body: unknown,
  headers: Record<string, string> = {},
  options = {},
): { status: number; code: string; error: string } {
  const t = translateRequest(INFER, typeof body === 'string' ? body : JSON.stringify(body), headers, options);
  assert.ok(!t.ok, 'expected the request to be refused');
  assert.equal(t.reply.headers['content-type'], 'application/json');
  const parsed = JSON.parse(t.reply.body) as { error: string; code: string };
  assert.equal(parsed.code, t.reply.code);
  return { status: t.reply.status, code: parsed.code, error: parsed.error };
}

function okUpstream(message: Buffer, extra: Partial<GrpcUpstreamResponse> = {}): GrpcUpstreamResponse {
  return {
    status: 200,
    headers: { ':status': 200, 'content-type': 'application/grpc' },
    body: message,
    trailers: { 'grpc-status': '0' },
    ...extra,
  };
}

function inferReply(response: ModelInferResponse) {
  const reply = translateResponse(INFER, okUpstream(encodeFramed(encodeModelInferResponse, response)));
  return { status: reply.status, json: parseExact(reply.body) as Record<string, unknown>, reply };
}

/** REST request → gRPC request → an echo model's response → REST response. */
function echoRoundTrip(body: Record<string, unknown>, rawInputs = false) {
  const req = decodeRequestFrame(requestFrame(body, { rawInputs }).frame);
  const response: ModelInferResponse = {
    modelName: req.modelName,
    id: req.id,
    outputs: req.inputs.map((i) => ({
      name: i.name,
      datatype: i.datatype,
      shape: i.shape,
      ...(i.parameters ? { parameters: i.parameters } : {}),
      ...(i.contents ? { contents: i.contents } : {}),
    })),
    rawOutputContents: req.rawInputContents,
  };
  const { status, json, reply } = inferReply(response);
  assert.equal(status, 200, reply.body);
  return { req, json: json as { outputs: Array<Record<string, unknown>>; id?: string; model_name: string } };
}

const ALL_TYPES_INPUTS = [
  {
    name: 'b',
    datatype: 'BOOL',
    shape: [2, 2],
    data: [
      [true, false],
      [false, true],
    ],
  },
  { name: 'u8', datatype: 'UINT8', shape: [3], data: [0, 1, 255] },
  { name: 'u16', datatype: 'UINT16', shape: [3], data: [0, 1, 65535] },
  { name: 'u32', datatype: 'UINT32', shape: [3], data: [0, 1, 4294967295] },
  { name: 'i8', datatype: 'INT8', shape: [3], data: [-128, 0, 127] },
  { name: 'i16', datatype: 'INT16', shape: [3], data: [-32768, 1, 32767] },
  { name: 'i32', datatype: 'INT32', shape: [3], data: [-2147483648, -1, 2147483647] },
  { name: 'fp32', datatype: 'FP32', shape: [1, 4], data: [[1.5, -0.25, 3.4028234663852886e38, 1e-45]] },
  { name: 'fp64', datatype: 'FP64', shape: [3], data: [Math.PI, -Number.MAX_VALUE, Number.MIN_VALUE] },
  { name: 'bytes', datatype: 'BYTES', shape: [3], data: ['', 'héllo', 'emoji 🎉 "quoted" \\ \n'] },
];

describe('REST ⇄ messages, every datatype', () => {
  test('typed contents: each datatype uses its contents field and comes back exactly', () => {
    const body = { id: 'req-1', inputs: ALL_TYPES_INPUTS };
    const { req, json } = echoRoundTrip(body);
    const byName = Object.fromEntries(req.inputs.map((i) => [i.name, i]));
    assert.deepEqual(byName.b!.contents!.bool, [true, false, false, true]);
    assert.deepEqual(byName.u16!.contents!.uint, [0, 1, 65535]);
    assert.deepEqual(byName.i8!.contents!.int, [-128, 0, 127]);
    assert.deepEqual(Array.from(byName.fp32!.contents!.fp32!), [
      1.5,
      -0.25,
      3.4028234663852886e38,
      Math.fround(1e-45),
    ]);
    assert.deepEqual(Array.from(byName.fp64!.contents!.fp64!), [
      Math.PI,
      -Number.MAX_VALUE,
      Number.MIN_VALUE,
    ]);
    assert.equal(req.rawInputContents.length, 0);
    assert.equal(json.id, 'req-1');
    assert.equal(json.model_name, 'm');
    for (const [i, input] of ALL_TYPES_INPUTS.entries()) {
      const out = json.outputs[i]!;
      assert.equal(out.name, input.name);
      assert.equal(out.datatype, input.datatype);
      assert.deepEqual(out.shape, input.shape);
      const expected =
        input.name === 'fp32' ? [1.5, -0.25, 3.4028234663852886e38, Math.fround(1e-45)] : input.data.flat();
      assert.deepEqual(out.data, expected, input.name);
    }
  });

  test('raw contents: the same tensors as raw_input_contents, little-endian, and back from raw_output_contents', () => {
    const { req, json } = echoRoundTrip({ inputs: ALL_TYPES_INPUTS }, true);
    assert.equal(req.rawInputContents.length, ALL_TYPES_INPUTS.length);
    assert.ok(req.inputs.every((i) => i.contents === undefined));
    const raw = Object.fromEntries(req.inputs.map((i, k) => [i.name, Buffer.from(req.rawInputContents[k]!)]));
    assert.equal(raw.b!.toString('hex'), '01000001');
    assert.equal(raw.u16!.toString('hex'), '00000100ffff');
    assert.equal(raw.i32!.toString('hex'), '00000080ffffffffffffff7f');
    assert.equal(raw.fp32!.readFloatLE(0), 1.5);
    assert.equal(raw.fp64!.readDoubleLE(0), Math.PI);
    // BYTES: 4-byte little-endian length before each element.
    assert.equal(raw.bytes!.readUInt32LE(0), 0);
    assert.equal(raw.bytes!.readUInt32LE(4), Buffer.byteLength('héllo'));
    for (const [i, input] of ALL_TYPES_INPUTS.entries()) {
      const expected =
        input.name === 'fp32' ? [1.5, -0.25, 3.4028234663852886e38, Math.fround(1e-45)] : input.data.flat();
      assert.deepEqual(json.outputs[i]!.data, expected, input.name);
    }
  });

  test('FP32 values that are not float32 come back as the float32 they round to, printed exactly', () => {
    const { json } = echoRoundTrip({
      inputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: [1.1, 0.1, -1e-46] }],
    });
    const data = json.outputs[0]!.data as number[];
    assert.deepEqual(data, [Math.fround(1.1), Math.fround(0.1), -0]);
    assert.equal(data[0], 1.100000023841858);
    assert.ok(Object.is(data[2], -0), '-0 survives as -0');
  });

  test('non-finite floats: "NaN"/"Infinity"/"-Infinity" strings in, the same strings out', () => {
    for (const datatype of ['FP32', 'FP64', 'FP16', 'BF16']) {
      const data = ['NaN', 'Infinity', '-Infinity', 0];
      const { json } = echoRoundTrip({ inputs: [{ name: 'x', datatype, shape: [4], data }] });
      assert.deepEqual(json.outputs[0]!.data, data, datatype);
    }
  });

  test('INT64 and UINT64 at the limits: decimal strings and plain literals, exact both ways', () => {
    const int64 = [
      '-9223372036854775808',
      '9223372036854775807',
      '-9007199254740993',
      '9007199254740993',
      '0',
      '-1',
    ];
    const uint64 = ['18446744073709551615', '9223372036854775808', '9007199254740993', '0'];
    // Strings.
    const viaStrings = echoRoundTrip({
      inputs: [
        { name: 'i', datatype: 'INT64', shape: [int64.length], data: int64 },
        { name: 'u', datatype: 'UINT64', shape: [uint64.length], data: uint64 },
      ],
    });
    const asExact = (xs: string[]) =>
      xs.map((s) => (Number.isSafeInteger(Number(s)) ? Number(s) : BigInt(s)));
    assert.deepEqual(viaStrings.json.outputs[0]!.data, asExact(int64));
    assert.deepEqual(viaStrings.json.outputs[1]!.data, asExact(uint64));
    assert.deepEqual(viaStrings.req.inputs[0]!.contents!.int64, asExact(int64));
    // Literals beyond 2^53 in the JSON text: the gateway re-reads their digits.
    const text = `{"inputs":[{"name":"i","datatype":"INT64","shape":[${int64.length}],"data":[${int64.join(',')}]},{"name":"u","datatype":"UINT64","shape":[${uint64.length}],"data":[${uint64.join(',')}]}]}`;
    const t = translateRequest(INFER, text);
    assert.ok(t.ok);
    const req = decodeRequestFrame(t.frame);
    assert.deepEqual(req.inputs[0]!.contents!.int64, asExact(int64));
    assert.deepEqual(req.inputs[1]!.contents!.uint64, asExact(uint64));
    // Raw too.
    const raw = echoRoundTrip(
      { inputs: [{ name: 'i', datatype: 'INT64', shape: [int64.length], data: int64 }] },
      true,
    );
    assert.equal(Buffer.from(raw.req.rawInputContents[0]!).readBigInt64LE(0), -(2n ** 63n));
    assert.deepEqual(raw.json.outputs[0]!.data, asExact(int64));
  });

  test('INT64 output JSON: safe values are plain numbers, larger ones every digit as a number literal', () => {
    const { json, reply } = inferReply({
      modelName: 'm',
      outputs: [
        { name: 'o', datatype: 'INT64', shape: [3], contents: { int64: [42, -(2n ** 63n), 2n ** 53n + 1n] } },
      ],
    });
    assert.match(reply.body, /"data":\[42,-9223372036854775808,9007199254740993\]/);
    assert.deepEqual((json.outputs as Array<{ data: unknown }>)[0]!.data, [42, -(2n ** 63n), 2n ** 53n + 1n]);
  });

  test('INT64 inputs out of range or inexact are MG_KSERVE_BAD_TENSOR_DATA', () => {
    const cases: Array<[string, string]> = [
      ['INT64', '9223372036854775808'],
      ['INT64', '"9223372036854775808"'],
      ['INT64', '1e300'],
      ['INT64', '1.5'],
      ['INT64', '"12a"'],
      ['INT64', 'true'],
      ['UINT64', '-1'],
      ['UINT64', '"-1"'],
      ['UINT64', '18446744073709551616'],
    ];
    for (const [datatype, literal] of cases) {
      const r = refusal(`{"inputs":[{"name":"x","datatype":"${datatype}","shape":[1],"data":[${literal}]}]}`);
      assert.deepEqual([r.status, r.code], [400, 'MG_KSERVE_BAD_TENSOR_DATA'], `${datatype} ${literal}`);
      assert.match(r.error, /input 'x' \((INT|UINT)64\) element 0/);
    }
  });

  test('BYTES: non-UTF-8 outputs are base64 with content_type, UTF-8 ones strings', () => {
    const { json } = inferReply({
      modelName: 'm',
      outputs: [
        {
          name: 'bin',
          datatype: 'BYTES',
          shape: [2],
          contents: { bytes: [Buffer.from([0xff, 0x00]), Buffer.from('ok')] },
        },
        { name: 'txt', datatype: 'BYTES', shape: [1], contents: { bytes: [Buffer.from('✓')] } },
      ],
    });
    const outs = json.outputs as Array<Record<string, unknown>>;
    assert.deepEqual(outs[0]!.data, ['/wA=', 'b2s=']);
    assert.deepEqual(outs[0]!.parameters, { content_type: 'base64' });
    assert.deepEqual(outs[1]!.data, ['✓']);
    assert.equal(outs[1]!.parameters, undefined);
  });

  test('BYTES: content_type base64 on an input is decoded by the gateway and not forwarded; on an output it forces base64', () => {
    const { req, json } = echoRoundTrip({
      inputs: [
        {
          name: 'x',
          datatype: 'BYTES',
          shape: [2],
          parameters: { content_type: 'base64', other: 1 },
          data: ['/wA=', ''],
        },
      ],
    });
    assert.deepEqual(
      req.inputs[0]!.contents!.bytes!.map((b) => Buffer.from(b).toString('hex')),
      ['ff00', ''],
    );
    assert.deepEqual([...req.inputs[0]!.parameters!.keys()], ['other']);
    assert.deepEqual(json.outputs[0]!.data, ['/wA=', '']);
    const forced = inferReply({
      modelName: 'm',
      outputs: [
        {
          name: 'x',
          datatype: 'BYTES',
          shape: [1],
          parameters: new Map([['content_type', { kind: 'string', value: 'base64' }]]),
          contents: { bytes: [Buffer.from('plain')] },
        },
      ],
    });
    assert.deepEqual((forced.json.outputs as Array<{ data: unknown }>)[0]!.data, ['cGxhaW4=']);
    const bad = refusal({
      inputs: [
        {
          name: 'x',
          datatype: 'BYTES',
          shape: [1],
          parameters: { content_type: 'base64' },
          data: ['not base64!'],
        },
      ],
    });
    assert.equal(bad.code, 'MG_KSERVE_BAD_TENSOR_DATA');
  });
});

describe('FP16 and BF16', () => {
  test('every FP16 bit pattern decodes to the value Float16Array gives and encodes back', () => {
    const f16 = new Float16Array(1);
    const bits = new Uint16Array(f16.buffer);
    for (let b = 0; b < 0x10000; b++) {
      bits[0] = b;
      const v = fromFp16Bits(b);
      if (Number.isNaN(f16[0]!)) {
        assert.ok(Number.isNaN(v));
        continue;
      }
      assert.ok(Object.is(v, f16[0]), `bits ${b.toString(16)}`);
      assert.equal(toFp16Bits(v), b, `bits ${b.toString(16)}`);
    }
  });

  test('doubles round to the nearest FP16, ties to even, as Math.f16round does (no double rounding)', () => {
    let s = 12345;
    const rand = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 4294967296;
    };
    const samples = [
      65504,
      65519.99,
      65520,
      2 ** -24,
      2 ** -25,
      2 ** -25 * 1.0000001,
      3 * 2 ** -26,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      2049,
      2051,
    ];
    for (let i = 0; i < 20000; i++) samples.push((rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 26));
    // Values just above a tie in double that float32 would round onto the tie.
    samples.push(1 + 2 ** -11 + 2 ** -40, 1 + 2 ** -11 - 2 ** -40);
    for (const v of samples) {
      assert.ok(Object.is(fromFp16Bits(toFp16Bits(v)), Math.f16round(v)), `v=${v}`);
    }
  });

  test('every BF16 bit pattern round-trips; float32 values round to nearest even like the usual bit trick', () => {
    for (let b = 0; b < 0x10000; b++) {
      const v = fromBf16Bits(b);
      if (Number.isNaN(v)) continue;
      assert.equal(toBf16Bits(v), b);
      const f32 = new Float32Array([v]);
      assert.equal(new Uint32Array(f32.buffer)[0]! >>> 16, b, 'bf16 is the top half of float32');
    }
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    let s = 99;
    for (let i = 0; i < 20000; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      u[0] = s;
      if (Number.isNaN(f[0]!)) continue;
      const expected = ((s + 0x7fff + ((s >>> 16) & 1)) >>> 16) & 0xffff;
      if ((expected & 0x7f80) === 0x7f80) continue; // rounds to infinity: the gateway refuses those
      assert.equal(toBf16Bits(f[0]!), expected, `float32 bits ${s.toString(16)}`);
    }
  });

  test('FP16/BF16 inputs go raw (and take every other input with them); outputs decode exactly', () => {
    const { req, json } = echoRoundTrip({
      inputs: [
        { name: 'h', datatype: 'FP16', shape: [4], data: [1, 0.1, -65504, 2 ** -24] },
        { name: 'bf', datatype: 'BF16', shape: [2], data: [1.2345, -1e30] },
        { name: 'f', datatype: 'FP32', shape: [1], data: [2] },
      ],
    });
    assert.equal(req.rawInputContents.length, 3);
    assert.equal(Buffer.from(req.rawInputContents[0]!).toString('hex'), '003c662e fffb0100'.replace(' ', ''));
    assert.deepEqual(json.outputs[0]!.data, [1, Math.f16round(0.1), -65504, 2 ** -24]);
    assert.deepEqual(json.outputs[1]!.data, [
      fromBf16Bits(toBf16Bits(1.2345)),
      fromBf16Bits(toBf16Bits(-1e30)),
    ]);
    assert.deepEqual(json.outputs[2]!.data, [2]);
  });

  test('values that round beyond the largest finite FP16/BF16/FP32 are refused, not made infinite', () => {
    for (const [datatype, v] of [
      ['FP16', '65520'],
      ['FP16', '-1e6'],
      ['BF16', '3.4e38'],
      ['FP32', '3.4028235677973366e38'],
      ['FP32', '1e39'],
      ['FP64', '1e400'],
    ] as const) {
      const r = refusal(`{"inputs":[{"name":"x","datatype":"${datatype}","shape":[1],"data":[${v}]}]}`);
      assert.deepEqual([r.status, r.code], [400, 'MG_KSERVE_BAD_TENSOR_DATA'], `${datatype} ${v}`);
    }
    // The largest finite values themselves pass.
    requestFrame({ inputs: [{ name: 'x', datatype: 'FP16', shape: [1], data: [65519] }] });
    requestFrame({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [3.4028234663852886e38] }] });
  });

  test('FP16 output sent as typed contents is MG_KSERVE_BAD_RESPONSE (the protocol has no typed FP16)', () => {
    const { status, json } = inferReply({
      modelName: 'm',
      outputs: [{ name: 'h', datatype: 'FP16', shape: [1], contents: { fp32: [1] } }],
    });
    assert.equal(status, 502);
    assert.equal(json.code, 'MG_KSERVE_BAD_RESPONSE');
  });
});

describe('request shape and validation', () => {
  test('nested and flat data are flattened row-major; ragged nesting counts elements as Triton does', () => {
    const nested = decodeRequestFrame(
      requestFrame({
        inputs: [
          {
            name: 'x',
            datatype: 'INT32',
            shape: [2, 2, 2],
            data: [
              [
                [1, 2],
                [3, 4],
              ],
              [
                [5, 6],
                [7, 8],
              ],
            ],
          },
        ],
      }).frame,
    );
    assert.deepEqual(nested.inputs[0]!.contents!.int, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.deepEqual(nested.inputs[0]!.shape, [2, 2, 2]);
    const ragged = decodeRequestFrame(
      requestFrame({ inputs: [{ name: 'x', datatype: 'INT32', shape: [4], data: [[1], [2, 3], 4] }] }).frame,
    );
    assert.deepEqual(ragged.inputs[0]!.contents!.int, [1, 2, 3, 4]);
    const empty = decodeRequestFrame(
      requestFrame({ inputs: [{ name: 'x', datatype: 'FP32', shape: [0, 3], data: [] }] }).frame,
    );
    assert.deepEqual(empty.inputs[0]!.shape, [0, 3]);
  });

  test('element count against the shape: MG_KSERVE_SHAPE_MISMATCH naming the input', () => {
    const r = refusal({ inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2, 2], data: [[1, 2], [3]] }] });
    assert.deepEqual([r.status, r.code], [400, 'MG_KSERVE_SHAPE_MISMATCH']);
    assert.equal(r.error, "input 'pixels': shape [2,2] needs 4 elements, data has 3");
    assert.equal(
      refusal({ inputs: [{ name: 'x', datatype: 'FP32', shape: [], data: [] }] }).code,
      'MG_KSERVE_SHAPE_MISMATCH',
    );
  });

  test('element types and integer ranges: MG_KSERVE_BAD_TENSOR_DATA naming input and element', () => {
    const cases: Array<[string, unknown]> = [
      ['BOOL', 1],
      ['BOOL', 'true'],
      ['UINT8', 256],
      ['UINT8', -1],
      ['INT8', 128],
      ['INT16', 1.5],
      ['INT32', 2147483648],
      ['UINT32', '1'],
      ['UINT16', null],
      ['FP32', 'nan'],
      ['FP64', true],
      ['BYTES', 5],
      ['FP16', {}],
    ];
    for (const [datatype, v] of cases) {
      const first = datatype === 'BYTES' ? 'a' : datatype === 'BOOL' ? true : 0;
      const r = refusal({ inputs: [{ name: 'in0', datatype, shape: [2], data: [first, v] }] });
      assert.deepEqual(
        [r.status, r.code],
        [400, 'MG_KSERVE_BAD_TENSOR_DATA'],
        `${datatype} ${JSON.stringify(v)}`,
      );
      assert.match(r.error, new RegExp(`^input 'in0' \\(${datatype}\\) element 1: `));
    }
  });

  test('malformed requests are MG_KSERVE_BAD_REQUEST; unknown datatypes MG_KSERVE_UNSUPPORTED_DATATYPE', () => {
    const bad: unknown[] = [
      'not json',
      '',
      '[]',
      {},
      { inputs: {} },
      { inputs: [1] },
      { inputs: [{ datatype: 'FP32', shape: [1], data: [1] }] },
      { inputs: [{ name: 'x', shape: [1], data: [1] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [-1], data: [] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1.5], data: [] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: 3, data: [1, 2, 3] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1] }] },
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: 1 }] },
      { id: 5, inputs: [] },
      { inputs: [], outputs: {} },
      { inputs: [], outputs: [{}] },
      { inputs: [], parameters: [] },
      { inputs: [], parameters: { nested: { a: 1 } } },
      { inputs: [], parameters: { n: null } },
      { inputs: [], outputs: [{ name: 'o', parameters: { binary_data: 'yes' } }] },
    ];
    for (const body of bad) {
      assert.deepEqual(
        [refusal(body).status, refusal(body).code],
        [400, 'MG_KSERVE_BAD_REQUEST'],
        JSON.stringify(body),
      );
    }
    for (const datatype of ['FP8', 'fp32', 'STRING', 'constructor', '__proto__']) {
      const r = refusal({ inputs: [{ name: 'x', datatype, shape: [1], data: [1] }] });
      assert.deepEqual([r.status, r.code], [400, 'MG_KSERVE_UNSUPPORTED_DATATYPE'], datatype);
    }
  });

  test('the binary tensor data extension is refused; binary_data flags set to false are dropped', () => {
    const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] };
    for (const [b, headers] of [
      [body, { 'inference-header-content-length': '120' }],
      [{ ...body, parameters: { binary_data_output: true } }, {}],
      [{ ...body, outputs: [{ name: 'o', parameters: { binary_data: true } }] }, {}],
      [{ inputs: [{ ...body.inputs[0], parameters: { binary_data_size: 4 } }] }, {}],
    ] as const) {
      const r = refusal(b, headers);
      assert.deepEqual([r.status, r.code], [400, 'MG_KSERVE_BINARY_DATA_UNSUPPORTED']);
    }
    const req = decodeRequestFrame(
      requestFrame({
        ...body,
        parameters: { binary_data_output: false, priority: 2 },
        outputs: [{ name: 'o', parameters: { binary_data: false } }],
      }).frame,
    );
    assert.deepEqual([...req.parameters!.keys()], ['priority']);
    assert.deepEqual(req.outputs, [{ name: 'o' }]);
  });

  test('model, version, id, parameters and requested outputs are carried over', () => {
    const op: KServeOp = { kind: 'model_infer', model: 'resnet', version: '3' };
    // The literal 12345678901234567890 is written into the JSON text (a JS number would round it).
    const text = JSON.stringify({
      id: 'abc',
      parameters: { flag: true, n: -7, ratio: 0.5, name: 'x', big: '__BIG__' },
      inputs: [{ name: 'x', datatype: 'FP32', shape: [1], parameters: { scale: 2 }, data: [1] }],
      outputs: [{ name: 'y', parameters: { classification: 3 } }, { name: 'z' }],
    }).replace('"__BIG__"', '12345678901234567890');
    const req = decodeRequestFrame(requestFrame(text, {}, op).frame);
    assert.equal(req.modelName, 'resnet');
    assert.equal(req.modelVersion, '3');
    assert.equal(req.id, 'abc');
    assert.deepEqual(
      req.parameters,
      new Map<string, unknown>([
        ['flag', { kind: 'bool', value: true }],
        ['n', { kind: 'int64', value: -7 }],
        ['ratio', { kind: 'double', value: 0.5 }],
        ['name', { kind: 'string', value: 'x' }],
        // Beyond int64 but within uint64: exact, as uint64 (from the literal's digits).
        ['big', { kind: 'uint64', value: 12345678901234567890n }],
      ]),
    );
    assert.deepEqual(req.inputs[0]!.parameters, new Map([['scale', { kind: 'int64', value: 2 }]]));
    assert.deepEqual(req.outputs, [
      { name: 'y', parameters: new Map([['classification', { kind: 'int64', value: 3 }]]) },
      { name: 'z' },
    ]);
  });

  test('the request frame and headers for each endpoint', () => {
    const t = translateRequest({ kind: 'server_live' }, undefined);
    assert.ok(t.ok);
    assert.equal(t.grpcPath, '/inference.GRPCInferenceService/ServerLive');
    assert.equal(t.frame.toString('hex'), '0000000000');
    assert.deepEqual(t.headers, {
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-accept-encoding': 'identity',
    });
    const m = translateRequest(
      { kind: 'model_metadata', model: 'r', version: '2' },
      undefined,
      {},
      { acceptCompressed: true },
    );
    assert.ok(m.ok);
    assert.equal(m.frame.toString('hex'), '00000000060a0172120132');
    assert.equal(m.headers['grpc-accept-encoding'], 'identity,deflate,gzip');
  });

  test('restInferRequestToMessage accepts a Uint8Array body at an offset', () => {
    const text = Buffer.from(
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'BOOL', shape: [1], data: [true] }] }),
    );
    const backing = new Uint8Array(text.length + 7);
    backing.set(text, 7);
    const { message } = restInferRequestToMessage(backing.subarray(7), { model: 'm', version: '' });
    assert.deepEqual(message.inputs[0]!.contents, { bool: [true] });
  });
});

describe('backend answers', () => {
  test('raw outputs: count and sizes must agree with outputs and shapes (MG_KSERVE_BAD_RESPONSE, 502)', () => {
    const cases: ModelInferResponse[] = [
      {
        modelName: 'm',
        outputs: [
          { name: 'a', datatype: 'FP32', shape: [1] },
          { name: 'b', datatype: 'FP32', shape: [1] },
        ],
        rawOutputContents: [Buffer.alloc(4)],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'FP32', shape: [2] }],
        rawOutputContents: [Buffer.alloc(4)],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'BOOL', shape: [2, 2] }],
        rawOutputContents: [Buffer.alloc(5)],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'BYTES', shape: [1] }],
        rawOutputContents: [Buffer.from('0500000061', 'hex')],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'BYTES', shape: [1] }],
        rawOutputContents: [Buffer.from('010000006162', 'hex')],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'BYTES', shape: [2] }],
        rawOutputContents: [Buffer.from('0100', 'hex')],
      },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'BYTES', shape: [2 ** 40] }],
        rawOutputContents: [Buffer.alloc(8)],
      },
      { modelName: 'm', outputs: [{ name: 'a', datatype: 'FP32', shape: [3], contents: { fp32: [1, 2] } }] },
      { modelName: 'm', outputs: [{ name: 'a', datatype: 'INT64', shape: [1] }] },
      { modelName: 'm', outputs: [{ name: 'a', datatype: 'FP32', shape: [-1], contents: { fp32: [1] } }] },
      {
        modelName: 'm',
        outputs: [{ name: 'a', datatype: 'FP32', shape: [2n ** 60n], contents: { fp32: [1] } }],
      },
    ];
    for (const [i, c] of cases.entries()) {
      const { status, json } = inferReply(c);
      assert.deepEqual(
        [status, json.code],
        [502, 'MG_KSERVE_BAD_RESPONSE'],
        `case ${i}: ${JSON.stringify(json)}`,
      );
    }
  });

  test('an output datatype outside the protocol is MG_KSERVE_UNSUPPORTED_OUTPUT_DATATYPE', () => {
    const { status, json } = inferReply({
      modelName: 'm',
      outputs: [{ name: 'a', datatype: 'FP8', shape: [1], contents: {} }],
    });
    assert.deepEqual([status, json.code], [502, 'MG_KSERVE_UNSUPPORTED_OUTPUT_DATATYPE']);
  });

  test('response fields: model_version, id and parameters only when set, in v2 REST form', () => {
    const { json, reply } = inferReply({
      modelName: 'm',
      modelVersion: '4',
      id: 'x',
      parameters: new Map<string, never>([
        ['a', { kind: 'bool', value: false } as never],
        ['b', { kind: 'uint64', value: 2n ** 64n - 1n } as never],
        ['c', { kind: 'double', value: Number.NaN } as never],
      ]),
      outputs: [
        {
          name: 'o',
          datatype: 'UINT8',
          shape: [2],
          rawOutputContents: undefined,
          contents: { uint: [1, 2] },
        } as never,
      ],
    });
    assert.equal(
      reply.body,
      '{"model_name":"m","model_version":"4","id":"x","parameters":{"a":false,"b":18446744073709551615,"c":"NaN"},"outputs":[{"name":"o","datatype":"UINT8","shape":[2],"data":[1,2]}]}',
    );
    assert.equal(json.id, 'x');
    const bare = inferReply({ modelName: 'm', outputs: [] });
    assert.equal(bare.reply.body, '{"model_name":"m","outputs":[]}');
  });

  test('numbersJson: plain numbers joined; NaN, ±Infinity as strings; -0 kept', () => {
    assert.equal(numbersJson(Float32Array.from([1, 0.5])), '[1,0.5]');
    assert.equal(
      numbersJson([Number.NaN, Infinity, -Infinity, -0, 0]),
      '["NaN","Infinity","-Infinity",-0,0]',
    );
  });
});

describe('translateResponse', () => {
  const message = (enc: (w: never, m: never) => void, m: unknown) => encodeFramed(enc as never, m as never);

  test('health: true → 200, false → 400, with the boolean in the body', () => {
    for (const [op, value, body] of [
      [{ kind: 'server_live' }, true, '{"live":true}'],
      [{ kind: 'server_live' }, false, '{"live":false}'],
      [{ kind: 'server_ready' }, true, '{"ready":true}'],
      [{ kind: 'server_ready' }, false, '{"ready":false}'],
      [{ kind: 'model_ready', model: 'r', version: '' }, true, '{"name":"r","ready":true}'],
      [{ kind: 'model_ready', model: 'r', version: '1' }, false, '{"name":"r","ready":false}'],
    ] as Array<[KServeOp, boolean, string]>) {
      const reply = translateResponse(op, okUpstream(message(encodeBoolResponse, value)));
      assert.deepEqual([reply.status, reply.body], [value ? 200 : 400, body]);
    }
  });

  test('server and model metadata', () => {
    const sm = translateResponse(
      { kind: 'server_metadata' },
      okUpstream(
        message(encodeServerMetadataResponse, { name: 'triton', version: '2.50', extensions: ['a'] }),
      ),
    );
    assert.deepEqual(
      [sm.status, JSON.parse(sm.body)],
      [200, { name: 'triton', version: '2.50', extensions: ['a'] }],
    );
    const mm = translateResponse(
      { kind: 'model_metadata', model: 'r', version: '' },
      okUpstream(
        message(encodeModelMetadataResponse, {
          name: 'r',
          versions: [],
          platform: 'onnx',
          inputs: [{ name: 'in', datatype: 'FP32', shape: [-1, 3] }],
          outputs: [{ name: 'out', datatype: 'INT64', shape: [] }],
        }),
      ),
    );
    assert.deepEqual(JSON.parse(mm.body), {
      name: 'r',
      platform: 'onnx',
      inputs: [{ name: 'in', datatype: 'FP32', shape: [-1, 3] }],
      outputs: [{ name: 'out', datatype: 'INT64', shape: [] }],
    });
  });

  test('a gRPC error status (trailers or trailers-only) → mapped HTTP status, decoded message, grpc_status', () => {
    const op: KServeOp = { kind: 'model_metadata', model: 'nope', version: '' };
    const trailersOnly = translateResponse(op, {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': '5',
        'grpc-message': "Request for unknown model: 'nope' %E2%9C%93",
      },
      body: [],
    });
    assert.equal(trailersOnly.status, 404);
    assert.deepEqual(JSON.parse(trailersOnly.body), {
      error: "Request for unknown model: 'nope' ✓",
      code: 'MG_KSERVE_UPSTREAM_STATUS',
      grpc_status: 'NOT_FOUND',
    });
    for (const [code, http] of [
      ['3', 400],
      ['4', 504],
      ['8', 429],
      ['12', 501],
      ['13', 500],
      ['14', 503],
      ['16', 401],
      ['7', 403],
      ['9', 400],
      ['2', 500],
    ] as const) {
      const reply = translateResponse(op, okUpstream(Buffer.alloc(0), { trailers: { 'grpc-status': code } }));
      assert.equal(reply.status, http, `grpc-status ${code}`);
      assert.equal(JSON.parse(reply.body).code, 'MG_KSERVE_UPSTREAM_STATUS');
    }
  });

  test('not a gRPC answer: HTTP status mapped through gRPC, wrong content-type, no grpc-status, not one message', () => {
    const op: KServeOp = { kind: 'server_ready' };
    const http503 = translateResponse(op, {
      status: 503,
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from('busy'),
    });
    assert.deepEqual([http503.status, JSON.parse(http503.body).grpc_status], [503, 'UNAVAILABLE']);
    const http404 = translateResponse(op, { status: 404, headers: {}, body: [] });
    assert.deepEqual([http404.status, JSON.parse(http404.body).grpc_status], [501, 'UNIMPLEMENTED']);
    const cases: GrpcUpstreamResponse[] = [
      okUpstream(message(encodeBoolResponse, true), { headers: { 'content-type': 'application/json' } }),
      okUpstream(message(encodeBoolResponse, true), { trailers: {} }),
      okUpstream(message(encodeBoolResponse, true), { trailers: { 'grpc-status': 'ok' } }),
      okUpstream(Buffer.alloc(0)),
      okUpstream(Buffer.concat([message(encodeBoolResponse, true), message(encodeBoolResponse, true)])),
      okUpstream(frameMessage(Buffer.from('ff', 'hex'))),
      okUpstream(message(encodeBoolResponse, true).subarray(0, 6)),
    ];
    for (const [i, c] of cases.entries()) {
      const reply = translateResponse(op, c);
      assert.deepEqual(
        [reply.status, JSON.parse(reply.body).code],
        [502, 'MG_KSERVE_BAD_RESPONSE'],
        `case ${i}`,
      );
    }
  });

  test('response bytes in chunks, gzip-compressed messages, and the size limit', () => {
    const frame = message(encodeBoolResponse, true);
    const chunks = [frame.subarray(0, 2), frame.subarray(2, 5), frame.subarray(5)];
    assert.equal(
      translateResponse({ kind: 'server_live' }, okUpstream(Buffer.alloc(0), { body: chunks })).status,
      200,
    );
    const payload = Buffer.from(frame.subarray(5));
    const gz = frameMessage(gzipSync(payload));
    gz[0] = 1;
    const gzHeaders = { 'content-type': 'application/grpc', 'grpc-encoding': 'gzip' };
    assert.equal(
      translateResponse({ kind: 'server_live' }, okUpstream(gz, { headers: gzHeaders })).body,
      '{"live":true}',
    );
    const noEncoding = translateResponse({ kind: 'server_live' }, okUpstream(gz));
    assert.equal(JSON.parse(noEncoding.body).code, 'MG_KSERVE_COMPRESSED_RESPONSE');
    const big = encodeFramed(encodeModelInferResponse, {
      modelName: 'm',
      outputs: [{ name: 'o', datatype: 'FP32', shape: [1000], contents: { fp32: new Float32Array(1000) } }],
    });
    const limited = translateResponse(INFER, okUpstream(big), { maxMessageBytes: 1000 });
    assert.deepEqual([limited.status, JSON.parse(limited.body).code], [502, 'MG_KSERVE_RESPONSE_TOO_LARGE']);
  });
});
