/**
 * Match precedence. The proxy groups matches by host (exact host, then the longest wildcard, then
 * any host) and within a group takes the first match in this order:
 *
 *  1. path: Exact before PathPrefix before RegularExpression; within a type, the longer value first;
 *  2. a match with a method before one without;
 *  3. a model match: Exact before Glob (more literal characters first) before none;
 *  4. more header conditions first, then more query-parameter conditions;
 *  5. the older route first (creation time; a route without one — files have none — counts as
 *     the newest, see compareCreated);
 *  6. then namespace/name of the route, then rule index, then match index.
 *
 * Steps 1–4 follow Gateway API's HTTPRoute order, with the model inserted after the method because
 * it is the most telling condition of an inference request.
 */
import type { CompiledMatch } from '../routing-table/types.ts';

export interface RankedMatch {
  match: CompiledMatch;
  /** RFC 3339 creation time of the route, when known. */
  created: string | undefined;
  routeKey: string;
  ruleIndex: number;
  matchIndex: number;
}

const PATH_RANK = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;

function literalLength(glob: string): number {
  let n = 0;
  for (const c of glob) if (c !== '*' && c !== '?') n++;
  return n;
}

function modelRank(m: CompiledMatch): [number, number] {
  if (!m.model) return [2, 0];
  return m.model.type === 'Exact' ? [0, -m.model.value.length] : [1, -literalLength(m.model.value)];
}

export function comparePrecedence(a: RankedMatch, b: RankedMatch): number {
  const x = a.match;
  const y = b.match;
  return (
    PATH_RANK[x.path.type] - PATH_RANK[y.path.type] ||
    y.path.value.length - x.path.value.length ||
    Number(y.method !== undefined) - Number(x.method !== undefined) ||
    modelRank(x)[0] - modelRank(y)[0] ||
    modelRank(x)[1] - modelRank(y)[1] ||
    y.headers.length - x.headers.length ||
    y.queryParams.length - x.queryParams.length ||
    compareCreated(a.created, b.created) ||
    compareText(a.routeKey, b.routeKey) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

/** A creation time in epoch milliseconds; undefined when absent or not a valid RFC 3339 time. */
function createdMs(created: unknown): number | undefined {
  if (typeof created !== 'string') return undefined;
  const t = Date.parse(created);
  return Number.isNaN(t) ? undefined : t;
}

/**
 * Creation-time order: older first. An object without a (valid) creation time counts as the newest,
 * as it would be if it were applied to the cluster now; two without one tie. Comparing only "when
 * both have one" would not be a total order (A older than C, C before B by name, B before A by
 * name), and sorting would then depend on the input order.
 */
export function compareCreated(a: string | undefined, b: string | undefined): number {
  const ta = createdMs(a);
  const tb = createdMs(b);
  if (ta === undefined || tb === undefined) return (ta === undefined ? 1 : 0) - (tb === undefined ? 1 : 0);
  return ta - tb;
}

/** Code-unit order, independent of locale. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Two matches with the same identity on the same host can never both be reached. */
export function matchIdentity(m: CompiledMatch): string {
  const pairs = (l: { name: string; type: string; value: string }[]) =>
    l
      .map((h) => `${h.name}\u0000${h.type}\u0000${h.value}`)
      .sort()
      .join('\u0001');
  return [
    m.hostname,
    m.path.type,
    m.path.value,
    m.method ?? '',
    m.model ? `${m.model.type}:${m.model.value}` : '',
    pairs(m.headers),
    pairs(m.queryParams),
  ].join('\u0002');
}
