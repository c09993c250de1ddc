/**
 * Upstreams for bench/kserve.ts's end-to-end cases, started (pinned) by the bench through
 * node-child.ts. Each answers every request with one precomputed answer for an FP32 [1, N] tensor
 * (N = --elements), so the upstream's own work is as small as it can be and the same in every case:
 *
 *   --protocol grpc   an h2c node:http2 server answering gRPC: the framed ModelInferResponse
 *                     (typed fp32 contents) and grpc-status 0 in the trailers.
 *   --protocol h2c    the same server answering the REST JSON reply the gateway makes of that
 *                     response, as application/json (a plain HTTP/2 upstream of the same size).
 *   --protocol http   that JSON reply from a node:http (HTTP/1.1) server.
 *
 * Tells the parent {type: 'ready', port} over IPC, and exits on {type: 'exit'} or a disconnect.
 */
import { createServer } from 'node:http';
import { createServer as createH2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { encodeFramed } from '../../src/dataplane/kserve/grpc-frame.ts';
import { encodeModelInferResponse } from '../../src/dataplane/kserve/messages.ts';
import { translateResponse } from '../../src/dataplane/kserve/rest-json.ts';

const { values } = parseArgs({
  options: {
    protocol: { type: 'string', default: 'grpc' },
    elements: { type: 'string', default: '16' },
  },
});

/** The tensor every case sends and answers: deterministic, with a realistic spread of digits. */
function benchTensor(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(i * 7.1) * 100));
}

const n = Number(values.elements);
const frame = encodeFramed(encodeModelInferResponse, {
  modelName: 'bench',
  modelVersion: '1',
  outputs: [{ name: 'out', datatype: 'FP32', shape: [1, n], contents: { fp32: benchTensor(n) } }],
});
const json = translateResponse(
  { kind: 'model_infer', model: 'bench', version: '' },
  {
    status: 200,
    headers: { 'content-type': 'application/grpc' },
    body: frame,
    trailers: { 'grpc-status': '0' },
  },
).body;

function ready(port: number): void {
  process.send?.({ type: 'ready', port });
}

const exit = () => process.exit(0);
process.on('message', (m: { type: string }) => {
  if (m.type === 'exit') exit();
});
process.on('disconnect', exit);
process.on('SIGTERM', exit);

if (values.protocol === 'http') {
  const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
    });
  });
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port));
} else {
  const grpc = values.protocol === 'grpc';
  const server = createH2Server();
  server.on('stream', (stream) => {
    // The gateway resets streams whose client left (RST_STREAM CANCEL): nothing to answer then.
    stream.on('error', () => {});
    stream.resume();
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      if (grpc) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame);
      } else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(json);
      }
    });
  });
  server.listen(0, '127.0.0.1', () => ready((server.address() as AddressInfo).port));
}
