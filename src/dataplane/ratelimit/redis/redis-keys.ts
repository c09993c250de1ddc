/**
 * Redis keys of the Global rate limiter.
 *
 * A key names the state of one limit of one policy for one request key value:
 *
 *   shared key definition:  mg:rl:{<value digest>}:<limit fingerprint>
 *   mixed key definitions:  mg:rl:{<policy digest>}:<limit fingerprint>:<value digest>
 *
 * - The limit fingerprint digests (policy id, limit name, algorithm, periodMs, key definition):
 *   changing a limit's algorithm or period (or whom it counts) starts from fresh state instead of
 *   misreading the old one; old keys simply expire. Amount and burst changes keep the state (the
 *   amount is passed on every call, as in the local limiter).
 * - The value digest (SHA-256, base64url, 22 characters = 132 bits) bounds the key's size and keeps
 *   arbitrary client-controlled values (headers, claims) out of the key text.
 * - The part in braces is the Redis Cluster hash tag: one script call touches every limit of the
 *   policy at once, so all its keys must hash to one slot.
 *   - When every limit counts by the same key definition (all per consumer, say) the request's key
 *     value is the same for all of them and its digest is the tag: consumers spread over all shards.
 *   - Otherwise (per consumer and per client IP, say) no per-request value is common to all the
 *     keys, so the tag is the policy's digest and ALL of that policy's keys live in one slot, i.e.
 *     on one shard. Trade-off: that shard serves the policy's whole traffic (a hot slot) and holds
 *     all its keys; the alternative, one call per slot, would lose the all-or-nothing decision
 *     across limits or cost a round trip per limit plus refunds. Different policies still land on
 *     different slots. Split a very hot policy into policies with uniform key definitions to spread it.
 *
 * Build a PolicyKeys once per policy (when the routing table changes); per request it only hashes
 * the key values (one SHA-256 per distinct value).
 */
import { createHash } from 'node:crypto';
import type { AlgorithmName } from '../algorithms.ts';

export const KEY_PREFIX = 'mg:rl:';
/** base64url characters kept of a value digest (132 bits). */
export const VALUE_DIGEST_LENGTH = 22;
/** base64url characters kept of a limit fingerprint or policy digest (96 bits). */
export const FINGERPRINT_LENGTH = 16;

/** One part of a limit's key definition (CompiledLimit['key'][number]). */
export interface KeyPartDefinition {
  type: string;
  name?: string;
}

/** What the keys depend on: a CompiledLimit has these fields. */
export interface KeyedLimit {
  name: string;
  algorithm: AlgorithmName;
  periodMs: number;
  key: readonly KeyPartDefinition[];
}

/** SHA-256 of a string (UTF-8), base64url, truncated to `length` characters. */
export function digest(text: string, length: number = VALUE_DIGEST_LENGTH): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, length);
}

function keyDefinitionText(parts: readonly KeyPartDefinition[]): string {
  return JSON.stringify(parts.map((p) => (p.name === undefined ? [p.type] : [p.type, p.name])));
}

/** The fingerprint of one limit of a policy: changes when its algorithm, period or key definition does. */
export function limitFingerprint(policyId: string, limit: KeyedLimit): string {
  const text = JSON.stringify([
    policyId,
    limit.name,
    limit.algorithm,
    limit.periodMs,
    keyDefinitionText(limit.key),
  ]);
  return digest(text, FINGERPRINT_LENGTH);
}

/** The Redis keys of one policy's limits, precomputed once per policy. */
export class PolicyKeys {
  readonly policyId: string;
  /** True when every limit has the same key definition: the tag is the request's value digest. */
  readonly sharedKey: boolean;
  /** Mixed definitions: `mg:rl:{<policy digest>}:`; shared: `mg:rl:{`. */
  readonly #head: string;
  /** Per limit: shared `}:<fingerprint>`; mixed `<fingerprint>:`. */
  readonly #middles: string[];

  constructor(policyId: string, limits: readonly KeyedLimit[]) {
    if (limits.length === 0) throw new RangeError(`policy ${policyId}: no limits`);
    this.policyId = policyId;
    const first = keyDefinitionText(limits[0]!.key);
    this.sharedKey = limits.every((l) => keyDefinitionText(l.key) === first);
    const fingerprints = limits.map((l) => limitFingerprint(policyId, l));
    if (this.sharedKey) {
      this.#head = `${KEY_PREFIX}{`;
      this.#middles = fingerprints.map((f) => `}:${f}`);
    } else {
      this.#head = `${KEY_PREFIX}{${digest(policyId, FINGERPRINT_LENGTH)}}:`;
      this.#middles = fingerprints.map((f) => `${f}:`);
    }
  }

  get size(): number {
    return this.#middles.length;
  }

  /**
   * The keys for one request, in limit order, from each limit's key value (as built by
   * limit-key.ts keyBuilder). With a shared definition all values are equal and only the first
   * is read.
   */
  keys(values: readonly string[]): string[] {
    const n = this.#middles.length;
    if (values.length !== n) {
      throw new RangeError(`policy ${this.policyId}: ${values.length} key values for ${n} limits`);
    }
    const out = new Array<string>(n);
    if (this.sharedKey) {
      const prefix = this.#head + digest(values[0]!);
      for (let i = 0; i < n; i++) out[i] = prefix + this.#middles[i]!;
      return out;
    }
    let lastValue: string | undefined;
    let lastDigest = '';
    for (let i = 0; i < n; i++) {
      const v = values[i]!;
      // Limits keyed alike (several per-consumer limits next to a per-IP one) hash once.
      if (v !== lastValue) {
        lastValue = v;
        lastDigest = digest(v);
      }
      out[i] = this.#head + this.#middles[i]! + lastDigest;
    }
    return out;
  }

  /** The key of limit `index` for one value (for adjust). */
  key(index: number, value: string): string {
    const middle = this.#middles[index];
    if (middle === undefined) throw new RangeError(`policy ${this.policyId}: no limit number ${index}`);
    return this.sharedKey ? this.#head + digest(value) + middle : this.#head + middle + digest(value);
  }
}

/** One-shot form of PolicyKeys (builds the per-policy part every time: prefer a PolicyKeys). */
export function redisKeys(
  policyId: string,
  limits: readonly KeyedLimit[],
  values: readonly string[],
): string[] {
  return new PolicyKeys(policyId, limits).keys(values);
}

/** The Redis Cluster hash tag of a key (the text between the first `{` and the next `}`). */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}
