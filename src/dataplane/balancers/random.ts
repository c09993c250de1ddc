/**
 * Randomness for the balancers. Production uses Math.random (fast, unseeded, and nothing here
 * needs cryptographic quality); tests and the balancing benchmark use a seeded generator so that
 * every pick sequence is reproducible.
 */
import type { Random } from './types.ts';

export const defaultRandom: Random = Math.random;

/**
 * xoshiro128** seeded through splitmix32: small, fast, and good enough statistically that a
 * simulation with millions of draws does not see artefacts (mulberry32's 2^32 period could).
 * Returns uniform numbers in [0, 1) with 32 bits of resolution.
 */
export function seededRandom(seed: number): Random {
  let sm = seed >>> 0;
  // splitmix32 spreads any seed (0, 1, 2, …) over the whole state, which must not be all zero.
  const next = (): number => {
    sm = (sm + 0x9e3779b9) | 0;
    let z = sm;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = next();
  let b = next();
  let c = next();
  let d = next();
  if ((a | b | c | d) === 0) a = 1;
  return () => {
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return r / 4294967296;
  };
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
