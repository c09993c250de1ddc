/**
 * Client certificates per hostname. A host whose certificate carries a CA bundle requires a client
 * certificate signed by it: the handshake asks for one only when the SNI name needs it and never
 * fails for want of one; the request is then refused with 403 MG_CLIENT_CERTIFICATE_REQUIRED,
 * decided by the request's Host (or :authority), so an SNI/Host mismatch cannot skip the check.
 * Every refusal reaches no upstream.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type Listener, listen } from '../../../src/dataplane/server.ts';
import { send } from '../../support/client.ts';
import { route } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';
import {
  CA,
  CLIENT,
  fixturePath,
  h2Request,
  httpsRequest,
  OTHER_CLIENT,
  pem,
  routeCert,
  startTlsGateway,
  type TlsGateway,
} from './tls-support.ts';

let upstream: TestUpstream;
let gw: TlsGateway;
let fileListener: Listener;
/** A file certificate for every name (`*`) with the listener's client CA: clients without SNI too. */
let starListener: Listener;
let plainListener: Listener;
const OTHER_CA = pem('other-ca.crt');

before(async () => {
  upstream = await startUpstream('up');
  const yaml = route(
    'any',
    `{rules: [{matches: [{path: {value: /}}], backends: [{name: up, urls: ["${upstream.url}"]}]}]}`,
  );
  gw = await startTlsGateway(yaml, [
    routeCert('demo/api', ['api.example.test'], 'route-api'),
    routeCert('demo/fallback', [], 'route-default'),
    routeCert('demo/mtls', ['mtls.example.test'], 'route-mtls', CA),
    routeCert('demo/other', ['other-mtls.example.test'], 'route-mtls', OTHER_CA),
  ]);
  // The listener's own certificates, with the listener's client CA.
  fileListener = await listen(gw.proxy, {
    address: '127.0.0.1',
    port: 0,
    tls: {
      certificates: [
        {
          hostnames: ['files.example.test'],
          certFile: fixturePath('file-a.crt'),
          keyFile: fixturePath('file-a.key'),
        },
      ],
      clientCaFile: new URL('../../fixtures/tls/ca.crt', import.meta.url).pathname,
    },
  });
  starListener = await listen(gw.proxy, {
    address: '127.0.0.1',
    port: 0,
    tls: {
      certificates: [
        { hostnames: ['*'], certFile: fixturePath('file-star.crt'), keyFile: fixturePath('file-star.key') },
      ],
      clientCaFile: new URL('../../fixtures/tls/ca.crt', import.meta.url).pathname,
    },
  });
  plainListener = await listen(gw.proxy, { address: '127.0.0.1', port: 0 });
});

after(async () => {
  await Promise.all([fileListener.close(), starListener.close(), plainListener.close()]);
  await gw.close();
  await upstream.close();
});

/** Runs `fn`, asserts the upstream saw nothing meanwhile. */
async function noUpstream<T>(fn: () => Promise<T>): Promise<T> {
  const before = upstream.received.length;
  const r = await fn();
  assert.equal(upstream.received.length, before, 'the upstream received a request');
  return r;
}

const refused = (r: { status: number; json<T>(): T }) => {
  assert.equal(r.status, 403);
  assert.equal(r.json<{ error: { code: string } }>().error.code, 'MG_CLIENT_CERTIFICATE_REQUIRED');
};

test('the SNI host requires a certificate: none → 403, another CA → 403, the right one → 200', async () => {
  refused(await noUpstream(() => httpsRequest(gw.port, { servername: 'mtls.example.test' })));
  refused(
    await noUpstream(() => httpsRequest(gw.port, { servername: 'mtls.example.test', ...OTHER_CLIENT })),
  );
  const ok = await httpsRequest(gw.port, { servername: 'mtls.example.test', ...CLIENT });
  assert.equal(ok.status, 200);
  assert.equal(ok.json().upstream, 'up');
  // A host without mTLS needs nothing.
  assert.equal((await httpsRequest(gw.port, { servername: 'api.example.test' })).status, 200);
  // Each host its own CA: the other CA's client is right for other-mtls, wrong for mtls.
  const other = await httpsRequest(gw.port, { servername: 'other-mtls.example.test', ...OTHER_CLIENT });
  assert.equal(other.status, 200);
  refused(
    await noUpstream(() => httpsRequest(gw.port, { servername: 'other-mtls.example.test', ...CLIENT })),
  );
});

