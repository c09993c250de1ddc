/**
 * compile(state) → { table, statuses }. Pure: no I/O, clock or randomness; the same state gives
 * the same bytes. Every input resource gets exactly one status; a bad resource is left out of the
 * table with its status saying why, and never affects the others.
 */
import type { ClusterState } from '../api/cluster-state.ts';
import type { ModelRoute } from '../api/resources.ts';
import { ConditionType, Reason } from '../api/status.ts';
import { featuresOf } from '../routing-table/features.ts';
import { hashRoutesPart, sortKeys, tableHash } from '../routing-table/hash.ts';
import {
  type CompiledAuth,
  type CompiledBackend,
  type CompiledMatch,
  type CompiledRule,
  type CompiledTlsCertificate,
  type EndpointsPart,
  type RoutingTable,
  TABLE_SCHEMA_VERSION,
} from '../routing-table/types.ts';
import { admit, describeErrors, identify } from './admit.ts';
import { resolveCacheStore } from './cache.ts';
import { placeRollouts } from './canary.ts';
import { condition, programmedCondition, rejectedConditions } from './conditions.ts';
import {
  type EndpointIndex,
  indexEndpoints,
  type Resolution,
  resolveService,
  resolveUrls,
  serviceEndpointsKey,
  urlEndpointsKey,
} from './endpoints.ts';
import { comparePrecedence, compareText, matchIdentity, type RankedMatch } from './precedence.ts';
import { placePolicies } from './rate-limits.ts';
import { buildRouteModel, type RouteModel, type RuleModel } from './route-model.ts';
import {
  compileAuth,
  compileAuthorization,
  compileCors,
  compileRouteTls,
  resolveBackendCredentials,
} from './route-security.ts';
import { indexSecrets, type SecretIndex } from './secrets.ts';
import type { ResourceStatus } from './status-types.ts';
import { parseByteSize, parseDurationMs } from './units.ts';
import { resolveUpstreamTls } from './upstream-tls.ts';
import { normaliseWeights } from './weights.ts';

export type { ResourceStatus } from './status-types.ts';

export interface CompileResult {
  table: RoutingTable;
  /** One per input custom resource, sorted by kind, namespace, name. */
  statuses: ResourceStatus[];
}

/** Sources may hand over anything; a missing list is an empty one. */
function list<T>(value: readonly T[] | undefined): readonly T[] {
  return Array.isArray(value) ? value : [];
}

interface RouteReport {
  model: RouteModel;
  /** ResolvedRefs problems: [reason, message]. */
  refProblems: [string, string][];
  /** Extra facts for the Accepted message. */
  notes: string[];
  liveMatches: number;
  shadowed: string[];
  /** Why an otherwise acceptable route is not served (its mTLS cannot be enforced). */
  blocked?: string;
}

