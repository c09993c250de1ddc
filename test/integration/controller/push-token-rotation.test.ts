/**
 * Push token rotation without a controller restart (fake API server): a controller and a proxy in
 * sync; the Secret's token changes; the controller picks it up (periodic re-read), a proxy
 * presenting the new token connects and gets the table, the old token is still accepted within the
 * grace period (injected clock) and refused after it, and the stream opened with the old token
 * stays open. A deleted Secret is recreated by the leader with a new token, the same way.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../../src/observability/logger.ts';
import { type ControllerRole, startController } from '../../../src/roles/controller.ts';
import { startProxyRole } from '../../../src/roles/proxy.ts';
import { TABLE_SCHEMA_VERSION } from '../../../src/routing-table/types.ts';
import { type FakeApiServer, kubeConfigFor, startFakeApiServer } from '../../support/fake-apiserver/index.ts';
import { openRaw } from '../../unit/controlplane/push-support.ts';

const NS = 'modelgate';
const SECRET = 'modelgate-push-token';
const GRACE_MS = 600_000;

const quiet = () => createLogger({ destination: new Writable({ write: (_c, _e, cb) => cb() }) }).logger;

async function until<T>(what: string, f: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function secretToken(api: FakeApiServer): string | undefined {
  const s = api.get<{ data: { token: string } }>('Secret', NS, SECRET);
  return s ? Buffer.from(s.data.token, 'base64').toString() : undefined;
}

function setSecretToken(api: FakeApiServer, token: string): void {
  api.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: SECRET, namespace: NS },
    type: 'Opaque',
    data: { token: Buffer.from(token).toString('base64') },
  } as never);
}

/** Whether the stream opened with `token` is accepted, and (when it is) the table it is sent. */
async function tryStream(controller: ControllerRole, token: string, proxy: string) {
  const s = await openRaw(controller.pushUrl, { token, proxy, schema: String(TABLE_SCHEMA_VERSION) });
  if (s.status !== 200) return { status: s.status, table: undefined };
  for (;;) {
    const m = await s.lines.next();
    if (m.type === 'table') {
      s.close();
      return { status: s.status, table: m };
    }
  }
}

/** The proxy runs the controller's newest version. */
function synced(controller: ControllerRole, proxy: string): true | undefined {
  const v = controller.push.state.version;
  const p = controller.push.proxies().find((x) => x.id === proxy);
  return v && p?.connected && p.applied?.term === v.term && p.applied.seq === v.seq ? true : undefined;
}

