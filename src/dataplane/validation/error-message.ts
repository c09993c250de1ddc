/**
 * The message of a 400 MG_REQUEST_INVALID: where in the body (a JSON Pointer, as the schema's
 * author and RFC 6901 write it) and why, for at most a few errors. Ajv stops at the first failing
 * keyword (json-schema.ts), but a failed anyOf/oneOf reports each branch. Quoted values are
 * clipped, so the message stays small whatever the body or schema holds.
 */
import type { ErrorObject } from '../../routing-table/json-schema.ts';

export const MAX_REPORTED_ERRORS = 3;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function pointerToken(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

function describeOne(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  let path = e.instancePath;
  let reason = e.message ?? e.keyword;
  if (e.keyword === 'required' && typeof p.missingProperty === 'string') {
    path += `/${pointerToken(p.missingProperty)}`;
    reason = 'is required';
  } else if (e.keyword === 'additionalProperties' && typeof p.additionalProperty === 'string') {
    path += `/${pointerToken(p.additionalProperty)}`;
    reason = 'is not allowed (no such property in the schema)';
  } else if (e.keyword === 'enum' && Array.isArray(p.allowedValues)) {
    const shown = p.allowedValues.slice(0, 10).map((v) => clip(JSON.stringify(v) ?? '', 40));
    reason = `must be one of ${shown.join(', ')}${p.allowedValues.length > 10 ? ', …' : ''}`;
  } else if (e.keyword === 'const') {
    reason = `must be ${clip(JSON.stringify(p.allowedValue) ?? '', 80)}`;
  }
  return `${path === '' ? '(root)' : clip(path, 200)}: ${clip(reason, 200)}`;
}

export function describeValidationErrors(errors: readonly ErrorObject[] | null | undefined): string {
  const list = errors ?? [];
  const shown = list.slice(0, MAX_REPORTED_ERRORS).map(describeOne);
  const more = list.length > MAX_REPORTED_ERRORS ? ` (and ${list.length - MAX_REPORTED_ERRORS} more)` : '';
  return `the request body does not match the route's schema: ${shown.join('; ')}${more}`;
}
