/**
 * Access logs: one JSON line per request (route, backend, endpoint, model, status, durations,
 * bytes, request and trace ids), sampled per route, errors always kept. Never a credential: no
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

  constructor(logger: Logger, random: Random = Math.random) {
    this.logger = logger;
    this.random = random;
  }

  /** Writes the line when the route's settings and the sampling say so. */
  record(settings: { enabled: boolean; sampleRate: number } | undefined, entry: AccessEntry): void {
    if (settings && !settings.enabled) return;
    const error = entry.status >= 500 || entry.code !== '';
    if (!error && settings && settings.sampleRate < 1 && this.random() >= settings.sampleRate) return;
    this.logger.info(entry, 'access');
  }
}
