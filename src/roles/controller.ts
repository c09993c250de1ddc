/**
 * The controller role: Kubernetes source → compiler → push stream to every proxy; the leader
 * (elected on a Lease) also writes statuses, with `Programmed` decided from the proxies' ACKs.
 * Every replica compiles and serves the push stream, so proxies stay connected to all of them and
 * a failover only has to change which one they listen to.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ClusterState } from '../api/cluster-state.ts';
import type { Condition } from '../api/status.ts';
import { type CompileResult, compile, type ResourceStatus } from '../compiler/compile.ts';
import { endpointOnlyUpdate } from '../controlplane/endpoint-fast-path.ts';
import { postEvent } from '../controlplane/events.ts';
import { LeaderElector } from '../controlplane/leader-election.ts';
import { GenerationLedger, programmedCondition } from '../controlplane/programmed.ts';
import { PushTokenHolder } from '../controlplane/push/token-holder.ts';
import { PushServer } from '../controlplane/push-server.ts';
import { StatsAggregator } from '../controlplane/rollout/backend-stats.ts';
import { RolloutEngine, StaleStatusError } from '../controlplane/rollout/engine.ts';
import { rolloutMetrics } from '../controlplane/rollout/metrics.ts';
import { buildStatus, STATUS_API_PATH } from '../controlplane/status-api.ts';
import { registerStatusPage } from '../controlplane/status-page/routes.ts';
import { StatusWriter } from '../controlplane/status-writer.ts';
import { createLogger } from '../observability/logger.ts';
import { CallbackFamily, HistogramFamily } from '../observability/metric-families.ts';
import { KubeError, kubeRequest } from '../sources/kubernetes/kube-request.ts';
import { KubernetesSource } from '../sources/kubernetes/kubernetes-source.ts';

export interface ControllerOptions {
  kc: KubeConfig;
  /** The controller's own namespace (Lease and push-token Secret live there). */
  namespace: string;
  /** This replica (the pod name). */
  identity: string;
  /** Namespaces to watch; empty: all. */
  watchNamespaces?: string[];
  /** Push stream listener. */
  listen: { address: string; port: number };
  /** Admin listener: /healthz /readyz /metrics. */
  admin: { address: string; port: number };
  /** TLS for the push stream (PEM); plain HTTP when unset. `setPushTls` replaces it later. */
  pushTls?: { cert: string; key: string };
  tokenSecretName?: string;
  /**
   * Push token rotation: the Secret is re-read every `refreshMs` (default 30 s); after a change the
   * previous token stays accepted for `graceMs` (default 10 min). `now` is the clock of the grace
   * period (tests).
   */
  pushToken?: { refreshMs?: number; graceMs?: number; now?: () => number };
  leaseName?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  debounceMs?: number;
  maxDebounceMs?: number;
  logger?: Logger;
}

export interface ControllerRole {
  readonly source: KubernetesSource;
  readonly push: PushServer;
  readonly elector: LeaderElector;
  readonly pushUrl: string;
  readonly adminUrl: string;
  /** The push tokens accepted (current, and previous during a rotation's grace period). */
  readonly pushTokens: PushTokenHolder;
  /** Re-reads the push-token Secret now (it is also re-read periodically). */
  refreshPushToken(): Promise<void>;
  /**
   * Replaces the push stream's certificate and key (a rotated certificate): new connections get
   * it, open streams keep theirs. Throws when the controller was started without `pushTls`.
   */
  setPushTls(tls: { cert: string; key: string }): void;
  /** Compiles done so far; tests wait on it. */
  compiles(): number;
  /** Statuses as last computed (with Programmed from ACKs). */
  statuses(): ResourceStatus[];
  shutdown(): Promise<void>;
}

