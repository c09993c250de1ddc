/**
 * The optional capabilities a routing table uses, listed in the table (`routes.features`) so that
 * a proxy refuses a table needing one it does not implement, instead of serving the rule without
 * it. Without this, a proxy older than request validation would accept a table whose rules carry
 * `validation` (an unknown field to it) and forward unvalidated requests; refusing keeps its last
 * good table and the controller reports the NACK in the route's Programmed condition.
 *
 * This complements TABLE_SCHEMA_VERSION, which is for incompatible changes of the table's shape:
 * a feature is an addition that an older proxy could silently ignore. Every capability a rule can
 * switch on is listed, whatever its age, so the rule is simple: a new optional rule field gets a
 * name here and in featuresOf().
 */
import type { CompiledRule, RoutesPart } from './types.ts';

export const TABLE_FEATURES = [
  'auth',
  'authorization',
  'cache',
  'canary',
  'composition',
  'cors',
  'httpsRedirect',
  'mirror',
  'rateLimit',
  'transform',
  'translation',
  'validation',
] as const;

export type TableFeature = (typeof TABLE_FEATURES)[number];

const KNOWN: ReadonlySet<string> = new Set(TABLE_FEATURES);

function ruleFeatures(r: CompiledRule, out: Set<TableFeature>): void {
  if (r.auth) out.add('auth');
  if (r.authorization) out.add('authorization');
  if (r.cache) out.add('cache');
  if (r.canary) out.add('canary');
  if (r.canary?.mirror) out.add('mirror');
  if (r.composition) out.add('composition');
  if (r.cors) out.add('cors');
  if (r.httpsRedirect) out.add('httpsRedirect');
  if (r.rateLimitPolicy) out.add('rateLimit');
  if (r.transform) out.add('transform');
  if (r.translation) out.add('translation');
  if (r.validation) out.add('validation');
}

/** The features the rules use, sorted. */
export function featuresOf(routes: Pick<RoutesPart, 'rules'>): TableFeature[] {
  const out = new Set<TableFeature>();
  for (const r of routes.rules) ruleFeatures(r, out);
  return [...out].sort();
}

/** Features a table needs that this build does not implement. */
export function unknownFeatures(features: readonly string[] | undefined): string[] {
  return (features ?? []).filter((f) => !KNOWN.has(f));
}
