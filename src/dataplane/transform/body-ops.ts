/**
 * JSON body operations (CompiledBodyOp) on a parsed document. Paths are RFC 6901 pointers, already
 * split into tokens by the compiler. The semantics, each tested in body-ops.test.ts:
 *
 * - Tokens: on an object a token is a member name (own members only: `__proto__` is a key like
 *   any other, never the prototype); on an array it is an index written without leading zeros,
 *   and `-` means "after the last element" (only a place to put something: nothing is there).
 * - A path that is not there: Remove, Rename, Wrap and Unwrap do nothing. Set creates the missing
 *   parent objects (`/a/b/c` on `{}` gives `{"a":{"b":{"c":…}}}`), but never replaces a value that
 *   is there and is not a container (a string stays a string), and never creates array elements
 *   except at the end (index = length, or `-`); otherwise it does nothing.
 * - Set replaces what is at the path (an array element included; use `-` to append). Its value is
 *   copied each time, so later operations cannot change the table's copy.
 * - Rename is JSON Patch's move: remove `from`, then Set at `path`; when the Set cannot be done
 *   the value goes back where it was, so a rename never loses data.
 * - Wrap replaces the value at `path` with `{under: value}`; `""` wraps the whole body.
 * - Unwrap replaces the container holding `path` with the value at `path` (`/data` on
 *   `{"data": X, "meta": …}` gives X); the inverse of Wrap.
 *
 * `applyBodyOps` says whether anything changed: a body no operation touched is forwarded as the
 * client (or the upstream) sent it, byte for byte.
 */
import type { CompiledBodyOp } from '../../routing-table/types.ts';

type Json = unknown;
type JsonObject = Record<string, Json>;
type Container = JsonObject | Json[];

const INDEX = /^(0|[1-9][0-9]*)$/;

function isContainer(v: Json): v is Container {
  return v !== null && typeof v === 'object';
}

/** The index a token names in `arr` (may equal length for `-`), or -1. */
function indexOf(arr: Json[], token: string, allowEnd: boolean): number {
  if (token === '-') return allowEnd ? arr.length : -1;
  if (!INDEX.test(token)) return -1;
  const i = Number(token);
  return i < arr.length || (allowEnd && i === arr.length) ? i : -1;
}

function setMember(obj: Record<string, Json>, key: string, value: Json): void {
  // An assignment to `__proto__` would change the object's prototype instead of adding a member.
  if (key === '__proto__') {
    Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
  } else obj[key] = value;
}

/** The value at `path`, or `missing`. */
export const missing = Symbol('missing');

export function getAt(doc: Json, path: readonly string[], length = path.length): Json | typeof missing {
  let cur: Json = doc;
  for (let i = 0; i < length; i++) {
    if (!isContainer(cur)) return missing;
    const token = path[i]!;
    if (Array.isArray(cur)) {
      const idx = indexOf(cur, token, false);
      if (idx < 0) return missing;
      cur = cur[idx];
    } else {
      if (!Object.hasOwn(cur, token)) return missing;
      cur = cur[token];
    }
  }
  return cur;
}

/** Puts `value` at `path` (non-empty) under Set's rules; false when it cannot. */
export function putAt(doc: Json, path: readonly string[], value: Json): boolean {
  let cur: Json = doc;
  for (let i = 0; i < path.length - 1; i++) {
    const token = path[i]!;
    if (Array.isArray(cur)) {
      const idx = indexOf(cur, token, false);
      if (idx < 0) return false;
      cur = cur[idx];
    } else if (isContainer(cur)) {
      const obj = cur as JsonObject;
      if (!Object.hasOwn(obj, token)) setMember(obj, token, {});
      cur = obj[token];
    } else return false;
    if (!isContainer(cur)) return false;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(cur)) {
    const idx = indexOf(cur, last, true);
    if (idx < 0) return false;
    cur[idx] = value;
    return true;
  }
  if (!isContainer(cur)) return false;
  setMember(cur as JsonObject, last, value);
  return true;
}

/** Removes what is at `path` (non-empty); where it was, to put it back, or undefined. */
function removeAt(
  doc: Json,
  path: readonly string[],
): { parent: Container; key: string | number; value: Json } | undefined {
  const parent = getAt(doc, path, path.length - 1);
  if (parent === missing || !isContainer(parent)) return undefined;
  const last = path[path.length - 1]!;
  if (Array.isArray(parent)) {
    const idx = indexOf(parent, last, false);
    if (idx < 0) return undefined;
    const [value] = parent.splice(idx, 1);
    return { parent, key: idx, value };
  }
  if (!Object.hasOwn(parent, last)) return undefined;
  const value = parent[last];
  delete parent[last];
  return { parent, key: last, value };
}

function copy(value: Json): Json {
  return isContainer(value) ? structuredClone(value) : value;
}

function wrapped(under: string, value: Json): Record<string, Json> {
  const out: Record<string, Json> = {};
  setMember(out, under, value);
  return out;
}

/** Applies `ops` in order; returns the (possibly new) document and whether anything changed. */
export function applyBodyOps(doc: Json, ops: readonly CompiledBodyOp[]): { doc: Json; changed: boolean } {
  let changed = false;
  for (const op of ops) {
    switch (op.op) {
      case 'Remove':
        if (removeAt(doc, op.path)) changed = true;
        break;
      case 'Set':
        if (op.path.length === 0) {
          doc = copy(op.value);
          changed = true;
        } else if (putAt(doc, op.path, copy(op.value))) changed = true;
        break;
      case 'Rename': {
        const taken = removeAt(doc, op.from);
        if (!taken) break;
        if (putAt(doc, op.path, taken.value)) changed = true;
        else if (Array.isArray(taken.parent)) taken.parent.splice(taken.key as number, 0, taken.value);
        else setMember(taken.parent, taken.key as string, taken.value);
        break;
      }
      case 'Wrap': {
        if (op.path.length === 0) {
          doc = wrapped(op.under, doc);
          changed = true;
          break;
        }
        const value = getAt(doc, op.path);
        if (value === missing) break;
        putAt(doc, op.path, wrapped(op.under, value));
        changed = true;
        break;
      }
      case 'Unwrap': {
        const value = getAt(doc, op.path);
        if (value === missing) break;
        const parentPath = op.path.slice(0, -1);
        if (parentPath.length === 0) doc = value;
        else putAt(doc, parentPath, value);
        changed = true;
        break;
      }
    }
  }
  return { doc, changed };
}
