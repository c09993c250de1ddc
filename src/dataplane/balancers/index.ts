/**
 * Balancer construction by algorithm name, and the public surface of the balancers.
 * A balancer is built once per backend per routing table; EndpointState objects are passed in by
 * the caller and outlive it.
 */
import type { LoadBalancingAlgorithm } from '../../routing-table/types.ts';
import { ConsistentHashBalancer } from './consistent-hash.ts';
import { LeastRequestBalancer } from './least-request.ts';
import { PeakEwmaBalancer } from './peak-ewma.ts';
import { RoundRobinBalancer } from './round-robin.ts';
import type { Balancer, BalancerOptions, EndpointState } from './types.ts';

export {
  ConsistentHashBalancer,
  hash32,
  MAX_RING_POINTS,
  VNODES_PER_WEIGHT,
} from './consistent-hash.ts';
export { LeastRequestBalancer } from './least-request.ts';
export {
  DEFAULT_DECAY_MS,
  observeLatency,
  PeakEwmaBalancer,
  type PeakEwmaOptions,
  UNMEASURED_PENALTY_MS,
} from './peak-ewma.ts';
export { defaultRandom, seededRandom } from './random.ts';
export { RoundRobinBalancer } from './round-robin.ts';
export type { Balancer, BalancerOptions, Clock, EndpointState, PickContext, Random } from './types.ts';
export { newEndpointState } from './types.ts';

const ALGORITHMS: ReadonlySet<string> = new Set(['RoundRobin', 'LeastRequest', 'PeakEWMA', 'ConsistentHash']);

/** One endpoint (or none): every algorithm picks it, with no per-algorithm state to allocate. */
class SingleBalancer implements Balancer {
  readonly #endpoint: EndpointState | undefined;
  constructor(endpoint: EndpointState | undefined) {
    this.#endpoint = endpoint;
  }
  pick(): EndpointState | undefined {
    return this.#endpoint;
  }
}

export function createBalancer(
  algorithm: LoadBalancingAlgorithm,
  endpoints: readonly EndpointState[],
  opts: BalancerOptions,
): Balancer {
  // Most backends of a large table have one endpoint (or a handful): keep those cheap in memory.
  if (endpoints.length <= 1 && ALGORITHMS.has(algorithm)) return new SingleBalancer(endpoints[0]);
  switch (algorithm) {
    case 'RoundRobin':
      return new RoundRobinBalancer(endpoints, opts);
    case 'LeastRequest':
      return new LeastRequestBalancer(endpoints, opts);
    case 'PeakEWMA':
      return new PeakEwmaBalancer(endpoints, opts);
    case 'ConsistentHash':
      return new ConsistentHashBalancer(endpoints, opts);
    default: {
      const never: never = algorithm;
      throw new Error(`unknown load-balancing algorithm ${String(never)}`);
    }
  }
}
