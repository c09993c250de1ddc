/**
 * Shapes shared by the rollout engine's parts: the state machine (state-machine.ts), the analysis
 * of canary against stable (analysis.ts, prometheus-provider.ts) and the controller loop that
 * drives them. Plain data; times are Unix milliseconds.
 */

export type Phase = 'Progressing' | 'Paused' | 'Promoted' | 'RolledBack' | 'Failed';
export type Verdict = 'Pass' | 'Fail' | 'Inconclusive';

/** One step of `spec.steps` (exactly one field set). */
export interface RolloutStep {
  setWeight?: number;
  /** durationMs undefined: until resumed. */
  pause?: { durationMs?: number };
  analysis?: AnalysisSpec;
}

export interface AnalysisSpec {
  intervalMs: number;
  /** Canary requests needed in an interval before it is judged; fewer: Inconclusive. */
  minRequests: number;
  maxErrorRate?: number;
  maxLatencyP99Ratio?: number;
  maxTtftRatio?: number;
  /** Failed intervals tolerated; one more rolls back. */
  failureLimit: number;
  /** Passed intervals needed to complete the step. */
  intervals: number;
}

/** What the state machine reads of a CanaryRollout. */
export interface RolloutInput {
  /** Hash of what defines a rollout run (backends, steps, strategy): a change starts over. */
  revision: string;
  steps: RolloutStep[];
  /** spec.paused: hold where it is. */
  paused: boolean;
  /** Annotation values (modelgate.dev/resume, /promote, /abort); each acts once per value. */
  actions: { resume?: string; promote?: string; abort?: string };
}

/** One interval's judgement. */
export interface AnalysisResult {
  verdict: Verdict;
  /** Why (thresholds exceeded, too few requests, provider error). */
  message: string;
  canaryRequests: number;
  stableRequests: number;
  canaryErrorRate?: number;
  stableErrorRate?: number;
  latencyP99Ratio?: number;
  ttftRatio?: number;
  /** The provider could not answer (Prometheus down): not counted as Pass or Fail. */
  error?: boolean;
}

/** A weight change, for status history and the status page. */
export interface WeightChange {
  weight: number;
  at: number;
  reason: string;
}

/** The engine's state: lives in the resource's status (ms times as RFC 3339 there). */
export interface RolloutState {
  revision: string;
  phase: Phase;
  /** Index of the running step; steps.length once all are done. */
  currentStep: number;
  /** Canary percent the table should serve. */
  stepWeight: number;
  /** When the current step started (pause durations and analysis intervals count from it). */
  stepStartedAt: number;
  /** Analysis step: intervals passed and failed so far (reset when a step starts). */
  passed: number;
  failed: number;
  /** Consecutive intervals the provider could not answer. */
  errors: number;
  /** Analysis step: when the running interval started (absent before it starts and while held). */
  intervalStartedAt?: number;
  /** When spec.paused took hold (absent when not held): the step's clock stands still meanwhile. */
  pausedAt?: number;
  lastAnalysis?: AnalysisResult & { at: number };
  /** Action annotation values already acted on. */
  handled: { resume?: string; promote?: string; abort?: string };
  message: string;
  /** Most recent last, at most HISTORY_LIMIT. */
  history: WeightChange[];
}

export const HISTORY_LIMIT = 20;

/** Something a person should see: becomes a Kubernetes Event on the CanaryRollout. */
export interface RolloutEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}
