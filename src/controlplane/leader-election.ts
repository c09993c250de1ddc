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
 *
 * Terms never go back. A term is one more than the Lease's `leaseTransitions` as the leader left it,
 * and the Lease is the only place replicas agree on it, so a Lease that is deleted and recreated (an
 * operator, a recreated namespace, `helm uninstall` and reinstall, a restore from backup) would
 * start terms again from 1, below versions proxies still run (in memory or persisted) and never
 * replace. Two guards: an acquisition takes a term above every term this replica has seen (in the
 * Lease, its own, and what `termFloor` says proxies run); and a leader told that the fleet has seen
 * a term at or above its own (`raiseTerm`, fed by proxies' ACKs) moves to a term above it by
 * writing `leaseTransitions` in its next renewal, an update conditional on the Lease's
 * resourceVersion and made only by the holder while it leads, so a deposed replica cannot take a
 * higher term this way and followers read the new count. `onTermChanged` then tells the owner.
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
  /**
   * The highest term proxies are known to run or have run (their ACKs): an acquisition takes a
   * term above it even when the Lease's count says less (it was recreated). Default: none.
   */
  termFloor?: () => number;
  onStartedLeading?: (term: number) => void;
  /** The leader moved to a higher term without losing leadership (`raiseTerm`). */
  onTermChanged?: (term: number, previous: number) => void;
  onStoppedLeading?: () => void;
  onError?: (err: unknown) => void;
}

/** `leaseTransitions` is an int32 in the Lease API. */
const MAX_TRANSITIONS = 2 ** 31 - 1;

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
    Omit<
      LeaderElectionOptions,
      'onStartedLeading' | 'onStoppedLeading' | 'onError' | 'onTermChanged' | 'termFloor'
    >
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
  private ticking = false;
  private tickAgain = false;
  /** The highest term known to have been used by anyone: an acquisition takes a higher one. */
  private seenTerm = 0;
  /** While leading: a term the fleet has seen from another leadership; the next renewal goes above. */
  private raiseAbove = 0;
  private raises = 0;

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

  /** How many times this replica moved to a higher term while leading (`raiseTerm`). */
  get termRaises(): number {
    return this.raises;
  }

  /**
   * Says that the fleet (a proxy) has seen `term` from a leadership other than this replica's
   * current one. Acquisitions from now on take a term above it; a leader whose term is not above
   * it takes one that is in its next renewal, which is run at once. A follower only remembers it.
   */
  raiseTerm(term: number): void {
    if (!Number.isSafeInteger(term) || term < 0 || term > MAX_TRANSITIONS) return;
    this.seen(term);
    if (!this.leading || term < this.currentTerm) return;
    this.raiseAbove = Math.max(this.raiseAbove, term);
    this.kick();
  }

  private seen(term: number): void {
    if (term <= this.seenTerm) return;
    if (term > MAX_TRANSITIONS) {
      // No term can be taken above it: leaseTransitions is an int32. Not from any real fleet.
      this.o.onError?.(new Error(`ignoring term ${term}: no Lease can count past ${MAX_TRANSITIONS}`));
      return;
    }
    this.seenTerm = term;
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
      this.timer = undefined;
      this.ticking = true;
      this.loop = this.tick().finally(() => {
        this.ticking = false;
        const again = this.tickAgain;
        this.tickAgain = false;
        this.schedule(again ? 0 : this.o.retryPeriodMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** Runs a round now instead of at the next retry period (after the one running, if any). */
  private kick(): void {
    if (!this.running) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
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
    this.seen(this.floor());
    if (!lease) {
      // Gone (deleted, or never created). A leader whose fence still holds recreates it in its own
      // term, which the new Lease must say so the next acquisition goes above it; anyone else
      // acquires a new term above every term it has seen, not term 1.
      const renewing = this.isLeader();
      const raising = renewing && this.raiseAbove >= this.currentTerm;
      const transitions = renewing
        ? this.renewedTransitions(this.currentTerm - 1)
        : this.acquiredTransitions(-1);
      const created: Lease = {
        metadata: { name: this.o.name, namespace: this.o.namespace },
        spec: {
          holderIdentity: this.o.identity,
          leaseDurationSeconds: durationSeconds,
          acquireTime: microTime(wall),
          renewTime: microTime(wall),
          leaseTransitions: transitions,
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
      // A leader whose fence had lapsed cannot know who led meanwhile: its term ends here.
      if (!renewing) this.stepDown();
      this.won(sentAt, transitions, raising);
      return true;
    }

    const holder = lease.spec.holderIdentity ?? '';
    const renewTime = lease.spec.renewTime ?? '';
    const leaseTransitions = lease.spec.leaseTransitions ?? 0;
    // The holder's term (or the last one, when released).
    this.seen(leaseTransitions + 1);
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
    const raising = renewing && this.raiseAbove >= this.currentTerm;
    const transitions = renewing
      ? this.renewedTransitions(leaseTransitions)
      : this.acquiredTransitions(leaseTransitions);
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
    this.won(sentAt, transitions, raising);
    return true;
  }

  private floor(): number {
    const f = this.o.termFloor?.() ?? 0;
    return Number.isSafeInteger(f) && f > 0 ? f : 0;
  }

  /**
   * `leaseTransitions` for an acquisition: one more than the Lease says, and at least every term
   * seen, so the new term (transitions + 1) is above all of them.
   */
  private acquiredTransitions(current: number): number {
    return Math.max(current + 1, this.seenTerm);
  }

  /**
   * `leaseTransitions` for the holder's renewal: unchanged, unless the fleet has seen a term at or
   * above this one (`raiseTerm`), then the highest term seen, making the term one more than that.
   */
  private renewedTransitions(current: number): number {
    if (this.raiseAbove < this.currentTerm) return current;
    return Math.max(current, this.seenTerm, this.raiseAbove);
  }

  /** `raised`: a renewal that wrote a higher count on purpose (`raiseTerm`). */
  private won(sentAt: number, transitions: number, raised: boolean): void {
    this.renewedAt = sentAt;
    this.observed = undefined;
    // Terms start at 1; the Lease's transition count makes them grow with every change of holder.
    const term = transitions + 1;
    this.seen(term);
    if (!this.leading) {
      this.leading = true;
      this.raiseAbove = 0;
      this.currentTerm = term;
      this.o.onStartedLeading?.(this.currentTerm);
    } else if (raised && term > this.currentTerm) {
      const previous = this.currentTerm;
      this.raiseAbove = 0;
      this.currentTerm = term;
      this.raises++;
      this.o.onTermChanged?.(term, previous);
    }
  }

  private stepDown(): void {
    if (!this.leading) return;
    this.leading = false;
    this.raiseAbove = 0;
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