export function compile(state: ClusterState): CompileResult {
  const statuses: ResourceStatus[] = [];
  const routes = new Map<string, RouteModel>();
  const rejectedRoutes = new Set<string>();

  list(state?.modelRoutes).forEach((raw, i) => {
    const id = identify(raw, i);
    const key = `${id.namespace}/${id.name}`;
    if (routes.has(key) || rejectedRoutes.has(key)) return;
    const a = admit(raw, 'ModelRoute');
    const built = a.ok ? buildRouteModel(a.resource as ModelRoute) : { ...a, reason: Reason.Invalid };
    if (!built.ok) {
      rejectedRoutes.add(key);
      statuses.push({
        kind: 'ModelRoute',
        namespace: id.namespace,
        name: id.name,
        status: {
          observedGeneration: id.generation,
          conditions: rejectedConditions(built.reason, describeErrors(built.errors), id.generation),
        },
      });
      return;
    }
    routes.set(key, built.model);
  });

  const index = indexEndpoints(list(state?.services), list(state?.endpointSlices));
  const secretIndex = indexSecrets(list(state?.secrets));
  const reports = new Map<string, RouteReport>();
  const ranked: RankedMatch[] = [];
  const sortedRoutes = [...routes.values()].sort((a, b) => compareText(a.key, b.key));
  for (const route of sortedRoutes) {
    reports.set(route.key, { model: route, refProblems: [], notes: [], liveMatches: 0, shadowed: [] });
    for (const rule of route.rules) {
      rule.matches.forEach((m, matchIndex) => {
        for (const hostname of route.hostnames) {
          ranked.push({
            match: { ...m, hostname },
            created: route.created,
            routeKey: route.key,
            ruleIndex: rule.index,
            matchIndex,
          });
        }
      });
    }
  }

  // Precedence, then conflicts: of two identical matches on one host only the first is reachable.
  ranked.sort(comparePrecedence);
  const firstByIdentity = new Map<string, RankedMatch>();
  const matches: CompiledMatch[] = [];
  for (const r of ranked) {
    const identity = matchIdentity(r.match);
    const winner = firstByIdentity.get(identity);
    const report = reports.get(r.routeKey)!;
    if (winner) {
      const by =
        winner.routeKey === r.routeKey ? 'an earlier match of this route' : `ModelRoute ${winner.routeKey}`;
      const host = r.match.hostname === '' ? 'any host' : `host ${r.match.hostname}`;
      report.shadowed.push(
        `spec.rules[${r.ruleIndex}].matches[${r.matchIndex}]: on ${host}, shadowed by ${by}`,
      );
      continue;
    }
    firstByIdentity.set(identity, r);
    report.liveMatches++;
    matches.push(r.match);
  }

  // A route whose every match is shadowed is not accepted: like an invalid one it stays out of the
  // table, and rollouts and policies do not attach to it.
  // TLS first: a route whose client-certificate check cannot be enforced is not served at all.
  const certificates = new Map<string, CompiledTlsCertificate>();
  for (const route of sortedRoutes) {
    if (!route.spec.tls) continue;
    const report = reports.get(route.key)!;
    const hosts = route.hostnames;
    const tls = compileRouteTls(
      route.spec.tls,
      route.key,
      route.namespace,
      hosts,
      secretIndex,
      report.refProblems,
    );
    if (tls.blocked) report.blocked = tls.blocked;
    if (tls.certificate) certificates.set(route.key, tls.certificate);
  }
  const accepted = new Map<string, RouteModel>();
  const notAccepted = new Set(rejectedRoutes);
  for (const route of sortedRoutes) {
    const report = reports.get(route.key)!;
    if (report.liveMatches > 0 && !report.blocked) accepted.set(route.key, route);
    else notAccepted.add(route.key);
  }
  const canary = placeRollouts(list(state?.canaryRollouts), accepted, notAccepted);
  const limits = placePolicies(list(state?.rateLimitPolicies), accepted, notAccepted, secretIndex);

  const endpoints: Record<string, EndpointsPart> = {};
  // Several routes may share a Service; it is resolved once.
  const resolutions = new Map<string, Resolution>();
  const rules: CompiledRule[] = [];
  const auth: CompiledAuth[] = [];
  const tls: CompiledTlsCertificate[] = [];
  for (const route of sortedRoutes) {
    const inTable = accepted.has(route.key);
    const report = reports.get(route.key)!;
    if (route.spec.auth) {
      const compiledAuth = compileAuth(
        route.spec.auth,
        route.key,
        route.namespace,
        secretIndex,
        report.refProblems,
      );
      if (inTable) auth.push(compiledAuth);
    }
    const certificate = certificates.get(route.key);
    if (certificate && inTable) tls.push(certificate);
    for (const rule of route.rules) {
      // A route that is not accepted still gets its references checked, for its status.
      const compiled = compileRule(
        route,
        rule,
        index,
        secretIndex,
        resolutions,
        inTable ? endpoints : {},
        reports.get(route.key)!,
        canary.byRule,
        limits.byRoute.get(route.key),
      );
      if (inTable) rules.push(compiled);
    }
  }
  rules.sort((a, b) => compareText(a.id, b.id));

  for (const report of reports.values()) statuses.push(routeStatus(report));
  statuses.push(...canary.statuses, ...limits.statuses);
  statuses.sort(
    (a, b) =>
      compareText(a.kind, b.kind) || compareText(a.namespace, b.namespace) || compareText(a.name, b.name),
  );

  const liveMatches = matches.filter((m) => accepted.has(m.rule.slice(0, m.rule.lastIndexOf('/'))));
  const models = [...new Set(liveMatches.flatMap((m) => (m.model ? [m.model.value] : [])))].sort(compareText);
  const features = featuresOf({ rules });
  const routesPart = hashRoutesPart({
    rules,
    matches: liveMatches,
    rateLimitPolicies: limits.policies,
    models,
    // Only when used, so tables without them keep their shape (and hash).
    ...(auth.length > 0 ? { auth } : {}),
    ...(tls.length > 0 ? { tls } : {}),
    ...(features.length > 0 ? { features } : {}),
  });
  const sortedEndpoints = sortKeys(endpoints);
  return {
    table: {
      schemaVersion: TABLE_SCHEMA_VERSION,
      hash: tableHash(TABLE_SCHEMA_VERSION, routesPart, sortedEndpoints),
      routes: routesPart,
      endpoints: sortedEndpoints,
    },
    statuses,
  };
}

