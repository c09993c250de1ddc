/**
 * What each level writes, read back from a destination the test holds (pino writes to it
 * synchronously: no waiting). The operational messages follow the level; access lines follow the
 * routes' spec.accessLog at every level but `silent` (the decision is explained in
 * src/observability/access-log.ts and docs/operations.md, "Logs").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AccessEntry, AccessLog } from '../../../src/observability/access-log.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../../../src/observability/logger.ts';

function capture(level?: LogLevel) {
  const lines: Record<string, unknown>[] = [];
  const { logger } = createLogger({
    ...(level !== undefined ? { level } : {}),
    destination: { write: (s: string) => void lines.push(JSON.parse(s)) },
  });
  return { logger, lines };
}

const entry: AccessEntry = {
  requestId: 'r1',
  traceId: 't1',
  method: 'POST',
  host: 'api.example.com',
  path: '/v1/chat/completions',
  route: 'ml/chat',
  rule: 'ml/chat/0',
  backend: 'main',
  endpoint: '10.0.0.1:8000',
  model: 'm',
  consumer: '',
  client: '10.1.0.1',
  status: 200,
  code: '',
  durationMs: 12,
  ttfbMs: 3,
  bytesIn: 10,
  bytesOut: 20,
  clientAborted: false,
};
const allRequests = { enabled: true, sampleRate: 1 };

test('at debug a debug line is written; the default (info) leaves it out', () => {
  const debug = capture('debug');
  debug.logger.debug({ version: 'v1' }, 'routing table contents');
  debug.logger.trace('finer still');
  assert.deepEqual(
    debug.lines.map((l) => [l.level, l.msg, l.version]),
    [['debug', 'routing table contents', 'v1']],
  );
  const byDefault = capture();
  byDefault.logger.debug('not written');
  byDefault.logger.info('written');
  assert.deepEqual(
    byDefault.lines.map((l) => [l.level, l.msg]),
    [['info', 'written']],
  );
  const trace = capture('trace');
  trace.logger.trace('finest');
  assert.deepEqual(
    trace.lines.map((l) => l.level),
    ['trace'],
  );
});

test('at warn an info line is not written; warn and above are', () => {
  const { logger, lines } = capture('warn');
  logger.debug('no');
  logger.info('routing table applied');
  logger.warn('push: stream to controller failed');
  logger.error('routing table rejected; keeping the previous one');
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg]),
    [
      ['warn', 'push: stream to controller failed'],
      ['error', 'routing table rejected; keeping the previous one'],
    ],
  );
  for (const l of lines) assert.equal(l.service, 'modelgate');
});

test('access lines are kept at every level but silent, still at level info', () => {
  for (const level of LOG_LEVELS) {
    const { logger, lines } = capture(level);
    const access = new AccessLog(logger, () => 0.5);
    logger.info('operational');
    access.record(allRequests, entry);
    access.record({ enabled: false, sampleRate: 1 }, { ...entry, requestId: 'off' });
    const accessLines = lines.filter((l) => l.msg === 'access');
    if (level === 'silent') {
      assert.deepEqual(lines, [], 'silent writes nothing at all');
      continue;
    }
    assert.deepEqual(
      accessLines.map((l) => [l.level, l.requestId, l.route, l.service]),
      [['info', 'r1', 'ml/chat', 'modelgate']],
      `at ${level}: the route decides (enabled: false still drops its line)`,
    );
    const operational = lines.some((l) => l.msg === 'operational');
    assert.equal(
      operational,
      ['trace', 'debug', 'info'].includes(level),
      `at ${level}: operational info line`,
    );
  }
});

test('access lines never turn on the debug lines of the logger they share', () => {
  const { logger, lines } = capture('warn');
  new AccessLog(logger).write(entry);
  logger.info('still filtered');
  logger.debug('still filtered');
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['access'],
  );
  assert.equal(logger.level, 'warn');
});
