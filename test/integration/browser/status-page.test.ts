/**
 * The controller's status page in headless Chromium, against a live controller (fake API server)
 * with one real proxy that ACKs and one scripted proxy that NACKs the table with a reason
 * containing markup. The page must show: the refusal (as text, not HTML), the proxies' sync
 * state, the route's conditions, a backend endpoint the real proxy's health checks took out of
 * service, and a rollout paused at 20% with its weight history. The screenshot is kept in
 * test-artifacts/status-page.png.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { StatusApiResponse } from '../../../src/controlplane/status-api.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import { startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { TABLE_SCHEMA_VERSION } from '../../../src/routing-table/types.ts';
import { chromiumMissing, launchChromium } from '../../support/chromium.ts';
import { send } from '../../support/client.ts';
import { kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { startUpstream } from '../../support/upstream.ts';
import { openRaw, postAck } from '../../unit/controlplane/push-support.ts';

const ARTIFACTS = join(import.meta.dirname, '..', '..', '..', 'test-artifacts');
const REASON = 'scripted refusal <b id="injected">not bold</b>';

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

const missing = chromiumMissing();

test('the status page shows a NACKed proxy, route conditions, endpoint health and a rollout', {
  skip: missing,
}, async (t) => {
  const api = await startFakeApiServer();
  const stable = await startUpstream('stable');
  const canary = await startUpstream('canary');
  const dead = await closedPort();
  const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-status-page-'));
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: 'modelgate',
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    logger: quiet(),
  });
  const token = Buffer.from(
    String(api.get<{ data: { token: string } }>('Secret', 'modelgate', 'modelgate-push-token')!.data.token),
    'base64',
  ).toString();
  const proxy = await startProxyRole({
    proxyId: 'proxy-good',
    controllers: [controller.pushUrl],
    token: () => token,
    stateDir,
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    reportIntervalMs: 100,
    logger: quiet(),
  });
  const streams: { close(): void }[] = [];
  const chrome = await launchChromium();
  t.after(async () => {
    await chrome.close();
    for (const s of streams) s.close();
    await proxy.shutdown(1000);
    await controller.shutdown();
    await api.close();
    await stable.close();
    await canary.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        {
          name: 'llama',
          matches: [{ path: { value: '/v1' } }],
          backends: [
            { name: 'stable', urls: [stable.url, `http://127.0.0.1:${dead}`] },
            { name: 'canary', urls: [canary.url] },
          ],
          healthCheck: { path: '/health', interval: '100ms', timeout: '500ms', unhealthyThreshold: 1 },
        },
      ],
    },
  });
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'CanaryRollout',
    metadata: { name: 'chat-v2', namespace: 'ml' },
    spec: {
      routeRef: { name: 'chat' },
      stableBackend: 'stable',
      canaryBackend: 'canary',
      steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 60 }],
    },
  });

  // Wait on the JSON the page reads: proxy-good in sync, the dead endpoint reported out of
  // service, the rollout paused at 20%.
  const fetchDoc = async () =>
    (await send(controller.adminUrl, { path: '/api/v1/status' })).json<StatusApiResponse>();
  await until('proxy-good synced, the dead endpoint down, the rollout paused', async () => {
    const d = await fetchDoc();
    const synced = d.proxies.find((p) => p.id === 'proxy-good')?.inSync;
    const deadDown = d.backends
      .flatMap((b) => b.endpoints)
      .some((e) => e.port === dead && e.health === 'down');
    const paused = d.rollouts[0]?.phase === 'Paused' && d.rollouts[0]?.servedWeight === 20;
    return synced && deadDown && paused ? d : undefined;
  });

  // A scripted proxy that refuses the current table.
  const bad = await openRaw(controller.pushUrl, {
    token,
    proxy: 'proxy-bad',
    schema: String(TABLE_SCHEMA_VERSION),
  });
  streams.push(bad);
  let table: Record<string, unknown>;
  do table = await bad.lines.next();
  while (table.type !== 'table');
  const refused = table.version as { term: number; seq: number };
  const nack = await postAck(
    controller.pushUrl,
    {
      proxy: 'proxy-bad',
      version: refused,
      hash: (table.table as { hash: string }).hash,
      ok: false,
      reason: REASON,
    },
    token,
  );
  assert.equal(nack.status, 204);
  await until('proxy-bad NACKed', async () =>
    (await fetchDoc()).proxies.find((p) => p.id === 'proxy-bad')?.refused ? true : undefined,
  );

  const page = await chrome.browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  const response = await page.goto(`${controller.adminUrl}/`);
  assert.equal(response?.status(), 200);
  assert.match(String(response?.headers()['content-security-policy']), /script-src 'self'/);
  await page.waitForSelector('body[data-loaded="true"]', { timeout: 20_000 });

  // Proxies: one refused with its reason shown as text, one in sync.
  const badRow = page.locator('tr[data-proxy="proxy-bad"]');
  assert.equal(await badRow.getAttribute('data-state'), 'NACKED');
  const label = `${refused.term}.${refused.seq}`;
  assert.match(
    await badRow.innerText(),
    new RegExp(`refused ${label.replace('.', '\\.')}: scripted refusal <b id="injected">not bold</b>`),
  );
  assert.equal(await page.locator('#injected').count(), 0, 'the reason is text, not markup');
  assert.equal(await page.locator('tr[data-proxy="proxy-good"]').getAttribute('data-state'), 'SYNCED');
  assert.equal(await page.locator('#in-sync').innerText(), '1 of 2, 1 refused the table');

  // Route conditions: accepted and resolved, but not Programmed while a proxy refuses its table.
  const route = await page.locator('tr[data-route="ml/chat"]').innerText();
  assert.match(route, /ml\/chat\s+1\s+True\s+True\s+False NotProgrammed: proxy-bad refused table/);

  // Backends: counts over every endpoint; the dead one listed, out of service on proxy-good.
  const stableRow = page.locator('tr[data-backend="ml/chat/llama/stable"]');
  assert.match(await stableRow.innerText(), /stable/);
  assert.equal(await stableRow.locator('[data-counts]').innerText(), '2 endpoints, 1 up, 1 down');
  const deadItem = stableRow.locator(`li[data-endpoint="127.0.0.1:${dead}"]`);
  assert.equal(await deadItem.getAttribute('data-health'), 'down');
  assert.match(await deadItem.innerText(), /out on proxy-good \(failing checks\)/);
  assert.equal(
    await stableRow.locator('li[data-endpoint]').count(),
    1,
    'endpoints that are up are only counted',
  );
  const canaryRow = page.locator('tr[data-backend="ml/chat/llama/canary"]');
  assert.equal(await canaryRow.locator('[data-counts]').innerText(), '1 endpoint, 1 up');

  // The rollout: paused at step 2 of 3 with 20% in its history and on its chart.
  const rollout = page.locator('tr[data-rollout="ml/chat-v2"]');
  assert.equal(await rollout.getAttribute('data-phase'), 'Paused');
  const rolloutText = await rollout.innerText();
  assert.match(rolloutText, /2\/3/);
  assert.match(rolloutText, /20%/);
  assert.match(String(await rollout.locator('svg.chart').getAttribute('aria-label')), /\b20\b/);

  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'status-page.png'), fullPage: true });

  // When the controller stops answering, the page keeps its data and says so.
  await controller.shutdown();
  await page.waitForSelector('#banner:not([hidden])', { timeout: 20_000 });
  assert.match(await page.locator('#banner').innerText(), /did not answer/);
  assert.equal(await page.locator('tr[data-proxy="proxy-bad"]').count(), 1, 'the last data stays');
  assert.deepEqual(
    consoleErrors.filter((e) => !/Failed to load resource|ERR_CONNECTION_REFUSED/.test(e)),
    [],
  );
});
