/**
 * Logging: pino, JSON lines on stdout, written asynchronously (a worker-free buffered stream) so a
 * log line never blocks a request. Operational messages and access-log lines share the stream;
 * access lines carry `"msg": "access"`.
 */
import { type DestinationStream, type Logger, pino } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Where lines go; default: buffered stdout. Tests pass a stream they read. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): { logger: Logger; flush: () => void } {
  // Asynchronous, but not held back: a quiet gateway's lines must still appear promptly.
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'modelgate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const flush = () => {
    const d = destination as { flushSync?: () => void };
    try {
      d.flushSync?.();
    } catch {
      // Not yet open (nothing written): nothing to flush.
    }
  };
  return { logger, flush };
}
