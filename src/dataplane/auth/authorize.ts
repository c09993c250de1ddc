/**
 * Per-rule authorization of an authenticated identity: required scopes (all), consumer groups
 * (any), claim values (each claim must hold an allowed value; a list claim passes when any element
 * is allowed). Returns what is missing, for the 403's message and `WWW-Authenticate`.
 */
import type { CompiledAuthorization } from '../../routing-table/types.ts';
import type { Identity } from './identity.ts';

export type AuthorizationResult = { ok: true } | { ok: false; missingScopes: string[]; message: string };

function claimAllowed(value: unknown, allowed: readonly string[]): boolean {
  // One level: a list of values, not lists of lists.
  if (Array.isArray(value)) return value.some((v) => !Array.isArray(v) && claimAllowed(v, allowed));
  if (typeof value === 'string') return allowed.includes(value);
  if (typeof value === 'number' || typeof value === 'boolean') return allowed.includes(String(value));
  return false;
}

export function authorize(rule: CompiledAuthorization, identity: Identity): AuthorizationResult {
  const missingScopes = rule.scopes.filter((s) => !identity.scopes.includes(s));
  if (missingScopes.length > 0) {
    return { ok: false, missingScopes, message: `missing scope ${missingScopes.join(' ')}` };
  }
  if (rule.groups.length > 0 && !rule.groups.some((g) => identity.groups.includes(g))) {
    return { ok: false, missingScopes: [], message: 'the caller is in none of the groups this route allows' };
  }
  for (const c of rule.claims) {
    if (!claimAllowed(identity.claims[c.name], c.values)) {
      return { ok: false, missingScopes: [], message: `claim ${c.name} does not hold an allowed value` };
    }
  }
  return { ok: true };
}
