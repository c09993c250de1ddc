/**
 * Label and field selectors, parsed as the real server parses them (so a malformed selector is a
 * 400, not a silent match-all) and evaluated against stored objects.
 */
import { badRequest } from './errors.ts';
import type { ResourceType } from './resources.ts';
import type { StoredObject } from './types.ts';

export type Selector = (obj: StoredObject) => boolean;

export const everything: Selector = () => true;

type Requirement =
  | { op: '=' | '!='; key: string; value: string }
  | { op: 'exists' | '!exists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: string[] };

/** Splits on commas outside parentheses: `a in (x,y),b` is two requirements. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}

// Label keys: an optional DNS prefix and a name. Loose on purpose; strict enough to refuse junk.
const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key))
    throw badRequest(`unable to parse requirement: invalid label key "${key}" in "${whole}"`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (!VALUE.test(value))
    throw badRequest(`unable to parse requirement: invalid label value "${value}" in "${whole}"`);
  return value;
}

function parseRequirement(raw: string, whole: string): Requirement {
  const s = raw.trim();
  const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(s);
  if (set) {
    const values = set[3]!.split(',').map((v) => checkValue(v.trim(), whole));
    return { op: set[2] as 'in' | 'notin', key: checkKey(set[1]!, whole), values };
  }
  const neq = /^([^=!]+)!=(.*)$/.exec(s);
  if (neq)
    return { op: '!=', key: checkKey(neq[1]!.trim(), whole), value: checkValue(neq[2]!.trim(), whole) };
  const eq = /^([^=!]+)==?(.*)$/.exec(s);
  if (eq) return { op: '=', key: checkKey(eq[1]!.trim(), whole), value: checkValue(eq[2]!.trim(), whole) };
  if (s.startsWith('!')) return { op: '!exists', key: checkKey(s.slice(1).trim(), whole) };
  return { op: 'exists', key: checkKey(s, whole) };
}

export function parseLabelSelector(selector: string | null): Selector {
  if (selector === null || selector.trim() === '') return everything;
  const reqs = splitTopLevel(selector).map((p) => parseRequirement(p, selector));
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return reqs.every((r) => {
      const has = Object.hasOwn(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case '=':
          return has && v === r.value;
        case '!=':
          return !has || v !== r.value;
        case 'exists':
          return has;
        case '!exists':
          return !has;
        case 'in':
          return has && r.values.includes(v!);
        case 'notin':
          return !has || !r.values.includes(v!);
      }
      return false;
    });
  };
}

function fieldValue(obj: StoredObject, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur === undefined || cur === null ? '' : String(cur);
}

/** Only the fields the real server indexes for the type; anything else is a 400 there too. */
export function parseFieldSelector(selector: string | null, r: ResourceType): Selector {
  if (selector === null || selector.trim() === '') return everything;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...r.extraFields]);
  const reqs = selector.split(',').map((raw) => {
    const m = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(raw);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${raw}'`);
    const field = m[1]!;
    if (!allowed.has(field)) throw badRequest(`field label not supported: ${field}`);
    return { field, negate: m[2] === '!=', value: m[3]! };
  });
  return (obj) => reqs.every((q) => (fieldValue(obj, q.field) === q.value) !== q.negate);
}
