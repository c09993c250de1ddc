/**
 * Match conditions compiled once per table: regular expressions are built here (anchored, since
 * they must match the whole value) and globs become regular expressions, so a request never
 * compiles a pattern. They are built by route-regex.ts, which bounds their matching time.
 */
import { anchoredSource, routeRegExp } from '../../routing-table/route-regex.ts';
import type { CompiledMatch } from '../../routing-table/types.ts';

export interface StringCondition {
  name: string;
  exact: string | undefined;
  regex: RegExp | undefined;
}

export interface ModelCondition {
  exact: string | undefined;
  glob: RegExp | undefined;
  /** The configured value (name or glob), used as the metric label. */
  label: string;
}

/** A match ready for requests. `order` is its place in the table's precedence order. */
export interface RuntimeMatch<Rule> {
  order: number;
  rule: Rule;
  method: string | undefined;
  headers: StringCondition[];
  query: StringCondition[];
  model: ModelCondition | undefined;
  pathRegex: RegExp | undefined;
}

export function anchored(pattern: string): RegExp {
  return routeRegExp(anchoredSource(pattern));
}

/** `*` any run of characters, `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  let out = '';
  for (const c of glob) {
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else out += c.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return routeRegExp(`^${out}$`, 's');
}

export function compileConditions<Rule>(m: CompiledMatch, order: number, rule: Rule): RuntimeMatch<Rule> {
  const strings = (list: CompiledMatch['headers']): StringCondition[] =>
    list.map((h) => ({
      name: h.name,
      exact: h.type === 'Exact' ? h.value : undefined,
      regex: h.type === 'RegularExpression' ? anchored(h.value) : undefined,
    }));
  return {
    order,
    rule,
    method: m.method,
    headers: strings(m.headers),
    query: strings(m.queryParams),
    model: m.model
      ? {
          exact: m.model.type === 'Exact' ? m.model.value : undefined,
          glob: m.model.type === 'Glob' ? globToRegExp(m.model.value) : undefined,
          label: m.model.value,
        }
      : undefined,
    pathRegex: m.path.type === 'RegularExpression' ? anchored(m.path.value) : undefined,
  };
}

function testString(c: StringCondition, value: string | undefined): boolean {
  if (value === undefined) return false;
  return c.exact !== undefined ? c.exact === value : c.regex!.test(value);
}

/** Header values as node:http delivers them (lower-case names; repeated values joined). */
export type HeaderBag = Record<string, string | string[] | undefined>;

export function headersMatch(conds: StringCondition[], headers: HeaderBag): boolean {
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const v = headers[c.name];
    if (!testString(c, Array.isArray(v) ? v.join(', ') : v)) return false;
  }
  return true;
}

export function queryMatches(conds: StringCondition[], query: URLSearchParams): boolean {
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const v = query.get(c.name);
    if (!testString(c, v ?? undefined)) return false;
  }
  return true;
}

export function modelMatches(c: ModelCondition, model: string): boolean {
  return c.exact !== undefined ? c.exact === model : c.glob!.test(model);
}
