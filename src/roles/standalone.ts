/**
 * Standalone mode: the files source, the compiler and the proxy in one process. Edits to the
 * manifests hot-reload; a bad edit keeps the last good version of what it broke (see last-good.ts)
 * and is logged with the same one-line problems `modelgate validate` prints.
 */
import type { Logger } from 'pino';
import type { ClusterState } from '../api/cluster-state.ts';
import type { Condition } from '../api/status.ts';
import { compile, type ResourceStatus } from '../compiler/compile.ts';
import { type Listener as ListenerConfig, publicListeners } from '../config/gateway-config.ts';
import { listenAdmin } from '../dataplane/admin.ts';
import { GatewayProxy } from '../dataplane/proxy.ts';
import {
  drainAll,
  type Listener,
  type ListenOptions,
  listenAll,
  listenOptionsFor,
} from '../dataplane/server.ts';
import { createLogger, type LogLevel } from '../observability/logger.ts';
import { createTracer } from '../observability/tracing.ts';
import { type FilesWatch, type LoadResult, watchFiles } from '../sources/files/index.ts';
import { LastGood } from './last-good.ts';
import { type StandaloneRollouts, startStandaloneRollouts } from './standalone-rollouts.ts';

export interface StandaloneOptions {
  paths: string[];
  /** Every public listener (GatewayConfig `listeners`). */
  listeners?: ListenerConfig[];
  /** An HTTP listener's address: replaces the first HTTP listener of `listeners` (or adds one). */
  listen?: { address: string; port: number };
  admin: { address: string; port: number };
  /** Peers whose x-forwarded-for is believed (GatewayConfig `trustedProxies.cidrs`). */
  trustedProxies?: readonly string[];
  /** Limits and timeouts of every public listener (defaults in server.ts; tests shorten them). */
  listenerLimits?: Partial<ListenOptions>;
  logger?: Logger;
  /** The level of the logger made when `logger` is not given (default info). */
  logLevel?: LogLevel;
  /** Debounce of file events, ms (tests shorten it). */
  debounceMs?: number;
  tracing?: { otlpEndpoint?: string; sampleRatio: number; serviceName: string };
  /** The local response cache's budget in bytes (GatewayConfig cache.maxBytes). */
  cacheMaxBytes?: number;
  /**
   * Where rollout state is kept (`rollouts.json`), so a restart resumes each CanaryRollout where it
   * was. Without it the state lasts as long as the process.
   */
  stateDir?: string;
  /** Wall clock of the rollout engine (tests). */
  now?: () => number;
}

export interface Standalone {
  readonly proxy: GatewayProxy;
  /** The first public listener. */
  readonly listener: Listener;
  readonly listeners: readonly Listener[];
  readonly adminUrl: string;
  /** Statuses from the last compile, Programmed set from this process's own apply. */
  statuses(): ResourceStatus[];
  /** Resolves after the next table is applied (or refused). */
  nextApply(): Promise<void>;
  /** The rollout engine's state file, when there is a state directory. */
  readonly rolloutStateFile: string | undefined;
  /** Evaluates every CanaryRollout now (the engine also wakes itself when a step is due). */
  kickRollouts(): void;
  /**
   * Graceful shutdown: readiness fails, the listener stops accepting, in-flight requests and
   * streams finish (at most `drainTimeoutMs`), then everything closes.
   */
  shutdown(drainTimeoutMs: number): Promise<{ forced: boolean }>;
  close(): Promise<void>;
}

function programmed(statuses: ResourceStatus[], applied: boolean, version: string): ResourceStatus[] {
  return statuses.map((s) => ({
    ...s,
    status: {
      ...s.status,
      conditions: s.status.conditions.map((c): Condition => {
        if (c.type !== 'Programmed' || c.status !== 'Unknown') return c;
        return applied
          ? { ...c, status: 'True', reason: 'Programmed', message: `serving in table ${version}` }
          : { ...c, status: 'False', reason: 'NotProgrammed', message: 'the proxy refused the table' };
      }),
    },
  }));
}

/** CanaryRollout statuses with the engine's fields (phase, step, history...) the compiler does not know. */
function withRolloutState(statuses: ResourceStatus[], rollouts: StandaloneRollouts): ResourceStatus[] {
  return statuses.map((s) => {
    if (s.kind !== 'CanaryRollout') return s;
    const engine = rollouts.status(`${s.namespace}/${s.name}`);
    return engine ? { ...s, status: { ...engine, ...s.status } } : s;
  });
}

