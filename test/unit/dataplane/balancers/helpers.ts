import type {
  Balancer,
  EndpointState,
  PickContext,
  Random,
} from '../../../../src/dataplane/balancers/types.ts';
import { newEndpointState } from '../../../../src/dataplane/balancers/types.ts';

/** Endpoints named a, b, c, … with the given weights. */
export function endpoints(...weights: number[]): EndpointState[] {
  return weights.map((w, i) => newEndpointState(String.fromCharCode(97 + i), w));
}

/** ids of `count` consecutive picks. */
export function picks(b: Balancer, count: number, ctx: PickContext = {}): string[] {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(b.pick(ctx)?.id ?? '-');
  return out;
}

/** Pick counts by id over `count` picks. */
export function tally(b: Balancer, count: number, ctx: PickContext = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < count; i++) {
    const id = b.pick(ctx)?.id ?? '-';
    out[id] = (out[id] ?? 0) + 1;
  }
  return out;
}

/** A Random that replays the given values, then fails loudly if asked for more. */
export function scripted(...values: number[]): Random {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('scripted random exhausted');
    return values[i++]!;
  };
}

export const zero: Random = () => 0;
export const noClock = (): number => 0;