/** Reads the push token; undefined when the Secret does not exist. */
export async function readPushToken(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<string | undefined> {
  let s: { data?: Record<string, string> };
  try {
    s = await kubeRequest<{ data?: Record<string, string> }>(
      kc,
      `/api/v1/namespaces/${namespace}/secrets/${name}`,
    );
  } catch (err) {
    if (err instanceof KubeError && err.statusCode === 404) return undefined;
    throw err;
  }
  const token = s.data?.token;
  if (!token) throw new Error(`secret ${namespace}/${name} has no key "token"`);
  const text = Buffer.from(token, 'base64').toString('utf8').trim();
  if (text === '') throw new Error(`secret ${namespace}/${name} has an empty "token"`);
  return text;
}

/** Reads the push token, creating the Secret with a random one when it does not exist. */
export async function ensurePushToken(kc: KubeConfig, namespace: string, name: string): Promise<string> {
  const read = async () => {
    const token = await readPushToken(kc, namespace, name);
    if (token === undefined) throw new Error(`secret ${namespace}/${name} not found`);
    return token;
  };
  const existing = await readPushToken(kc, namespace, name);
  if (existing !== undefined) return existing;
  const token = randomBytes(32).toString('base64url');
  try {
    await kubeRequest(kc, `/api/v1/namespaces/${namespace}/secrets`, {
      method: 'POST',
      body: {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name, namespace, labels: { 'app.kubernetes.io/part-of': 'modelgate' } },
        type: 'Opaque',
        data: { token: Buffer.from(token).toString('base64') },
      },
    });
    return token;
  } catch (err) {
    // Another replica created it first: use theirs.
    if (err instanceof KubeError && err.statusCode === 409) return read();
    throw err;
  }
}

