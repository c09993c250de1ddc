/**
 * Leader election on a coordination.k8s.io/v1 Lease, with fencing. client-node has none built in.
 *
 * The algorithm is client-go's: every replica reads the Lease each retry period; the holder renews
 * it; another replica takes it over only after it has seen no renewal for a whole lease duration,
 * measured on its own monotonic clock (never by comparing its clock with the holder's `renewTime`,
 * so clock skew between nodes does not matter). Every write carries the Lease's resourceVersion, so
 * when two replicas race only one write succeeds (409 Conflict for the other).
 *
 * Fencing: a replica is leader only until `start of its last successful renewal + lease duration −
 * margin` on its monotonic clock. A leader that was paused (SIGSTOP, a long GC, a frozen node) finds
 * on waking that this has passed and writes nothing, even before it learns that another replica took
 * over. Callers check `isLeader()` (or `fence()`) immediately before each status write or rollout
 * action.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeError, kubeRequest } from '../sources/kubernetes/kube-request.ts';

export interface LeaderElectionOptions {
  kc: KubeConfig;
  namespace: string;
  name: string;
  /** This replica (the pod name). */
  identity: string;
  leaseDurationMs?: number;
  /** How long a leader keeps trying to renew before it steps down. */
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Fencing margin kept below the lease duration. */
  safetyMarginMs?: number;
  /** Monotonic clock (ms). */
  now?: () => number;
  /** Wall clock for the Lease's timestamps (ms since epoch). */
  wallNow?: () => number;
  onStartedLeading?: (term: number) => void;
  onStoppedLeading?: () => void;
  onError?: (err: unknown) => void;
}

interface Lease {
  metadata: { name: string; namespace: string; resourceVersion?: string };
  spec: {
    holderIdentity?: string | null;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
}

/** RFC 3339 with microseconds, the MicroTime format Leases use. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly o: Required<
    Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onError'>
  > &
    LeaderElectionOptions;
  private leading = false;
  private currentTerm = 0;
  /** Monotonic time at which the last successful acquire/renew request was sent. */
  private renewedAt = Number.NEGATIVE_INFINITY;
  /** What we last saw of the Lease, and when (monotonic), to judge expiry without clock skew. */
  private observed: { holder: string; renewTime: string; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(opts: LeaderElectionOptions) {
    this.o = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      safetyMarginMs: 1_000,
      now: () => performance.now(),
      wallNow: Date.now,
      ...opts,
    };
  }

  private get path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases/${this.o.name}`;
  }

  /** True while this replica holds a lease that cannot have passed to anyone else. */
  isLeader(): boolean {
    return this.leading && this.o.now() < this.renewedAt + this.o.leaseDurationMs - this.o.safetyMarginMs;
  }

  /** The term of the current (or last) leadership: the Lease's transition count when acquired. */
  get term(): number {
    return this.currentTerm;
  }

  /** Throws unless this replica may act as leader right now. Call it right before a write. */
  fence(): void {
    if (!this.isLeader()) throw new NotLeaderError('not the leader (or the lease may have expired)');
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.loop = this.tick().finally(() => this.schedule(this.o.retryPeriodMs));
    }, ms);
    this.timer.unref();
  }

  /** One round: acquire or renew; step down when renewals have failed for the renew deadline. */
  async tick(): Promise<void> {
    const sentAt = this.o.now();
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew(sentAt);
    } catch (err) {
      this.o.onError?.(err);
    }
    if (ok) return;
    if (this.leading && this.o.now() - this.renewedAt > this.o.renewDeadlineMs) this.stepDown();
    else if (this.leading && !this.isLeader()) this.stepDown();
  }

  private async tryAcquireOrRenew(sentAt: number): Promise<boolean> {
    const wall = this.o.wallNow();
    let lease: Lease | undefined;
    try {
      lease = await kubeRequest<Lease>(this.o.kc, this.path);
    } catch (err) {
      if (!(err instanceof KubeError && err.statusCode === 404)) throw err;
    }
    const durationSeconds = Math.ceil(this.o.leaseDurationMs / 1000);
    if (!lease) {
      const created: Lease = {
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: microTime(wall),
          renewTime: microTime(wall),
          leaseTransitions: 0,
        },
      };
      try {
        await kubeRequest(this.o.kc, `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases`, {
          method: 'POST',
          body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...created },
        });
      } catch (err) {
        if (err instanceof KubeError && err.statusCode === 409) return false; // someone else created it
        throw err;
      }
      this.won(sentAt, 0);
      return true;
    }

    const holder = lease.spec.holderIdentity ?? '';
    const renewTime = lease.spec.renewTime ?? '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, at: this.o.now() };
    }
    const mine = holder === this.o.identity;
    const expired =
      holder === '' ||
      this.o.now() > this.observed.at + (lease.spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (!mine && !expired) {
      if (this.leading) this.stepDown(); // someone else holds it: we lost it
      return false;
    }
    // Only the leader in office renews. Anything else is an acquisition and a new term, even of a
    // Lease that still names us (a restarted container keeps its pod name, or we stepped down):
    // the old term's table versions may already be on the proxies, so the term must move on.
    const renewing = mine && this.leading;
    const transitions = (lease.spec.leaseTransitions ?? 0) + (renewing ? 0 : 1);
    const updated: Lease = {
      metadata: lease.metadata,
      spec: {
        ...lease.spec,
        holderIdentity: this.o.identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: microTime(wall),
        acquireTime: renewing ? lease.spec.acquireTime : microTime(wall),
        leaseTransitions: transitions,
      },
    };
    try {
      await kubeRequest(this.o.kc, this.path, {
        method: 'PUT',
        body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', ...updated },
      });
    } catch (err) {
      if (err instanceof KubeError && err.statusCode === 409) return false; // lost a race; read again next round
      throw err;
    }
    this.won(sentAt, transitions);
    return true;
  }

  private won(sentAt: number, transitions: number): void {
    this.renewedAt = sentAt;
    this.observed = undefined;
    if (!this.leading) {
      this.leading = true;
      // Terms start at 1; the Lease's transition count makes them grow with every change of holder.
      this.currentTerm = transitions + 1;
      this.o.onStartedLeading?.(this.currentTerm);
    }
  }

  private stepDown(): void {
    if (!this.leading) return;
    this.leading = false;
    this.o.onStoppedLeading?.();
  }

  /** Stops electing; a leader gives the Lease up so another replica need not wait for expiry. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.loop;
    if (!this.leading) return;
    this.stepDown();
    try {
      const lease = await kubeRequest<Lease>(this.o.kc, this.path);
      if (lease.spec.holderIdentity !== this.o.identity) return;
      await kubeRequest(this.o.kc, this.path, {
        method: 'PUT',
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: lease.metadata,
          spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1 },
        },
      });
    } catch (err) {
      this.o.onError?.(err);
    }
  }
}
