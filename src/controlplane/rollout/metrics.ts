/**
 * The rollout engine's metrics, shared by the controller and standalone mode: verdicts judged,
 * rollbacks, and the canary share each rollout serves.
 */
import type { CanaryRollout } from '../../api/resources.ts';
import { CallbackFamily, CounterFamily } from '../../observability/metric-families.ts';
import type { AnalysisResult, RolloutEvent } from './types.ts';

export interface RolloutMetrics {
  /** Register these with the process's registry. */
  readonly families: readonly (CounterFamily | CallbackFamily)[];
  /** Pass as the engine's `onVerdict`. */
  verdict(rollout: string, result: AnalysisResult): void;
  /** Call for every event the engine emits (counts rollbacks and failures). */
  event(rollout: string, event: RolloutEvent): void;
}

/** `rollouts` returns the CanaryRollouts as last seen, with their status. */
export function rolloutMetrics(rollouts: () => readonly CanaryRollout[]): RolloutMetrics {
  const verdicts = new CounterFamily(
    'modelgate_rollout_verdicts_total',
    'Analysis intervals judged, by rollout and verdict (Pass, Fail, Inconclusive; error: the figures could not be read).',
    ['rollout', 'verdict'],
  );
  const rollbacks = new CounterFamily(
    'modelgate_rollout_rollbacks_total',
    'Rollouts rolled back (analysis failed, aborted) or failed, by rollout.',
    ['rollout'],
  );
  const weight = new CallbackFamily(
    'modelgate_rollout_weight',
    'Canary share in percent each rollout serves (status.servedWeight), by rollout and phase.',
    'gauge',
    () =>
      rollouts().map((r) => [
        {
          rollout: `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`,
          phase: String(r.status?.phase ?? ''),
        },
        Number(r.status?.servedWeight ?? r.status?.stepWeight ?? r.spec.weight ?? 0),
      ]),
  );
  return {
    families: [verdicts, rollbacks, weight],
    verdict: (rollout, result) => verdicts.child([rollout, result.error ? 'error' : result.verdict]).value++,
    event: (rollout, e) => {
      if (e.reason === 'RolledBack' || e.reason === 'Failed') rollbacks.child([rollout]).value++;
    },
  };
}
