/**
 * Who made a request, once authenticated: what rate limiting keys on, consistent hashing can hash
 * on, authorization checks and the access log names. Never holds the credential itself.
 */
export type AuthMethod = 'apiKey' | 'jwt' | 'introspection' | 'anonymous';

export interface Identity {
  method: AuthMethod;
  /** JWT provider name, when method is jwt. */
  provider?: string;
  /** The consumer (API key's consumer, or the token's consumer claim); `anonymous` for none. */
  consumer: string;
  groups: readonly string[];
  scopes: readonly string[];
  /** Token claims (JWT payload or introspection answer); empty for API keys. */
  claims: Readonly<Record<string, unknown>>;
}

/**
 * Why a credential was refused, as a stable short code (logs and metrics use it): the client gets
 * a 401, except `unavailable` (the key source or the introspection endpoint could not be reached),
 * which is the gateway's problem and answered with 503.
 */
export type AuthFailure =
  | 'malformed'
  | 'unknown_key'
  | 'bad_signature'
  | 'alg_not_allowed'
  | 'unknown_kid'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'missing_claim'
  | 'inactive'
  | 'unavailable';

export type AuthResult =
  | { ok: true; identity: Identity }
  | { ok: false; reason: AuthFailure; message: string };

/** Scopes from a claim that is a space-separated string (RFC 8693 `scope`) or a list. */
export function claimList(value: unknown): string[] {
  if (typeof value === 'string') return value.split(' ').filter((s) => s.length > 0);
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return [];
}