test('a rotated push token is accepted without a restart; the previous one only within the grace period', async (t) => {
  const api = await startFakeApiServer();
  let now = 1_000_000;
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: NS,
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    pushToken: { refreshMs: 50, graceMs: GRACE_MS, now: () => now },
    logger: quiet(),
  });
  const stateDirs: string[] = [];
  const proxies: { shutdown(ms: number): Promise<unknown> }[] = [];
  t.after(async () => {
    for (const p of proxies) await p.shutdown(1000);
    await controller.shutdown();
    await api.close();
    for (const d of stateDirs) await rm(d, { recursive: true, force: true });
  });
  const startProxy = async (id: string, token: () => string) => {
    const stateDir = await mkdtemp(join(tmpdir(), 'modelgate-rotation-'));
    stateDirs.push(stateDir);
    const proxy = await startProxyRole({
      proxyId: id,
      controllers: [controller.pushUrl],
      token,
      stateDir,
      listen: { address: '127.0.0.1', port: 0 },
      admin: { address: '127.0.0.1', port: 0 },
      logger: quiet(),
    });
    proxies.push(proxy);
    return proxy;
  };

  const oldToken = secretToken(api)!;
  assert.ok(oldToken, 'the controller created the Secret');
  await startProxy('proxy-old', () => oldToken);
  api.apply({
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name: 'chat', namespace: 'ml' },
    spec: {
      rules: [
        { matches: [{ path: { value: '/v1' } }], backends: [{ name: 'b', url: 'http://127.0.0.1:9' }] },
      ],
    },
  } as never);
  await until('proxy-old in sync', () => synced(controller, 'proxy-old'));

  // The operator rotates the token: the controller follows the Secret without a restart.
  const newToken = 'rotated-token-0123456789abcdef';
  setSecretToken(api, newToken);
  await until('the controller read the new token', () =>
    controller.pushTokens.changes === 1 ? true : undefined,
  );
  assert.equal(controller.pushTokens.current, newToken);

  // A proxy whose file already has the new token connects and gets the table.
  await startProxy('proxy-new', () => newToken);
  await until('proxy-new in sync', () => synced(controller, 'proxy-new'));
  const fresh = await tryStream(controller, newToken, 'raw-new');
  assert.equal(fresh.status, 200);
  assert.ok(fresh.table, 'the table is sent on a stream opened with the new token');

  // Within the grace period the old token still opens streams (a file not refreshed yet).
  now += GRACE_MS - 1;
  const old = await tryStream(controller, oldToken, 'raw-old');
  assert.equal(old.status, 200, 'the previous token within the grace period');
  assert.equal((await tryStream(controller, 'never-valid', 'raw-bad')).status, 401);

  // After it only the new token is accepted.
  now += 1;
  assert.equal(
    (await tryStream(controller, oldToken, 'raw-old-2')).status,
    401,
    'the previous token after it',
  );
  assert.equal((await tryStream(controller, newToken, 'raw-new-2')).status, 200);
  // The stream proxy-old opened with the old token stays open: tokens are checked when a stream opens.
  assert.equal(controller.push.proxies().find((p) => p.id === 'proxy-old')?.connected, true);
});

test('a deleted push-token Secret is recreated by the leader with a new token; the previous one gets the grace period', async (t) => {
  const api = await startFakeApiServer();
  let now = 1_000_000;
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: NS,
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    pushToken: { refreshMs: 50, graceMs: GRACE_MS, now: () => now },
    logger: quiet(),
  });
  t.after(async () => {
    await controller.shutdown();
    await api.close();
  });
  const first = secretToken(api)!;
  await until('leading', () => (controller.elector.isLeader() ? true : undefined));
  api.remove('Secret', NS, SECRET);
  const second = await until('the Secret recreated', () => {
    const s = secretToken(api);
    return s !== undefined && s !== first ? s : undefined;
  });
  await until('the controller took the new token', () =>
    controller.pushTokens.changes === 1 ? true : undefined,
  );
  assert.equal(controller.pushTokens.current, second);
  assert.equal((await tryStream(controller, second, 'raw-new')).status, 200);
  assert.equal((await tryStream(controller, first, 'raw-old')).status, 200, 'within the grace period');
  now += GRACE_MS;
  assert.equal((await tryStream(controller, first, 'raw-old-2')).status, 401, 'after it');
});

test('a refused token makes the controller re-read the Secret at once (the kubelet was faster than the re-read)', async (t) => {
  const api = await startFakeApiServer();
  const controller = await startController({
    kc: kubeConfigFor(api.url),
    namespace: NS,
    identity: 'controller-0',
    listen: { address: '127.0.0.1', port: 0 },
    admin: { address: '127.0.0.1', port: 0 },
    leaseDurationMs: 2000,
    renewDeadlineMs: 1500,
    retryPeriodMs: 100,
    debounceMs: 10,
    // No periodic re-read during the test: only the refused token can trigger one.
    pushToken: { refreshMs: 3_600_000 },
    logger: quiet(),
  });
  t.after(async () => {
    await controller.shutdown();
    await api.close();
  });
  const newToken = 'rotated-token-fedcba9876543210';
  setSecretToken(api, newToken);
  assert.equal((await tryStream(controller, newToken, 'raw-early')).status, 401, 'not read yet');
  await until('the controller read the new token', () =>
    controller.pushTokens.changes === 1 ? true : undefined,
  );
  assert.equal((await tryStream(controller, newToken, 'raw-early-2')).status, 200);
});
