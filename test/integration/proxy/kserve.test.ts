/**
 * KServe v2 REST clients served from gRPC backends (`translation: {kserveV2: {}}`): a real gateway
 * in front of a real @grpc/grpc-js GRPCInferenceService (test/support/kserve-grpc-server.ts, which
 * decodes with protobufjs, independently of the gateway's codec). Tensors round-trip exactly, gRPC
 * statuses come back as HTTP statuses with the v2 error body, refused REST input never reaches the
 * backend, and the rule's retries, fallback, cancellation, authentication and cache work around
 * the translated call. No sleeps: calls held by the server are awaited through its events.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { request } from 'undici';
import { type Reply, send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import {
  type KServeGrpcServer,
  LOADER_OPTIONS,
  PROTO_PATH,
  type ReceivedCall,
  startKServeGrpcServer,
  type WireInferRequest,
} from '../../support/kserve-grpc-server.ts';

type Json = Record<string, unknown>;

const JSON_TYPE = { 'content-type': 'application/json' };

/** A port with nothing listening: bind, note the port, close. */
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** The next call the server receives (bounded: fails after 5 s instead of hanging the suite). */
function nextCall(server: KServeGrpcServer): Promise<ReceivedCall> {
  return once(server.events, 'call', { signal: AbortSignal.timeout(5000) }).then(([c]) => c as ReceivedCall);
}

