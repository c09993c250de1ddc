/**
 * HTTP/2 on the public listener (prior knowledge, as gRPC clients speak it without TLS) and gRPC
 * passthrough to a real @grpc/grpc-js server: unary, server streaming, trailers, deadlines, and the
 * gateway's own errors as gRPC statuses.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:http2';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const PROTO = fileURLToPath(new URL('../../fixtures/echo.proto', import.meta.url));
type EchoClient = grpc.Client & {
  Unary(
    req: object,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res: { message: string }) => void,
  ): void;
  Stream(
    req: object,
    md?: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<{ message: string; index: number }>;
};

let server: grpc.Server;
let gw: TestGateway;
let http1: TestUpstream;
const cancelled: string[] = [];
// biome-ignore lint/suspicious/noExplicitAny: grpc-js's loaded package definition is untyped
let EchoCtor: any;

before(async () => {
  const def = loader.loadSync(PROTO, { keepCase: false });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    test: { Echo: { service: grpc.ServiceDefinition } };
  };
  EchoCtor = pkg.test.Echo;
  server = new grpc.Server();
  server.addService(pkg.test.Echo.service, {
    Unary: (
      call: grpc.ServerUnaryCall<{ message: string; delayMs: number }, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      if (call.request.message === 'fail') {
        cb({ code: grpc.status.FAILED_PRECONDITION, details: 'told to fail' });
        return;
      }
      const md = new grpc.Metadata();
      md.set('x-served-by', 'echo');
      call.sendMetadata(md);
      cb(null, { message: `echo: ${call.request.message}` });
    },
    Stream: (
      call: grpc.ServerWritableStream<{ message: string; count: number; delayMs: number }, unknown>,
    ) => {
      call.on('cancelled', () => cancelled.push(call.request.message));
      if (call.request.delayMs > 0) return; // hold: the deadline test waits for the proxy to give up
      for (let i = 0; i < call.request.count; i++) call.write({ message: call.request.message, index: i });
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  http1 = await startUpstream('h1');
  gw = await startGateway(
    route(
      'grpc',
      `{rules: [{matches: [{path: {value: /test.Echo}}], backends: [{name: echo, protocol: GRPC, urls: ["http://127.0.0.1:${port}"]}]}]}`,
    ) +
      route(
        'web',
        `{rules: [{matches: [{path: {value: /web}}], backends: [{name: h1, urls: ["${http1.url}"]}]}]}`,
      ),
  );
});

after(async () => {
  await gw.close();
  await http1.close();
  server.forceShutdown();
});

function client(): EchoClient {
  return new EchoCtor(gw.url.replace('http://', ''), grpc.credentials.createInsecure()) as EchoClient;
}

test('a unary call passes through, with metadata and status', async () => {
  const c = client();
  try {
    const headers = new Promise<grpc.Metadata>((resolve) => {
      const call = c.Unary({ message: 'hi' }, new grpc.Metadata(), {}, (err, res) => {
        assert.equal(err, null);
        assert.equal(res.message, 'echo: hi');
      }) as unknown as grpc.ClientUnaryCall;
      call.on('metadata', resolve);
    });
    assert.deepEqual((await headers).get('x-served-by'), ['echo']);
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      c.Unary({ message: 'fail' }, new grpc.Metadata(), {}, (e) => resolve(e)),
    );
    assert.equal(err?.code, grpc.status.FAILED_PRECONDITION, 'grpc-status travels in the trailers');
    assert.equal(err?.details, 'told to fail');
  } finally {
    c.close();
  }
});

test('server streaming delivers every message and the final status', async () => {
  const c = client();
  try {
    const got: number[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve, reject) => {
      const call = c.Stream({ message: 'tok', count: 50 });
      call.on('data', (m) => got.push(m.index));
      call.on('status', resolve);
      call.on('error', reject);
    });
    assert.equal(status.code, grpc.status.OK);
    assert.deepEqual(
      got,
      Array.from({ length: 50 }, (_, i) => i),
    );
  } finally {
    c.close();
  }
});

test('the gateway enforces grpc-timeout and cancels the upstream call', async () => {
  const session = connect(gw.url);
  try {
    const req = session.request({
      ':method': 'POST',
      ':path': '/test.Echo/Stream',
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': '200m',
    });
    // A length-prefixed EchoRequest{message: "slow", delay_ms: 10000}.
    const msg = Buffer.from([0x0a, 0x04, 0x73, 0x6c, 0x6f, 0x77, 0x18, 0x90, 0x4e]);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, msg.length]), msg]);
    req.end(frame);
    const status = await new Promise<string>((resolve) => {
      let fromHeaders: string | undefined;
      req.on('response', (h) => {
        fromHeaders = h['grpc-status'] as string | undefined;
      });
      req.on('trailers', (t) => resolve(String(t['grpc-status'])));
      req.on('end', () => resolve(String(fromHeaders)));
      req.resume();
    });
    assert.equal(status, String(grpc.status.DEADLINE_EXCEEDED));
  } finally {
    session.close();
  }
  await new Promise<void>((resolve) => {
    const check = () => (cancelled.includes('slow') ? resolve() : setImmediate(check));
    check();
  });
});

test('gateway errors reach gRPC clients as gRPC statuses', async () => {
  const c = new EchoCtor(gw.url.replace('http://', ''), grpc.credentials.createInsecure()) as EchoClient;
  try {
    // Route /test.Echo exists; /other.Service does not.
    const other = new grpc.Client(gw.url.replace('http://', ''), grpc.credentials.createInsecure());
    const err = await new Promise<grpc.ServiceError | null>((resolve) =>
      other.makeUnaryRequest(
        '/other.Service/Call',
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (e) => resolve(e),
      ),
    );
    assert.equal(err?.code, grpc.status.UNIMPLEMENTED);
    assert.match(String(err?.details), /MG_NO_ROUTE/);
    other.close();
  } finally {
    c.close();
  }
});

test('an HTTP/2 client reaches an HTTP/1.1 upstream', async () => {
  const session = connect(gw.url);
  try {
    const req = session.request({ ':path': '/web/x?q=1', ':authority': 'api.example.com' });
    const { headers, body } = await new Promise<{ headers: Record<string, unknown>; body: string }>(
      (resolve) => {
        let h: Record<string, unknown> = {};
        let b = '';
        req.on('response', (x) => {
          h = x;
        });
        req.on('data', (c: Buffer) => {
          b += c;
        });
        req.on('end', () => resolve({ headers: h, body: b }));
      },
    );
    assert.equal(headers[':status'], 200);
    assert.equal(JSON.parse(body).url, '/web/x?q=1');
    const seen = http1.received.at(-1)!.headers;
    assert.equal(seen.host, 'api.example.com', ':authority becomes Host');
    assert.ok(!Object.keys(seen).some((k) => k.startsWith(':')), 'no pseudo-headers upstream');
  } finally {
    session.close();
  }
});
