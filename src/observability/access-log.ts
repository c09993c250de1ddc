/**
 * Access logs: one JSON line per request (route, backend, endpoint, model, status, durations,
 * bytes, request and trace ids), sampled per route, errors (5xx answers and the gateway's own error
 * codes) always kept while the route's access log is enabled. Never a credential: no
 * headers, no query string (query parameters often carry API keys), only the normalised path.
 */
import type { Logger } from 'pino';
import type { Random } from '../dataplane/balancers/types.ts';

export interface AccessEntry {
  requestId: string;
  traceId: string;
  method: string;
  host: string;
  path: string;
  route: string;
  rule: string;
  backend: string;
  endpoint: string;
  model: string;
  /** The authenticated consumer ('' on routes without auth). Never a credential. */
  consumer: string;
  /** The client's address (through trusted proxies, the forwarded one). */
  client: string;
  status: number;
  /** Gateway error code, when the gateway answered itself. */
  code: string;
  durationMs: number;
  ttfbMs: number;
  bytesIn: number;
  bytesOut: number;
  clientAborted: boolean;
}

export class AccessLog {
  private readonly logger: Logger;
  private readonly random: Random;

  /**
   * Access lines go to `logger`'s stream through a child logger pinned at `info`, so the
   * operational level (`--log-level`) does not filter them: `--log-level warn` (or `error`,
   * `fatal`) quiets the gateway's own messages and keeps the access lines the routes ask for.
   * What decides them is the route (`spec.accessLog.enabled`, `sampleRate`), in one place. The
   * one exception is `silent`, which means no output at all: access lines included (and a
   * `pino({ level: 'silent' })` logger handed to a GatewayProxy stays quiet).
   *
   * This is how Envoy and Contour separate the two: Envoy's `--log-level` sets its application
   * log, while access logs are configured on the HTTP connection manager, with their own filters,
   * and keep flowing whatever that level; Contour configures Envoy's access logs apart from its
   * own debug logging. A user who raises the level to find the warnings among the chatter still
   * wants the request record (audit, billing, the request id a client reports); one who wants
   * fewer access lines lowers the route's `sampleRate` or disables it. Lines keep `"level": "info"`.
   */
  constructor(logger: Logger, random: Random = Math.random) {
    this.logger = logger.child({}, { level: logger.level === 'silent' ? 'silent' : 'info' });
    this.random = random;
  }

  /**
   * Whether this request gets a line: the route's switch first (`enabled: false` drops every line,
   * errors included), then sampling, which errors bypass.
   */
  wants(
    settings: { enabled: boolean; sampleRate: number } | undefined,
    status: number,
    code: string,
  ): boolean {
    if (settings && !settings.enabled) return false;
    const error = status >= 500 || code !== '';
    return error || !settings || settings.sampleRate >= 1 || this.random() < settings.sampleRate;
  }

  write(entry: AccessEntry): void {
    this.logger.info(entry, 'access');
  }

  /** Writes the line when the route's settings and the sampling say so. */
  record(settings: { enabled: boolean; sampleRate: number } | undefined, entry: AccessEntry): void {
    if (this.wants(settings, entry.status, entry.code)) this.write(entry);
  }
}
