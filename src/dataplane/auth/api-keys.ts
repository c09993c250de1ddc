/**
 * API-key lookup. The table holds SHA-256 digests only; a presented key is hashed and looked up by
 * digest. That lookup is the comparison, and it leaks nothing useful through timing: what a
 * hash-table probe's time could reveal is how a digest of the attacker's own input relates to
 * stored digests, and learning digest bits does not help find a key that produces them (a SHA-256
 * preimage). So no byte-by-byte comparison of secrets ever happens.
 */
import { createHash } from 'node:crypto';
import type { CompiledApiKey } from '../../routing-table/types.ts';
import type { AuthResult, Identity } from './identity.ts';

export class ApiKeyIndex {
  private readonly byDigest = new Map<string, Identity>();

  constructor(keys: readonly CompiledApiKey[]) {
    for (const k of keys) {
      this.byDigest.set(k.sha256, {
        method: 'apiKey',
        consumer: k.consumer,
        groups: k.groups,
        scopes: [],
        claims: {},
      });
    }
  }

  get size(): number {
    return this.byDigest.size;
  }

  verify(key: string): AuthResult {
    const identity = this.byDigest.get(createHash('sha256').update(key, 'utf8').digest('base64url'));
    return identity
      ? { ok: true, identity }
      : { ok: false, reason: 'unknown_key', message: 'the API key is not known' };
  }
}