const infer = (gw: TestGateway, model: string, body: string | Json, headers: Json = {}) =>
  send(gw.url, {
    path: `/v2/models/${model}/infer`,
    headers: { ...JSON_TYPE, ...(headers as Record<string, string>) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const output = (r: Reply, name: string) => (r.json().outputs as Json[]).find((o) => o.name === name) as Json;

const grpcRoute = (name: string, rule: string, extra = '') =>
  route(name, `{${extra}rules: [{translation: {kserveV2: {}}, ${rule}}]}`);

describe('KServe v2 REST over gRPC', () => {
  let server: KServeGrpcServer;
  let gw: TestGateway;
  let backend: string;

  before(async () => {
    server = await startKServeGrpcServer();
    backend = `{name: triton, urls: ["http://${server.address}"], protocol: GRPC}`;
    gw = await startGateway(
      grpcRoute('r', `backends: [${backend}], retries: {attempts: 0}, timeouts: {firstByte: 60s}`) +
        route(
          'raw',
          `{hostnames: [raw.test], rules: [{translation: {kserveV2: {rawInputs: true}}, backends: [${backend}]}]}`,
        ) +
        route(
          'small',
          `{hostnames: [small.test], rules: [{translation: {kserveV2: {maxResponseSize: 1Ki}}, backends: [${backend}]}]}`,
        ),
    );
  });
  after(async () => {
    await gw.close();
    await server.close();
  });

  test('INT64 (beyond 2^53, both ends of the range), FP32, BYTES, BOOL, FP16 round-trip exactly', async () => {
    // Written as text: a JavaScript number literal could not hold these INT64 values.
    const body = `{"id":"req-7","parameters":{"tenant":"acme","seed":9007199254740993},"inputs":[
      {"name":"ids","datatype":"INT64","shape":[2,2],"data":[[9007199254740993,-9223372036854775808],[9223372036854775807,"-42"]]},
      {"name":"x","datatype":"FP32","shape":[4],"data":[1.1,-0.0,"NaN","-Infinity"]},
      {"name":"text","datatype":"BYTES","shape":[2],"data":["héllo",""]},
      {"name":"mask","datatype":"BOOL","shape":[3],"data":[true,false,true]}]}`;
    const call = nextCall(server);
    const sentAt = Date.now();
    const r = await infer(gw, 'echo', body, {
      'x-request-id': 'rid-1',
      'accept-encoding': 'gzip',
      'grpc-timeout': '1m',
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['content-type'], 'application/json');
    assert.equal(r.headers['x-request-id'], 'rid-1');
    // Every digit: the reply is parsed here with the source text of each number.
    assert.match(r.text, /"data":\[9007199254740993,-9223372036854775808,9223372036854775807,-42\]/);
    assert.match(r.text, /"seed":9007199254740993/);
    assert.equal(r.json().id, 'req-7');
    assert.equal(r.json().model_name, 'echo');
    assert.deepEqual(output(r, 'x').data, [1.100000023841858, -0, 'NaN', '-Infinity']);
    assert.ok(Object.is((output(r, 'x').data as number[])[1], -0));
    assert.deepEqual(output(r, 'text').data, ['héllo', '']);
    assert.deepEqual(output(r, 'mask').data, [true, false, true]);
    assert.deepEqual(output(r, 'ids').shape, [2, 2]);

    // What the gRPC server decoded (protobufjs): typed contents, INT64 exact as decimal strings.
    const c = await call;
    assert.equal(c.method, 'ModelInfer');
    const req = c.request as WireInferRequest;
    assert.equal(req.model_name, 'echo');
    assert.deepEqual(req.inputs[0]!.contents!.int64_contents, [
      '9007199254740993',
      '-9223372036854775808',
      '9223372036854775807',
      '-42',
    ]);
    assert.deepEqual(
      (req.inputs[2]!.contents!.bytes_contents as Buffer[]).map((b) => b.toString('utf8')),
      ['héllo', ''],
    );
    assert.equal(req.raw_input_contents.length, 0, 'typed contents by default');
    const md = c.metadata;
    assert.equal(md['x-request-id'], 'rid-1', 'the request id reaches the backend');
    assert.match(String(md.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    assert.equal(md['x-forwarded-for'], '127.0.0.1');
    assert.equal(md['accept-encoding'], undefined, "the client's HTTP content negotiation stays here");
    // grpc-timeout is the rule's first-byte timeout, not what a REST client sent (1 ms).
    assert.ok(
      c.deadline >= sentAt + 55_000 && c.deadline <= Date.now() + 60_000,
      String(c.deadline - sentAt),
    );
    assert.notEqual(md['content-length'], String(Buffer.byteLength(body)), "the length is the gRPC frame's");
  });

  test('FP16 goes raw both ways and comes back as the nearest binary16 values', async () => {
    const call = nextCall(server);
    const r = await infer(gw, 'echo', {
      inputs: [
        { name: 'h', datatype: 'FP16', shape: [3], data: [1.5, 0.1, 65504] },
        { name: 'n', datatype: 'INT32', shape: [1], data: [7] },
      ],
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(output(r, 'h').data, [1.5, 0.0999755859375, 65504]);
    assert.deepEqual(output(r, 'n').data, [7]);
    const req = (await call).request as WireInferRequest;
    assert.equal(req.raw_input_contents.length, 2, 'one FP16 input sends every input raw');
    assert.deepEqual([...req.raw_input_contents[0]!], [0x00, 0x3e, 0x66, 0x2e, 0xff, 0x7b]);
  });

  test("Triton's raw_output_contents become typed JSON (triton_raw), and rawInputs sends raw", async () => {
    const tensors = {
      inputs: [
        { name: 'a', datatype: 'INT64', shape: [2], data: [-1, 5] },
        { name: 'b', datatype: 'BYTES', shape: [2], data: ['x', 'yz'] },
        { name: 'c', datatype: 'BOOL', shape: [1], data: [true] },
        { name: 'd', datatype: 'FP32', shape: [1], data: [0.5] },
      ],
    };
    const r = await infer(gw, 'triton_raw', tensors);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      (r.json().outputs as Json[]).map((o) => o.data),
      [[-1, 5], ['x', 'yz'], [true], [0.5]],
    );

    const call = nextCall(server);
    const raw = await send(gw.url, {
      path: '/v2/models/echo/versions/3/infer',
      headers: { host: 'raw.test', ...JSON_TYPE },
      body: JSON.stringify(tensors),
    });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.json().model_version, '3');
    assert.deepEqual(
      (raw.json().outputs as Json[]).map((o) => o.data),
      [[-1, 5], ['x', 'yz'], [true], [0.5]],
    );
    const req = (await call).request as WireInferRequest;
    assert.equal(req.model_version, '3');
    assert.equal(req.raw_input_contents.length, 4);
    assert.deepEqual(
      req.inputs.map((i) => i.contents),
      [null, null, null, null],
    );
  });

  test('model metadata and readiness; server live, ready and metadata', async () => {
    const meta = await send(gw.url, { path: '/v2/models/echo' });
    assert.equal(meta.status, 200);
    assert.deepEqual(meta.json(), {
      name: 'echo',
      versions: ['1'],
      platform: 'modelgate_test',
      inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [-1, 16] }],
      outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [-1, 16] }],
    });
    assert.deepEqual((await send(gw.url, { path: '/v2/models/echo/ready' })).json(), {
      name: 'echo',
      ready: true,
    });
    server.setModel('warming', { ready: false });
    const warming = await send(gw.url, { path: '/v2/models/warming/versions/2/ready' });
    assert.equal(warming.status, 400, 'the spec: a 4xx status says false');
    assert.deepEqual(warming.json(), { name: 'warming', ready: false });

    assert.deepEqual((await send(gw.url, { path: '/v2/health/live' })).json(), { live: true });
    server.setServer({ ready: false });
    const notReady = await send(gw.url, { path: '/v2/health/ready' });
    server.setServer({ ready: true });
    assert.equal(notReady.status, 400);
    assert.deepEqual(notReady.json(), { ready: false });
    assert.equal((await send(gw.url, { path: '/v2/health/ready' })).status, 200);
    const server2 = await send(gw.url, { path: '/v2/' });
    assert.equal(server2.status, 200);
    assert.deepEqual(server2.json(), {
      name: 'modelgate-test-triton',
      version: '2.99.0',
      extensions: ['classification', 'model_repository'],
    });
  });

  test('gRPC error statuses become HTTP statuses with the v2 error body and a stable code', async () => {
    const cases: [number, string, number][] = [
      [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', 400],
      [grpc.status.UNAUTHENTICATED, 'UNAUTHENTICATED', 401],
      [grpc.status.PERMISSION_DENIED, 'PERMISSION_DENIED', 403],
      [grpc.status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED', 429],
      [grpc.status.INTERNAL, 'INTERNAL', 500],
      [grpc.status.UNIMPLEMENTED, 'UNIMPLEMENTED', 501],
      [grpc.status.UNAVAILABLE, 'UNAVAILABLE', 503],
      [grpc.status.DEADLINE_EXCEEDED, 'DEADLINE_EXCEEDED', 504],
    ];
    for (const [code, name, status] of cases) {
      const r = await infer(gw, 'fail', {
        parameters: { grpc_code: code, grpc_message: `döes not work (${name})` },
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }],
      });
      assert.equal(r.status, status, `${name}: ${r.text}`);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.deepEqual(r.json(), {
        error: `döes not work (${name})`,
        code: 'MG_KSERVE_UPSTREAM_STATUS',
        grpc_status: name,
      });
    }
    const unknown = await infer(gw, 'nope', { inputs: [] });
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json().code, 'MG_KSERVE_UPSTREAM_STATUS');
    assert.equal(unknown.json().grpc_status, 'NOT_FOUND');
    const metadata = await send(gw.url, { path: '/v2/models/nope' });
    assert.equal(metadata.status, 404);

    const metrics = await gw.proxy.metrics.registry.metrics();
    assert.match(metrics, /modelgate_gateway_errors_total\{code="MG_KSERVE_UPSTREAM_STATUS"\} 10/);
    assert.match(
      metrics,
      /modelgate_requests_total\{route="test\/r",rule="rule-0",backend="triton",model="",code_class="5xx"\} [1-9]/,
    );
    const logged = gw.logs.filter((l) => l.msg === 'access' && l.code === 'MG_KSERVE_UPSTREAM_STATUS');
    assert.ok(logged.length >= 10);
    assert.equal(logged.at(-1)!.backend, 'triton');
    assert.equal(logged.at(-1)!.model, 'nope');
  });

  test('REST input the translation refuses is answered at the gateway and never reaches the backend', async () => {
    const before = server.received.length;
    const cases: [() => Promise<Reply>, number, string][] = [
      [
        () =>
          infer(gw, 'echo', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1, 2, 3] }] }),
        400,
        'MG_KSERVE_SHAPE_MISMATCH',
      ],
      [() => infer(gw, 'echo', '{"inputs": ['), 400, 'MG_KSERVE_BAD_REQUEST'],
      [
        () => infer(gw, 'echo', { inputs: [{ name: 'x', datatype: 'INT8', shape: [1], data: [300] }] }),
        400,
        'MG_KSERVE_BAD_TENSOR_DATA',
      ],
      [
        () => infer(gw, 'echo', { inputs: [{ name: 'x', datatype: 'FP8', shape: [1], data: [1] }] }),
        400,
        'MG_KSERVE_UNSUPPORTED_DATATYPE',
      ],
      [
        () => infer(gw, 'echo', { inputs: [] }, { 'inference-header-content-length': '12' }),
        400,
        'MG_KSERVE_BINARY_DATA_UNSUPPORTED',
      ],
      [() => send(gw.url, { path: '/v2/repository/index', body: '{}' }), 404, 'MG_KSERVE_NOT_FOUND'],
      [() => send(gw.url, { path: '/v2/models/echo/infer' }), 405, 'MG_KSERVE_METHOD_NOT_ALLOWED'],
      [
        () =>
          send(gw.url, {
            path: '/v2/models/echo/infer',
            headers: { ...JSON_TYPE, 'content-encoding': 'zstd' },
            body: '{}',
          }),
        400,
        'MG_BAD_CONTENT_ENCODING',
      ],
    ];
    for (const [make, status, code] of cases) {
      const r = await make();
      assert.equal(r.status, status, `${code}: ${r.text}`);
      assert.equal(r.json().code, code);
      assert.equal(typeof r.json().error, 'string');
      if (status === 405) assert.equal(r.headers.allow, 'POST');
    }
    assert.match(
      String(
        (
          await infer(gw, 'echo', { inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [1] }] })
        ).json().error,
      ),
      /input 'x': shape \[2,2\] needs 4 elements, data has 1/,
    );
    assert.equal(server.received.length, before, 'no call reached the gRPC server');
    const metrics = await gw.proxy.metrics.registry.metrics();
    assert.match(metrics, /modelgate_gateway_errors_total\{code="MG_KSERVE_SHAPE_MISMATCH"\} 2/);
    const log = gw.logs.filter((l) => l.msg === 'access' && l.code === 'MG_KSERVE_SHAPE_MISMATCH');
    assert.equal(log.length, 2);
    assert.equal(log[0]!.status, 400);
    assert.equal(log[0]!.backend, '', 'refused before any backend');
  });

  test('a gzip-encoded request body is decoded before translation', async () => {
    const body = gzipSync(
      JSON.stringify({ inputs: [{ name: 'x', datatype: 'INT32', shape: [2], data: [3, 4] }] }),
    );
    const r = await send(gw.url, {
      path: '/v2/models/echo/infer',
      headers: { ...JSON_TYPE, 'content-encoding': 'gzip' },
      body,
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(output(r, 'x').data, [3, 4]);
  });

  test('an answer larger than maxResponseSize: 502 MG_KSERVE_RESPONSE_TOO_LARGE', async () => {
    const data = Array.from({ length: 512 }, (_, i) => i);
    const r = await send(gw.url, {
      path: '/v2/models/echo/infer',
      headers: { host: 'small.test', ...JSON_TYPE },
      body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [512], data }] }),
    });
    assert.equal(r.status, 502);
    assert.equal(r.json().code, 'MG_KSERVE_RESPONSE_TOO_LARGE');
  });

  test('native gRPC clients on a translated rule pass through to the backends untranslated', async () => {
    const def = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      inference: {
        GRPCInferenceService: new (address: string, creds: grpc.ChannelCredentials) => grpc.Client;
      };
    };
    const client = new pkg.inference.GRPCInferenceService(
      gw.url.replace('http://', ''),
      grpc.credentials.createInsecure(),
    ) as grpc.Client & {
      ModelReady(req: Json, cb: (err: grpc.ServiceError | null, res: { ready: boolean }) => void): void;
    };
    try {
      const res = await new Promise<{ ready: boolean }>((resolve, reject) =>
        client.ModelReady({ name: 'echo' }, (err, r) => (err ? reject(err) : resolve(r))),
      );
      assert.equal(res.ready, true);
    } finally {
      client.close();
    }
  });

  test('a WebSocket upgrade on a translated rule is refused', async () => {
    const r = await send(gw.url, {
      path: '/v2/models/echo/infer',
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
      },
    });
    assert.equal(r.status, 400);
  });
});

