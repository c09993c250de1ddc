/**
 * Active health checking: periodic HTTP GET probes to upstream endpoints.
 *
 * One check runs per proxy process per target — (origin, path, interval, timeout, thresholds) —
 * however many rules and tables name it: `sync()` is given every target of the table being
 * applied, starts the new ones, keeps the running ones (with their state) and stops the others.
 *
 * Semantics:
 * - A probe passes when the endpoint answers with a 2xx status within `timeoutMs`. Any other
 *   status, a connection error or a timeout is a failure (3xx too: a health endpoint that
 *   redirects is misconfigured, and following it could leave the endpoint).
 * - `unhealthyThreshold` consecutive failures mark a healthy check unhealthy; `healthyThreshold`
 *   consecutive passes mark an unhealthy one healthy again. A pass resets the failure run and a
 *   failure resets the pass run.
 * - An endpoint is healthy when none of its checks is unhealthy; an endpoint without a check is
 *   healthy. `onChange(origin, healthy)` fires when that per-endpoint answer changes.
 * - A new check starts healthy. Envoy starts hosts unhealthy until a first pass, which suits
 *   pods that may still be loading a model; but here endpoints arrive from EndpointSlices, whose
 *   `ready` already reflects the pod's readiness probe, and a table that adds a health check to a
 *   busy route would otherwise answer 503 for every request until the first probes return. So
 *   the check trusts Kubernetes until its own probes prove otherwise (`unhealthyThreshold`
 *   failures, i.e. at most about threshold × interval of errors).
 * - A check whose settings change (a new interval, say) is a new target; it inherits the state of
 *   the old check with the same origin and path, so an edit does not put a failing endpoint back.
 * - The first probe of a new check runs after a uniform delay in [0, interval): a table that adds
 *   a thousand endpoints does not probe them all at once. Later probes run one interval after the
 *   previous probe finished, the interval randomised by ±10% so checks do not synchronise. Probes
 *   of one check never overlap.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Clock, Random } from '../balancers/types.ts';
import { monotonicNow, realTimers, type Timers } from './timers.ts';

/** The `healthCheck` of a CompiledRule. */
export interface HealthCheckSettings {
  path: string;
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
}

/** One endpoint to check: its origin (`http://10.0.0.1:8000`, as EndpointState.id) and settings. */
export interface HealthTarget extends HealthCheckSettings {
  origin: string;
  /** For https endpoints: how the proxy verifies them (a private CA, the SNI name). */
  tls?: ProbeTls;
}

export interface ProbeTls {
  ca?: string;
  servername?: string;
  /** Client certificate and key, for upstreams that require mutual TLS. */
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
}

/**
 * Sends one probe; resolves true for a pass. It should stop when `signal` aborts (the checker
 * aborts it on timeout, removal and close) but need not: the checker enforces `timeoutMs` with
 * its own timer and ignores late answers. A rejection counts as a failure.
 */
export type Probe = (
  origin: string,
  path: string,
  timeoutMs: number,
  signal: AbortSignal,
  tls?: ProbeTls,
) => Promise<boolean>;

export type ProbeResult = 'pass' | 'fail' | 'timeout';

export interface ActiveHealthCheckerOptions {
  /** An endpoint's health changed (false: stop sending it new requests). */
  onChange: (origin: string, healthy: boolean) => void;
  /** Every probe's result, after it has been applied (for logs; counters are in `stats`). */
  onProbe?: (origin: string, path: string, result: ProbeResult) => void;
  /** Defaults to `httpProbe`. */
  probe?: Probe;
  timers?: Timers;
  /** Uniform in [0, 1); spreads first probes and jitters intervals. */
  random?: Random;
  /** Only stamps `snapshot()` entries. */
  now?: Clock;
}

/** A check's state, for the admin side. */
export interface CheckStatus {
  origin: string;
  path: string;
  healthy: boolean;
  consecutivePasses: number;
  consecutiveFailures: number;
  lastResult: ProbeResult | undefined;
  /** Clock reading of the last result, 0 before the first. */
  lastProbeAt: number;
}

/** Counters since construction; plain numbers the proxy's metrics read at scrape time. */
export interface ActiveHealthStats {
  pass: number;
  fail: number;
  timeout: number;
  /** Checks that went healthy → unhealthy, and back. */
  markedUnhealthy: number;
  markedHealthy: number;
}

/** Largest part of a health response read; the status line is all a probe needs. */
const MAX_PROBE_BODY_BYTES = 64 * 1024;

/**
 * The default probe: GET over a fresh connection (no keep-alive). A fresh connection per probe
 * means a probe also tests that the endpoint still accepts connections, and a proxy checking
 * thousands of endpoints holds no idle sockets between probes. https origins verify certificates
 * as the proxy's own pools do.
 */
