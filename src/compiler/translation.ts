/**
 * A rule's `translation` in table form, with the check its schema cannot express: the response
 * bound within limits. That every backend speaks gRPC, and that translation does not combine with
 * composition or active health checks, are CEL rules (model-route.ts), so the API server refuses
 * them too.
 */
import type { FieldError } from '../api/cel.ts';
import type { Rule } from '../api/model-route.ts';
import type { CompiledTranslation } from '../routing-table/types.ts';
import { parseByteSize } from './units.ts';

/** The most a translated answer may hold in memory (an FP32 batch of a few hundred images). */
const MAX_RESPONSE_BYTES = 256 * 1024 ** 2;

export function compileTranslation(
  rule: Rule,
  at: string,
  errors: FieldError[],
): CompiledTranslation | undefined {
  const k = rule.translation?.kserveV2;
  if (!k) return undefined;
  const maxResponseBytes = parseByteSize(k.maxResponseSize);
  if (!(maxResponseBytes > 0) || maxResponseBytes > MAX_RESPONSE_BYTES) {
    errors.push({
      path: `${at}.translation.kserveV2.maxResponseSize`,
      message: 'must be between 1 byte and 256Mi',
    });
  }
  return { kind: 'KServeV2', maxResponseBytes, rawInputs: k.rawInputs };
}
