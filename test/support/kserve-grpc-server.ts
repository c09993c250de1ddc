/**
 * A real KServe v2 gRPC inference server for tests: @grpc/grpc-js on 127.0.0.1, port 0, serving
 * GRPCInferenceService from the gateway's own src/dataplane/kserve/grpc_predict_v2.proto (loaded by
 * @grpc/proto-loader, i.e. protobufjs: an implementation independent of the gateway's hand-written
 * codec, so a wrong field number shows up as a wrong answer).
 *
 * Models:
 *   echo        returns every input as an output of the same name, datatype, shape, parameters and
 *               contents (typed stays typed, raw_input_contents come back as raw_output_contents);
 *               honours the requested outputs; echoes id and request parameters.
 *   triton_raw  like echo, but answers the way Triton does: every output in raw_output_contents,
 *               converted here from typed contents with node's Buffer writers (little-endian, BOOL
 *               one byte, BYTES 4-byte length prefixed).
 *   fail        answers the gRPC status given by the request parameter `grpc_code` (default
 *               INTERNAL) with the message in `grpc_message` (default "model failed").
 *   configurable models: setModel(name, {...}) sets readiness and metadata of any name; they answer
 *               ModelInfer like echo unless setInferHandler gave them a handler (which may answer
 *               later, with a promise, to hold a call).
 * `events` emits 'call' (a ReceivedCall) as each call arrives and 'cancelled' (its method) when a
 * client cancels one, so tests wait for them instead of sleeping.
 * Unknown models get NOT_FOUND, as Triton answers.
 */
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(
  new URL('../../src/dataplane/kserve/grpc_predict_v2.proto', import.meta.url),
);

/** Loader options: int64 as decimal strings (exact), bytes as Buffer, oneof member names present. */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

// proto-loader's objects, loosely typed (the test server reads only what it needs).
type Json = Record<string, unknown>;
export interface WireTensor {
  name: string;
  datatype: string;
  shape: Array<string | number>;
  parameters?: Record<string, Json>;
  contents?: Record<string, unknown[]> | null;
}
export interface WireInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, Json>;
  inputs: WireTensor[];
  outputs: Array<{ name: string; parameters: Record<string, Json> }>;
  raw_input_contents: Buffer[];
}
export interface WireInferResponse {
  model_name: string;
  model_version?: string;
  id?: string;
  parameters?: Record<string, Json>;
  outputs: WireTensor[];
  raw_output_contents?: Buffer[];
}

export interface ModelConfig {
  ready: boolean;
  versions: string[];
  platform: string;
  inputs: Array<{ name: string; datatype: string; shape: number[] }>;
  outputs: Array<{ name: string; datatype: string; shape: number[] }>;
}

type InferAnswer = WireInferResponse | { error: { code: number; details: string } };
export type InferHandler = (request: WireInferRequest) => InferAnswer | Promise<InferAnswer>;

export interface ReceivedCall {
  method: string;
  request: unknown;
  /** The call's metadata (request headers), by lower-case name. */
  metadata: Record<string, unknown>;
  /** The call's deadline (from grpc-timeout) in ms since the epoch; Infinity when it has none. */
  deadline: number;
}

export interface KServeGrpcServer {
  readonly port: number;
  readonly address: string;
  readonly received: ReceivedCall[];
  readonly events: EventEmitter;
  setServer(state: { live?: boolean; ready?: boolean }): void;
  setModel(name: string, config: Partial<ModelConfig>): void;
  setInferHandler(name: string, handler: InferHandler | undefined): void;
  close(): Promise<void>;
}

function defaultModel(name: string): ModelConfig {
  return {
    ready: true,
    versions: ['1'],
    platform: name === 'triton_raw' ? 'onnxruntime_onnx' : 'modelgate_test',
    inputs: [{ name: 'INPUT0', datatype: 'FP32', shape: [-1, 16] }],
    outputs: [{ name: 'OUTPUT0', datatype: 'FP32', shape: [-1, 16] }],
  };
}

