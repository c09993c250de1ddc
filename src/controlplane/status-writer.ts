/**
 * Writes statuses through the status subresource, leader only and fenced: each write first checks
 * that this replica still holds an unexpired lease. Only statuses that changed are written, and a
 * condition keeps its `lastTransitionTime` unless its status changed (the Kubernetes convention).
 * Resources refused by the compiler also get a Kubernetes Event, once per generation and reason.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Condition } from '../api/status.ts';
import type { ResourceStatus } from '../compiler/compile.ts';
import { KubeError, kubeRequest } from '../sources/kubernetes/kube-request.ts';
import { postEvent } from './events.ts';

const PLURALS: Record<ResourceStatus['kind'], string> = {
  ModelRoute: 'modelroutes',
  RateLimitPolicy: 'ratelimitpolicies',
  CanaryRollout: 'canaryrollouts',
};

export interface StatusWriterOptions {
  kc: KubeConfig;
  /** Throws when this replica must not write (not leader, or its lease may have expired). */
  fence: () => void;
  /** The stored object's current status (from the informer cache): transition times, and no rewrites. */
  current: (s: ResourceStatus) => ({ conditions?: Condition[] } & Record<string, unknown>) | undefined;
  /** The controller's name, for Events. */
  component: string;
  wallNow?: () => number;
  onError?: (err: unknown, s: ResourceStatus) => void;
}

/** Key order differs between what we build and what the API server returns: sort it away. */
function stable(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stable);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as Record<string, unknown>)
        .sort()
        .map((k) => [k, stable((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** A status without transition times, in a canonical form. */
function comparable(status: ResourceStatus['status']): string {
  return JSON.stringify(
    stable({
      ...status,
      conditions: (status.conditions ?? []).map(({ lastTransitionTime: _t, ...c }) => c),
    }),
  );
}

export class StatusWriter {
  private readonly o: StatusWriterOptions;
  /**
   * What we last wrote per resource, with the stored status we saw then (the informer cache's own
   * object) and the status as written. It only bridges the moment until the cache shows our write.
   */
  private readonly written = new Map<
    string,
    { text: string; seen: unknown; status: ResourceStatus['status'] }
  >();
  private readonly evented = new Set<string>();
  /** Writes done, for tests and metrics. */
  writes = 0;

  constructor(opts: StatusWriterOptions) {
    this.o = opts;
  }

  /** Writes what changed; returns the number of writes. */
  async sync(statuses: readonly ResourceStatus[]): Promise<number> {
    let n = 0;
    for (const s of statuses) {
      const key = `${s.kind}/${s.namespace}/${s.name}`;
      if (s.name.startsWith('<unnamed')) continue;
      const seen = this.o.current(s);
      const text = comparable(s.status);
      // What the cluster already has (say, after a restart) needs no write.
      if (this.storedEquals(s, text)) {
        this.written.delete(key);
        continue;
      }
      // Nor does what we just wrote while the cache still shows the very status it showed then.
      // The cache is the judge otherwise: a status overwritten by another writer (a leader in
      // between) or a resource deleted and created again is written again.
      const mine = this.written.get(key);
      if (mine && mine.text === text && seen !== undefined && seen === mine.seen) continue;
      const stamped = this.stamp(s, mine?.text === text && seen === undefined ? mine.status : undefined);
      this.o.fence();
      try {
        await kubeRequest(
          this.o.kc,
          `/apis/modelgate.dev/v1alpha1/namespaces/${s.namespace}/${PLURALS[s.kind]}/${s.name}/status`,
          {
            method: 'PATCH',
            body: { status: stamped.status },
          },
        );
        this.written.set(key, { text, seen, status: stamped.status });
        this.writes++;
        n++;
        await this.eventFor(s);
      } catch (err) {
        if (err instanceof KubeError && err.statusCode === 404) continue; // deleted meanwhile
        this.o.onError?.(err, s);
      }
    }
    return n;
  }

  private storedEquals(s: ResourceStatus, text: string): boolean {
    const stored = this.o.current(s) as Record<string, unknown> | undefined;
    if (!stored) return false;
    // Compare only the fields the compiler owns; the rollout engine owns others (phase, step…).
    const ours: Record<string, unknown> = {};
    for (const k of Object.keys(s.status)) ours[k] = stored[k];
    return comparable(ours as ResourceStatus['status']) === text;
  }

  /**
   * Copies lastTransitionTime from the stored condition when the status did not change. With no
   * stored status, from `ours` (what we wrote, when the cache has not caught up with it yet), so
   * writing it again changes nothing.
   */
  private stamp(s: ResourceStatus, ours?: ResourceStatus['status']): ResourceStatus {
    const stored = this.o.current(s)?.conditions ?? ours?.conditions ?? [];
    const now = new Date((this.o.wallNow ?? Date.now)()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    const conditions = s.status.conditions.map((c) => {
      const prior = stored.find((p) => p.type === c.type);
      return {
        ...c,
        lastTransitionTime:
          prior && prior.status === c.status && prior.lastTransitionTime ? prior.lastTransitionTime : now,
      };
    });
    return { ...s, status: { ...s.status, conditions } };
  }

  /** A Warning Event when a resource is refused, once per generation and reason. */
  private async eventFor(s: ResourceStatus): Promise<void> {
    const refused = s.status.conditions.find((c) => c.type === 'Accepted' && c.status === 'False');
    if (!refused) return;
    const id = `${s.kind}/${s.namespace}/${s.name}/${s.status.observedGeneration}/${refused.reason}`;
    if (this.evented.has(id)) return;
    this.evented.add(id);
    await postEvent(
      this.o.kc,
      {
        fence: this.o.fence,
        component: this.o.component,
        ...(this.o.wallNow ? { now: this.o.wallNow } : {}),
      },
      s,
      { type: 'Warning', reason: refused.reason, message: refused.message },
    ).catch((err) => this.o.onError?.(err, s));
  }
}
