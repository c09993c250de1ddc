/**
 * A client-node informer that does not give up. client-node's ListWatch reconnects after a watch
 * ends and relists after 410 Gone, but after any other error (a 500 on list or watch, a refused
 * connection) it reports `error` and stops for good. This wrapper restarts it with exponential
 * back-off and jitter, relists periodically (a watch that silently stalls cannot hide changes for
 * longer than the interval), and keeps the timestamps the staleness metric is made of.
 */
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from '@kubernetes/client-node';
import { kubeRequest } from './kube-request.ts';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface InformerOptions {
  kc: KubeConfig;
  /** Collection path, e.g. /apis/modelgate.dev/v1alpha1/namespaces/ml/modelroutes. */
  path: string;
  /** apiVersion and kind to stamp on list items (the API server omits them there). */
  apiVersion: string;
  kind: string;
  /** Called after every change to the cache. */
  onChange: () => void;
  onError?: (err: unknown, restartInMs: number) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A fresh list every so often; 0 disables. Default 10 minutes. */
  relistIntervalMs?: number;
  timers?: Timers;
  random?: () => number;
  now?: () => number;
}

export interface InformerState {
  kind: string;
  path: string;
  synced: boolean;
  /** Wall-clock ms of the last list, event or watch (re)connection: "known to be current at". */
  lastSyncMs: number;
  restarts: number;
  lastError: string | undefined;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly opts: InformerOptions;
  private readonly timers: Timers;
  private readonly random: () => number;
  private readonly now: () => number;
  private lw: ListWatch<T>;
  private backoffMs: number;
  private restartTimer: unknown;
  private relistTimer: unknown;
  private stopped = false;
  /** Errors so far; a restart counts as a success only if none came while it started. */
  private failures = 0;
  /** Before the first list, and between an error and the next list, event or clean restart. */
  private failing = true;
  private syncedResolve: (() => void) | undefined;
  readonly synced: Promise<void>;
  readonly state: InformerState;

  constructor(opts: InformerOptions) {
    this.opts = opts;
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.backoffMs = opts.initialBackoffMs ?? 500;
    this.state = {
      kind: opts.kind,
      path: opts.path,
      synced: false,
      lastSyncMs: 0,
      restarts: 0,
      lastError: undefined,
    };
    this.synced = new Promise((resolve) => {
      this.syncedResolve = resolve;
    });
    this.lw = this.make();
  }

  /** Lists with raw JSON, stamping apiVersion and kind on the items. */
  private fetchList = async (): Promise<KubernetesListObject<T>> => {
    const list = await kubeRequest<KubernetesListObject<T>>(this.opts.kc, this.opts.path);
    list.items = list.items.map((item) => {
      // An object unchanged since the cache last saw it stays the same object (a relist into a
      // fresh ListWatch would otherwise replace them all): the compiler memoises per identity.
      const cached = this.lw.get(item.metadata?.name ?? '', item.metadata?.namespace);
      if (cached && cached.metadata?.resourceVersion === item.metadata?.resourceVersion) return cached;
      item.apiVersion ??= this.opts.apiVersion;
      item.kind ??= this.opts.kind;
      return item;
    });
    return list;
  };

  /** The list of the informer in service; the first successful one marks the informer synced. */
  private listFn = async (): Promise<KubernetesListObject<T>> => {
    const list = await this.fetchList();
    this.failing = false;
    this.fresh();
    if (!this.state.synced) {
      // ListWatch fills its cache right after this returns; readers wait for that.
      setImmediate(() => {
        if (this.state.synced) return;
        this.state.synced = true;
        this.syncedResolve?.();
      });
    }
    return list;
  };

  private make(): ListWatch<T> {
    const lw = new ListWatch<T>(this.opts.path, new Watch(this.opts.kc), this.listFn, false);
    this.wire(lw);
    return lw;
  }

  private fresh(): void {
    this.state.lastSyncMs = this.now();
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    this.failures++;
    this.failing = true;
    this.state.lastError = err instanceof Error ? err.message : String(err);
    // Jitter: a fleet of replicas does not retry in lock-step against a struggling API server.
    const delay = Math.round(this.backoffMs * (0.5 + this.random() / 2));
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
    this.opts.onError?.(err, delay);
    this.timers.clearTimeout(this.restartTimer);
    this.restartTimer = this.timers.setTimeout(() => {
      if (this.stopped) return;
      this.state.restarts++;
      const failuresBefore = this.failures;
      // Continues from the last resourceVersion; a 410 then makes ListWatch relist by itself.
      // start() resolves once the watch is open, or after the list or watch failed (reported
      // through `error` first): only a clean start resets the back-off, so it grows while the API
      // server keeps failing.
      void this.lw.start().then(() => {
        if (this.failures !== failuresBefore || this.stopped) return;
        this.backoffMs = this.opts.initialBackoffMs ?? 500;
        this.failing = false;
        this.fresh();
      });
    }, delay);
  }

  /** Starts and resolves once the first list is in the cache. */
  async start(): Promise<void> {
    this.stopped = false;
    void this.lw.start();
    this.scheduleRelist();
    await this.synced;
  }

  private scheduleRelist(): void {
    const every = this.opts.relistIntervalMs ?? 600_000;
    if (every <= 0) return;
    this.relistTimer = this.timers.setTimeout(() => {
      void this.relist().finally(() => {
        if (!this.stopped) this.scheduleRelist();
      });
    }, every);
  }

  /**
   * Lists afresh into a new informer and swaps it in once its list is loaded and its watch open,
   * so readers never see an empty cache; the old informer keeps serving until then.
   */
  async relist(): Promise<void> {
    // Not listFn: a list that may yet be thrown away says nothing about the cache in service.
    const next = new ListWatch<T>(this.opts.path, new Watch(this.opts.kc), this.fetchList, false);
    let failed = false;
    next.on('error', () => {
      failed = true;
    });
    await next.start();
    if (failed || this.stopped) {
      await next.stop();
      return;
    }
    const previous = this.lw;
    const before = previous.list();
    this.lw = next;
    this.wire(next);
    // The new informer is healthy: a restart still pending for the old one would call start() on
    // this running one, which aborts its watch (an error, so another restart, and so on).
    this.timers.clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.backoffMs = this.opts.initialBackoffMs ?? 500;
    this.failing = false;
    await previous.stop();
    this.fresh();
    // Unchanged objects kept their identity (fetchList): only a real difference is a change.
    const after = next.list();
    const seen = new Set<T>(before);
    if (after.length !== before.length || after.some((o) => !seen.has(o))) this.opts.onChange();
  }

  /** Cache changes and errors of the informer in service reach the source; others are ignored. */
  private wire(lw: ListWatch<T>): void {
    const changed = () => {
      if (lw !== this.lw) return;
      this.failing = false;
      this.fresh();
      this.opts.onChange();
    };
    lw.on('add', changed);
    lw.on('update', changed);
    lw.on('delete', changed);
    lw.on('connect', () => {
      // ListWatch reports `connect` before it lists or watches: after an error that proves nothing.
      if (lw === this.lw && !this.failing) this.fresh();
    });
    lw.on('error', (err) => {
      if (lw === this.lw) this.failed(err);
    });
  }

  list(): readonly T[] {
    return this.lw.list();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timers.clearTimeout(this.restartTimer);
    this.timers.clearTimeout(this.relistTimer);
    await this.lw.stop();
  }
}