/** Typed contents → raw little-endian bytes, written with node's Buffer methods. */
export function typedToRaw(t: WireTensor): Buffer {
  const c = t.contents ?? {};
  const parts: Buffer[] = [];
  const fixed = (size: number, values: unknown[], write: (b: Buffer, v: unknown, off: number) => void) => {
    const b = Buffer.alloc(values.length * size);
    values.forEach((v, i) => {
      write(b, v, i * size);
    });
    parts.push(b);
  };
  switch (t.datatype) {
    case 'BOOL':
      fixed(1, c.bool_contents ?? [], (b, v, o) => b.writeUInt8(v ? 1 : 0, o));
      break;
    case 'INT8':
      fixed(1, c.int_contents ?? [], (b, v, o) => b.writeInt8(v as number, o));
      break;
    case 'INT16':
      fixed(2, c.int_contents ?? [], (b, v, o) => b.writeInt16LE(v as number, o));
      break;
    case 'INT32':
      fixed(4, c.int_contents ?? [], (b, v, o) => b.writeInt32LE(v as number, o));
      break;
    case 'INT64':
      fixed(8, c.int64_contents ?? [], (b, v, o) => b.writeBigInt64LE(BigInt(v as string), o));
      break;
    case 'UINT8':
      fixed(1, c.uint_contents ?? [], (b, v, o) => b.writeUInt8(v as number, o));
      break;
    case 'UINT16':
      fixed(2, c.uint_contents ?? [], (b, v, o) => b.writeUInt16LE(v as number, o));
      break;
    case 'UINT32':
      fixed(4, c.uint_contents ?? [], (b, v, o) => b.writeUInt32LE(v as number, o));
      break;
    case 'UINT64':
      fixed(8, c.uint64_contents ?? [], (b, v, o) => b.writeBigUInt64LE(BigInt(v as string), o));
      break;
    case 'FP32':
      fixed(4, c.fp32_contents ?? [], (b, v, o) => b.writeFloatLE(v as number, o));
      break;
    case 'FP64':
      fixed(8, c.fp64_contents ?? [], (b, v, o) => b.writeDoubleLE(v as number, o));
      break;
    case 'BYTES':
      for (const v of (c.bytes_contents ?? []) as Buffer[]) {
        const len = Buffer.alloc(4);
        len.writeUInt32LE(v.length, 0);
        parts.push(len, v);
      }
      break;
    default:
      throw new Error(`typedToRaw: ${t.datatype} has no typed contents`);
  }
  return Buffer.concat(parts);
}

function paramValue(p: Json | undefined): unknown {
  if (!p) return undefined;
  const which = p.parameter_choice as string | undefined;
  return which ? p[which] : undefined;
}

function echo(req: WireInferRequest, raw: boolean): WireInferResponse {
  const wanted = new Set(req.outputs.map((o) => o.name));
  const outputs: WireTensor[] = [];
  const rawOut: Buffer[] = [];
  req.inputs.forEach((input, i) => {
    if (wanted.size > 0 && !wanted.has(input.name)) return;
    const out: WireTensor = {
      name: input.name,
      datatype: input.datatype,
      shape: input.shape,
      parameters: input.parameters ?? {},
    };
    if (req.raw_input_contents.length > 0) {
      rawOut.push(req.raw_input_contents[i]!);
    } else if (raw) {
      rawOut.push(typedToRaw(input));
    } else {
      out.contents = input.contents ?? null;
    }
    outputs.push(out);
  });
  const res: WireInferResponse = {
    model_name: req.model_name,
    model_version: req.model_version || '1',
    id: req.id,
    parameters: req.parameters,
    outputs,
  };
  if (rawOut.length > 0) res.raw_output_contents = rawOut;
  return res;
}

type Callback = (err: grpc.ServiceError | null, value?: unknown) => void;
type Call = {
  request: unknown;
  metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  on(event: 'cancelled', listener: () => void): unknown;
};

