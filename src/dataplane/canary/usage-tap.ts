/**
 * Counts the model tokens of answers from rollout-governed backends, for the counters proxies
 * report to the controller (rollout-stats.ts). Installed only on those backends, and only when no
 * filter already meters the answer (a token limit's meter is read instead). Forwards every byte
 * as it comes; keeps at most 64 KiB of a JSON body (past that, the tail where servers put
 * `usage`), and parses an event-stream's events that may carry usage or generated text.
 */
import type { BodyTransformer } from '../filters/filter.ts';
import { meterable, tokensOf, UsageMeter } from '../ratelimit/usage/usage-meter.ts';

const MAX_KEPT_BYTES = 64 * 1024;

export function usageTap(
  status: number,
  headers: Record<string, string | string[] | undefined>,
): BodyTransformer | undefined {
  const how = meterable(status, headers);
  if (how === undefined) return undefined;
  const meter = new UsageMeter({
    streaming: how.streaming,
    stripUsageChunk: false,
    maxBufferBytes: MAX_KEPT_BYTES,
  });
  return {
    data: (chunk) => meter.data(chunk),
    end: () => meter.end(),
    changesLength: false,
    tokens: () => tokensOf(meter.result()),
  };
}
