/**
 * CanaryRollout placement. A rollout governs every rule of its route that has both its stable and
 * its canary backend; there its weight wins over the route's own weights. Two rollouts on the same
 * rule: the older (then namespace/name) wins, the other is reported Conflicted.
 */

import type { CanaryRollout } from '../api/resources.ts';
import { ConditionType, Reason } from '../api/status.ts';
import type { CompiledCanary } from '../routing-table/types.ts';
import { admit, describeErrors, identify } from './admit.ts';
import { condition, programmedCondition, rejectedConditions } from './conditions.ts';
import { compareAge } from './ordering.ts';
import type { RouteModel } from './route-model.ts';
import type { ResourceStatus } from './status-types.ts';

export interface CanaryPlacement {
  /** By rule id. */
  byRule: Map<string, CompiledCanary>;
  statuses: ResourceStatus[];
}

interface Candidate {
  key: string;
  created: string | undefined;
  rollout: CanaryRollout;
  generation: number;
  route: RouteModel;
  ruleIds: string[];
  weight: number;
}

/** The weight the table serves: `spec.weight` by hand, the engine's `status.stepWeight` while steps run. */
export function effectiveWeight(r: CanaryRollout): number {
  if (r.spec.steps && r.spec.steps.length > 0) {
    const w = r.status?.stepWeight;
    return typeof w === 'number' && Number.isInteger(w) && w >= 0 && w <= 100 ? w : 0;
  }
  return r.spec.weight;
}

export function placeRollouts(
  raws: readonly unknown[],
  routes: ReadonlyMap<string, RouteModel>,
  rejectedRoutes: ReadonlySet<string>,
): CanaryPlacement {
  const statuses: ResourceStatus[] = [];
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of raws.entries()) {
    const id = identify(raw, i);
    const key = `${id.namespace}/${id.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const reject = (reason: string, message: string, refsProblem = false) => {
      statuses.push({
        kind: 'CanaryRollout',
        namespace: id.namespace,
        name: id.name,
        status: {
          observedGeneration: id.generation,
          conditions: rejectedConditions(reason, message, id.generation, refsProblem),
          servedWeight: 0,
        },
      });
    };
    const a = admit(raw, 'CanaryRollout');
    if (!a.ok) {
      reject(Reason.Invalid, describeErrors(a.errors));
      continue;
    }
    const rollout = a.resource as CanaryRollout;
    const routeKey = `${id.namespace}/${rollout.spec.routeRef.name}`;
    const route = routes.get(routeKey);
    if (!route) {
      const why = rejectedRoutes.has(routeKey)
        ? `ModelRoute ${routeKey} is not accepted`
        : `ModelRoute ${routeKey} not found`;
      reject(Reason.RouteNotFound, why, true);
      continue;
    }
    const { stableBackend, canaryBackend } = rollout.spec;
    const ruleIds = route.rules
      .filter((r) => {
        const names = new Set(r.spec.backends.map((b) => b.name));
        return names.has(stableBackend) && names.has(canaryBackend);
      })
      .map((r) => r.id);
    if (ruleIds.length === 0) {
      reject(
        Reason.InvalidBackend,
        `ModelRoute ${routeKey} has no rule with both backends ${stableBackend} and ${canaryBackend}`,
        true,
      );
      continue;
    }
    candidates.push({
      key,
      created: rollout.metadata.creationTimestamp,
      rollout,
      generation: id.generation,
      route,
      ruleIds,
      weight: effectiveWeight(rollout),
    });
  }

  candidates.sort(compareAge);
  const byRule = new Map<string, CompiledCanary>();
  const owner = new Map<string, string>();
  for (const c of candidates) {
    const won: string[] = [];
    const lost: string[] = [];
    for (const ruleId of c.ruleIds) {
      if (owner.has(ruleId)) {
        lost.push(`${ruleId} (governed by CanaryRollout ${owner.get(ruleId)})`);
        continue;
      }
      owner.set(ruleId, c.key);
      won.push(ruleId);
      const spec = c.rollout.spec;
      const placed: CompiledCanary = {
        rollout: c.key,
        stableBackend: spec.stableBackend,
        canaryBackend: spec.canaryBackend,
        weightPercent: c.weight,
      };
      if (spec.stickiness) {
        const { header, cookie, consumer } = spec.stickiness;
        placed.stickiness = header
          ? { header: header.toLowerCase() }
          : cookie
            ? { cookie }
            : { consumer: consumer === true };
      }
      if (spec.override) {
        const { name, always, never } = spec.override.header;
        placed.override = { header: name.toLowerCase() };
        if (always !== undefined) placed.override.always = always;
        if (never !== undefined) placed.override.never = never;
      }
      if (spec.preview) {
        placed.preview = spec.preview.header
          ? { header: spec.preview.header.name.toLowerCase(), value: spec.preview.header.value }
          : { hostname: spec.preview.hostname ?? '' };
      }
      if (spec.mirror) placed.mirror = { percent: spec.mirror.percent, maxInFlight: spec.mirror.maxInFlight };
      if (spec.strategy === 'BlueGreen') placed.strategy = 'BlueGreen';
      byRule.set(ruleId, placed);
    }
    const g = c.generation;
    const accepted = won.length > 0;
    const ruleNames = (ids: string[]) => ids.map((id) => id.slice(c.route.key.length + 1)).join(', ');
    const message = accepted
      ? `governs ModelRoute ${c.route.key} rules [${ruleNames(won)}]: canary ${c.weight}%, the route's own weights for ${c.rollout.spec.stableBackend}/${c.rollout.spec.canaryBackend} are ignored` +
        (lost.length > 0 ? `; not governing ${lost.join(', ')}` : '')
      : `every matching rule is governed by another rollout (older, or first by namespace/name): ${lost.join(', ')}`;
    statuses.push({
      kind: 'CanaryRollout',
      namespace: c.rollout.metadata.namespace ?? 'default',
      name: c.rollout.metadata.name,
      status: {
        observedGeneration: g,
        conditions: [
          condition(
            ConditionType.Accepted,
            accepted,
            accepted ? Reason.Accepted : Reason.Conflicted,
            message,
            g,
          ),
          previewProblem(c)
            ? condition(ConditionType.ResolvedRefs, false, Reason.InvalidPreview, previewProblem(c)!, g)
            : condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'references resolved', g),
          programmedCondition(accepted, g),
        ],
        servedWeight: accepted ? c.weight : 0,
      },
    });
  }
  return { byRule, statuses };
}

/** A preview hostname the route does not serve would never be reached. */
function previewProblem(c: Candidate): string | undefined {
  const host = c.rollout.spec.preview?.hostname;
  if (host === undefined) return undefined;
  const served = c.route.hostnames.some(
    (h) => h === '' || h === host || (h.startsWith('*.') && host.endsWith(h.slice(1))),
  );
  if (served) return undefined;
  return `preview hostname ${host} is not among ModelRoute ${c.route.key} hostnames (${c.route.hostnames.join(', ')}): no request can reach the preview that way`;
}