test('an SNI/Host mismatch cannot bypass mTLS (HTTP/1.1, HTTP/2, WebSocket)', async () => {
  // SNI of a host without mTLS: no certificate is asked for, so even a valid one offered is not sent.
  refused(
    await noUpstream(() =>
      httpsRequest(gw.port, { servername: 'api.example.test', host: 'mtls.example.test', ...CLIENT }),
    ),
  );
  // The Host spelled differently: case, port, trailing dot.
  refused(
    await noUpstream(() =>
      httpsRequest(gw.port, { servername: 'api.example.test', host: 'MTLS.Example.Test.:443', ...CLIENT }),
    ),
  );
  // Verified for another CA's host, then asking for this one.
  refused(
    await noUpstream(() =>
      httpsRequest(gw.port, {
        servername: 'other-mtls.example.test',
        host: 'mtls.example.test',
        ...OTHER_CLIENT,
      }),
    ),
  );
  // No SNI at all: the fallback certificate, which asks for nothing.
  refused(await noUpstream(() => httpsRequest(gw.port, { host: 'mtls.example.test', ...CLIENT })));
  // HTTP/2: :authority decides.
  refused(
    await noUpstream(() =>
      h2Request(gw.port, { servername: 'api.example.test', authority: 'mtls.example.test', ...CLIENT }),
    ),
  );
  const h2ok = await h2Request(gw.port, { servername: 'mtls.example.test', ...CLIENT });
  assert.equal(h2ok.status, 200);
  assert.equal(h2ok.alpn, 'h2');
  // The reverse mismatch is harmless: verified for mtls, asking for a host without mTLS.
  const reverse = await httpsRequest(gw.port, {
    servername: 'mtls.example.test',
    host: 'api.example.test',
    ...CLIENT,
  });
  assert.equal(reverse.status, 200);

  // A WebSocket upgrade leaves the request path: it is checked too.
  const head = await noUpstream(
    () =>
      new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({
          port: gw.port,
          host: '127.0.0.1',
          servername: 'api.example.test',
          rejectUnauthorized: false,
          ALPNProtocols: ['http/1.1'],
        });
        let out = '';
        socket.setEncoding('utf8');
        socket.on('secureConnect', () =>
          socket.write(
            'GET /ws HTTP/1.1\r\nHost: mtls.example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
              'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
          ),
        );
        socket.on('data', (d: string) => {
          out += d;
        });
        socket.on('close', () => resolve(out));
        socket.on('error', reject);
      }),
  );
  assert.match(head, /^HTTP\/1\.1 403 /);
  assert.match(head, /MG_CLIENT_CERTIFICATE_REQUIRED/);
});

test('the listener clientCA applies to its file certificates', async () => {
  const port = fileListener.address.port;
  refused(await noUpstream(() => httpsRequest(port, { servername: 'files.example.test' })));
  refused(await noUpstream(() => httpsRequest(port, { servername: 'files.example.test', ...OTHER_CLIENT })));
  assert.equal((await httpsRequest(port, { servername: 'files.example.test', ...CLIENT })).status, 200);
  // Route certificates on the same listener keep their own policy.
  assert.equal((await httpsRequest(port, { servername: 'api.example.test' })).status, 200);
});

test('clients without SNI: the fallback certificate and its client CA', async () => {
  const port = starListener.address.port;
  refused(await noUpstream(() => httpsRequest(port, { host: 'anything.example.test' })));
  const ok = await httpsRequest(port, { host: 'anything.example.test', ...CLIENT });
  assert.equal(ok.status, 200);
  assert.equal(ok.serverCn, 'file-star');
  // A route host without mTLS, on the same listener and without SNI: the Host's policy applies.
  assert.equal((await httpsRequest(port, { host: 'api.example.test' })).status, 200);
  // The certificate was verified against this listener's CA bundle: good for a host requiring the
  // same bundle, not for one requiring another.
  assert.equal((await httpsRequest(port, { host: 'mtls.example.test', ...CLIENT })).status, 200);
  refused(await noUpstream(() => httpsRequest(port, { host: 'other-mtls.example.test', ...CLIENT })));
  refused(await noUpstream(() => httpsRequest(port, { host: 'other-mtls.example.test', ...OTHER_CLIENT })));
});

test('a plaintext listener refuses hosts whose route certificate requires a client certificate', async () => {
  const url = plainListener.url;
  const r = await noUpstream(() => send(url, { headers: { host: 'mtls.example.test' } }));
  refused({ status: r.status, json: <T>() => r.json() as T });
  assert.equal((await send(url, { headers: { host: 'api.example.test' } })).status, 200);
});

test('a client certificate is requested only for names that need one; sessions are never resumed', async () => {
  const seen: (string | undefined)[] = [];
  const onSecure = (socket: TLSSocket) => {
    const peer = socket.getPeerX509Certificate();
    seen.push(peer ? peer.subject : undefined);
  };
  gw.listener.server.on('secureConnection', onSecure);
  const connect = (servername: string, session?: Buffer) =>
    new Promise<{ reused: boolean; session: Buffer | undefined }>((resolve, reject) => {
      let got: Buffer | undefined;
      let reused = false;
      const socket = tlsConnect({
        port: gw.port,
        host: '127.0.0.1',
        servername,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
        ...CLIENT,
        ...(session ? { session } : {}),
      });
      socket.on('session', (s: Buffer) => {
        got = s;
      });
      // A request, so that TLS 1.3 session tickets (if any were sent) arrive before closing.
      socket.on('secureConnect', () => {
        reused = socket.isSessionReused();
        socket.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      });
      socket.on('data', () => {});
      socket.on('close', () => resolve({ reused, session: got }));
      socket.on('error', reject);
    });
  try {
    const first = await connect('mtls.example.test');
    await connect('api.example.test');
    assert.deepEqual(seen, ['CN=modelgate-proxy', undefined], 'offered to both, asked for by mtls only');
    assert.ok(first.session, 'the client has a session to offer');
    const again = await connect('mtls.example.test', first.session);
    assert.equal(again.reused, false, 'a full handshake every time');
    const elsewhere = await connect('api.example.test', first.session);
    assert.equal(elsewhere.reused, false);
  } finally {
    gw.listener.server.off('secureConnection', onSecure);
  }
});
