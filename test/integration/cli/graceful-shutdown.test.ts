/**
 * SIGTERM on `modelgate standalone`: readiness fails first, new connections stop, a stream in
 * flight runs to its end, and the process exits 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { send } from '../../support/client.ts';
import { startUpstream } from '../../support/upstream.ts';

const MAIN = fileURLToPath(new URL('../../../src/cli/main.ts', import.meta.url));

test('SIGTERM drains a stream in flight and exits 0', async (t) => {
  let stream: ServerResponse | undefined;
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => {
    opened = resolve;
  });
  const llm = await startUpstream('llm', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: 1\n\n');
    stream = res;
    opened();
  });
  const dir = await mkdtemp(join(tmpdir(), 'modelgate-drain-'));
  await writeFile(
    join(dir, 'r.yaml'),
    `apiVersion: modelgate.dev/v1alpha1\nkind: ModelRoute\nmetadata: {name: r}\nspec: {rules: [{backends: [{name: b, urls: ["${llm.url}"]}]}]}\n`,
  );
  const child = spawn(
    process.execPath,
    [MAIN, 'standalone', '-f', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(async () => {
    child.kill('SIGKILL');
    await llm.close();
    await rm(dir, { recursive: true, force: true });
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout! });
  const events: Record<string, unknown>[] = [];
  let onEvent: (() => void) | undefined;
  lines.on('line', (l) => {
    events.push(JSON.parse(l));
    onEvent?.();
  });
  const waitFor = (pred: (e: Record<string, unknown>) => boolean) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const check = () => {
        const found = events.find(pred);
        if (found) resolve(found);
      };
      onEvent = check;
      check();
    });
  const serving = await waitFor((e) => e.msg === 'modelgate standalone is serving');
  const url = String(serving.listen);
  const admin = String(serving.admin);

  const r = await request(`${url}/v1/chat`, { method: 'POST', body: '{}' });
  await open;
  const reader = r.body[Symbol.asyncIterator]();
  assert.equal(String((await reader.next()).value), 'data: 1\n\n');

  child.kill('SIGTERM');
  await waitFor((e) => e.msg === 'shutting down');
  // Readiness fails while the stream is still running (the admin listener stays up until drained).
  const ready = await send(admin, { path: '/readyz' });
  assert.equal(ready.status, 503);
  await assert.rejects(send(url, { path: '/v1/chat' }), /ECONNREFUSED/, 'no new connections');

  stream!.write('data: 2\n\n');
  assert.equal(String((await reader.next()).value), 'data: 2\n\n');
  stream!.end('data: [DONE]\n\n');
  assert.equal(String((await reader.next()).value), 'data: [DONE]\n\n');
  assert.equal(await exited, 0);
  assert.ok(events.some((e) => e.msg === 'drained' && e.forced === false));
});