test('retries: a closed port is skipped for the live endpoint, and gRPC UNAVAILABLE is retried as a 503', async (t) => {
  const [a, b] = await Promise.all([startKServeGrpcServer(), startKServeGrpcServer()]);
  const dead = await deadPort();
  // Model "flaky" is unavailable on a, served on b.
  a.setInferHandler('flaky', () => ({ error: { code: grpc.status.UNAVAILABLE, details: 'draining' } }));
  b.setModel('flaky', {});
  const gw = await startGateway(
    route(
      'r',
      `{rules: [
        {name: connect, matches: [{path: {value: /v2/models/echo}}], translation: {kserveV2: {}},
         backends: [{name: t, urls: ["http://127.0.0.1:${dead}", "http://${b.address}"], protocol: GRPC}],
         retries: {attempts: 1}},
        {name: unavailable, matches: [{path: {value: /v2/models/flaky}}], translation: {kserveV2: {}},
         backends: [{name: t, urls: ["http://${a.address}", "http://${b.address}"], protocol: GRPC}],
         retries: {attempts: 1, retryOn: ["503"]}},
        {name: once, matches: [{path: {value: /v2/models/only-a}}], translation: {kserveV2: {}},
         backends: [{name: t, urls: ["http://${a.address}"], protocol: GRPC}],
         retries: {attempts: 1, retryOn: [connect-failure]}}]}`,
    ),
  );
  t.after(async () => {
    await gw.close();
    await Promise.all([a.close(), b.close()]);
  });
  const body = { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [1] }] };
  for (let i = 0; i < 6; i++) {
    const r = await infer(gw, 'echo', body);
    assert.equal(r.status, 200, r.text);
  }
  // Until the unavailable endpoint has been tried at least once (bounded): every answer is b's.
  for (let i = 0; i < 20 && a.received.length === 0; i++) {
    const r = await infer(gw, 'flaky', body);
    assert.equal(r.status, 200, r.text);
  }
  assert.ok(a.received.length > 0, 'the balancer tried a');
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(metrics, /modelgate_upstream_retries_total\{route="test\/r",reason="connect-failure"\} [1-9]/);
  assert.match(metrics, /modelgate_upstream_retries_total\{route="test\/r",reason="503"\} [1-9]/);

  // Not retried unless the rule lists it: the mapped status is the answer.
  a.setInferHandler('only-a', () => ({ error: { code: grpc.status.UNAVAILABLE, details: 'draining' } }));
  const r = await infer(gw, 'only-a', body);
  assert.equal(r.status, 503);
  assert.deepEqual(r.json(), {
    error: 'draining',
    code: 'MG_KSERVE_UPSTREAM_STATUS',
    grpc_status: 'UNAVAILABLE',
  });

  // Nothing reachable: the gateway's own error, in the v2 shape.
  const gw2 = await startGateway(
    grpcRoute(
      'r',
      `backends: [{name: t, urls: ["http://127.0.0.1:${dead}"], protocol: GRPC}], retries: {attempts: 0}`,
    ),
  );
  t.after(() => gw2.close());
  const down = await infer(gw2, 'echo', body);
  assert.equal(down.status, 502);
  assert.equal(down.json().code, 'MG_UPSTREAM_CONNECT_FAILED');
  assert.equal(typeof down.json().error, 'string');
});

