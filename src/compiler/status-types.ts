import type { Condition } from '../api/status.ts';

/**
 * The part of a resource's status that the compiler owns. Whoever writes status merges it into
 * the stored status (the rollout engine owns `phase`, `currentStep` and `stepWeight`) and stamps
 * `lastTransitionTime` on conditions whose status changed.
 */
export interface ResourceStatus {
  kind: 'ModelRoute' | 'RateLimitPolicy' | 'CanaryRollout';
  namespace: string;
  name: string;
  status: {
    observedGeneration: number;
    conditions: Condition[];
    /** RateLimitPolicy: `namespace/name` of the routes it is enforced on. */
    attachedRoutes?: string[];
    /** CanaryRollout: canary share in the table, in percent. */
    servedWeight?: number;
  };
}
