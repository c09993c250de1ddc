/**
 * The translation library against a real @grpc/grpc-js KServe v2 server (test/support), with no
 * gateway in between: a REST request is routed, translated and framed, sent over node:http2, and
 * the response deframed, decoded and turned into REST JSON. The server decodes with protobufjs from
 * the .proto, so this checks the field numbers as a real server sees them, in both directions.
 */
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';
import { errorReply, type RestReply } from '../../../../src/dataplane/kserve/errors.ts';
import {
  fromBf16Bits,
  type GrpcCall,
  type GrpcUpstreamResponse,
  type TranslateRequestOptions,
  toBf16Bits,
  translateRequest,
  translateResponse,
} from '../../../../src/dataplane/kserve/rest-json.ts';
import { parseRestRoute } from '../../../../src/dataplane/kserve/rest-routes.ts';
import {
  type KServeGrpcServer,
  startKServeGrpcServer,
  type WireInferRequest,
} from '../../../support/kserve-grpc-server.ts';

let server: KServeGrpcServer;
let session: http2.ClientHttp2Session;

before(async () => {
  server = await startKServeGrpcServer();
  session = http2.connect(`http://${server.address}`);
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
});

after(async () => {
  session.close();
  await server.close();
});

/** One gRPC call over the shared HTTP/2 session, collected as the exchange would hand it over. */
function grpcCall(call: GrpcCall): Promise<GrpcUpstreamResponse> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': call.grpcPath, ...call.headers });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      headers = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () =>
      resolve({
        status: Number(headers[':status']),
        headers,
        body: chunks,
        ...(trailers ? { trailers } : {}),
      }),
    );
    req.on('error', reject);
    req.end(call.frame);
  });
}

interface Rest {
  status: number;
  body: string;
  json: Record<string, unknown>;
  chunks: number;
}

/** A REST call through the library: route, translate, gRPC, translate back. */
async function rest(
  method: string,
  path: string,
  body?: unknown,
  options: TranslateRequestOptions = {},
  headers: Record<string, string> = {},
): Promise<Rest> {
  let reply: RestReply;
  let chunks = 0;
  const route = parseRestRoute(method, path);
  if (!route.ok) reply = errorReply(route.error, route.headers);
  else {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const t = translateRequest(route.op, text, headers, options);
    if (!t.ok) reply = t.reply;
    else {
      const upstream = await grpcCall(t);
      chunks = (upstream.body as Buffer[]).length;
      reply = translateResponse(route.op, upstream);
    }
  }
  const json = reply.body
    ? (JSON.parse(reply.body, (_k, v, ctx?: { source?: string }) =>
        typeof v === 'number' && !Number.isSafeInteger(v) && ctx?.source && /^-?\d+$/.test(ctx.source)
          ? BigInt(ctx.source)
          : v,
      ) as Record<string, unknown>)
    : {};
  return { status: reply.status, body: reply.body, json, chunks };
}

const lastInfer = (): WireInferRequest =>
  server.received.filter((c) => c.method === 'ModelInfer').at(-1)!.request as WireInferRequest;

const TENSORS = [
  {
    name: 'INT64',
    datatype: 'INT64',
    shape: [2, 3],
    data: [
      [1, -1, 9007199254740991],
      ['-9223372036854775808', '9223372036854775807', '12345678901234567'],
    ],
  },
  { name: 'FP32', datatype: 'FP32', shape: [4], data: [1.5, -0.125, 3.4028234663852886e38, 'NaN'] },
  { name: 'BYTES', datatype: 'BYTES', shape: [3], data: ['', 'héllo wörld', '🎉'] },
  { name: 'BOOL', datatype: 'BOOL', shape: [3], data: [true, false, true] },
  { name: 'UINT64', datatype: 'UINT64', shape: [2], data: ['18446744073709551615', 7] },
  { name: 'INT8', datatype: 'INT8', shape: [2], data: [-128, 127] },
  { name: 'UINT16', datatype: 'UINT16', shape: [2], data: [0, 65535] },
  { name: 'INT32', datatype: 'INT32', shape: [2], data: [-2147483648, 2147483647] },
  { name: 'FP64', datatype: 'FP64', shape: [2], data: [Math.E, -1e-300] },
];

