/** Builders for the conditions the compiler emits (no timestamps: the status writer stamps them). */
import { type Condition, ConditionType, Reason } from '../api/status.ts';

export function condition(
  type: string,
  ok: boolean | 'Unknown',
  reason: string,
  message: string,
  generation: number,
): Condition {
  const status = ok === 'Unknown' ? 'Unknown' : ok ? 'True' : 'False';
  return { type, status, reason, message, observedGeneration: generation };
}

/** Programmed is decided by the proxies: the compiler can only say "pending" or "will not be". */
export function programmedCondition(accepted: boolean, generation: number): Condition {
  return accepted
    ? condition(
        ConditionType.Programmed,
        'Unknown',
        Reason.Pending,
        'waiting for proxies to apply the table',
        generation,
      )
    : condition(
        ConditionType.Programmed,
        false,
        Reason.NotProgrammed,
        'not programmed: the resource is not accepted',
        generation,
      );
}

/**
 * Conditions of a resource that is left out of the table. `refsProblem` says whether its references
 * were the reason (ResolvedRefs False) or were never looked at because it is invalid (Unknown).
 */
export function rejectedConditions(
  reason: string,
  message: string,
  generation: number,
  refsProblem = false,
): Condition[] {
  return [
    condition(ConditionType.Accepted, false, reason, message, generation),
    refsProblem
      ? condition(ConditionType.ResolvedRefs, false, reason, message, generation)
      : condition(
          ConditionType.ResolvedRefs,
          'Unknown',
          Reason.Invalid,
          'not checked: the resource is not valid',
          generation,
        ),
    programmedCondition(false, generation),
  ];
}
