/**
 * Which requests a rule declares deterministic (`cache.when`): any entry may hold, and within an
 * entry every condition must. Conditions read what the upstream would receive (the request after
 * the rule's transforms), as the key does. A body field must be there with an equal JSON value: a
 * missing `temperature` is not `temperature: 0` (servers default it to 1), a body that is not
 * JSON matches no body condition. Numbers compare by value (0 equals 0.0), objects by members.
 */
import type { CompiledCacheCondition } from '../../routing-table/types.ts';
import { decodeContent } from '../request/model-field.ts';
import { jsonText } from '../transform/json-text.ts';
import type { OutgoingHeaders } from '../upstream/headers.ts';

/** No such value (distinct from a JSON null). */
const MISSING = Symbol('missing');

const INDEX = /^(0|[1-9]\d*)$/;

/** The value at `path` (JSON Pointer tokens) in a parsed document, or MISSING. */
export function valueAt(doc: unknown, path: readonly string[]): unknown {
  let v: unknown = doc;
  for (const token of path) {
    if (Array.isArray(v)) {
      if (!INDEX.test(token)) return MISSING;
      const i = Number(token);
      if (i >= v.length) return MISSING;
      v = v[i];
    } else if (v !== null && typeof v === 'object') {
      if (!Object.hasOwn(v, token)) return MISSING;
      v = (v as Record<string, unknown>)[token];
    } else return MISSING;
  }
  return v;
}

/** JSON equality: by value for scalars, element-wise for arrays, member-wise for objects. */
export function jsonEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEquals(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  for (const k of ak) {
    if (!Object.hasOwn(b, k)) return false;
    if (!jsonEquals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

/** The request parts the conditions read. */
export interface ConditionInput {
  readonly headers: OutgoingHeaders;
  readonly body: Buffer | undefined;
}

export class Determinism {
  private readonly when: readonly CompiledCacheCondition[];
  private readonly maxBodyBytes: number;
  /** Some condition reads the body (so it is parsed, once). */
  readonly readsBody: boolean;

  constructor(when: readonly CompiledCacheCondition[], maxBodyBytes: number) {
    this.when = when;
    this.maxBodyBytes = maxBodyBytes;
    this.readsBody = when.some((c) => c.bodyFields.length > 0);
  }

  /** True when the request is declared deterministic (always, for a rule without `when`). */
  holds(req: ConditionInput): boolean {
    if (this.when.length === 0) return true;
    let doc: unknown = MISSING;
    let parsed = false;
    for (const c of this.when) {
      if (!headersHold(c, req.headers)) continue;
      if (c.bodyFields.length === 0) return true;
      if (!parsed) {
        parsed = true;
        doc = this.parse(req);
      }
      if (doc === MISSING) continue;
      let all = true;
      for (const f of c.bodyFields) {
        if (!jsonEquals(valueAt(doc, f.path), f.equals)) {
          all = false;
          break;
        }
      }
      if (all) return true;
    }
    return false;
  }

  private parse(req: ConditionInput): unknown {
    const body = req.body;
    if (body === undefined || body.length === 0) return MISSING;
    const encoding = req.headers['content-encoding'];
    let bytes = body;
    if (encoding !== undefined) {
      const decoded = decodeContent([body], String(encoding), this.maxBodyBytes);
      if (decoded.kind !== 'ok') return MISSING;
      bytes = decoded.body;
    }
    const text = jsonText(bytes);
    if (text === undefined) return MISSING;
    try {
      return JSON.parse(text);
    } catch {
      return MISSING;
    }
  }
}

function headersHold(c: CompiledCacheCondition, headers: OutgoingHeaders): boolean {
  for (const h of c.headers) {
    if (headers[h.name] !== h.value) return false;
  }
  return true;
}
