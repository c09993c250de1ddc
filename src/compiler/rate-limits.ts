/**
 * RateLimitPolicy placement, Gateway API policy-attachment style: one policy per route. When two
 * policies target the same route, the older one (then namespace/name) is enforced there and the
 * other is told so in its status. Targets that do not exist are reported; the rest still attach.
 */
import type { RateLimitPolicy } from '../api/resources.ts';
import { ConditionType, Reason } from '../api/status.ts';
import type { CompiledRateLimitPolicy } from '../routing-table/types.ts';
import { admit, describeErrors, identify } from './admit.ts';
import { condition, programmedCondition, rejectedConditions } from './conditions.ts';
import { compareAge } from './ordering.ts';
import { compareText } from './precedence.ts';
import type { RouteModel } from './route-model.ts';
import type { ResourceStatus } from './status-types.ts';
import { parseDurationMs } from './units.ts';

export interface RateLimitPlacement {
  /** Policy id by route key. */
  byRoute: Map<string, string>;
  /** Policies enforced on at least one route, sorted by id. */
  policies: CompiledRateLimitPolicy[];
  statuses: ResourceStatus[];
}

export function compilePolicy(key: string, p: RateLimitPolicy): CompiledRateLimitPolicy {
  const s = p.spec;
  const onExceeded: CompiledRateLimitPolicy['onExceeded'] = { action: s.onExceeded?.action ?? 'Reject' };
  if (s.onExceeded?.maxQueue !== undefined) onExceeded.maxQueue = s.onExceeded.maxQueue;
  if (s.onExceeded?.maxWait !== undefined) onExceeded.maxWaitMs = parseDurationMs(s.onExceeded.maxWait);
  return {
    id: key,
    scope: s.scope,
    failureMode: s.failureMode,
    limits: s.limits.map((l) => ({
      name: l.name,
      // Header names are lower-case in the table, as in matches; claim names are case-sensitive.
      key: l.key.map((k) =>
        k.name === undefined
          ? { type: k.type }
          : { type: k.type, name: k.type === 'Header' ? k.name.toLowerCase() : k.name },
      ),
      algorithm: l.algorithm,
      amount: l.amount,
      periodMs: parseDurationMs(l.period),
      burst: l.burst ?? 0,
      cost: l.cost,
      overrides: (l.overrides ?? []).map((o) => ({ group: o.group, amount: o.amount })),
    })),
    onExceeded,
  };
}

interface Candidate {
  key: string;
  created: string | undefined;
  policy: RateLimitPolicy;
  generation: number;
  targets: string[];
  missing: string[];
}

export function placePolicies(
  raws: readonly unknown[],
  routes: ReadonlyMap<string, RouteModel>,
  rejectedRoutes: ReadonlySet<string>,
): RateLimitPlacement {
  const statuses: ResourceStatus[] = [];
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  raws.forEach((raw, i) => {
    const id = identify(raw, i);
    const key = `${id.namespace}/${id.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    const a = admit(raw, 'RateLimitPolicy');
    if (!a.ok) {
      statuses.push(rejected(id, Reason.Invalid, describeErrors(a.errors)));
      return;
    }
    const policy = a.resource as RateLimitPolicy;
    const targets: string[] = [];
    const missing: string[] = [];
    for (const ref of policy.spec.targetRefs) {
      const routeKey = `${id.namespace}/${ref.name}`;
      if (routes.has(routeKey)) {
        if (!targets.includes(routeKey)) targets.push(routeKey);
      } else {
        missing.push(
          rejectedRoutes.has(routeKey)
            ? `ModelRoute ${routeKey} is not accepted`
            : `ModelRoute ${routeKey} not found`,
        );
      }
    }
    candidates.push({
      key,
      created: policy.metadata.creationTimestamp,
      policy,
      generation: id.generation,
      targets,
      missing,
    });
  });

  candidates.sort(compareAge);
  const byRoute = new Map<string, string>();
  const policies: CompiledRateLimitPolicy[] = [];
  for (const c of candidates) {
    const attached: string[] = [];
    const conflicts: string[] = [];
    for (const t of c.targets) {
      const holder = byRoute.get(t);
      if (holder) {
        conflicts.push(`ModelRoute ${t} is governed by RateLimitPolicy ${holder}`);
      } else {
        byRoute.set(t, c.key);
        attached.push(t);
      }
    }
    const g = c.generation;
    const accepted = attached.length > 0;
    if (accepted) policies.push(compilePolicy(c.key, c.policy));
    const notes = [...conflicts, ...c.missing];
    const reason = accepted
      ? Reason.Accepted
      : conflicts.length > 0
        ? Reason.Conflicted
        : Reason.TargetNotFound;
    const acceptedMsg = accepted
      ? `enforced on ${attached.join(', ')}${notes.length > 0 ? `; not on: ${notes.join('; ')}` : ''}`
      : `enforced on no route: ${notes.join('; ')}`;
    statuses.push({
      kind: 'RateLimitPolicy',
      namespace: c.policy.metadata.namespace ?? 'default',
      name: c.policy.metadata.name,
      status: {
        observedGeneration: g,
        attachedRoutes: attached.sort(compareText),
        conditions: [
          condition(ConditionType.Accepted, accepted, reason, acceptedMsg, g),
          c.missing.length > 0
            ? condition(ConditionType.ResolvedRefs, false, Reason.TargetNotFound, c.missing.join('; '), g)
            : condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'every target resolved', g),
          programmedCondition(accepted, g),
        ],
      },
    });
  }
  policies.sort((a, b) => compareText(a.id, b.id));
  return { byRoute, policies, statuses };
}

function rejected(
  id: { namespace: string; name: string; generation: number },
  reason: string,
  message: string,
): ResourceStatus {
  return {
    kind: 'RateLimitPolicy',
    namespace: id.namespace,
    name: id.name,
    status: {
      observedGeneration: id.generation,
      attachedRoutes: [],
      conditions: rejectedConditions(reason, message, id.generation),
    },
  };
}
