/**
 * Redaction for anything printed or served (`modelgate compile`, `/config/dump`, logs): the table
 * must never leak a credential: URL user-info in static backends, API-key digests, introspection
 * client secrets, private keys and the header values the gateway injects upstream (a backend's
 * credentials, or a transform setting a credential header).
 */
export const REDACTED = '<redacted>';

/** Object keys whose values are always replaced. */
export const SENSITIVE_KEYS: ReadonlySet<string> = new Set([
  'password',
  'token',
  'secret',
  'apiKey',
  'apiKeyHashes',
  'clientSecret',
  'privateKey',
  'authorization',
  'credential',
  'sha256',
  'headerValue',
]);

const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i;

/**
 * Headers that carry credentials: in a `{name, value}` pair (a transform's header set or add, a
 * header match) the value is replaced.
 */
const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'cookie',
  'set-cookie',
]);

/** A deep copy of `value` with sensitive keys and URL user-info replaced. */
export function redact<T>(value: T): T {
  return walk(value) as T;
}

function walk(value: unknown): unknown {
  if (typeof value === 'string') return value.replace(URL_USERINFO, `$1${REDACTED}@`);
  if (Array.isArray(value)) return value.map(walk);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SENSITIVE_KEYS.has(k) ? REDACTED : walk(v);
    const name = (value as { name?: unknown }).name;
    if (typeof name === 'string' && 'value' in out && CREDENTIAL_HEADERS.has(name.toLowerCase())) {
      out.value = REDACTED;
    }
    return out;
  }
  return value;
}