/** What the REST response should hold for TENSORS: flat, 64-bit values exact. */
function expectedData(t: (typeof TENSORS)[number]): unknown[] {
  return t.data.flat().map((v) => {
    if (typeof v === 'string' && /^-?\d+$/.test(v)) {
      const n = Number(v);
      return Number.isSafeInteger(n) ? n : BigInt(v);
    }
    return v;
  });
}

describe('KServe v2 REST → gRPC → REST against a grpc-js server', () => {
  test('server live, ready and metadata; readiness follows the server', async () => {
    assert.deepEqual(await rest('GET', '/v2/health/live'), {
      status: 200,
      body: '{"live":true}',
      json: { live: true },
      chunks: 1,
    });
    assert.equal((await rest('GET', '/v2/health/ready')).status, 200);
    server.setServer({ ready: false, live: false });
    try {
      assert.deepEqual((await rest('GET', '/v2/health/ready')).json, { ready: false });
      assert.equal((await rest('GET', '/v2/health/ready')).status, 400);
      assert.equal((await rest('GET', '/v2/health/live')).status, 400);
    } finally {
      server.setServer({ ready: true, live: true });
    }
    assert.deepEqual((await rest('GET', '/v2')).json, {
      name: 'modelgate-test-triton',
      version: '2.99.0',
      extensions: ['classification', 'model_repository'],
    });
  });

  test('model metadata and readiness, with version; unknown models are 404 with the server message', async () => {
    server.setModel('resnet', {
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'data', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'prob', datatype: 'FP32', shape: [-1, 1000] }],
    });
    const md = await rest('GET', '/v2/models/resnet/versions/2');
    assert.equal(md.status, 200);
    assert.deepEqual(md.json, {
      name: 'resnet',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'data', datatype: 'FP32', shape: [-1, 3, 224, 224] }],
      outputs: [{ name: 'prob', datatype: 'FP32', shape: [-1, 1000] }],
    });
    const asked = server.received.filter((c) => c.method === 'ModelMetadata').at(-1)!.request;
    assert.deepEqual(asked, { name: 'resnet', version: '2' });

    assert.deepEqual(await rest('GET', '/v2/models/resnet/ready'), {
      status: 200,
      body: '{"name":"resnet","ready":true}',
      json: { name: 'resnet', ready: true },
      chunks: 1,
    });
    server.setModel('resnet', { ready: false });
    assert.deepEqual((await rest('GET', '/v2/models/resnet/versions/1/ready')).json, {
      name: 'resnet',
      ready: false,
    });
    assert.equal((await rest('GET', '/v2/models/resnet/ready')).status, 400);

    const missing = await rest('GET', '/v2/models/nope');
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, {
      error: "Request for unknown model: 'nope' is not found",
      code: 'MG_KSERVE_UPSTREAM_STATUS',
      grpc_status: 'NOT_FOUND',
    });
  });

  test('echo, typed contents: INT64, FP32, BYTES, BOOL and more round-trip exactly', async () => {
    const r = await rest('POST', '/v2/models/echo/versions/3/infer', {
      id: 'req-42',
      parameters: { temperature: 0.5, top_k: 3, tag: 'x', flag: true },
      inputs: TENSORS,
    });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.model_name, 'echo');
    assert.equal(r.json.model_version, '3');
    assert.equal(r.json.id, 'req-42');
    assert.deepEqual(r.json.parameters, { temperature: 0.5, top_k: 3, tag: 'x', flag: true });
    const outputs = r.json.outputs as Array<Record<string, unknown>>;
    assert.equal(outputs.length, TENSORS.length);
    for (const [i, t] of TENSORS.entries()) {
      assert.equal(outputs[i]!.name, t.name);
      assert.equal(outputs[i]!.datatype, t.datatype);
      assert.deepEqual(outputs[i]!.shape, t.shape);
      assert.deepEqual(outputs[i]!.data, expectedData(t), t.name);
    }
    // What the server decoded from our bytes, field by field.
    const req = lastInfer();
    assert.equal(req.model_name, 'echo');
    assert.equal(req.model_version, '3');
    assert.equal(req.id, 'req-42');
    assert.deepEqual(req.parameters.top_k, { int64_param: '3', parameter_choice: 'int64_param' });
    assert.deepEqual(req.parameters.temperature, { double_param: 0.5, parameter_choice: 'double_param' });
    const int64 = req.inputs.find((i) => i.name === 'INT64')!;
    assert.deepEqual(int64.shape, ['2', '3']);
    assert.deepEqual(int64.contents!.int64_contents, [
      '1',
      '-1',
      '9007199254740991',
      '-9223372036854775808',
      '9223372036854775807',
      '12345678901234567',
    ]);
    assert.deepEqual(req.inputs.find((i) => i.name === 'UINT64')!.contents!.uint64_contents, [
      '18446744073709551615',
      '7',
    ]);
    assert.deepEqual(
      (req.inputs.find((i) => i.name === 'BYTES')!.contents!.bytes_contents as Buffer[]).map(String),
      ['', 'héllo wörld', '🎉'],
    );
    assert.equal(req.raw_input_contents.length, 0);
  });

  test('echo, raw contents both ways (rawInputs): the same tensors', async () => {
    const r = await rest('POST', '/v2/models/echo/infer', { inputs: TENSORS }, { rawInputs: true });
    assert.equal(r.status, 200, r.body);
    assert.equal(lastInfer().raw_input_contents.length, TENSORS.length);
    const outputs = r.json.outputs as Array<Record<string, unknown>>;
    for (const [i, t] of TENSORS.entries()) assert.deepEqual(outputs[i]!.data, expectedData(t), t.name);
  });

  test('a Triton-style answer: raw_output_contents written by the server from typed inputs', async () => {
    const r = await rest('POST', '/v2/models/triton_raw/infer', { inputs: TENSORS });
    assert.equal(r.status, 200, r.body);
    const outputs = r.json.outputs as Array<Record<string, unknown>>;
    for (const [i, t] of TENSORS.entries()) assert.deepEqual(outputs[i]!.data, expectedData(t), t.name);
  });

  test('FP16 and BF16 travel raw and come back as the nearest representable values', async () => {
    const r = await rest('POST', '/v2/models/echo/infer', {
      inputs: [
        { name: 'h', datatype: 'FP16', shape: [3], data: [0.1, -2, 65504] },
        { name: 'b', datatype: 'BF16', shape: [2], data: [1.1, -3e38] },
      ],
    });
    assert.equal(r.status, 200, r.body);
    const outputs = r.json.outputs as Array<{ data: number[] }>;
    assert.deepEqual(outputs[0]!.data, [Math.f16round(0.1), -2, 65504]);
    assert.deepEqual(outputs[1]!.data, [fromBf16Bits(toBf16Bits(1.1)), fromBf16Bits(toBf16Bits(-3e38))]);
    assert.equal(lastInfer().raw_input_contents[0]!.toString('hex'), '662e00c0ff7b');
  });

  test('requested outputs are honoured', async () => {
    const r = await rest('POST', '/v2/models/echo/infer', {
      inputs: TENSORS.slice(0, 3),
      outputs: [{ name: 'BYTES' }, { name: 'INT64', parameters: { classification: 0 } }],
    });
    assert.deepEqual(
      (r.json.outputs as Array<{ name: string }>).map((o) => o.name),
      ['INT64', 'BYTES'],
    );
    assert.deepEqual(lastInfer().outputs[1]!.parameters.classification, {
      int64_param: '0',
      parameter_choice: 'int64_param',
    });
  });

  test('a large FP32 tensor [1,3,224,224], typed and raw, arrives in several DATA frames and round-trips exactly', async () => {
    const n = 3 * 224 * 224;
    const values = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i) * 1000));
    const body = {
      inputs: [{ name: 'data', datatype: 'FP32', shape: [1, 3, 224, 224], data: Array.from(values) }],
    };
    for (const [model, rawInputs] of [
      ['echo', false],
      ['echo', true],
      ['triton_raw', false],
    ] as const) {
      const r = await rest('POST', `/v2/models/${model}/infer`, body, { rawInputs });
      assert.equal(r.status, 200);
      assert.ok(r.chunks > 1, `${model}: ${r.chunks} chunk(s)`);
      const out = (r.json.outputs as Array<{ data: number[]; shape: number[] }>)[0]!;
      assert.deepEqual(out.shape, [1, 3, 224, 224]);
      assert.deepEqual(Float32Array.from(out.data), values, `${model} raw=${rawInputs}`);
    }
  });

  test('gRPC errors from the model are mapped to HTTP statuses with the server message', async () => {
    const cases: Array<[number, number, string]> = [
      [3, 400, 'INVALID_ARGUMENT'],
      [4, 504, 'DEADLINE_EXCEEDED'],
      [5, 404, 'NOT_FOUND'],
      [7, 403, 'PERMISSION_DENIED'],
      [8, 429, 'RESOURCE_EXHAUSTED'],
      [9, 400, 'FAILED_PRECONDITION'],
      [12, 501, 'UNIMPLEMENTED'],
      [13, 500, 'INTERNAL'],
      [14, 503, 'UNAVAILABLE'],
      [16, 401, 'UNAUTHENTICATED'],
      [2, 500, 'UNKNOWN'],
    ];
    for (const [code, http, name] of cases) {
      const message = `failure ${name}: 100% ✓ "quoted"`;
      const r = await rest('POST', '/v2/models/fail/infer', {
        parameters: { grpc_code: code, grpc_message: message },
        inputs: [],
      });
      assert.equal(r.status, http, name);
      assert.deepEqual(r.json, { error: message, code: 'MG_KSERVE_UPSTREAM_STATUS', grpc_status: name });
    }
  });

  test('an answer that contradicts its shape is MG_KSERVE_BAD_RESPONSE', async () => {
    server.setInferHandler('liar', (req) => ({
      model_name: req.model_name,
      outputs: [{ name: 'o', datatype: 'FP32', shape: ['4'], contents: { fp32_contents: [1, 2, 3] } }],
    }));
    const r = await rest('POST', '/v2/models/liar/infer', { inputs: [] });
    assert.equal(r.status, 502);
    assert.equal(r.json.code, 'MG_KSERVE_BAD_RESPONSE');
    assert.match(r.json.error as string, /output 'o': its shape holds 4 elements, its FP32 contents 3/);
    server.setInferHandler('raw-liar', (req) => ({
      model_name: req.model_name,
      outputs: [{ name: 'o', datatype: 'INT32', shape: ['2'] }],
      raw_output_contents: [Buffer.alloc(7)],
    }));
    const raw = await rest('POST', '/v2/models/raw-liar/infer', { inputs: [] });
    assert.deepEqual([raw.status, raw.json.code], [502, 'MG_KSERVE_BAD_RESPONSE']);
  });

  test('requests the gateway refuses never reach the server', async () => {
    const before = server.received.length;
    const bad = await rest('POST', '/v2/models/echo/infer', {
      inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3] }],
    });
    assert.deepEqual([bad.status, bad.json.code], [400, 'MG_KSERVE_SHAPE_MISMATCH']);
    const binary = await rest(
      'POST',
      '/v2/models/echo/infer',
      '{}',
      {},
      { 'inference-header-content-length': '2' },
    );
    assert.deepEqual([binary.status, binary.json.code], [400, 'MG_KSERVE_BINARY_DATA_UNSUPPORTED']);
    const route = await rest('GET', '/v2/models/echo/stats');
    assert.deepEqual([route.status, route.json.code], [404, 'MG_KSERVE_NOT_FOUND']);
    assert.equal(server.received.length, before);
  });
});
