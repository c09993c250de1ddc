/** The health machinery: active checks, passive outlier ejection, and their combination. */
export {
  ActiveHealthChecker,
  type ActiveHealthCheckerOptions,
  type ActiveHealthStats,
  type CheckStatus,
  type HealthCheckSettings,
  type HealthTarget,
  httpProbe,
  type Probe,
  type ProbeResult,
  targetKey,
} from './active-checker.ts';
export { EndpointHealth, type EndpointHealthOptions } from './endpoint-health.ts';
export {
  type EjectionStatus,
  type FailureOutcome,
  type Outcome,
  OutlierDetector,
  type OutlierDetectorOptions,
  OutlierGroup,
  type OutlierSettings,
  type OutlierStats,
} from './outlier-detector.ts';
export { healthTargets } from './targets.ts';
export { monotonicNow, realTimers, type Timers } from './timers.ts';
