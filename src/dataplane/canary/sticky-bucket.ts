/**
 * Sticky canary assignment: a key (a header value, a cookie, the consumer) hashes to a fixed
 * bucket in [0, 10000) per rollout, and gets the canary while its bucket is below the canary
 * weight (in hundredths of a percent). As the weight rises the threshold only moves up, so a key
 * only ever moves from stable to canary, never back and forth; a rollback moves everyone back.
 *
 * The hash is 32-bit FNV-1a over the rollout id and the key, with a final avalanche (as in
 * MurmurHash3's fmix32) so that similar keys (user-1, user-2) land far apart. Seeding with the
 * rollout id gives each rollout its own assignment: the same users are not always the first to
 * get every new version.
 */

export const BUCKETS = 10_000;

export function bucketOf(rollout: string, key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < rollout.length; i++) {
    h ^= rollout.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= 0; // separator between seed and key
  h = Math.imul(h, 0x01000193);
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) % BUCKETS;
}
