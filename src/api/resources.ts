/**
 * The registry of ModelGate's custom resources: for each kind its schema, names and printer
 * columns. The CRD generator, the validator and the sources all read this one table.
 */
import type { TObject } from '@sinclair/typebox';
import {
  type CanaryRolloutSpec,
  CanaryRolloutSpecSchema,
  type CanaryRolloutStatus,
  CanaryRolloutStatusSchema,
} from './canary-rollout.ts';
import type { KubeObject } from './kubernetes-types.ts';
import {
  type ModelRouteSpec,
  ModelRouteSpecSchema,
  type ModelRouteStatus,
  ModelRouteStatusSchema,
} from './model-route.ts';
import {
  type RateLimitPolicySpec,
  RateLimitPolicySpecSchema,
  type RateLimitPolicyStatus,
  RateLimitPolicyStatusSchema,
} from './rate-limit-policy.ts';

export const GROUP = 'modelgate.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export type ModelRoute = KubeObject<ModelRouteSpec, ModelRouteStatus> & { kind: 'ModelRoute' };
export type RateLimitPolicy = KubeObject<RateLimitPolicySpec, RateLimitPolicyStatus> & {
  kind: 'RateLimitPolicy';
};
export type CanaryRollout = KubeObject<CanaryRolloutSpec, CanaryRolloutStatus> & { kind: 'CanaryRollout' };
export type CustomResource = ModelRoute | RateLimitPolicy | CanaryRollout;

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface ResourceDefinition {
  kind: CustomResource['kind'];
  plural: string;
  singular: string;
  shortNames: string[];
  spec: TObject;
  status: TObject;
  printerColumns: PrinterColumn[];
}

const conditionColumn = (type: string): PrinterColumn => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
});
const age: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

export const RESOURCES: readonly ResourceDefinition[] = [
  {
    kind: 'ModelRoute',
    plural: 'modelroutes',
    singular: 'modelroute',
    shortNames: ['mr'],
    spec: ModelRouteSpecSchema,
    status: ModelRouteStatusSchema,
    printerColumns: [
      { name: 'Hostnames', type: 'string', jsonPath: '.spec.hostnames' },
      conditionColumn('Accepted'),
      conditionColumn('ResolvedRefs'),
      conditionColumn('Programmed'),
      age,
    ],
  },
  {
    kind: 'RateLimitPolicy',
    plural: 'ratelimitpolicies',
    singular: 'ratelimitpolicy',
    shortNames: ['rlp'],
    spec: RateLimitPolicySpecSchema,
    status: RateLimitPolicyStatusSchema,
    printerColumns: [
      { name: 'Scope', type: 'string', jsonPath: '.spec.scope' },
      { name: 'Routes', type: 'string', jsonPath: '.status.attachedRoutes' },
      conditionColumn('Accepted'),
      conditionColumn('Programmed'),
      age,
    ],
  },
  {
    kind: 'CanaryRollout',
    plural: 'canaryrollouts',
    singular: 'canaryrollout',
    shortNames: ['canary'],
    spec: CanaryRolloutSpecSchema,
    status: CanaryRolloutStatusSchema,
    printerColumns: [
      { name: 'Route', type: 'string', jsonPath: '.spec.routeRef.name' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      { name: 'Step', type: 'integer', jsonPath: '.status.currentStep' },
      { name: 'Weight', type: 'integer', jsonPath: '.status.servedWeight' },
      { name: 'Verdict', type: 'string', jsonPath: '.status.lastAnalysis.verdict' },
      conditionColumn('Accepted'),
      age,
    ],
  },
];

export function resourceDefinition(kind: string): ResourceDefinition | undefined {
  return RESOURCES.find((r) => r.kind === kind);
}
