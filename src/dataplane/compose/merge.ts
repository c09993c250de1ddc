/**
 * A fan-out's answer: one JSON object with each branch's answer under the branch's name, in the
 * declared order. Answers are spliced in as the text they came as (each was checked to parse), so
 * nothing is parsed into objects and serialised again, and numbers keep their spelling.
 *
 * onPartialFailure:
 * - Fail: any failed branch fails the whole answer (the runner does not even wait for the rest).
 * - Omit: a failed branch's member is left out.
 * - SetNull: a failed branch's member is null.
 * With Omit and SetNull, failures are listed under `_errors` ({branch: {code, message,
 * upstreamStatus?}}); the key cannot clash with a branch, whose names are DNS labels. When every
 * branch failed there is nothing to answer with, whatever the policy.
 */
import type { ErrorDefinition } from '../errors.ts';

export type PartialFailurePolicy = 'Fail' | 'Omit' | 'SetNull';

/** A branch's failure, as the client is told of it. */
export interface BranchFailure {
  error: ErrorDefinition;
  message: string;
  /** The status the upstream answered with, when it answered. */
  upstreamStatus?: number;
}

/** A branch that answered: its JSON text, or why it failed. */
export type BranchOutcome = { ok: true; json: string } | ({ ok: false } & BranchFailure);

export type MergeResult =
  | { ok: true; body: Buffer }
  /** `branch`: the index of the failure the client is told of; `all`: every branch failed. */
  | { ok: false; branch: number; all: boolean };

export function mergeBranches(
  names: readonly string[],
  outcomes: readonly BranchOutcome[],
  policy: PartialFailurePolicy,
): MergeResult {
  const firstFailure = outcomes.findIndex((o) => !o.ok);
  if (firstFailure >= 0 && (policy === 'Fail' || outcomes.every((o) => !o.ok))) {
    return { ok: false, branch: firstFailure, all: outcomes.every((o) => !o.ok) };
  }
  const members: string[] = [];
  let errors: Record<string, { code: string; message: string; upstreamStatus?: number }> | undefined;
  outcomes.forEach((o, i) => {
    const key = JSON.stringify(names[i]);
    if (o.ok) {
      members.push(`${key}:${o.json}`);
      return;
    }
    if (policy === 'SetNull') members.push(`${key}:null`);
    errors ??= {};
    errors[names[i]!] = {
      code: o.error.code,
      message: o.message,
      ...(o.upstreamStatus !== undefined && { upstreamStatus: o.upstreamStatus }),
    };
  });
  if (errors) members.push(`"_errors":${JSON.stringify(errors)}`);
  return { ok: true, body: Buffer.from(`{${members.join(',')}}`, 'utf8') };
}