test('a backend without endpoints hands over to the fallback backend', async (t) => {
  const s = await startKServeGrpcServer();
  const gw = await startGateway(
    `${grpcRoute(
      'r',
      `backends: [{name: main, service: {name: empty, port: 8001}, protocol: GRPC},
                  {name: small, urls: ["http://${s.address}"], protocol: GRPC, weight: 0}],
       fallbackBackend: small`,
    )}apiVersion: v1\nkind: Service\nmetadata: {name: empty, namespace: test}\nspec: {ports: [{port: 8001}]}\n`,
  );
  t.after(async () => {
    await gw.close();
    await s.close();
  });
  const r = await send(gw.url, { path: '/v2/models/echo/ready' });
  assert.equal(r.status, 200, r.text);
  assert.equal(gw.logs.filter((l) => l.msg === 'access').at(-1)!.backend, 'small');
});

test('a client that leaves cancels the gRPC call', async (t) => {
  const s = await startKServeGrpcServer();
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  s.setInferHandler('slow', async (req) => {
    await held;
    return { model_name: req.model_name, outputs: [] };
  });
  const gw = await startGateway(
    grpcRoute('r', `backends: [{name: t, urls: ["http://${s.address}"], protocol: GRPC}]`),
  );
  t.after(async () => {
    release();
    await gw.close();
    await s.close();
  });
  const controller = new AbortController();
  const arrived = nextCall(s);
  const pending = request(`${gw.url}/v2/models/slow/infer`, {
    method: 'POST',
    headers: JSON_TYPE,
    body: JSON.stringify({ inputs: [] }),
    signal: controller.signal,
  }).catch((e: Error) => e);
  await arrived;
  const cancelled = once(s.events, 'cancelled', { signal: AbortSignal.timeout(5000) });
  controller.abort();
  assert.ok((await pending) instanceof Error);
  assert.deepEqual(await cancelled, ['ModelInfer'], 'the server sees the call cancelled');
  const metrics = await gw.proxy.metrics.registry.metrics();
  assert.match(
    metrics,
    /modelgate_requests_total\{route="test\/r",rule="rule-0",backend="t",model="",code_class="4xx"\} 1/,
  );
});