export const httpProbe: Probe = (origin, path, timeoutMs, signal, tls) =>
  new Promise<boolean>((resolve) => {
    let url: URL;
    try {
      // Concatenated, not `new URL(path, origin)`: a path like `//other-host/x` must stay a path.
      url = new URL(origin + path);
    } catch {
      resolve(false);
      return;
    }
    const get = url.protocol === 'https:' ? https.get : http.get;
    const req = get(
      url,
      {
        agent: false,
        signal,
        // Socket inactivity; a backstop for callers that never abort.
        timeout: timeoutMs,
        headers: { connection: 'close', 'user-agent': 'modelgate-health-check', accept: '*/*' },
        // The same trust as the proxy's pool for this backend: its CA, SNI and verification.
        ...(tls && {
          ca: tls.ca,
          servername: tls.servername,
          cert: tls.cert,
          key: tls.key,
          rejectUnauthorized: tls.rejectUnauthorized,
        }),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let bytes = 0;
        // Drain (the socket closes once the response ends) but never read an endless body.
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_PROBE_BODY_BYTES) req.destroy();
        });
        res.on('error', () => {});
        resolve(status >= 200 && status < 300);
      },
    );
    req.on('timeout', () => req.destroy(new Error('health check timed out')));
    req.on('error', () => resolve(false));
  });

/** A running check. Fields are mutated in place; one object per target for its whole life. */
class Check {
  readonly key: string;
  readonly target: HealthTarget;
  healthy = true;
  passes = 0;
  failures = 0;
  lastResult: ProbeResult | undefined = undefined;
  lastProbeAt = 0;
  stopped = false;
  /** Timer of the next probe, when none is in flight. */
  next: unknown = undefined;
  /** Ends the probe in flight: a result, or undefined when the check stops. */
  finish: ((result: ProbeResult | undefined) => void) | undefined = undefined;

  constructor(key: string, target: HealthTarget) {
    this.key = key;
    this.target = target;
  }
}

/** Identity of a target: the same key means the same check. */
export function targetKey(t: HealthTarget): string {
  return JSON.stringify([
    t.origin,
    t.path,
    t.intervalMs,
    t.timeoutMs,
    t.unhealthyThreshold,
    t.healthyThreshold,
  ]);
}

function pathKey(t: HealthTarget): string {
  return JSON.stringify([t.origin, t.path]);
}

export class ActiveHealthChecker {
  readonly stats: ActiveHealthStats = { pass: 0, fail: 0, timeout: 0, markedUnhealthy: 0, markedHealthy: 0 };
  private readonly onChange: (origin: string, healthy: boolean) => void;
  private readonly onProbe: ((origin: string, path: string, result: ProbeResult) => void) | undefined;
  private readonly probe: Probe;
  private readonly timers: Timers;
  private readonly random: Random;
  private readonly now: Clock;
  private readonly checks = new Map<string, Check>();
  /** Unhealthy checks per origin; an origin is absent when all its checks are healthy. */
  private readonly unhealthy = new Map<string, number>();
  /** Probe attempts in flight, for settle(). */
  private readonly inFlight = new Set<Promise<void>>();
  private closed = false;

  constructor(opts: ActiveHealthCheckerOptions) {
    this.onChange = opts.onChange;
    this.onProbe = opts.onProbe;
    this.probe = opts.probe ?? httpProbe;
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? monotonicNow;
  }

  /** False when any check of the endpoint is unhealthy; true otherwise (including no check). */
  isHealthy(origin: string): boolean {
    return !this.unhealthy.has(origin);
  }

  /** Origins currently unhealthy. */
  unhealthyOrigins(): string[] {
    return [...this.unhealthy.keys()];
  }

  /** Number of running checks. */
  get size(): number {
    return this.checks.size;
  }

  /**
   * Makes the running checks exactly `targets` (duplicates collapse). Call at each table apply
   * with every target of the new table. Fires onChange for endpoints whose health changed, e.g.
   * an unhealthy endpoint whose last check was removed is healthy again.
   */
  sync(targets: Iterable<HealthTarget>): void {
    if (this.closed) return;
    const wanted = new Map<string, HealthTarget>();
    for (const t of targets) wanted.set(targetKey(t), t);
    // Health before the change of every endpoint the change touches, to report real transitions.
    const before = new Map<string, boolean>();
    const touch = (origin: string): void => {
      if (!before.has(origin)) before.set(origin, this.isHealthy(origin));
    };
    const retired = new Map<string, Check>();
    for (const [key, check] of this.checks) {
      if (wanted.has(key)) continue;
      touch(check.target.origin);
      this.stop(check);
      retired.set(pathKey(check.target), check);
    }
    for (const [key, target] of wanted) {
      if (this.checks.has(key)) continue;
      touch(target.origin);
      const check = new Check(key, target);
      const prev = retired.get(pathKey(target));
      if (prev) {
        check.passes = prev.passes;
        check.failures = prev.failures;
        check.lastResult = prev.lastResult;
        check.lastProbeAt = prev.lastProbeAt;
        if (!prev.healthy) this.setHealthy(check, false);
      }
      this.checks.set(key, check);
      // An inherited check has been probing already: carry on at its rhythm, not from zero.
      this.schedule(check, prev ? this.jittered(target.intervalMs) : this.random() * target.intervalMs);
    }
    for (const [origin, was] of before) {
      const is = this.isHealthy(origin);
      if (is !== was) this.onChange(origin, is);
    }
  }

