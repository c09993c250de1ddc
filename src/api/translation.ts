/**
 * Protocol translation (`rules[].translation`): the rule's clients speak one protocol and its
 * backends another, and the gateway translates both ways. Part of the ModelRoute schema
 * (model-route.ts); split out because it is a concern of its own. One kind so far:
 *
 * - **kserveV2**: clients speak the KServe v2 / Open Inference Protocol REST/JSON shape
 *   (`POST /v2/models/{name}[/versions/{v}]/infer`, model and server ready/metadata, health), the
 *   backends its gRPC shape (`inference.GRPCInferenceService`). The proxy side is
 *   src/dataplane/kserve/, the semantics are in the README ("KServe v2 REST over gRPC").
 *
 * The rule-level CEL rules (model-route.ts) require every backend of a translated rule to say
 * `protocol: GRPC` (so the YAML reads as what goes over the wire, and the pools speak HTTP/2), and
 * refuse `composition` (its steps send and read JSON) and `healthCheck` (an HTTP/1.1 GET cannot
 * probe a gRPC port; outlier detection still ejects failing endpoints).
 */
import { type Static, Type } from '@sinclair/typebox';
import { ByteSize, cel } from './schema-helpers.ts';

export const KServeV2TranslationSchema = Type.Object(
  {
    maxResponseSize: ByteSize(
      'Largest gRPC answer held in memory for translation (the framed message, and the message once decompressed); a larger one is 502 MG_KSERVE_RESPONSE_TOO_LARGE. At most 256Mi. Default 64Mi.',
      { default: '64Mi' },
    ),
    rawInputs: Type.Boolean({
      default: false,
      description:
        "Send every input tensor as raw_input_contents (little-endian bytes, Triton's preferred form) instead of typed contents. Requests with an FP16 or BF16 input are always sent raw, since the protocol has no typed field for them. Default false.",
    }),
  },
  {
    additionalProperties: false,
    description:
      'Clients speak KServe v2 REST/JSON; the backends speak KServe v2 gRPC (GRPCInferenceService).',
  },
);

export const TranslationSchema = Type.Object(
  {
    kserveV2: Type.Optional(KServeV2TranslationSchema),
  },
  {
    additionalProperties: false,
    description:
      "Protocol translation between the rule's clients and its backends. gRPC requests (content-type application/grpc) are not translated: they go to the backends as they are.",
    ...cel({ rule: 'has(self.kserveV2)', message: 'set exactly one translation (kserveV2)' }),
  },
);

export type KServeV2Translation = Static<typeof KServeV2TranslationSchema>;
export type Translation = Static<typeof TranslationSchema>;
