/**
 * Weight normalisation: integer shares that sum to WEIGHT_TOTAL, by the largest-remainder method
 * (ties to the earlier backend), so the proxy's weighted choices are exact and deterministic. A
 * non-zero weight never rounds to zero.
 */
import { WEIGHT_TOTAL } from '../routing-table/types.ts';

export function normaliseWeights(raw: readonly number[]): number[] {
  const sum = raw.reduce((a, b) => a + b, 0);
  if (sum <= 0) return raw.map(() => 0);
  const exact = raw.map((w) => (w * WEIGHT_TOTAL) / sum);
  const out = exact.map(Math.floor);
  let left = WEIGHT_TOTAL - out.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => ({ i, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    if (raw[i]! > 0) {
      out[i]! += 1;
      left--;
    }
  }
  // A backend the user gave weight must not round to zero traffic: give it the smallest share,
  // taken from the largest.
  for (let i = 0; i < raw.length; i++) {
    if (raw[i]! > 0 && out[i] === 0) {
      let largest = 0;
      for (let j = 1; j < out.length; j++) if (out[j]! > out[largest]!) largest = j;
      out[largest]!--;
      out[i] = 1;
    }
  }
  return out;
}