  /** Resolves once every probe started so far has ended (tests; graceful shutdown). */
  async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all(this.inFlight);
  }

  /** Every check's state, sorted by origin then path. */
  snapshot(): CheckStatus[] {
    return [...this.checks.values()]
      .map((c) => ({
        origin: c.target.origin,
        path: c.target.path,
        healthy: c.healthy,
        consecutivePasses: c.passes,
        consecutiveFailures: c.failures,
        lastResult: c.lastResult,
        lastProbeAt: c.lastProbeAt,
      }))
      .sort((a, b) => (a.origin === b.origin ? cmp(a.path, b.path) : cmp(a.origin, b.origin)));
  }

  /** Stops every check and aborts probes in flight; no onChange fires. Later syncs do nothing. */
  close(): void {
    this.closed = true;
    for (const check of this.checks.values()) this.stop(check);
    this.unhealthy.clear();
  }

  private stop(check: Check): void {
    check.stopped = true;
    if (check.next !== undefined) this.timers.clearTimeout(check.next);
    check.next = undefined;
    check.finish?.(undefined);
    this.checks.delete(check.key);
    // check.healthy stays as it was: a successor with the same origin and path inherits it.
    if (!check.healthy) this.count(check.target.origin, -1);
  }

  private schedule(check: Check, delayMs: number): void {
    check.next = this.timers.setTimeout(() => this.run(check), delayMs);
  }

  /** The interval randomised uniformly within ±10%. */
  private jittered(intervalMs: number): number {
    return intervalMs * (0.9 + 0.2 * this.random());
  }

  private run(check: Check): void {
    check.next = undefined;
    if (check.stopped) return;
    const { origin, path, timeoutMs } = check.target;
    const controller = new AbortController();
    let deadline: unknown;
    const attempt = new Promise<void>((resolve) => {
      const finish = (result: ProbeResult | undefined): void => {
        if (check.finish !== finish) return; // already ended (timeout, stop, or a late answer)
        check.finish = undefined;
        this.timers.clearTimeout(deadline);
        if (result !== 'pass' && result !== 'fail') controller.abort(new Error('health check ended'));
        resolve();
        if (result === undefined || check.stopped) return;
        this.apply(check, result);
        // apply() calls back into the proxy, which may have synced or closed meanwhile.
        if (!check.stopped) this.schedule(check, this.jittered(check.target.intervalMs));
      };
      check.finish = finish;
      deadline = this.timers.setTimeout(() => finish('timeout'), timeoutMs);
      let sent: Promise<boolean>;
      try {
        sent = this.probe(origin, path, timeoutMs, controller.signal, check.target.tls);
      } catch {
        sent = Promise.resolve(false);
      }
      sent.then(
        (ok) => finish(ok ? 'pass' : 'fail'),
        () => finish('fail'),
      );
    });
    this.inFlight.add(attempt);
    void attempt.then(() => this.inFlight.delete(attempt));
  }

  private apply(check: Check, result: ProbeResult): void {
    const { origin, path, healthyThreshold, unhealthyThreshold } = check.target;
    this.stats[result]++;
    check.lastResult = result;
    check.lastProbeAt = this.now();
    const was = this.isHealthy(origin);
    if (result === 'pass') {
      check.failures = 0;
      check.passes++;
      if (!check.healthy && check.passes >= healthyThreshold) {
        this.setHealthy(check, true);
        this.stats.markedHealthy++;
      }
    } else {
      check.passes = 0;
      check.failures++;
      if (check.healthy && check.failures >= unhealthyThreshold) {
        this.setHealthy(check, false);
        this.stats.markedUnhealthy++;
      }
    }
    this.onProbe?.(origin, path, result);
    const is = this.isHealthy(origin);
    if (is !== was) this.onChange(origin, is);
  }

  private setHealthy(check: Check, healthy: boolean): void {
    if (check.healthy === healthy) return;
    check.healthy = healthy;
    this.count(check.target.origin, healthy ? -1 : 1);
  }

  private count(origin: string, delta: number): void {
    const n = (this.unhealthy.get(origin) ?? 0) + delta;
    if (n > 0) this.unhealthy.set(origin, n);
    else this.unhealthy.delete(origin);
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
