/**
 * gRPC over HTTP/2 framing for the KServe translation (grpc/doc/PROTOCOL-HTTP2.md): every message
 * is a 5-byte prefix (compressed flag, big-endian uint32 length) and the message bytes; the call's
 * outcome is the `grpc-status` / `grpc-message` pair in the trailers (or in the headers of a
 * trailers-only response).
 *
 * Compression: the gateway sends uncompressed messages and advertises no `grpc-accept-encoding`
 * beyond identity unless asked to, so a server must not compress. If a compressed frame arrives
 * anyway, `gzip` and `deflate` (named by the response's `grpc-encoding`) are decoded, with the same
 * size limit as plain messages; any other encoding, or a compressed frame without one, is refused
 * with MG_KSERVE_COMPRESSED_RESPONSE.
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import { GrpcStatus } from '../grpc.ts';
import { KServeError, KServeErrors } from './errors.ts';
import { ProtoWriter } from './protobuf-wire.ts';

export const FRAME_HEADER_BYTES = 5;

/** Default limit of one response message (after decompression). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Frames an already-encoded message (one copy; use encodeFramed to encode in place). */
export function frameMessage(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Encodes a message straight into a gRPC frame: the writer starts after the 5-byte prefix, which is
 * filled in at the end, so the message is never copied.
 */
export function encodeFramed<T>(
  encode: (w: ProtoWriter, message: T) => void,
  message: T,
  sizeHint = 256,
): Buffer {
  const w = new ProtoWriter(sizeHint + FRAME_HEADER_BYTES);
  w.pos = FRAME_HEADER_BYTES;
  encode(w, message);
  const out = w.finish();
  out[0] = 0;
  out.writeUInt32BE(out.length - FRAME_HEADER_BYTES, 1);
  return out;
}

export interface DeframerOptions {
  /** Largest message accepted, in bytes (after decompression). */
  maxMessageBytes?: number;
  /** The response's `grpc-encoding`, used only for frames whose compressed flag is set. */
  encoding?: string | undefined;
}

/**
 * Reassembles gRPC messages from response bytes arriving in chunks of any size. push() returns the
 * messages completed by the chunk; end() checks that no partial frame is left. Throws KServeError
 * (MG_KSERVE_BAD_RESPONSE, MG_KSERVE_RESPONSE_TOO_LARGE, MG_KSERVE_COMPRESSED_RESPONSE).
 */
export class GrpcDeframer {
  private readonly max: number;
  private readonly encoding: string | undefined;
  /** A frame prefix split across chunks (allocated only then). */
  private header: Buffer | undefined;
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  private compressed = false;

  constructor(options: DeframerOptions = {}) {
    this.max = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.encoding = options.encoding?.trim().toLowerCase();
  }

  push(chunk: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.body === undefined) {
        // Fast path: a whole frame inside this chunk needs no copy of its body.
        if (this.headerFill === 0 && chunk.length - i >= FRAME_HEADER_BYTES) {
          const flag = chunk[i]!;
          const len =
            ((chunk[i + 1]! << 24) | (chunk[i + 2]! << 16) | (chunk[i + 3]! << 8) | chunk[i + 4]!) >>> 0;
          this.checkHeader(flag, len);
          if (chunk.length - i - FRAME_HEADER_BYTES >= len) {
            const start = i + FRAME_HEADER_BYTES;
            const view = Buffer.from(chunk.buffer, chunk.byteOffset + start, len);
            out.push(this.finishMessage(flag === 1, view));
            i = start + len;
            continue;
          }
        }
        this.header ??= Buffer.alloc(FRAME_HEADER_BYTES);
        const header = this.header;
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - i);
        header.set(chunk.subarray(i, i + take), this.headerFill);
        this.headerFill += take;
        i += take;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        const flag = header[0]!;
        const len = header.readUInt32BE(1);
        this.checkHeader(flag, len);
        this.compressed = flag === 1;
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
      }
      const take = Math.min(this.body.length - this.bodyFill, chunk.length - i);
      this.body.set(chunk.subarray(i, i + take), this.bodyFill);
      this.bodyFill += take;
      i += take;
      if (this.bodyFill === this.body.length) {
        out.push(this.finishMessage(this.compressed, this.body));
        this.body = undefined;
        this.headerFill = 0;
      }
    }
    return out;
  }

  /** Throws unless the bytes so far end on a frame boundary. */
  end(): void {
    if (this.headerFill !== 0 || this.body !== undefined) {
      throw new KServeError(KServeErrors.BadResponse, 'the gRPC response ended inside a message frame');
    }
  }

  private checkHeader(flag: number, len: number): void {
    if (flag !== 0 && flag !== 1) {
      throw new KServeError(KServeErrors.BadResponse, `invalid gRPC frame flag ${flag}`);
    }
    if (len > this.max) {
      throw new KServeError(
        KServeErrors.ResponseTooLarge,
        `a gRPC response message of ${len} bytes exceeds the limit of ${this.max}`,
      );
    }
    if (flag === 1 && this.encoding !== 'gzip' && this.encoding !== 'deflate') {
      throw new KServeError(
        KServeErrors.CompressedResponse,
        this.encoding === undefined || this.encoding === 'identity'
          ? 'the inference server sent a compressed message without naming its grpc-encoding'
          : `the inference server sent a message compressed with unsupported grpc-encoding '${this.encoding}'`,
      );
    }
  }

  private finishMessage(compressed: boolean, bytes: Buffer): Buffer {
    if (!compressed) return bytes;
    const options = { maxOutputLength: this.max };
    try {
      return this.encoding === 'gzip' ? gunzipSync(bytes, options) : inflateSync(bytes, options);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') {
        throw new KServeError(
          KServeErrors.ResponseTooLarge,
          `a decompressed gRPC response message exceeds the limit of ${this.max} bytes`,
        );
      }
      throw new KServeError(
        KServeErrors.CompressedResponse,
        `the compressed gRPC message could not be decoded (${this.encoding})`,
      );
    }
  }
}

