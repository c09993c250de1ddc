/**
 * Secret lookups for the compiler. Values are decoded from base64 here, once, and only the values
 * a resource references go into the table (where redaction hides private keys when printed).
 */
import type { Secret } from '../api/kubernetes-types.ts';

export type SecretIndex = Map<string, Secret>;

export function indexSecrets(secrets: readonly Secret[]): SecretIndex {
  const index: SecretIndex = new Map();
  for (const s of secrets) {
    const name = s?.metadata?.name;
    if (typeof name !== 'string') continue;
    const key = `${s.metadata.namespace ?? 'default'}/${name}`;
    if (!index.has(key)) index.set(key, s);
  }
  return index;
}

export type SecretValue =
  | { ok: true; value: string }
  | { ok: false; reason: 'SecretNotFound' | 'InvalidSecret'; message: string };

/** The UTF-8 text of one key of a Secret (`data` base64, or `stringData` as written in files). */
export function secretValue(index: SecretIndex, namespace: string, name: string, key: string): SecretValue {
  const s = index.get(`${namespace}/${name}`);
  if (!s) return { ok: false, reason: 'SecretNotFound', message: `secret ${namespace}/${name} not found` };
  const plain = s.stringData?.[key];
  if (typeof plain === 'string') return { ok: true, value: plain };
  const encoded = s.data?.[key];
  if (typeof encoded !== 'string') {
    return { ok: false, reason: 'InvalidSecret', message: `secret ${namespace}/${name} has no key ${key}` };
  }
  return { ok: true, value: Buffer.from(encoded, 'base64').toString('utf8') };
}
