/**
 * The three local rate-limit algorithms behind one interface (see types.ts for the contract and
 * each file for its exact semantics and bounds).
 */
import type { CompiledRateLimitPolicy } from '../../routing-table/types.ts';
import { fixedWindow } from './fixed-window.ts';
import { slidingWindow } from './sliding-window.ts';
import { tokenBucket } from './token-bucket.ts';
import type { Algorithm } from './types.ts';

export type AlgorithmName = CompiledRateLimitPolicy['limits'][number]['algorithm'];

const BY_NAME: Record<AlgorithmName, Algorithm> = {
  FixedWindow: fixedWindow,
  SlidingWindow: slidingWindow,
  TokenBucket: tokenBucket,
};

export function algorithmFor(name: AlgorithmName): Algorithm {
  return BY_NAME[name];
}

export type { Algorithm, Decision, LimitParams, LimitState } from './types.ts';
export { newLimitState } from './types.ts';
export { fixedWindow, slidingWindow, tokenBucket };
