/**
 * Between a CanaryRollout resource and the state machine: the input it reads (revision, steps in
 * milliseconds, pause flag, action annotations) and its state in the resource's status (times as
 * RFC 3339 there, Unix ms here). The status round-trip is exact to the millisecond, which is what
 * lets a new leader resume a rollout where the old one left it.
 */
import { createHash } from 'node:crypto';
import type { CanaryRollout } from '../../api/resources.ts';
import { parseDurationMs } from '../../compiler/units.ts';
import type { AnalysisResult, RolloutInput, RolloutState, RolloutStep, WeightChange } from './types.ts';

export const ACTION_ANNOTATIONS = {
  resume: 'modelgate.dev/resume',
  promote: 'modelgate.dev/promote',
  abort: 'modelgate.dev/abort',
} as const;

/** What defines a run: a change starts the rollout over (the weight, pause flag and actions do not). */
export function revisionOf(r: CanaryRollout): string {
  const s = r.spec;
  const text = JSON.stringify([s.stableBackend, s.canaryBackend, s.strategy ?? 'Canary', s.steps ?? []]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

export function inputOf(r: CanaryRollout): RolloutInput {
  const steps: RolloutStep[] = (r.spec.steps ?? []).map((s) => {
    if (s.setWeight !== undefined) return { setWeight: s.setWeight };
    if (s.pause !== undefined) {
      return {
        pause: s.pause.duration === undefined ? {} : { durationMs: parseDurationMs(s.pause.duration) },
      };
    }
    const a = s.analysis!;
    return {
      analysis: {
        intervalMs: parseDurationMs(a.interval ?? '1m'),
        minRequests: a.minRequests ?? 100,
        failureLimit: a.failureLimit ?? 0,
        intervals: a.intervals ?? 1,
        ...(a.maxErrorRate !== undefined ? { maxErrorRate: a.maxErrorRate } : {}),
        ...(a.maxLatencyP99Ratio !== undefined ? { maxLatencyP99Ratio: a.maxLatencyP99Ratio } : {}),
        ...(a.maxTtftRatio !== undefined ? { maxTtftRatio: a.maxTtftRatio } : {}),
      },
    };
  });
  const annotations = r.metadata.annotations ?? {};
  const actions: RolloutInput['actions'] = {};
  for (const [k, name] of Object.entries(ACTION_ANNOTATIONS) as [keyof typeof ACTION_ANNOTATIONS, string][]) {
    const v = annotations[name];
    if (typeof v === 'string' && v !== '') actions[k] = v;
  }
  return { revision: revisionOf(r), steps, paused: r.spec.paused === true, actions };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const ms = (v: unknown): number | undefined => {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isFinite(t) ? t : undefined;
};
const num = (v: unknown, d = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : d);

/** The status fields the engine owns (null clears a field under merge-patch). */
export function statusOf(state: RolloutState): Record<string, unknown> {
  const a = state.lastAnalysis;
  return {
    revision: state.revision,
    phase: state.phase,
    currentStep: state.currentStep,
    stepWeight: state.stepWeight,
    message: state.message.slice(0, 1024),
    stepStartedAt: iso(state.stepStartedAt),
    intervalStartedAt: state.intervalStartedAt === undefined ? null : iso(state.intervalStartedAt),
    pausedAt: state.pausedAt === undefined ? null : iso(state.pausedAt),
    analysisRuns: { passed: state.passed, failed: state.failed, errors: state.errors },
    lastAnalysis: a
      ? {
          verdict: a.verdict,
          message: a.message.slice(0, 1024),
          at: iso(a.at),
          canaryRequests: Math.round(a.canaryRequests),
          stableRequests: Math.round(a.stableRequests),
          // Absent figures are null, not omitted: under a merge patch an omitted field would keep
          // the previous analysis's value.
          canaryErrorRate: a.canaryErrorRate ?? null,
          stableErrorRate: a.stableErrorRate ?? null,
          latencyP99Ratio: a.latencyP99Ratio ?? null,
          ttftRatio: a.ttftRatio ?? null,
          error: a.error ? true : null,
        }
      : null,
    handledActions: { ...state.handled },
    history: state.history.map((h) => ({ weight: h.weight, at: iso(h.at), reason: h.reason.slice(0, 256) })),
  };
}

/** The state kept in a status, or undefined when the engine never wrote one. */
export function stateOf(status: Record<string, unknown> | undefined): RolloutState | undefined {
  if (!status || typeof status.revision !== 'string') return undefined;
  const stepStartedAt = ms(status.stepStartedAt);
  const phase = status.phase;
  if (stepStartedAt === undefined || typeof phase !== 'string') return undefined;
  const runs = (status.analysisRuns ?? {}) as Record<string, unknown>;
  const la = status.lastAnalysis as Record<string, unknown> | null | undefined;
  const state: RolloutState = {
    revision: status.revision,
    phase: phase as RolloutState['phase'],
    currentStep: num(status.currentStep),
    stepWeight: num(status.stepWeight),
    stepStartedAt,
    passed: num(runs.passed),
    failed: num(runs.failed),
    errors: num(runs.errors),
    handled: { ...((status.handledActions ?? {}) as RolloutState['handled']) },
    message: typeof status.message === 'string' ? status.message : '',
    history: (Array.isArray(status.history) ? status.history : []).flatMap((h: Record<string, unknown>) => {
      const at = ms(h.at);
      return at === undefined
        ? []
        : [{ weight: num(h.weight), at, reason: String(h.reason ?? '') } as WeightChange];
    }),
  };
  const interval = ms(status.intervalStartedAt);
  if (interval !== undefined) state.intervalStartedAt = interval;
  const paused = ms(status.pausedAt);
  if (paused !== undefined) state.pausedAt = paused;
  if (la && typeof la.verdict === 'string') {
    const at = ms(la.at) ?? stepStartedAt;
    const result: AnalysisResult & { at: number } = {
      verdict: la.verdict as AnalysisResult['verdict'],
      message: String(la.message ?? ''),
      canaryRequests: num(la.canaryRequests),
      stableRequests: num(la.stableRequests),
      at,
    };
    for (const k of ['canaryErrorRate', 'stableErrorRate', 'latencyP99Ratio', 'ttftRatio'] as const) {
      if (typeof la[k] === 'number') result[k] = la[k] as number;
    }
    if (la.error === true) result.error = true;
    state.lastAnalysis = result;
  }
  return state;
}
