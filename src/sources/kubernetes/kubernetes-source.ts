/**
 * The Kubernetes source: informers for ModelRoutes, RateLimitPolicies, CanaryRollouts, Services,
 * EndpointSlices and Secrets (in every namespace, or a configured set), producing the same
 * ClusterState the files source does. Changes are debounced as Contour does: a hold-off delay that
 * restarts with each event, capped by a maximum hold-off so a constant trickle still gets through.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import type { ClusterState } from '../../api/cluster-state.ts';
import type { EndpointSlice, Secret, Service } from '../../api/kubernetes-types.ts';
import type { CanaryRollout, ModelRoute, RateLimitPolicy } from '../../api/resources.ts';
import { type InformerState, ResilientInformer, type Timers } from './resilient-informer.ts';

interface Watched {
  key: keyof ClusterState;
  group: string;
  version: string;
  plural: string;
  kind: string;
}

const WATCHED: readonly Watched[] = [
  {
    key: 'modelRoutes',
    group: 'modelgate.dev',
    version: 'v1alpha1',
    plural: 'modelroutes',
    kind: 'ModelRoute',
  },
  {
    key: 'rateLimitPolicies',
    group: 'modelgate.dev',
    version: 'v1alpha1',
    plural: 'ratelimitpolicies',
    kind: 'RateLimitPolicy',
  },
  {
    key: 'canaryRollouts',
    group: 'modelgate.dev',
    version: 'v1alpha1',
    plural: 'canaryrollouts',
    kind: 'CanaryRollout',
  },
  { key: 'services', group: '', version: 'v1', plural: 'services', kind: 'Service' },
  {
    key: 'endpointSlices',
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    kind: 'EndpointSlice',
  },
  { key: 'secrets', group: '', version: 'v1', plural: 'secrets', kind: 'Secret' },
];

function collectionPath(w: Watched, namespace: string | undefined): string {
  const base = w.group === '' ? `/api/${w.version}` : `/apis/${w.group}/${w.version}`;
  return namespace === undefined ? `${base}/${w.plural}` : `${base}/namespaces/${namespace}/${w.plural}`;
}

export interface KubernetesSourceOptions {
  kc: KubeConfig;
  /** Namespaces to watch; empty or undefined: all. */
  namespaces?: readonly string[];
  onChange: (state: ClusterState) => void;
  onError?: (kind: string, err: unknown, restartInMs: number) => void;
  debounceMs?: number;
  maxDebounceMs?: number;
  relistIntervalMs?: number;
  timers?: Timers;
  random?: () => number;
  now?: () => number;
}

export class KubernetesSource {
  private readonly opts: KubernetesSourceOptions;
  private readonly informers: { watched: Watched; informer: ResilientInformer<KubernetesObject> }[] = [];
  private readonly timers: Timers;
  private holdOff: unknown;
  private maxHoldOff: unknown;
  private started = false;
  /** Deliveries so far; tests wait on it instead of sleeping. */
  sequence = 0;
  private waiters: { after: number; resolve: (s: ClusterState) => void }[] = [];

  constructor(opts: KubernetesSourceOptions) {
    this.opts = opts;
    this.timers = opts.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    const namespaces = opts.namespaces && opts.namespaces.length > 0 ? opts.namespaces : [undefined];
    for (const watched of WATCHED) {
      for (const ns of namespaces) {
        const apiVersion = watched.group === '' ? watched.version : `${watched.group}/${watched.version}`;
        const informer = new ResilientInformer<KubernetesObject>({
          kc: opts.kc,
          path: collectionPath(watched, ns),
          apiVersion,
          kind: watched.kind,
          onChange: () => this.changed(),
          onError: (err, ms) => opts.onError?.(watched.kind, err, ms),
          relistIntervalMs: opts.relistIntervalMs,
          timers: opts.timers,
          random: opts.random,
          now: opts.now,
        });
        this.informers.push({ watched, informer });
      }
    }
  }

  /** Starts every informer; resolves with the first state once all have listed. */
  async start(): Promise<ClusterState> {
    await Promise.all(this.informers.map((i) => i.informer.start()));
    this.started = true;
    const state = this.state();
    this.deliver(state);
    return state;
  }

  /** The current snapshot. Objects are the informers' own: unchanged objects keep their identity. */
  state(): ClusterState {
    const state: ClusterState = {
      modelRoutes: [],
      rateLimitPolicies: [],
      canaryRollouts: [],
      services: [],
      endpointSlices: [],
      secrets: [],
    };
    for (const { watched, informer } of this.informers) {
      (state[watched.key] as KubernetesObject[]).push(...informer.list());
    }
    return state as ClusterState & {
      modelRoutes: ModelRoute[];
      rateLimitPolicies: RateLimitPolicy[];
      canaryRollouts: CanaryRollout[];
      services: Service[];
      endpointSlices: EndpointSlice[];
      secrets: Secret[];
    };
  }

  informerStates(): InformerState[] {
    return this.informers.map((i) => i.informer.state);
  }

  /** Resolves with the next state delivered after the current one. */
  nextChange(): Promise<ClusterState> {
    return new Promise((resolve) => this.waiters.push({ after: this.sequence, resolve }));
  }

  private changed(): void {
    if (!this.started) return; // the first state is delivered by start()
    this.timers.clearTimeout(this.holdOff);
    this.holdOff = this.timers.setTimeout(() => this.flush(), this.opts.debounceMs ?? 100);
    this.maxHoldOff ??= this.timers.setTimeout(() => this.flush(), this.opts.maxDebounceMs ?? 1000);
  }

  private flush(): void {
    this.timers.clearTimeout(this.holdOff);
    this.timers.clearTimeout(this.maxHoldOff);
    this.holdOff = undefined;
    this.maxHoldOff = undefined;
    this.deliver(this.state());
  }

  private deliver(state: ClusterState): void {
    this.sequence++;
    this.opts.onChange(state);
    const ready = this.waiters.filter((w) => w.after < this.sequence);
    this.waiters = this.waiters.filter((w) => w.after >= this.sequence);
    for (const w of ready) w.resolve(state);
  }

  async stop(): Promise<void> {
    this.timers.clearTimeout(this.holdOff);
    this.timers.clearTimeout(this.maxHoldOff);
    await Promise.all(this.informers.map((i) => i.informer.stop()));
  }
}