function failure(code: number, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

export async function startKServeGrpcServer(): Promise<KServeGrpcServer> {
  const definition = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    inference: { GRPCInferenceService: { service: grpc.ServiceDefinition } };
  };
  const state = { live: true, ready: true };
  const models = new Map<string, ModelConfig>([
    ['echo', defaultModel('echo')],
    ['triton_raw', defaultModel('triton_raw')],
    ['fail', defaultModel('fail')],
  ]);
  const handlers = new Map<string, InferHandler>();
  const received: ReceivedCall[] = [];
  const events = new EventEmitter();

  const unary =
    (method: string, answer: (request: Json) => unknown) =>
    (call: Call, callback: Callback): void => {
      const d = call.getDeadline();
      const deadline = d instanceof Date ? d.getTime() : d;
      const rc = { method, request: call.request, metadata: call.metadata.getMap(), deadline };
      received.push(rc);
      call.on('cancelled', () => events.emit('cancelled', method));
      events.emit('call', rc);
      const reply = (result: unknown) => {
        if (result instanceof Error) callback(result as grpc.ServiceError);
        else callback(null, result);
      };
      const crashed = (e: unknown) =>
        callback(failure(grpc.status.INTERNAL, `test server: ${(e as Error).message}`));
      try {
        const result = answer(call.request as Json);
        if (result instanceof Promise) result.then(reply, crashed);
        else reply(result);
      } catch (e) {
        crashed(e);
      }
    };

  const model = (name: unknown): ModelConfig | grpc.ServiceError =>
    models.get(name as string) ??
    failure(grpc.status.NOT_FOUND, `Request for unknown model: '${String(name)}' is not found`);

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 256 * 1024 * 1024,
    'grpc.max_send_message_length': 256 * 1024 * 1024,
  });
  server.addService(loaded.inference.GRPCInferenceService.service, {
    ServerLive: unary('ServerLive', () => ({ live: state.live })),
    ServerReady: unary('ServerReady', () => ({ ready: state.ready })),
    ServerMetadata: unary('ServerMetadata', () => ({
      name: 'modelgate-test-triton',
      version: '2.99.0',
      extensions: ['classification', 'model_repository'],
    })),
    ModelReady: unary('ModelReady', (req) => {
      const m = models.get(req.name as string);
      return { ready: m?.ready === true };
    }),
    ModelMetadata: unary('ModelMetadata', (req) => {
      const m = model(req.name);
      if (m instanceof Error) return m;
      return {
        name: req.name,
        versions: m.versions,
        platform: m.platform,
        inputs: m.inputs,
        outputs: m.outputs,
      };
    }),
    ModelInfer: unary('ModelInfer', (request) => {
      const req = request as unknown as WireInferRequest;
      const m = model(req.model_name);
      if (m instanceof Error) return m;
      const handler = handlers.get(req.model_name);
      if (handler) {
        const settle = (out: InferAnswer) =>
          'error' in out ? failure(out.error.code, out.error.details) : out;
        const out = handler(req);
        return out instanceof Promise ? out.then(settle) : settle(out);
      }
      if (req.model_name === 'fail') {
        const code = Number(paramValue(req.parameters.grpc_code) ?? grpc.status.INTERNAL);
        const message = String(paramValue(req.parameters.grpc_message) ?? 'model failed');
        return failure(code, message);
      }
      return echo(req, req.model_name === 'triton_raw');
    }),
  });

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );

  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    events,
    setServer(next) {
      if (next.live !== undefined) state.live = next.live;
      if (next.ready !== undefined) state.ready = next.ready;
    },
    setModel(name, config) {
      models.set(name, { ...(models.get(name) ?? defaultModel(name)), ...config });
    },
    setInferHandler(name, handler) {
      if (handler) {
        handlers.set(name, handler);
        if (!models.has(name)) models.set(name, defaultModel(name));
      } else handlers.delete(name);
    },
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
