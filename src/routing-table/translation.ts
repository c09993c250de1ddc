/**
 * A translated rule in table form (CompiledRule.translation): the rule's clients speak one protocol
 * and its backends another. Plain data, like the rest of the table; kept in its own file because it
 * is a concern of its own.
 */

/** KServe v2: REST/JSON clients, gRPC (GRPCInferenceService) backends. */
export interface CompiledKServeV2Translation {
  kind: 'KServeV2';
  /** Largest gRPC answer held for translation, in bytes (framed, and each message decompressed). */
  maxResponseBytes: number;
  /** Send input tensors as raw_input_contents; false: typed contents (FP16/BF16 are always raw). */
  rawInputs: boolean;
}

export type CompiledTranslation = CompiledKServeV2Translation;
