/**
 * Effective weights, shared by every balancer so that they agree on what a weight means.
 * Weights are read once, when the balancer is built (a weight change arrives with a new table).
 */
import type { EndpointState } from './types.ts';

export interface Weighted {
  /** Endpoints that take traffic, in input order. */
  endpoints: EndpointState[];
  /** Their weights, all > 0. */
  weights: Float64Array;
  total: number;
  /** All weights equal: balancers can use cheaper unweighted arithmetic. */
  uniform: boolean;
}

/**
 * A weight of 0 (or a negative or non-finite one) takes the endpoint out of rotation. If that
 * would leave nothing, every endpoint counts as weight 1: sending traffic somewhere beats failing
 * every request because of a configuration that zeroed all weights.
 */
export function effectiveWeights(input: readonly EndpointState[]): Weighted {
  let endpoints = input.filter((ep) => ep.weight > 0 && Number.isFinite(ep.weight));
  let weights: Float64Array;
  if (endpoints.length === 0) {
    endpoints = [...input];
    weights = new Float64Array(endpoints.length).fill(1);
  } else {
    weights = Float64Array.from(endpoints, (ep) => ep.weight);
  }
  let total = 0;
  let uniform = true;
  for (let i = 0; i < weights.length; i++) {
    total += weights[i]!;
    if (weights[i] !== weights[0]) uniform = false;
  }
  return { endpoints, weights, total, uniform };
}
