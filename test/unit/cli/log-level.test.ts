/**
 * `--log-level` and MODELGATE_LOG_LEVEL on the serving commands: a bad value is a usage error
 * (exit 2) naming the levels, checked before anything starts (no cluster, controller or file is
 * needed to get it). The precedence itself is in test/unit/config/serving-flags.test.ts; what
 * each level writes, in test/unit/observability/logger.test.ts and
 * test/integration/cli/log-level.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { controllerHelp } from '../../../src/cli/commands/controller.ts';
import { proxyHelp } from '../../../src/cli/commands/proxy.ts';
import { standaloneHelp } from '../../../src/cli/commands/standalone.ts';
import { runCli } from './run-cli.ts';

const LEVELS = 'trace, debug, info, warn, error, fatal, silent';
const COMMANDS = ['controller', 'proxy', 'standalone'] as const;

test('every serving command documents --log-level and MODELGATE_LOG_LEVEL', () => {
  for (const [name, help] of [
    ['controller', controllerHelp],
    ['proxy', proxyHelp],
    ['standalone', standaloneHelp],
  ] as const) {
    assert.match(
      help,
      /--log-level LEVEL +trace, debug, info, warn, error, fatal or silent \(default info\)/,
      name,
    );
    assert.match(help, /\[MODELGATE_LOG_LEVEL\]/, name);
  }
});

test('a bad --log-level is a usage error (exit 2) naming the levels', async () => {
  const runs = COMMANDS.map(async (command) => {
    const r = await runCli([command, '--log-level', 'verbose'], undefined, {
      MODELGATE_LOG_LEVEL: undefined,
    });
    assert.equal(r.code, 2, `${command}: ${r.stderr}`);
    assert.equal(
      r.stderr,
      `modelgate ${command}: --log-level verbose: expected one of ${LEVELS}\nRun 'modelgate ${command} --help' for usage.\n`,
    );
    assert.equal(r.stdout, '');
  });
  await Promise.all(runs);
});

test('a bad MODELGATE_LOG_LEVEL is a usage error (exit 2) naming the variable', async () => {
  const runs = COMMANDS.map(async (command) => {
    const r = await runCli([command], undefined, { MODELGATE_LOG_LEVEL: 'loud' });
    assert.equal(r.code, 2, `${command}: ${r.stderr}`);
    assert.match(
      r.stderr,
      new RegExp(`^modelgate ${command}: MODELGATE_LOG_LEVEL=loud: expected one of ${LEVELS}\n`),
    );
  });
  await Promise.all(runs);
});

test('--log-level needs a value', async () => {
  const r = await runCli(['standalone', '--log-level']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--log-level/);
});
