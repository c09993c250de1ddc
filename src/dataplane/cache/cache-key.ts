/**
 * The cache key: a SHA-256 over everything that makes two requests "the same input to the same
 * model", taken from what the upstream would receive (after the rule's transforms):
 *
 * - the group: the rule, its cache settings and the chosen backend's model revision (see
 *   groups.ts), so a new revision never reads an older one's answers;
 * - method (HEAD looks up GET's entry), host (the Host sent upstream), path and query;
 * - the model the request names, when the route read it;
 * - the body's bytes with their content-type and content-encoding (what the bytes mean);
 * - the rule's keyHeaders;
 * - the caller, unless the rule says its answers are shared.
 *
 * Every variable part is length-prefixed, so no two different requests write the same text.
 */
import { createHash } from 'node:crypto';
import type { OutgoingHeaders } from '../upstream/headers.ts';

export interface KeyParts {
  group: string;
  method: string;
  host: string;
  path: string;
  /** The raw query string with its `?`, or ''. */
  query: string;
  model: string | undefined;
  headers: OutgoingHeaders;
  keyHeaders: readonly string[];
  /** '' when the rule's answers are shared. */
  caller: string;
  body: Buffer | undefined;
}

function field(v: string | string[] | undefined): string {
  if (v === undefined) return '-';
  const s = Array.isArray(v) ? v.join('\n') : v;
  return `${s.length}:${s}`;
}

/** base64url SHA-256 of the parts (43 characters). */
export function cacheKey(p: KeyParts): string {
  let text =
    field(p.group) +
    field(p.method) +
    field(p.host) +
    field(p.path) +
    field(p.query) +
    field(p.model) +
    field(p.caller) +
    field(p.headers['content-type']) +
    field(p.headers['content-encoding']);
  for (const name of p.keyHeaders) text += field(p.headers[name]);
  // The body goes last and is the only part without a length prefix of its own: its length is here.
  text += p.body === undefined ? '-' : `${p.body.length}:`;
  const h = createHash('sha256').update(text);
  if (p.body !== undefined && p.body.length > 0) h.update(p.body);
  return h.digest('base64url');
}