function listen(server: Server, at: { address: string; port: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.address, () => {
      const a = server.address() as AddressInfo;
      resolve(`http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    });
  });
}

export async function startController(opts: ControllerOptions): Promise<ControllerRole> {
  const { logger, flush } = opts.logger ? { logger: opts.logger, flush: () => {} } : createLogger();
  const tokenSecret = opts.tokenSecretName ?? 'modelgate-push-token';
  const tokens = new PushTokenHolder(await ensurePushToken(opts.kc, opts.namespace, tokenSecret), {
    graceMs: opts.pushToken?.graceMs ?? 10 * 60_000,
    now: opts.pushToken?.now,
  });
  const push = new PushServer({ controllerId: opts.identity, token: () => tokens.accepted(), logger });
  const ledger = new GenerationLedger();
  let last: CompileResult | undefined;
  let compileCount = 0;
  let computed: ResourceStatus[] = [];

  const registry = new Registry();
  const compileSeconds = new HistogramFamily(
    'modelgate_controller_compile_seconds',
    'Time to compile the cluster state.',
    [],
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  );
  const register = (f: unknown) => registry.registerMetric(f as Parameters<Registry['registerMetric']>[0]);
  register(compileSeconds);

  const elector = new LeaderElector({
    kc: opts.kc,
    namespace: opts.namespace,
    name: opts.leaseName ?? 'modelgate-controller',
    identity: opts.identity,
    leaseDurationMs: opts.leaseDurationMs,
    renewDeadlineMs: opts.renewDeadlineMs,
    retryPeriodMs: opts.retryPeriodMs,
    // Terms proxies run: a new leadership goes above them even when the Lease was recreated.
    termFloor: () => push.highestProxyTerm,
    onStartedLeading: (term) => {
      logger.info({ term }, 'leading');
      push.setLeader(true, term);
      if (last) publish(last);
      scheduleStatus();
      engine.kick();
    },
    onTermChanged: (term, previous) => {
      logger.warn(
        { term, previous },
        'proxies run tables of a term at or above the one this replica led (was the Lease deleted and recreated?); now leading a higher term, written to the Lease, and sending the table again in it',
      );
      push.setLeader(true, term);
      if (last) publish(last);
      scheduleStatus();
    },
    onStoppedLeading: () => {
      logger.warn({ term: elector.term }, 'no longer leading');
      push.setLeader(false, elector.term);
      engine.kick();
    },
    onError: (err) => logger.warn({ err: String(err) }, 'lease renewal failed'),
  });
  // A proxy runs a term at or above ours: take a higher one (a conditional Lease update, leader only).
  push.on('staleTerm', (s) => elector.raiseTerm(s.version.term));

  const objectsByKey = new Map<string, { status?: Record<string, unknown> }>();
  const writer = new StatusWriter({
    kc: opts.kc,
    fence: () => elector.fence(),
    current: (s) =>
      objectsByKey.get(`${s.kind}/${s.namespace}/${s.name}`)?.status as ReturnType<
        ConstructorParameters<typeof StatusWriter>[0]['current']
      >,
    component: 'modelgate-controller',
    onError: (err, s) =>
      logger.warn(
        { err: String(err), resource: `${s.kind}/${s.namespace}/${s.name}` },
        'status write failed',
      ),
  });

  // Rollouts: every replica keeps the proxies' counters (a new leader starts warm); the leader
  // runs the engine, whose state lives in each CanaryRollout's status.
  // What proxies counted before this replica started is not charged to any window it judges.
  const aggregator = new StatsAggregator({ baselineBefore: Date.now() });
  push.on('report', (r) => aggregator.ingest(r, Date.now()));
  const rolloutStats = rolloutMetrics(() => lastState?.canaryRollouts ?? []);
  for (const f of rolloutStats.families) register(f);
  const engine = new RolloutEngine({
    now: Date.now,
    aggregator,
    active: () => elector.isLeader(),
    logger,
    persist: async (t, status, resourceVersion) => {
      elector.fence();
      // The resourceVersion the state was read from is a precondition: a write computed from an
      // older object (a deposed leader's late write, or a stale cache) gets 409 instead of
      // overwriting newer progress.
      try {
        const written = await kubeRequest<{ metadata?: { resourceVersion?: string } }>(
          opts.kc,
          `/apis/modelgate.dev/v1alpha1/namespaces/${t.namespace}/canaryrollouts/${t.name}/status`,
          {
            method: 'PATCH',
            body: resourceVersion === undefined ? { status } : { metadata: { resourceVersion }, status },
          },
        );
        return written.metadata?.resourceVersion;
      } catch (err) {
        if (err instanceof KubeError && err.statusCode === 409) throw new StaleStatusError(err.message);
        throw err;
      }
    },
    event: async (t, e) => {
      rolloutStats.event(`${t.namespace}/${t.name}`, e);
      await postEvent(
        opts.kc,
        { fence: () => elector.fence(), component: 'modelgate-controller' },
        { kind: 'CanaryRollout', ...t },
        e,
      );
    },
    onVerdict: rolloutStats.verdict,
  });
  // When each version was published, to measure how long proxies take to run it.
  const publishedAt = new Map<string, number>();
  const pushLatency = new HistogramFamily(
    'modelgate_controller_push_latency_seconds',
    'Time from publishing a table version to each proxy ACKing it.',
    [],
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  register(pushLatency);
  // The wall-clock time the current version was published, for /api/v1/status.
  let publishedWall: { key: string; at: number | undefined } = { key: '', at: undefined };
  const publish = (result: CompileResult) => {
    const version = push.publish(result.table);
    if (!version) return;
    ledger.record(version, result.statuses);
    const key = `${version.term}.${version.seq}`;
    if (!publishedAt.has(key)) publishedAt.set(key, performance.now());
    if (publishedWall.key !== key) publishedWall = { key, at: Date.now() };
    if (publishedAt.size > 64) publishedAt.delete(publishedAt.keys().next().value!);
  };

  let lastState: ClusterState | undefined;
  const recompute = (state: ClusterState) => {
    const t0 = performance.now();
    // Pods coming and going change only EndpointSlices: re-resolve the Services they belong to.
    const fast = last && lastState ? endpointOnlyUpdate(lastState, last, state) : undefined;
    const result = fast ?? compile(state);
    lastState = state;
    const seconds = (performance.now() - t0) / 1000;
    compileSeconds.child([]).observe(seconds);
    compileCount++;
    // "Did my edit reach the compiler?" The counts are cheap; the line is built only at debug.
    if (logger.isLevelEnabled('debug')) {
      logger.debug(
        {
          ms: Math.round(seconds * 1000 * 10) / 10,
          endpointsOnly: fast !== undefined,
          hash: result.table.hash,
          rules: result.table.routes.rules.length,
          resources: result.statuses.length,
        },
        'compiled',
      );
    }
    last = result;
    objectsByKey.clear();
    for (const list of [state.modelRoutes, state.rateLimitPolicies, state.canaryRollouts]) {
      for (const o of list)
        objectsByKey.set(`${o.kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}`, o as never);
    }
    ledger.retain(new Set(result.statuses.map((s) => `${s.kind}/${s.namespace}/${s.name}`)));
    publish(result);
    scheduleStatus();
    engine.sync(state.canaryRollouts);
  };

  // Status writes are serialised and coalesced: ACKs from many proxies arrive together.
  let statusRunning = false;
  let statusAgain = false;
  const scheduleStatus = () => {
    if (statusRunning) {
      statusAgain = true;
      return;
    }
    statusRunning = true;
    setImmediate(async () => {
      try {
        do {
          statusAgain = false;
          computed = withProgrammed(last?.statuses ?? [], ledger, push);
          if (elector.isLeader()) await writer.sync(computed);
        } while (statusAgain);
      } catch (err) {
        logger.warn({ err: String(err) }, 'status sync stopped');
      } finally {
        statusRunning = false;
      }
    });
  };
  push.on('ack', (ack) => {
    const at = ack.ok ? publishedAt.get(`${ack.version.term}.${ack.version.seq}`) : undefined;
    if (at !== undefined) pushLatency.child([]).observe((performance.now() - at) / 1000);
    scheduleStatus();
  });
  push.on('connect', () => scheduleStatus());
  push.on('disconnect', () => scheduleStatus());

  const source = new KubernetesSource({
    kc: opts.kc,
    namespaces: opts.watchNamespaces,
    onChange: recompute,
    onError: (kind, err, ms) =>
      logger.warn({ kind, err: String(err), retryInMs: ms }, 'watch failed; restarting'),
    // Short: a change should reach proxies within ~100 ms; bursts still coalesce, and endpoint
    // churn takes the fast path.
    debounceMs: opts.debounceMs ?? 20,
    maxDebounceMs: opts.maxDebounceMs ?? 500,
  });

  register(
    new CallbackFamily(
      'modelgate_controller_leader',
      'Whether this replica leads (1) and its term.',
      'gauge',
      () => [[{ term: String(elector.term) }, elector.isLeader() ? 1 : 0]],
    ),
  );
  register(
    new CallbackFamily(
      'modelgate_controller_term_raises_total',
      'Times this replica, leading, moved to a higher term because proxies ran a term at or above its own (a recreated Lease).',
      'counter',
      () => [[{}, elector.termRaises]],
    ),
  );
  register(
    new CallbackFamily(
      'modelgate_controller_proxies',
      'Proxies by state: connected, nacked (connected and refused the newest table).',
      'gauge',
      () => {
        const ps = push.proxies();
        return [
          [{ state: 'connected' }, ps.filter((p) => p.connected).length],
          [{ state: 'nacked' }, ps.filter((p) => p.connected && p.refused).length],
        ];
      },
    ),
  );
  register(
    new CallbackFamily(
      'modelgate_informer_staleness_seconds',
      'Seconds since each informer last knew it was current (list, event or watch reconnect).',
      'gauge',
      () =>
        source
          .informerStates()
          .map((s) => [
            { kind: s.kind, path: s.path },
            s.lastSyncMs ? (Date.now() - s.lastSyncMs) / 1000 : -1,
          ]),
    ),
  );
  register(
    new CallbackFamily(
      'modelgate_informer_restarts_total',
      'Informer restarts after errors.',
      'counter',
      () => source.informerStates().map((s) => [{ kind: s.kind, path: s.path }, s.restarts]),
    ),
  );

  const pushServer: Server = opts.pushTls
    ? (createTlsServer(
        { cert: opts.pushTls.cert, key: opts.pushTls.key },
        push.requestListener(),
      ) as unknown as Server)
    : createServer(push.requestListener());
  const pushUrl = (await listen(pushServer, opts.listen)).replace(
    /^http:/,
    opts.pushTls ? 'https:' : 'http:',
  );
  await source.start();
  elector.start();

  // Push token rotation: re-read the Secret periodically (a GET of one named Secret, which the
  // controller's Role already allows); a change makes the new token current and keeps the previous
  // one accepted for the grace period, while the kubelet refreshes the proxies' mounted files.
  const secretRef = `${opts.namespace}/${tokenSecret}`;
  let lastRefresh = Number.NEGATIVE_INFINITY;
  const refreshPushToken = async () => {
    lastRefresh = performance.now();
    try {
      let token = await readPushToken(opts.kc, opts.namespace, tokenSecret);
      if (token === undefined) {
        // Deleted: the leader creates it again with a new token (a rotation); followers keep what
        // they accept until they read the new one, so no proxy is refused meanwhile.
        if (!elector.isLeader()) return;
        token = await ensurePushToken(opts.kc, opts.namespace, tokenSecret);
        logger.info({ secret: secretRef }, 'push token Secret was missing; created it with a new token');
      }
      if (tokens.set(token)) {
        logger.info(
          { secret: secretRef, previousAcceptedUntil: new Date(tokens.previousUntil ?? 0).toISOString() },
          'push token changed; the previous token is accepted until the grace period ends',
        );
      }
    } catch (err) {
      logger.warn(
        { secret: secretRef, err: String(err) },
        'push token re-read failed; keeping the current one',
      );
    }
  };
  let tokenTimer: NodeJS.Timeout | undefined;
  let stopped = false;
  const scheduleTokenRefresh = () => {
    if (stopped) return;
    tokenTimer = setTimeout(
      () => void refreshPushToken().finally(scheduleTokenRefresh),
      opts.pushToken?.refreshMs ?? 30_000,
    );
    tokenTimer.unref();
  };
  scheduleTokenRefresh();
  // A refused token may be a new one this replica has not read yet (the kubelet refreshed a
  // proxy's file first): read the Secret early, at most once per 5 s whatever clients send.
  push.on('unauthorized', () => {
    if (!stopped && performance.now() - lastRefresh >= 5000) void refreshPushToken();
  });

  const admin: FastifyInstance = Fastify({ logger: false });
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/readyz', async (_req, reply) => {
    const synced = source.informerStates().every((s) => s.synced);
    reply.code(synced ? 200 : 503);
    return { status: synced ? 'ready' : 'syncing', leader: elector.isLeader(), term: elector.term };
  });
  admin.get('/metrics', async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  admin.get('/status', async () => ({
    leader: elector.isLeader(),
    term: elector.term,
    proxies: push.proxies(),
    resources: computed,
  }));
  admin.get<{ Querystring: { endpoints?: string } }>(STATUS_API_PATH, async (req) =>
    buildStatus({
      endpoints: req.query.endpoints === 'all' ? 'all' : 'notUp',
      identity: opts.identity,
      leader: elector.isLeader(),
      term: elector.term,
      version: push.state.version,
      hash: last?.table.hash,
      publishedAt: publishedWall.at,
      proxies: push.proxies(),
      statuses: computed,
      state: lastState,
      table: last?.table,
    }),
  );
  registerStatusPage(admin);
  const adminUrl = await admin.listen({ host: opts.admin.address, port: opts.admin.port });
  logger.info({ push: pushUrl, admin: adminUrl, identity: opts.identity }, 'modelgate controller is running');

  return {
    source,
    push,
    elector,
    pushUrl,
    adminUrl,
    pushTokens: tokens,
    refreshPushToken,
    compiles: () => compileCount,
    statuses: () => computed,
    setPushTls: (tls) => {
      if (!opts.pushTls) throw new Error('the push stream was started without TLS');
      (pushServer as unknown as TlsServer).setSecureContext({ cert: tls.cert, key: tls.key });
    },
    shutdown: async () => {
      stopped = true;
      clearTimeout(tokenTimer);
      // Let a running evaluation finish (its events follow its status write) before leading ends.
      await engine.close();
      await elector.stop();
      await source.stop();
      push.close();
      pushServer.closeAllConnections();
      await new Promise<void>((resolve) => pushServer.close(() => resolve()));
      await admin.close();
      flush();
    },
  };
}

/** The compiler's statuses with Programmed decided by the proxies' ACKs. */
function withProgrammed(
  statuses: readonly ResourceStatus[],
  ledger: GenerationLedger,
  push: PushServer,
): ResourceStatus[] {
  const proxies = push
    .proxies()
    .map((p) => ({ id: p.id, connected: p.connected, applied: p.applied, refused: p.refused }));
  return statuses.map((s) => ({
    ...s,
    status: {
      ...s.status,
      conditions: s.status.conditions.map(
        (c): Condition => (c.type === 'Programmed' ? programmedCondition(s, ledger, proxies) : c),
      ),
    },
  }));
}
