/**
 * Rollouts in standalone mode: the same engine the controller's leader runs, fed by this
 * process's own proxy counters, with the state the controller keeps in each CanaryRollout's
 * status kept in `<stateDir>/rollouts.json` (state-file.ts). A restarted process resumes each
 * rollout where it was, exactly as a restarted controller does.
 *
 * The manifests on disk stay the user's: the engine never writes them. Actions (pause, resume,
 * promote, abort) are the same edits as in a cluster, made to the files: `spec.paused`, or a
 * `modelgate.dev/*` annotation with a new value.
 */
import type { Logger } from 'pino';
import type { ClusterState } from '../api/cluster-state.ts';
import type { CanaryRollout } from '../api/resources.ts';
import { StatsAggregator } from '../controlplane/rollout/backend-stats.ts';
import { RolloutEngine } from '../controlplane/rollout/engine.ts';
import { rolloutMetrics } from '../controlplane/rollout/metrics.ts';
import { RolloutStateFile } from '../controlplane/rollout/state-file.ts';
import type { GatewayProxy } from '../dataplane/proxy.ts';

export interface StandaloneRolloutsOptions {
  /** Where rollouts.json lives; without it the state lasts as long as the process. */
  stateDir?: string;
  proxy: GatewayProxy;
  logger: Logger;
  /** The engine changed a rollout's state: compile again so the table serves the new weight. */
  onStateChange: () => void;
  now?: () => number;
}

export interface StandaloneRollouts {
  /** The state to compile: every CanaryRollout carrying its stored status. */
  withStatus(state: ClusterState): ClusterState;
  /** After each compile: the engine evaluates these rollouts; deleted ones are forgotten. */
  sync(rollouts: readonly CanaryRollout[]): void;
  /** Evaluates every rollout now (tests; the engine also wakes itself). */
  kick(): void;
  /** The engine's status fields of `namespace/name`. */
  status(key: string): Record<string, unknown> | undefined;
  readonly stateFile: string | undefined;
  close(): Promise<void>;
}

const PROXY_ID = 'standalone';

export async function startStandaloneRollouts(o: StandaloneRolloutsOptions): Promise<StandaloneRollouts> {
  const memory = new Map<string, Record<string, unknown>>();
  let file: RolloutStateFile | undefined;
  if (o.stateDir !== undefined) {
    const opened = await RolloutStateFile.open(o.stateDir);
    file = opened.file;
    if (opened.problem) o.logger.warn({ file: file.path }, `${opened.problem}; rollouts start afresh`);
  }
  const get = (key: string) => (file ? file.get(key) : memory.get(key));
  const now = o.now ?? Date.now;
  let rollouts: readonly CanaryRollout[] = [];
  const aggregator = new StatsAggregator();
  const metrics = rolloutMetrics(() => rollouts);
  for (const f of metrics.families) {
    o.proxy.metrics.registry.registerMetric(
      f as unknown as Parameters<typeof o.proxy.metrics.registry.registerMetric>[0],
    );
  }
  const engine = new RolloutEngine({
    now,
    aggregator,
    active: () => true,
    logger: o.logger,
    refresh: () => {
      const report = o.proxy.rolloutStats.report(PROXY_ID);
      if (report) aggregator.ingest(report, now());
    },
    persist: async (t, status) => {
      const key = `${t.namespace}/${t.name}`;
      if (file) {
        await file.put(key, status);
      } else {
        memory.set(key, status);
      }
      o.onStateChange();
      // One writer, no versions: the file is this process's alone.
      return undefined;
    },
    // The engine logs every event; there is no Event API here, only the metrics.
    event: async (t, e) => metrics.event(`${t.namespace}/${t.name}`, e),
    onVerdict: metrics.verdict,
  });

  return {
    stateFile: file?.path,
    withStatus: (state) => ({
      ...state,
      canaryRollouts: state.canaryRollouts.map((r) => {
        const stored = get(keyOf(r));
        // A status written in a manifest is ignored, as the API server ignores one sent with a spec.
        const { status: _ignored, ...rest } = r as CanaryRollout & { status?: unknown };
        return (stored ? { ...rest, status: stored } : rest) as CanaryRollout;
      }),
    }),
    sync: (list) => {
      rollouts = list;
      const live = new Set(list.map(keyOf));
      for (const k of [...memory.keys()]) if (!live.has(k)) memory.delete(k);
      file
        ?.retain(live)
        .catch((err) => o.logger.warn({ err: String(err), file: file?.path }, 'rollout state not written'));
      engine.sync(list);
    },
    kick: () => engine.kick(),
    status: get,
    close: async () => {
      engine.close();
      await file?.settled();
    },
  };
}

function keyOf(r: CanaryRollout): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`;
}
