/**
 * Status shapes shared by every ModelGate resource: Kubernetes-style conditions plus
 * `observedGeneration`. The compiler produces conditions without `lastTransitionTime`; whoever
 * writes status (the controller, or standalone mode) stamps it, so the compiler stays pure.
 */
import { type Static, Type } from '@sinclair/typebox';
import { List, Str, StringEnum } from './schema-helpers.ts';

export const ConditionType = {
  Accepted: 'Accepted',
  ResolvedRefs: 'ResolvedRefs',
  Programmed: 'Programmed',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

/** Stable reasons; tools and alerts match on these, so they never change meaning. */
export const Reason = {
  Accepted: 'Accepted',
  Invalid: 'Invalid',
  Conflicted: 'Conflicted',
  /** The route asks for client certificates but its TLS Secrets cannot be used: not served. */
  InvalidTLS: 'InvalidTLS',
  /** A rule's transform cannot be built (a regular expression that does not compile, say): not served. */
  InvalidTransform: 'InvalidTransform',
  /** A rule's validation JSON Schema does not compile: not served. */
  InvalidSchema: 'InvalidSchema',
  ResolvedRefs: 'ResolvedRefs',
  BackendNotFound: 'BackendNotFound',
  InvalidBackend: 'InvalidBackend',
  TargetNotFound: 'TargetNotFound',
  RouteNotFound: 'RouteNotFound',
  SecretNotFound: 'SecretNotFound',
  InvalidSecret: 'InvalidSecret',
  /** A CanaryRollout's preview hostname is not one the route serves. */
  InvalidPreview: 'InvalidPreview',
  Pending: 'Pending',
  Programmed: 'Programmed',
  NotProgrammed: 'NotProgrammed',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

export const ConditionSchema = Type.Object(
  {
    type: Str(316, { description: 'Condition type: Accepted, ResolvedRefs or Programmed.' }),
    status: StringEnum(['True', 'False', 'Unknown'] as const, {
      description: 'Whether the condition holds.',
    }),
    reason: Str(1024, { description: 'A stable, CamelCase machine-readable reason.' }),
    message: Str(32768, { description: 'A human-readable explanation.' }),
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'The metadata.generation this condition was computed for.' }),
    ),
    lastTransitionTime: Type.Optional(
      Type.String({ format: 'date-time', maxLength: 64, description: 'When status last changed.' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One condition, Kubernetes style: its type, whether it holds, and why.',
  },
);
export type Condition = Static<typeof ConditionSchema>;

/** Conditions list as the status subresource carries it. */
export const ConditionsSchema = List(ConditionSchema, 8, {
  description: 'Conditions: Accepted, ResolvedRefs, Programmed.',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
});
