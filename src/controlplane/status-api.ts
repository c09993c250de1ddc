/**
 * `GET /api/v1/status` on the controller's admin listener: what `modelgate status` prints and the
 * status page reads. A pure function of the controller's state, so the shape is tested without a
 * cluster. The shape is stable: fields are only ever added.
 *
 *   controller  {identity, leader, term}
 *   table       {version: "term.seq" | null, hash | null, publishedAt: ISO time | null}
 *               (version and publishedAt are null on a follower: only the leader versions tables)
 *   proxies     [{id, connected, appliedVersion: "term.seq" | null, inSync, refused, lastSeen}]
 *               inSync: the proxy runs table.version; refused: {version, reason} while its newest
 *               answer is a NACK of a newer version than it runs, else null; lastSeen: ISO time of
 *               its newest ACK or NACK, or null
 *   routes      [{namespace, name, observedGeneration, rules, conditions: {Accepted, ResolvedRefs,
 *               Programmed}}], each condition {status, reason, message} or null when absent
 *   rollouts    [{namespace, name, phase, currentStep, steps, stepWeight, servedWeight, message,
 *               lastVerdict: {verdict, message, at} | null, history: [{weight, at, reason}]}]
 *   backends    [{route, rule, name, weightPercent, protocol, modelRevision, role, unavailable,
 *               counts: {total, ready, draining, up, down, partial, unknown},
 *               endpoints: [{address, port, state, zone, health, reporting, down}], endpointsOmitted}]
 *               (status-backends.ts; health as the connected proxies report it; `endpoints` lists
 *               those not up, or every one with ?endpoints=all, at most 100 per backend)
 */
import type { ClusterState } from '../api/cluster-state.ts';
import type { ResourceStatus } from '../compiler/compile.ts';
import type { RoutingTable } from '../routing-table/types.ts';
import { compareVersions, type TableVersion, versionLabel } from './push/protocol.ts';
import type { ProxyView } from './push-server.ts';
import { buildBackends, type EndpointSelection, type StatusBackendView } from './status-backends.ts';

export const STATUS_API_PATH = '/api/v1/status';

export interface StatusConditionView {
  status: string;
  reason: string;
  message: string;
}

export interface StatusProxyView {
  id: string;
  connected: boolean;
  appliedVersion: string | null;
  inSync: boolean;
  refused: { version: string; reason: string } | null;
  lastSeen: string | null;
}

export interface StatusRouteView {
  namespace: string;
  name: string;
  observedGeneration: number;
  /** Rules in the route's spec. */
  rules: number;
  conditions: {
    Accepted: StatusConditionView | null;
    ResolvedRefs: StatusConditionView | null;
    Programmed: StatusConditionView | null;
  };
}

export interface StatusRolloutView {
  namespace: string;
  name: string;
  phase: string | null;
  /** Index of the running step (0-based), null before the engine wrote a status. */
  currentStep: number | null;
  /** Steps in the spec; 0 is manual mode (spec.weight). */
  steps: number;
  stepWeight: number | null;
  /** Canary share in the table now, in percent. */
  servedWeight: number | null;
  message: string | null;
  lastVerdict: { verdict: string; message: string; at: string } | null;
  history: { weight: number; at: string; reason: string }[];
}

export interface StatusApiResponse {
  controller: { identity: string; leader: boolean; term: number };
  table: { version: string | null; hash: string | null; publishedAt: string | null };
  proxies: StatusProxyView[];
  routes: StatusRouteView[];
  rollouts: StatusRolloutView[];
  backends: StatusBackendView[];
}

