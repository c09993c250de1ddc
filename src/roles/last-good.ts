/**
 * What the API server gives cluster users for free, done for files: an edit that breaks a
 * resource does not take the resource away. When a custom resource stops passing admission, or
 * the file it lived in stops parsing, the last version that was good keeps serving, and the
 * problem is reported. A resource deleted from a file that parses is really deleted.
 */
import { type ClusterState, objectKey } from '../api/cluster-state.ts';
import type { CustomResource } from '../api/resources.ts';
import { admit } from '../compiler/admit.ts';
import type { LoadResult } from '../sources/files/index.ts';

type Lists = 'modelRoutes' | 'rateLimitPolicies' | 'canaryRollouts';
const LISTS: readonly Lists[] = ['modelRoutes', 'rateLimitPolicies', 'canaryRollouts'];

export interface Kept {
  key: string;
  reason: string;
}

export class LastGood {
  private readonly good = new Map<string, { resource: CustomResource; file: string; list: Lists }>();

  /** The state to compile, with broken resources replaced by their last good version. */
  merge(loaded: LoadResult): { state: ClusterState; kept: Kept[] } {
    const state: ClusterState = { ...loaded.state };
    const kept: Kept[] = [];
    const brokenFiles = new Set(
      loaded.problems.filter((p) => p.line !== undefined && p.key === undefined).map((p) => p.file),
    );
    const present = new Set<string>();
    for (const list of LISTS) {
      const out: CustomResource[] = [];
      for (const r of loaded.state[list] as CustomResource[]) {
        const key = objectKey(r.kind, r.metadata.namespace, r.metadata.name);
        present.add(key);
        const a = admit(r);
        const previous = this.good.get(key);
        if (a.ok) {
          this.good.set(key, { resource: r, file: loaded.origins.get(key)?.file ?? '', list });
          out.push(r);
        } else if (previous) {
          kept.push({ key, reason: 'the new version is invalid; serving the last good one' });
          out.push(previous.resource);
        } else {
          out.push(r); // never good: the compiler reports it
        }
      }
      (state[list] as CustomResource[]) = out;
    }
    for (const [key, g] of this.good) {
      if (present.has(key)) continue;
      if (brokenFiles.has(g.file)) {
        kept.push({ key, reason: `${g.file} does not parse; serving the last good version` });
        (state[g.list] as CustomResource[]) = [...(state[g.list] as CustomResource[]), g.resource];
      } else {
        this.good.delete(key);
      }
    }
    return { state, kept };
  }
}
