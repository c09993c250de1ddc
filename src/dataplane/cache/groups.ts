/**
 * Key namespaces ("groups"): one per rule, cache settings and model revision. Every key includes
 * its group, and the Redis keys start with it, so:
 *
 * - a backend with a new `modelRevision` (an edit, or a canary with its own revision) reads and
 *   writes a new namespace: an older revision's answers are never served for it;
 * - backends of one rule with the same revision share answers (they serve the same model);
 * - a backend without `modelRevision` is keyed by its name and what it points at (its Service and
 *   port, or its URLs): pointing it elsewhere starts afresh, but a new image rolled out behind the
 *   same Service is not seen; set `modelRevision` for that;
 * - changing the rule's ttl, keyHeaders, shared or conditions starts afresh too (coalescing and
 *   size bounds do not: they do not change what an entry means).
 *
 * When a table is applied, the groups no backend serves any more (weight 0 after a promotion or a
 * rollback, unless a preview or an override still sends requests there; a revision that changed or
 * left) are purged from the local store (cache-filter.ts). In Redis their keys are never read
 * again and expire with their TTL.
 */
import { createHash } from 'node:crypto';
import type { CompiledBackend, CompiledCache, CompiledRule } from '../../routing-table/types.ts';

/** What an entry means depends on these settings only. */
function fingerprint(c: CompiledCache): string {
  return JSON.stringify([c.ttlMs, c.keyHeaders, c.shared, c.when, c.store]);
}

function revisionTag(b: CompiledBackend): string {
  return b.modelRevision !== undefined
    ? `revision\u0000${b.modelRevision}`
    : `backend\u0000${b.name}\u0000${b.endpoints}`;
}

/** A short id (22 base64url characters, 132 bits): Redis key prefixes stay small. */
function groupId(ruleId: string, settings: string, tag: string): string {
  return createHash('sha256')
    .update(`${ruleId}\u0000${settings}\u0000${tag}`)
    .digest('base64url')
    .slice(0, 22);
}

/** Group id by backend name, for a rule with a cache. */
export function groupsOf(rule: CompiledRule): Map<string, string> {
  const settings = fingerprint(rule.cache!);
  return new Map(rule.backends.map((b) => [b.name, groupId(rule.id, settings, revisionTag(b))]));
}

/** Names of the backends that can receive a request of this rule under this table. */
export function servingBackends(rule: CompiledRule): Set<string> {
  const names = new Set(rule.backends.filter((b) => b.weight > 0).map((b) => b.name));
  const c = rule.canary;
  if (c) {
    if (c.preview !== undefined || c.override?.always !== undefined) names.add(c.canaryBackend);
    if (c.override?.never !== undefined) names.add(c.stableBackend);
  }
  return names;
}

/** Groups of a table that some backend still serves. */
export function liveGroups(rules: readonly CompiledRule[]): Set<string> {
  const live = new Set<string>();
  for (const rule of rules) {
    if (!rule.cache) continue;
    const groups = groupsOf(rule);
    for (const name of servingBackends(rule)) {
      const g = groups.get(name);
      if (g !== undefined) live.add(g);
    }
  }
  return live;
}
