/**
 * The log level end to end: `modelgate standalone` with `--log-level` and MODELGATE_LOG_LEVEL
 * (stdout read line by line; the process is stopped with SIGTERM and read to its end, so what is
 * absent is known to be absent, without waiting on a clock), and the standalone role at `warn`
 * serving a request: its info lines are gone and the access line is still written.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../../../src/observability/logger.ts';
import { startStandalone } from '../../../src/roles/standalone.ts';
import { send } from '../../support/client.ts';
import { startUpstream } from '../../support/upstream.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

type Line = Record<string, unknown>;

async function routesDir(t: { after: (fn: () => Promise<void>) => void }, upstream: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-log-level-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(
    join(dir, 'r.yaml'),
    `apiVersion: modelgate.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: r, namespace: ml}\nspec: {rules: [{backends: [{name: b, urls: ["${upstream}"]}]}]}\n`,
  );
  return dir;
}

/**
 * Runs `modelgate standalone` until it says it is serving, stops it with SIGTERM and returns every
 * line it wrote, with its exit code.
 */
async function runStandalone(
  t: { after: (fn: () => void) => void },
  dir: string,
  flags: string[],
  env: Record<string, string | undefined>,
): Promise<{ lines: Line[]; code: number | null }> {
  const childEnv = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  const child = spawn(
    process.execPath,
    [MAIN, 'standalone', '-f', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...flags],
    { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv },
  );
  t.after(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines: Line[] = [];
  const closed = new Promise<void>((resolve) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (l) => {
      lines.push(JSON.parse(l));
      // The serving line is info: at a level above info it never comes, and this test would hang.
      if (lines.at(-1)!.msg === 'modelgate standalone is serving') child.kill('SIGTERM');
    });
    rl.on('close', resolve);
  });
  const code = await exited;
  await closed;
  return { lines, code };
}

test('--log-level debug writes debug lines: what the table applied holds', async (t) => {
  const llm = await startUpstream('llm');
  t.after(() => llm.close());
  const dir = await routesDir(t, llm.url);
  const { lines, code } = await runStandalone(t, dir, ['--log-level', 'debug'], {
    MODELGATE_LOG_LEVEL: undefined,
  });
  assert.equal(code, 0);
  const contents = lines.find((l) => l.msg === 'routing table contents');
  assert.ok(contents, `no debug line in ${JSON.stringify(lines.map((l) => l.msg))}`);
  assert.equal(contents.level, 'debug');
  assert.deepEqual(contents.routes, ['ml/r']);
  assert.ok(lines.some((l) => l.msg === 'shutting down' && l.level === 'info'));
});

test('MODELGATE_LOG_LEVEL sets the level; --log-level wins over it', async (t) => {
  const llm = await startUpstream('llm');
  t.after(() => llm.close());
  const dir = await routesDir(t, llm.url);
  const fromEnv = await runStandalone(t, dir, [], { MODELGATE_LOG_LEVEL: 'debug' });
  assert.equal(fromEnv.code, 0);
  assert.ok(
    fromEnv.lines.some((l) => l.level === 'debug'),
    'the variable turned debug on',
  );

  const flagWins = await runStandalone(t, dir, ['--log-level', 'info'], { MODELGATE_LOG_LEVEL: 'debug' });
  assert.equal(flagWins.code, 0);
  // Read to the end of the output: no debug line anywhere, info lines as usual.
  assert.deepEqual(
    flagWins.lines.filter((l) => l.level === 'debug').map((l) => l.msg),
    [],
  );
  assert.ok(flagWins.lines.some((l) => l.msg === 'drained' && l.level === 'info'));
});

test('at warn the info lines are gone and the access line of a request is still written', async (t) => {
  const llm = await startUpstream('llm');
  t.after(() => llm.close());
  const dir = await routesDir(t, llm.url);
  const lines: Line[] = [];
  let onLine: (() => void) | undefined;
  const gw = await startStandalone({
    paths: [dir],
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    logger: createLogger({
      level: 'warn',
      destination: {
        write: (s: string) => {
          lines.push(JSON.parse(s));
          onLine?.();
        },
      },
    }).logger,
  });
  let closed = false;
  t.after(async () => {
    if (!closed) await gw.close();
  });
  const accessLine = new Promise<Line>((resolve) => {
    onLine = () => {
      const found = lines.find((l) => l.msg === 'access');
      if (found) resolve(found);
    };
  });
  const reply = await send(gw.listener.url, { path: '/v1/chat' });
  assert.equal(reply.status, 200);
  const access = await accessLine;
  assert.equal(access.level, 'info');
  assert.equal(access.route, 'ml/r');
  assert.equal(access.status, 200);
  // The role logged its start (table applied, serving) at info before this request: none of it
  // was written. A stop logs at info too ('drained').
  await gw.close();
  closed = true;
  assert.deepEqual(
    lines.filter((l) => l.msg !== 'access').map((l) => `${l.level} ${l.msg}`),
    [],
  );
});
