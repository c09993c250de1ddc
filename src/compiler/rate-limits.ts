/**
 * RateLimitPolicy placement, Gateway API policy-attachment style: one policy per route. When two
 * policies target the same route, the older one (then namespace/name) is enforced there and the
 * other is told so in its status. Targets that do not exist are reported; the rest still attach.
 *
 * A Global policy whose Redis Secret is missing or malformed is still placed (its routes stay
 * governed), with `redisUnavailable` in the table: proxies then apply its failureMode, exactly as
 * if Redis were down, and ResolvedRefs says why.
 */
import type { RateLimitPolicy } from '../api/resources.ts';
import { ConditionType, Reason } from '../api/status.ts';
import type { CompiledPriority, CompiledRateLimitPolicy, CompiledRedis } from '../routing-table/types.ts';
import { admit, describeErrors, identify } from './admit.ts';
import { condition, programmedCondition, rejectedConditions } from './conditions.ts';
import { compareAge } from './ordering.ts';
import { compareText } from './precedence.ts';
import type { RouteModel } from './route-model.ts';
import { type SecretIndex, secretValue } from './secrets.ts';
import type { ResourceStatus } from './status-types.ts';
import { parseDurationMs } from './units.ts';

export interface RateLimitPlacement {
  /** Policy id by route key. */
  byRoute: Map<string, string>;
  /** Policies enforced on at least one route, sorted by id. */
  policies: CompiledRateLimitPolicy[];
  statuses: ResourceStatus[];
}

const DEFAULT_REDIS_TIMEOUT = '50ms';

export function compilePolicy(
  key: string,
  p: RateLimitPolicy,
  secrets: SecretIndex,
  problems: string[] = [],
): CompiledRateLimitPolicy {
  const s = p.spec;
  const onExceeded: CompiledRateLimitPolicy['onExceeded'] = { action: s.onExceeded?.action ?? 'Reject' };
  if (s.onExceeded?.maxQueue !== undefined) onExceeded.maxQueue = s.onExceeded.maxQueue;
  if (s.onExceeded?.maxWait !== undefined) onExceeded.maxWaitMs = parseDurationMs(s.onExceeded.maxWait);
  if (s.onExceeded?.priorities !== undefined) {
    onExceeded.priorities = s.onExceeded.priorities.map(
      (pr): CompiledPriority =>
        pr.header
          ? { header: pr.header.name.toLowerCase(), value: pr.header.value }
          : { group: pr.group ?? '' },
    );
  }
  const compiled: CompiledRateLimitPolicy = {
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
      ...(l.cost === 'ModelTokens' ? { completionTokensEstimate: l.completionTokensEstimate ?? 256 } : {}),
    })),
    onExceeded,
  };
  if (s.scope === 'Global' && s.redis) {
    const namespace = p.metadata.namespace ?? 'default';
    const redis = compileRedis(s.redis, namespace, secrets);
    if (redis.ok) compiled.redis = redis.redis;
    else {
      compiled.redisUnavailable = redis.message;
      problems.push(redis.message);
    }
  }
  if (s.splitAcrossProxies === true) compiled.splitAcrossProxies = true;
  if (s.maxInFlight !== undefined) compiled.maxInFlight = s.maxInFlight;
  return compiled;
}

export type RedisResult = { ok: true; redis: CompiledRedis } | { ok: false; message: string };

/** A Redis connection from its Secret; also the response cache's (`at` names the field in messages). */
export function compileRedis(
  ref: { secretRef: { name: string }; timeout?: string },
  namespace: string,
  secrets: SecretIndex,
  at = 'spec.redis.secretRef',
): RedisResult {
  const name = ref.secretRef.name;
  const where = `${at}: secret ${namespace}/${name}`;
  const url = secretValue(secrets, namespace, name, 'url');
  if (!url.ok) return { ok: false, message: `${at}: ${url.message}` };
  let parsed: URL;
  try {
    parsed = new URL(url.value.trim());
  } catch {
    return { ok: false, message: `${where} key url is not a URL` };
  }
  if ((parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') || parsed.hostname === '') {
    return { ok: false, message: `${where} key url must be redis://host:port or rediss://host:port` };
  }
  const redis: CompiledRedis = {
    url: url.value.trim(),
    cluster: false,
    timeoutMs: parseDurationMs(ref.timeout ?? DEFAULT_REDIS_TIMEOUT),
  };
  const optional = (k: string): string | undefined => {
    const v = secretValue(secrets, namespace, name, k);
    return v.ok ? v.value.trim() : undefined;
  };
  const username = optional('username');
  const password = optional('password');
  const cluster = optional('cluster');
  if (username) redis.username = username;
  if (password) redis.password = password;
  if (cluster !== undefined) {
    if (cluster !== 'true' && cluster !== 'false') {
      return { ok: false, message: `${where} key cluster must be "true" or "false"` };
    }
    redis.cluster = cluster === 'true';
  }
  return { ok: true, redis };
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
  secrets: SecretIndex,
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
    const refProblems: string[] = [];
    const compiled = compilePolicy(c.key, c.policy, secrets, refProblems);
    if (accepted) policies.push(compiled);
    const notes = [...conflicts, ...c.missing];
    const unresolved = [...c.missing, ...refProblems];
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
          unresolved.length > 0
            ? condition(
                ConditionType.ResolvedRefs,
                false,
                c.missing.length > 0 ? Reason.TargetNotFound : refReason(c.policy, secrets),
                unresolved.join('; '),
                g,
              )
            : condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'every reference resolved', g),
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

/** SecretNotFound when the Redis Secret is absent, InvalidSecret when it is there but unusable. */
function refReason(p: RateLimitPolicy, secrets: SecretIndex): string {
  const ns = p.metadata.namespace ?? 'default';
  const name = p.spec.redis?.secretRef.name;
  return name !== undefined && !secrets.has(`${ns}/${name}`) ? Reason.SecretNotFound : Reason.InvalidSecret;
}
