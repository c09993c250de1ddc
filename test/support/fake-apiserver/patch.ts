/**
 * The patch formats: JSON merge patch (RFC 7386), which the fake also applies for strategic
 * merge patch, and JSON patch (RFC 6902).
 */
import { ApiError, badRequest } from './errors.ts';
import { isJsonObject, type JsonObject, jsonEqual } from './types.ts';

export const MERGE_PATCH = 'application/merge-patch+json';
export const STRATEGIC_MERGE_PATCH = 'application/strategic-merge-patch+json';
export const JSON_PATCH = 'application/json-patch+json';

/**
 * RFC 7386: objects merge recursively, `null` deletes, anything else (arrays included) replaces.
 * Strategic merge patch differs only for lists with merge keys (it merges them by key); the
 * fake replaces them, which is what ModelGate's own writes (whole `conditions` lists) expect.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isJsonObject(patch)) return structuredClone(patch);
  const result: JsonObject = isJsonObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

interface Operation {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

const unprocessable = (message: string) => new ApiError(422, 'Invalid', message);

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw unprocessable(`invalid JSON pointer "${pointer}"`);
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function getAt(doc: unknown, parts: string[]): unknown {
  let cur = doc;
  for (const p of parts) {
    if (Array.isArray(cur)) cur = cur[Number(p)];
    else if (isJsonObject(cur)) cur = cur[p];
    else return undefined;
  }
  return cur;
}

/** The container holding the last segment; RFC 6902 requires it to exist. */
function parentOf(doc: unknown, parts: string[], pointer: string): unknown {
  const parent = getAt(doc, parts.slice(0, -1));
  if (!Array.isArray(parent) && !isJsonObject(parent))
    throw unprocessable(`doc is missing path: "${pointer}"`);
  return parent;
}

function arrayIndex(arr: unknown[], key: string, pointer: string, forAdd: boolean): number {
  if (forAdd && key === '-') return arr.length;
  const i = Number(key);
  if (!/^\d+$/.test(key) || i > arr.length || (!forAdd && i === arr.length))
    throw unprocessable(`invalid array index in "${pointer}"`);
  return i;
}

function add(doc: unknown, pointer: string, value: unknown): unknown {
  const parts = parsePointer(pointer);
  if (parts.length === 0) return structuredClone(value);
  const parent = parentOf(doc, parts, pointer);
  const key = parts[parts.length - 1]!;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, pointer, true), 0, structuredClone(value));
  else (parent as JsonObject)[key] = structuredClone(value);
  return doc;
}

function remove(doc: unknown, pointer: string): unknown {
  const parts = parsePointer(pointer);
  if (parts.length === 0) throw unprocessable('cannot remove the whole document');
  const parent = parentOf(doc, parts, pointer);
  const key = parts[parts.length - 1]!;
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, pointer, false), 1);
  else {
    if (!Object.hasOwn(parent as JsonObject, key))
      throw unprocessable(`Unable to remove nonexistent key: ${key}: missing value`);
    delete (parent as JsonObject)[key];
  }
  return doc;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch must be a list of operations');
  let doc = structuredClone(target);
  for (const raw of ops) {
    if (!isJsonObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string')
      throw badRequest('json patch operation needs "op" and "path"');
    const op = raw as unknown as Operation;
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, op.value);
        break;
      case 'remove':
        doc = remove(doc, op.path);
        break;
      case 'replace':
        doc = add(remove(doc, op.path), op.path, op.value);
        break;
      case 'move': {
        const value = getAt(doc, parsePointer(op.from ?? ''));
        doc = add(remove(doc, op.from ?? ''), op.path, value);
        break;
      }
      case 'copy':
        doc = add(doc, op.path, getAt(doc, parsePointer(op.from ?? '')));
        break;
      case 'test':
        if (!jsonEqual(getAt(doc, parsePointer(op.path)), op.value))
          throw unprocessable(`testing value ${op.path} failed: test failed`);
        break;
      default:
        throw badRequest(`unsupported json patch operation "${op.op}"`);
    }
  }
  return doc;
}
