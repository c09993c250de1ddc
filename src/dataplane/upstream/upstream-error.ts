/** Maps undici and socket errors to the gateway's error catalogue. */
import { type ErrorDefinition, Errors } from '../errors.ts';

export type FailureKind = 'connect' | 'connect-timeout' | 'timeout' | 'reset' | 'protocol' | 'aborted';

export type TimeoutKind = 'connect' | 'first_byte' | 'idle';

export interface UpstreamFailure {
  kind: FailureKind;
  error: ErrorDefinition;
  /** Which timeout fired, for timeouts. */
  timeout?: TimeoutKind;
}

export function classifyUpstreamError(err: Error & { code?: string }): UpstreamFailure {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { kind: 'connect-timeout', error: Errors.UpstreamTimeout, timeout: 'connect' };
    case 'UND_ERR_HEADERS_TIMEOUT':
      return { kind: 'timeout', error: Errors.UpstreamTimeout, timeout: 'first_byte' };
    case 'UND_ERR_BODY_TIMEOUT':
      return { kind: 'timeout', error: Errors.UpstreamTimeout, timeout: 'idle' };
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return { kind: 'connect', error: Errors.UpstreamConnectFailed };
    case 'UND_ERR_ABORTED':
    case 'ABORT_ERR':
      return { kind: 'aborted', error: Errors.UpstreamReset };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      return { kind: 'reset', error: Errors.UpstreamReset };
    default:
      // Certificate and handshake failures (ERR_TLS_*, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …).
      if (err.code !== undefined && /TLS|SSL|CERT|UNABLE_TO|SELF_SIGNED/.test(err.code)) {
        return { kind: 'connect', error: Errors.UpstreamTlsError };
      }
      return { kind: 'protocol', error: Errors.UpstreamProtocolError };
  }
}