test('filters run on the REST request first: API keys, a response transform, and the cache', async (t) => {
  const s = await startKServeGrpcServer();
  const KEY = 'key-alpha-0123456789';
  const gw = await startGateway(`apiVersion: v1
kind: Secret
metadata: {name: alpha, namespace: test, annotations: {modelgate.dev/consumer: alpha}}
stringData: {key: ${KEY}}
---
${route(
  'r',
  `{auth: {apiKeys: {header: x-api-key, secretRefs: [{name: alpha}]}},
    rules: [{translation: {kserveV2: {}}, backends: [{name: t, urls: ["http://${s.address}"], protocol: GRPC, modelRevision: "1"}],
             cache: {}, transform: {response: {body: [{op: Remove, path: /model_version}]}}}]}`,
)}`);
  t.after(async () => {
    await gw.close();
    await s.close();
  });
  const body = { inputs: [{ name: 'x', datatype: 'INT32', shape: [1], data: [5] }] };
  const denied = await infer(gw, 'echo', body);
  assert.equal(denied.status, 401);
  assert.equal(
    (denied.json().error as Json).code,
    'MG_UNAUTHENTICATED',
    "the filters' refusals keep the gateway's shape",
  );
  assert.equal(s.received.length, 0);

  const miss = await infer(gw, 'echo', body, { 'x-api-key': KEY });
  assert.equal(miss.status, 200, miss.text);
  assert.equal(miss.headers['x-cache'], 'MISS');
  assert.equal(
    miss.json().model_version,
    undefined,
    'the response transform applies to the translated reply',
  );
  assert.deepEqual(output(miss, 'x').data, [5]);
  assert.equal(s.received.length, 1);
  assert.equal(
    s.received[0]!.metadata['x-api-key'],
    undefined,
    'the gateway credential stays at the gateway',
  );

  const hit = await infer(gw, 'echo', body, { 'x-api-key': KEY });
  assert.equal(hit.status, 200);
  assert.equal(hit.headers['x-cache'], 'HIT');
  assert.equal(hit.text, miss.text);
  assert.equal(s.received.length, 1, 'a hit reaches no backend');
});

test("a backend slower than the rule's first-byte timeout: 504 in the v2 shape, and the call ends", async (t) => {
  const s = await startKServeGrpcServer();
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  s.setInferHandler('slow', async (req) => {
    await held;
    return { model_name: req.model_name, outputs: [] };
  });
  const gw = await startGateway(
    grpcRoute(
      'r',
      `backends: [{name: t, urls: ["http://${s.address}"], protocol: GRPC}], timeouts: {firstByte: 300ms}, retries: {attempts: 0}`,
    ),
  );
  t.after(async () => {
    release();
    await gw.close();
    await s.close();
  });
  const cancelled = once(s.events, 'cancelled', { signal: AbortSignal.timeout(5000) });
  const r = await infer(gw, 'slow', { inputs: [] });
  assert.equal(r.status, 504, r.text);
  // The gateway's timer or the server's own deadline (grpc-timeout: 300m) may end it first.
  assert.ok(['MG_UPSTREAM_TIMEOUT', 'MG_KSERVE_UPSTREAM_STATUS'].includes(String(r.json().code)), r.text);
  assert.equal(typeof r.json().error, 'string');
  await cancelled;
});
