/**
 * Reading a credential from a request: `authorization: Bearer <token>` (RFC 6750; the scheme is
 * case-insensitive) or a bare value in another header. A header sent twice is refused rather than
 * guessed at: two credentials in one request is either a client bug or an attempt to confuse the
 * gateway and the backend about who is calling.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CredentialSource } from '../../routing-table/types.ts';

export type Credential = { kind: 'none' } | { kind: 'malformed' } | { kind: 'present'; value: string };

const NONE: Credential = { kind: 'none' };
const MALFORMED: Credential = { kind: 'malformed' };

export function readCredential(headers: IncomingHttpHeaders, source: CredentialSource): Credential {
  const raw = headers[source.header];
  if (raw === undefined) return NONE;
  if (typeof raw !== 'string') return MALFORMED;
  if (!source.bearer) {
    const value = raw.trim();
    return value.length > 0 ? { kind: 'present', value } : MALFORMED;
  }
  // Another scheme (Basic, ...) in the Authorization header is not a credential of this method.
  // `Bearer` alone (node:http trims the space of `Bearer `) is a malformed credential, not none.
  if (raw.slice(0, 6).toLowerCase() !== 'bearer' || (raw.length > 6 && raw[6] !== ' ')) return NONE;
  const value = raw.slice(7).trim();
  return value.length > 0 && !value.includes(' ') ? { kind: 'present', value } : MALFORMED;
}
