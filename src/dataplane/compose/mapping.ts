/**
 * Builds a step's JSON body from its mapping (CompiledStep.request): start from `{}`, then for each
 * entry read a value (a JSON Pointer into the client's request or a step's answer, or a constant)
 * and put it at `to` with the transform body operation Set's rules (body-ops.ts: missing parent
 * objects are created, a scalar is never replaced by a container, arrays take an index or `-`).
 *
 * A source value that is not there sets nothing, as a body operation on a missing path does
 * nothing: the step then gets a body without it, and answers for itself.
 *
 * Sources are read, never changed: every value put is a copy, so a later entry that writes inside
 * it cannot alter what another entry (or a later step) reads. Integers beyond 2^53 parsed as
 * JSON.rawJSON (json-text.ts) are copied as they are, so they keep their digits.
 */
import type { CompiledMapping } from '../../routing-table/types.ts';
import { getAt, missing, putAt } from '../transform/body-ops.ts';

export { missing };

/** The documents a mapping reads; `missing` for one that does not exist (a request without a body). */
export interface MappingSources {
  /** The client's request body, parsed. */
  request(): unknown;
  /** The parsed answer of an earlier step. */
  step(name: string): unknown;
}

const isRawJSON = (JSON as unknown as { isRawJSON(v: unknown): boolean }).isRawJSON;

/** A deep copy of parsed JSON that keeps JSON.rawJSON values (structuredClone would turn them into objects). */
export function copyJson(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || isRawJSON(value)) return value;
  if (Array.isArray(value)) return value.map(copyJson);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    const v = copyJson((value as Record<string, unknown>)[key]);
    // An assignment to `__proto__` would set the prototype instead of adding a member.
    if (key === '__proto__') {
      Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
    } else out[key] = v;
  }
  return out;
}

/** The body the mapping builds. */
export function buildBody(mappings: readonly CompiledMapping[], sources: MappingSources): unknown {
  let doc: unknown = {};
  for (const m of mappings) {
    let value: unknown;
    if (m.from) {
      const source = m.from.step === undefined ? sources.request() : sources.step(m.from.step);
      if (source === missing) continue;
      const found = getAt(source, m.from.path);
      if (found === missing) continue;
      value = copyJson(found);
    } else value = copyJson(m.value);
    if (m.to.length === 0) doc = value;
    else putAt(doc, m.to, value);
  }
  return doc;
}

/** True when some entry reads the client's request (it is then parsed, once). */
export function readsRequest(mappings: readonly CompiledMapping[] | undefined): boolean {
  return mappings?.some((m) => m.from !== undefined && m.from.step === undefined) ?? false;
}