export async function startStandalone(opts: StandaloneOptions): Promise<Standalone> {
  const specs = publicListeners(opts.listeners, opts.listen, opts.admin);
  const { logger, flush } = opts.logger
    ? { logger: opts.logger, flush: () => {} }
    : createLogger({ level: opts.logLevel });
  const tracer = createTracer({
    endpoint: opts.tracing?.otlpEndpoint,
    sampleRatio: opts.tracing?.sampleRatio,
    serviceName: opts.tracing?.serviceName,
    onError: (err) => logger.warn({ err: String(err) }, 'span export failed'),
  });
  const proxy = new GatewayProxy({
    logger,
    tracer,
    trustedProxies: opts.trustedProxies,
    ...(opts.cacheMaxBytes !== undefined ? { cacheMaxBytes: opts.cacheMaxBytes } : {}),
  });
  const lastGood = new LastGood();
  let statuses: ResourceStatus[] = [];
  let generation = 0;
  let waiters: (() => void)[] = [];

  let merged: ClusterState | undefined;
  let closed = false;
  const rollouts = await startStandaloneRollouts({
    stateDir: opts.stateDir,
    proxy,
    logger,
    now: opts.now,
    onStateChange: () => {
      if (merged && !closed) build(merged, false);
    },
  });

  /** Compiles the files' state (with each rollout's stored status) and applies the table. */
  const build = (fromFiles: ClusterState, logConditions: boolean) => {
    const state = rollouts.withStatus(fromFiles);
    const result = compile(state);
    generation++;
    const version = `files-${generation}`;
    const applied = proxy.apply(result.table, version);
    statuses = withRolloutState(programmed(result.statuses, applied.ok, version), rollouts);
    if (logConditions) {
      for (const s of statuses) {
        for (const c of s.status.conditions) {
          if (c.status === 'False' && c.type !== 'Programmed') {
            logger.warn(
              { resource: `${s.kind}/${s.namespace}/${s.name}`, condition: c.type, reason: c.reason },
              c.message,
            );
          }
        }
      }
    }
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
    rollouts.sync(state.canaryRollouts);
  };

  const onLoad = (loaded: LoadResult) => {
    for (const p of loaded.problems) {
      logger.warn({ file: p.file, line: p.line, resource: p.key }, p.message);
    }
    const { state, kept } = lastGood.merge(loaded);
    for (const k of kept) logger.warn({ resource: k.key }, k.reason);
    merged = state;
    build(state, true);
  };

  let watch: FilesWatch | undefined;
  const firstLoad = new Promise<void>((resolve) => waiters.push(resolve));
  watch = watchFiles(opts.paths, onLoad, { debounceMs: opts.debounceMs ?? 100 });
  await firstLoad;

  let listeners: Listener[] = [];
  let admin: Awaited<ReturnType<typeof listenAdmin>>;
  try {
    listeners = await listenAll(
      proxy,
      specs.map((l) => listenOptionsFor(l, opts.listenerLimits)),
    );
    // Readiness is served once every public listener is up.
    admin = await listenAdmin(proxy, { ...opts.admin, status: () => statuses });
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close()));
    closed = true;
    await watch?.close();
    await rollouts.close();
    await proxy.close();
    flush();
    throw e;
  }
  logger.info(
    {
      listen: listeners[0]!.url,
      listeners: listeners.map((l) => l.url),
      admin: admin.url,
      paths: opts.paths,
    },
    'modelgate standalone is serving',
  );

  return {
    proxy,
    listener: listeners[0]!,
    listeners,
    adminUrl: admin.url,
    statuses: () => statuses,
    nextApply: () => new Promise<void>((resolve) => waiters.push(resolve)),
    rolloutStateFile: rollouts.stateFile,
    kickRollouts: () => rollouts.kick(),
    shutdown: async (drainTimeoutMs) => {
      proxy.draining = true;
      logger.info(
        { drainTimeoutMs },
        'draining: readiness fails, no new connections, in-flight requests finish',
      );
      const result = await drainAll(listeners, drainTimeoutMs);
      await watch?.close();
      watch = undefined;
      closed = true;
      await rollouts.close();
      await admin.app.close();
      await proxy.close();
      logger.info({ forced: result.forced }, 'drained');
      flush();
      return result;
    },
    close: async () => {
      await watch?.close();
      watch = undefined;
      closed = true;
      await rollouts.close();
      await Promise.all(listeners.map((l) => l.close()));
      await admin.app.close();
      await proxy.close();
      flush();
    },
  };
}
