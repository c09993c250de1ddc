/** A fake Kubernetes API server for tests. See README.md in this folder. */
export type { Status } from './errors.ts';
export { kubeConfigFor, writeKubeconfigFile } from './kubeconfig.ts';
export { JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH } from './patch.ts';
export { RESOURCE_TYPES, type ResourceType } from './resources.ts';
export {
  type FailOptions,
  FakeApiServer,
  type FakeApiServerOptions,
  type ObjectInput,
  type RecordedRequest,
  type RequestFilter,
  type RequestMatcher,
} from './server.ts';
export type { ChangeEvent, ChangeType } from './store.ts';
export type { StoredMeta, StoredObject } from './types.ts';
export type { WatchEventType } from './watch.ts';
export { type WatchEnd, type WatchLine, type WatchObject, WatchReader } from './watch-reader.ts';

import { FakeApiServer, type FakeApiServerOptions } from './server.ts';

/** `new FakeApiServer(opts)` and `start()` in one call; the caller still owns `close()`. */
export async function startFakeApiServer(opts?: FakeApiServerOptions): Promise<FakeApiServer> {
  const server = new FakeApiServer(opts);
  await server.start();
  return server;
}
