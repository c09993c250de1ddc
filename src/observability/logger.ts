/**
 * Logging: pino, JSON lines on stdout, written asynchronously (a worker-free buffered stream) so a
 * log line never blocks a request. Operational messages and access-log lines share the stream;
 * access lines carry `"msg": "access"`.
 *
 * The level (`--log-level`, MODELGATE_LOG_LEVEL; default info) governs the operational messages.
 * Access lines do not follow it, except that `silent` stops them too: the routes' `spec.accessLog`
 * decides them (see access-log.ts for why).
 */
import { type DestinationStream, type Logger, pino } from 'pino';

/** The levels `--log-level` takes, most verbose first; `silent` writes no operational message. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const DEFAULT_LOG_LEVEL: LogLevel = 'info';

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default: buffered stdout. Tests pass a stream they read. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): { logger: Logger; flush: () => void } {
  // Asynchronous, but not held back: a quiet gateway's lines must still appear promptly.
  const destination = opts.destination ?? pino.destination({ dest: 1, sync: false });
  const logger = pino(
    {
      level: opts.level ?? DEFAULT_LOG_LEVEL,
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