export interface StatusApiInput {
  identity: string;
  leader: boolean;
  term: number;
  /** The current table's version (undefined on a follower) and hash. */
  version: TableVersion | undefined;
  hash: string | undefined;
  /** Wall-clock ms when `version` was published. */
  publishedAt: number | undefined;
  proxies: readonly ProxyView[];
  /** Statuses as last computed (Programmed from the ACKs). */
  statuses: readonly ResourceStatus[];
  /** The cluster state last compiled (undefined before the first compile). */
  state: Pick<ClusterState, 'modelRoutes' | 'canaryRollouts'> | undefined;
  /** The table last compiled (undefined before the first compile). */
  table?: RoutingTable | undefined;
  /** Which endpoints `backends` lists (counts cover all either way). Default notUp. */
  endpoints?: EndpointSelection;
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

const key = (namespace: string | undefined, name: string) => `${namespace ?? 'default'}/${name}`;

function condition(s: ResourceStatus | undefined, type: string): StatusConditionView | null {
  const c = s?.status.conditions.find((x) => x.type === type);
  return c ? { status: c.status, reason: c.reason, message: c.message } : null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function buildStatus(input: StatusApiInput): StatusApiResponse {
  const current = input.leader ? input.version : undefined;
  const proxies = input.proxies.map(
    (p): StatusProxyView => ({
      id: p.id,
      connected: p.connected,
      appliedVersion: p.applied ? versionLabel(p.applied) : null,
      inSync: current !== undefined && p.applied !== undefined && compareVersions(p.applied, current) === 0,
      refused: p.refused ? { version: versionLabel(p.refused.version), reason: p.refused.reason } : null,
      lastSeen: iso(p.lastAck?.at),
    }),
  );

  const statusOf = new Map<string, ResourceStatus>();
  for (const s of input.statuses) statusOf.set(`${s.kind}/${s.namespace}/${s.name}`, s);

  const routes = (input.state?.modelRoutes ?? []).map((r): StatusRouteView => {
    const ns = r.metadata.namespace ?? 'default';
    const s = statusOf.get(`ModelRoute/${ns}/${r.metadata.name}`);
    const rules = (r.spec as { rules?: unknown } | undefined)?.rules;
    return {
      namespace: ns,
      name: r.metadata.name,
      observedGeneration: s?.status.observedGeneration ?? 0,
      rules: Array.isArray(rules) ? rules.length : 0,
      conditions: {
        Accepted: condition(s, 'Accepted'),
        ResolvedRefs: condition(s, 'ResolvedRefs'),
        Programmed: condition(s, 'Programmed'),
      },
    };
  });

  const rollouts = (input.state?.canaryRollouts ?? []).map((r): StatusRolloutView => {
    const ns = r.metadata.namespace ?? 'default';
    const computed = statusOf.get(`CanaryRollout/${ns}/${r.metadata.name}`);
    // The engine's part of the status, as stored on the object (read back through the watch).
    const st = ((r as { status?: unknown }).status ?? {}) as Record<string, unknown>;
    const steps = (r.spec as { steps?: unknown } | undefined)?.steps;
    const last = st.lastAnalysis as Record<string, unknown> | undefined;
    const history = Array.isArray(st.history) ? (st.history as Record<string, unknown>[]) : [];
    return {
      namespace: ns,
      name: r.metadata.name,
      phase: str(st.phase),
      currentStep: num(st.currentStep),
      steps: Array.isArray(steps) ? steps.length : 0,
      stepWeight: num(st.stepWeight),
      servedWeight: num(computed?.status.servedWeight) ?? num(st.servedWeight),
      message: str(st.message),
      lastVerdict:
        last && typeof last.verdict === 'string'
          ? { verdict: last.verdict, message: str(last.message) ?? '', at: str(last.at) ?? '' }
          : null,
      history: history.flatMap((h) => {
        const weight = num(h.weight);
        return weight === null ? [] : [{ weight, at: str(h.at) ?? '', reason: str(h.reason) ?? '' }];
      }),
    };
  });

  const byName = <T extends { namespace: string; name: string }>(a: T, b: T) =>
    key(a.namespace, a.name) < key(b.namespace, b.name)
      ? -1
      : key(a.namespace, a.name) > key(b.namespace, b.name)
        ? 1
        : 0;

  return {
    controller: { identity: input.identity, leader: input.leader, term: input.term },
    table: {
      version: current ? versionLabel(current) : null,
      hash: input.hash ?? null,
      publishedAt: current ? iso(input.publishedAt) : null,
    },
    proxies,
    routes: routes.sort(byName),
    rollouts: rollouts.sort(byName),
    backends: buildBackends(input.table, input.proxies, input.endpoints),
  };
}
