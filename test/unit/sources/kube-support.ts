/**
 * Shared bits of the tests against the fake API server: objects as a cluster would hold them,
 * bounded waits, and fake timers for debounce and back-off.
 */
import type { TestContext } from 'node:test';
import {
  type FakeApiServer,
  type FakeApiServerOptions,
  startFakeApiServer,
} from '../../support/fake-apiserver/index.ts';

/** Generous: only reached when something is broken, and it beats hanging forever. */
export const TIMEOUT = { timeout: 90_000 };

/** Bound for any single wait inside a test. */
export const WAIT_MS = 30_000;

export async function fakeApi(t: TestContext, opts?: FakeApiServerOptions): Promise<FakeApiServer> {
  const api = await startFakeApiServer(opts);
  t.after(() => api.close());
  return api;
}

/** Resolves with `p`, or rejects naming `what` after `ms`. */
export async function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const API = 'modelgate.dev/v1alpha1';

/** A valid ModelRoute sending /<name> to a Service port. */
export function serviceRoute(name: string, namespace: string, service = 'vllm', port = 80) {
  return {
    apiVersion: API,
    kind: 'ModelRoute',
    metadata: { name, namespace },
    spec: {
      rules: [
        {
          matches: [{ path: { value: `/${name}` } }],
          backends: [{ name: 'b', service: { name: service, port } }],
        },
      ],
    },
  };
}

/** A ModelRoute the compiler refuses (every backend weight zero). */
export function badRoute(name: string, namespace: string) {
  return {
    apiVersion: API,
    kind: 'ModelRoute',
    metadata: { name, namespace },
    spec: {
      rules: [
        {
          matches: [{ path: { value: `/${name}` } }],
          backends: [{ name: 'b', weight: 0, urls: ['http://10.0.0.2:8000'] }],
        },
      ],
    },
  };
}

export function service(name: string, namespace: string) {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports: [{ name: 'http', port: 80, targetPort: 8000 }] },
  };
}

export function endpointSlice(name: string, namespace: string, svc: string, addresses: string[]) {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 8000 }],
    endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
  };
}

export function secret(name: string, namespace: string, value = 'c2VjcmV0') {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    type: 'Opaque',
    data: { key: value },
  };
}

export function rateLimitPolicy(name: string, namespace: string, target: string) {
  return {
    apiVersion: API,
    kind: 'RateLimitPolicy',
    metadata: { name, namespace },
    spec: {
      targetRefs: [{ name: target }],
      limits: [{ name: 'per-consumer', key: [{ type: 'Consumer' }], amount: 100, period: '1m' }],
    },
  };
}

/**
 * Timers under the test's control: nothing runs until `advance()`. `changed()` resolves waiters
 * whenever code under test schedules something, which is how a test learns that an informer has
 * seen an event (the source schedules its hold-off) without sleeping.
 */
export class FakeTimers {
  now = 0;
  private nextId = 0;
  private queue: { id: number; at: number; fn: () => void }[] = [];
  private waiters = new Set<() => void>();

  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = ++this.nextId;
    this.queue.push({ id, at: this.now + ms, fn });
    for (const w of [...this.waiters]) w();
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.queue = this.queue.filter((t) => t.id !== handle);
  };

  /** Delays of the timers now pending, relative to now. */
  pending(): number[] {
    return this.queue.map((t) => t.at - this.now).sort((a, b) => a - b);
  }

  /** Runs every timer due within `ms`, in order, then sets the clock to now + ms. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      const due = this.queue.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.queue = this.queue.filter((t) => t !== due);
      this.now = due.at;
      due.fn();
    }
    this.now = end;
  }

  /** Resolves once `pred()` holds, re-checked each time something is scheduled (bounded). */
  until(pred: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
    if (pred()) return Promise.resolve();
    let check = () => {};
    const p = new Promise<void>((resolve) => {
      check = () => {
        if (pred()) resolve();
      };
      this.waiters.add(check);
    });
    return within(p, what, ms).finally(() => this.waiters.delete(check));
  }
}