function compileRule(
  route: RouteModel,
  rule: RuleModel,
  index: EndpointIndex,
  secrets: SecretIndex,
  resolutions: Map<string, Resolution>,
  endpoints: Record<string, EndpointsPart>,
  report: RouteReport,
  canaries: ReadonlyMap<string, NonNullable<CompiledRule['canary']>>,
  rateLimitPolicy: string | undefined,
): CompiledRule {
  const spec = rule.spec;
  const backends: CompiledBackend[] = spec.backends.map((b, bi) => {
    let key: string;
    if (b.service) {
      key = serviceEndpointsKey(route.namespace, b.service.name, b.service.port);
      let res = resolutions.get(key);
      if (!res) {
        res = resolveService(index, route.namespace, b.service.name, b.service.port);
        resolutions.set(key, res);
      }
      endpoints[key] = res.part;
      if (!res.ok)
        report.refProblems.push([res.reason, `spec.rules[${rule.index}].backends[${bi}]: ${res.message}`]);
    } else {
      key = urlEndpointsKey(rule.id, b.name);
      endpoints[key] = resolveUrls(b.urls ?? []);
    }
    const out: CompiledBackend = { name: b.name, weight: b.weight, endpoints: key, protocol: b.protocol };
    if (b.modelRevision !== undefined) out.modelRevision = b.modelRevision;
    if (b.tls) {
      const defaultName = b.service
        ? `${b.service.name}.${route.namespace}.svc`
        : new URL(b.urls![0]!).hostname;
      const tls = resolveUpstreamTls(b.tls, defaultName, route.namespace, secrets);
      if (tls.ok) out.tls = tls.tls;
      else {
        out.unavailable = tls.message;
        report.refProblems.push([
          tls.reason,
          `spec.rules[${rule.index}].backends[${bi}].tls: ${tls.message}`,
        ]);
      }
    }
    if (b.credentials) {
      const c = resolveBackendCredentials(b.credentials, route.namespace, secrets);
      if (c.ok) out.credentials = c.credentials;
      else {
        out.unavailable ??= c.message;
        report.refProblems.push([
          c.reason,
          `spec.rules[${rule.index}].backends[${bi}].credentials: ${c.message}`,
        ]);
      }
    }
    return out;
  });

  // Weights ×100 so a canary percentage splits the pair's share exactly in integers.
  const raw = spec.backends.map((b) => b.weight * 100);
  const placed = canaries.get(rule.id);
  if (placed) {
    const si = backends.findIndex((b) => b.name === placed.stableBackend);
    const ci = backends.findIndex((b) => b.name === placed.canaryBackend);
    const pair = spec.backends[si]!.weight + spec.backends[ci]!.weight;
    raw[si] = pair * (100 - placed.weightPercent);
    raw[ci] = pair * placed.weightPercent;
    report.notes.push(
      `backend weights of rule ${rule.name} are set by CanaryRollout ${placed.rollout} (canary ${placed.weightPercent}%)`,
    );
  }
  const weights = normaliseWeights(raw);
  backends.forEach((b, i) => {
    b.weight = weights[i]!;
  });

  const lb = spec.loadBalancing!;
  const t = spec.timeouts!;
  const r = spec.retries!;
  const compiled: CompiledRule = {
    id: rule.id,
    route: route.key,
    name: rule.name,
    generation: route.generation,
    maxRequestBodyBytes: route.maxRequestBodyBytes,
    compression: route.compression,
    accessLog: route.accessLog,
    readsModel: rule.matches.some((m) => m.model !== undefined),
    backends,
    loadBalancing: { algorithm: lb.algorithm },
    timeouts: {
      connectMs: parseDurationMs(t.connect),
      firstByteMs: parseDurationMs(t.firstByte),
      idleMs: parseDurationMs(t.idle),
    },
    retries: {
      attempts: r.attempts,
      retryOn: [...r.retryOn].sort(compareText),
      budgetPercent: r.budgetPercent,
      maxReplayBodyBytes: parseByteSize(r.maxReplayBodySize),
    },
  };
  if (lb.consistentHash) {
    const h = lb.consistentHash;
    compiled.loadBalancing.hashOn = h.header
      ? { header: h.header.toLowerCase() }
      : h.cookie !== undefined
        ? { cookie: h.cookie }
        : { consumer: true };
  }
  if (spec.healthCheck) {
    const h = spec.healthCheck;
    compiled.healthCheck = {
      path: h.path,
      intervalMs: parseDurationMs(h.interval),
      timeoutMs: parseDurationMs(h.timeout),
      unhealthyThreshold: h.unhealthyThreshold,
      healthyThreshold: h.healthyThreshold,
    };
  }
  if (spec.outlierDetection) {
    const o = spec.outlierDetection;
    compiled.outlierDetection = {
      consecutiveErrors: o.consecutiveErrors,
      baseEjectionMs: parseDurationMs(o.baseEjectionTime),
      maxEjectionMs: parseDurationMs(o.maxEjectionTime),
      maxEjectionPercent: o.maxEjectionPercent,
    };
  }
  if (spec.fallbackBackend !== undefined) compiled.fallbackBackend = spec.fallbackBackend;
  if (rateLimitPolicy) compiled.rateLimitPolicy = rateLimitPolicy;
  if (placed) compiled.canary = placed;
  const security = route.spec;
  if (security.auth) compiled.auth = true;
  if (spec.authorization) compiled.authorization = compileAuthorization(spec.authorization);
  if (security.cors) compiled.cors = compileCors(security.cors);
  if (security.tls?.httpsRedirect) {
    compiled.httpsRedirect =
      security.tls.redirectPort !== undefined ? { port: security.tls.redirectPort } : {};
  }
  if (rule.validation) compiled.validation = rule.validation;
  if (rule.transform) compiled.transform = rule.transform;
  if (rule.composition) compiled.composition = rule.composition;
  if (rule.translation) compiled.translation = rule.translation;
  if (rule.cache) {
    const at = `spec.rules[${rule.index}]`;
    const problems = report.refProblems;
    compiled.cache = resolveCacheStore(rule.cache, spec.cache!, route.namespace, secrets, at, problems);
  }
  return compiled;
}

function routeStatus(report: RouteReport): ResourceStatus {
  const { model } = report;
  const g = model.generation;
  const accepted = report.liveMatches > 0 && !report.blocked;
  const facts = [...report.shadowed, ...report.notes];
  const acceptedMessage = accepted
    ? facts.length > 0
      ? `accepted; ${facts.join('; ')}`
      : 'accepted'
    : report.blocked
      ? `not served: client certificates are required but cannot be checked (${report.blocked})`
      : `every match is shadowed by an earlier one: ${report.shadowed.join('; ')}`;
  const notAcceptedReason = report.blocked ? Reason.InvalidTLS : Reason.Conflicted;
  const refs = report.refProblems;
  return {
    kind: 'ModelRoute',
    namespace: model.namespace,
    name: model.name,
    status: {
      observedGeneration: g,
      conditions: [
        condition(
          ConditionType.Accepted,
          accepted,
          accepted ? Reason.Accepted : notAcceptedReason,
          acceptedMessage,
          g,
        ),
        refs.length === 0
          ? condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'every backend resolved', g)
          : condition(ConditionType.ResolvedRefs, false, refs[0]![0], refs.map((p) => p[1]).join('; '), g),
        programmedCondition(accepted, g),
      ],
    },
  };
}
