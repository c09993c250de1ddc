/**
 * One answer to "may this endpoint get new requests?": the active checker and the outlier
 * detector combined. An endpoint is available when its checks are healthy and it is not ejected;
 * `onChange` fires only when that combined answer changes, so the proxy rebuilds balancers once
 * per real transition (an ejected endpoint that also fails its probe is one change, not two).
 */
import type { Clock, Random } from '../balancers/types.ts';
import { ActiveHealthChecker, type Probe, type ProbeResult } from './active-checker.ts';
import { OutlierDetector } from './outlier-detector.ts';
import { monotonicNow, realTimers, type Timers } from './timers.ts';

export interface EndpointHealthOptions {
  onChange: (origin: string, available: boolean) => void;
  onProbe?: (origin: string, path: string, result: ProbeResult) => void;
  probe?: Probe;
  timers?: Timers;
  now?: Clock;
  random?: Random;
}

/** Why an endpoint is out. */
interface Down {
  unhealthy: boolean;
  ejected: boolean;
}

export class EndpointHealth {
  readonly checker: ActiveHealthChecker;
  readonly outliers: OutlierDetector;
  private readonly onChange: (origin: string, available: boolean) => void;
  private readonly down = new Map<string, Down>();

  constructor(opts: EndpointHealthOptions) {
    this.onChange = opts.onChange;
    const timers = opts.timers ?? realTimers;
    const now = opts.now ?? monotonicNow;
    this.checker = new ActiveHealthChecker({
      onChange: (origin, healthy) => this.update(origin, 'unhealthy', !healthy),
      onProbe: opts.onProbe,
      probe: opts.probe,
      timers,
      now,
      random: opts.random ?? Math.random,
    });
    this.outliers = new OutlierDetector({
      onChange: (origin, available) => this.update(origin, 'ejected', !available),
      now,
      timers,
    });
  }

  isAvailable(origin: string): boolean {
    return !this.down.has(origin);
  }

  /** Endpoints that must not get new requests now. */
  unavailableOrigins(): string[] {
    return [...this.down.keys()];
  }

  /** Endpoints out of service and why, sorted by origin (the proxy reports them to the controllers). */
  downEndpoints(): { origin: string; unhealthy: boolean; ejected: boolean }[] {
    return [...this.down]
      .map(([origin, d]) => ({ origin, unhealthy: d.unhealthy, ejected: d.ejected }))
      .sort((a, b) => (a.origin < b.origin ? -1 : a.origin > b.origin ? 1 : 0));
  }

  /**
   * The available members of `endpoints`, in order; the same array when all are available, so a
   * rebuild can tell "nothing changed" by identity.
   */
  available<T extends { readonly id: string }>(endpoints: readonly T[]): readonly T[] {
    if (this.down.size === 0) return endpoints;
    let out: T[] | undefined;
    for (let i = 0; i < endpoints.length; i++) {
      const e = endpoints[i]!;
      if (this.down.has(e.id)) out ??= endpoints.slice(0, i);
      else out?.push(e);
    }
    return out ?? endpoints;
  }

  /**
   * Forgets endpoints no table has (outlier state; the checker forgets through sync). Silent, as
   * OutlierDetector.retain is.
   */
  retain(keep: ReadonlySet<string>): void {
    this.outliers.retain(keep);
    for (const [origin, d] of this.down) {
      if (keep.has(origin)) continue;
      d.ejected = false;
      if (!d.unhealthy) this.down.delete(origin);
    }
  }

  close(): void {
    this.checker.close();
    this.outliers.close();
  }

  private update(origin: string, reason: keyof Down, value: boolean): void {
    let d = this.down.get(origin);
    const was = d === undefined;
    if (d === undefined) {
      if (!value) return;
      d = { unhealthy: false, ejected: false };
      this.down.set(origin, d);
    }
    d[reason] = value;
    if (!d.unhealthy && !d.ejected) this.down.delete(origin);
    const is = !this.down.has(origin);
    if (is !== was) this.onChange(origin, is);
  }
}