/** The gRPC status codes (google/rpc/code.proto), shared with the proxy's own gRPC answers. */
export const GrpcCode = GrpcStatus;

const CODE_NAMES: readonly string[] = Object.keys(GrpcCode);

/** The code's name (`NOT_FOUND`), or `CODE_<n>` for a code outside the table. */
export function grpcCodeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/**
 * The HTTP status for a gRPC status code, as google/rpc/code.proto ("HTTP Mapping") and the API
 * design guide give it, which grpc-gateway follows. Codes outside the table are 500 (as
 * grpc-gateway does).
 */
export function grpcStatusToHttp(code: number): number {
  switch (code) {
    case GrpcCode.OK:
      return 200;
    case GrpcCode.CANCELLED:
      return 499;
    case GrpcCode.UNKNOWN:
      return 500;
    case GrpcCode.INVALID_ARGUMENT:
      return 400;
    case GrpcCode.DEADLINE_EXCEEDED:
      return 504;
    case GrpcCode.NOT_FOUND:
      return 404;
    case GrpcCode.ALREADY_EXISTS:
      return 409;
    case GrpcCode.PERMISSION_DENIED:
      return 403;
    case GrpcCode.RESOURCE_EXHAUSTED:
      return 429;
    case GrpcCode.FAILED_PRECONDITION:
      return 400;
    case GrpcCode.ABORTED:
      return 409;
    case GrpcCode.OUT_OF_RANGE:
      return 400;
    case GrpcCode.UNIMPLEMENTED:
      return 501;
    case GrpcCode.INTERNAL:
      return 500;
    case GrpcCode.UNAVAILABLE:
      return 503;
    case GrpcCode.DATA_LOSS:
      return 500;
    case GrpcCode.UNAUTHENTICATED:
      return 401;
    default:
      return 500;
  }
}

/**
 * The gRPC code a client infers from a non-200 HTTP status of a would-be gRPC response
 * (grpc/doc/http-grpc-status-mapping.md): the server or a proxy in front of it answered in HTTP.
 */
export function httpStatusToGrpc(status: number): number {
  switch (status) {
    case 400:
      return GrpcCode.INTERNAL;
    case 401:
      return GrpcCode.UNAUTHENTICATED;
    case 403:
      return GrpcCode.PERMISSION_DENIED;
    case 404:
      return GrpcCode.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcCode.UNAVAILABLE;
    default:
      return GrpcCode.UNKNOWN;
  }
}

const HEX = /^[0-9a-fA-F]{2}$/;
const utf8Lenient = new TextDecoder('utf-8', { fatal: false });

/**
 * Decodes a `grpc-message` value: percent-encoded UTF-8 (PROTOCOL-HTTP2.md). Decoding is lenient as
 * the spec asks: a `%` not followed by two hex digits is kept as is, and invalid UTF-8 becomes U+FFFD.
 */
export function decodeGrpcMessage(value: string | undefined): string {
  if (value === undefined || value.length === 0) return '';
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x25 && i + 2 < value.length && HEX.test(value.slice(i + 1, i + 3))) {
      bytes.push(Number.parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      // node:http2 gives header values as latin1 (one char per byte): take the bytes back.
      bytes.push(c & 0xff);
    }
  }
  return utf8Lenient.decode(new Uint8Array(bytes));
}
