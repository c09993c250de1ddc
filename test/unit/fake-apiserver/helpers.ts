/** Shared bits of the fake API server's own tests: raw HTTP calls and sample objects. */
import type { TestContext } from 'node:test';
import {
  type FakeApiServer,
  type StoredObject,
  startFakeApiServer,
} from '../../support/fake-apiserver/index.ts';
import type { FakeApiServerOptions } from '../../support/fake-apiserver/server.ts';

/** Generous: only reached when something is broken, and it beats hanging forever. */
export const TIMEOUT = { timeout: 60_000 };

export const MR_PATH = '/apis/modelgate.dev/v1alpha1/namespaces/ml/modelroutes';

export interface ListBody {
  apiVersion: string;
  kind: string;
  metadata: { resourceVersion: string; continue?: string; remainingItemCount?: number };
  items: StoredObject[];
}

export interface StatusBody {
  kind: 'Status';
  code: number;
  reason: string;
  message: string;
  status: string;
  details?: { name?: string; group?: string; kind?: string };
}

export async function server(t: TestContext, opts?: FakeApiServerOptions): Promise<FakeApiServer> {
  const s = await startFakeApiServer(opts);
  t.after(() => s.close());
  return s;
}

/** One JSON request; the body is typed by the caller, who knows what the path answers. */
export async function call<T = StoredObject>(
  s: FakeApiServer,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<{ status: number; body: T; contentType: string | null }> {
  const res = await fetch(s.url + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: JSON.parse(text) as T, contentType: res.headers.get('content-type') };
}

export function route(name: string, namespace = 'ml', extra: Partial<StoredObject> = {}) {
  return {
    apiVersion: 'modelgate.dev/v1alpha1',
    kind: 'ModelRoute',
    metadata: { name, namespace },
    spec: { hostnames: [`${name}.example.com`], rules: [] },
    ...extra,
  };
}

export const accepted = (generation: number) => ({
  observedGeneration: generation,
  conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok' }],
});
