/**
 * Composition (`rules[].composition`): a rule whose answer is made of several backend calls. Part
 * of the ModelRoute schema (model-route.ts); split out because it is a concern of its own.
 *
 * - A **pipeline** calls its steps in order: each step's JSON answer is the next step's request
 *   body, or is reshaped by the step's `request` mapping; the last step's answer is the route's
 *   answer and streams to the client like any backend's (Server-Sent Events included).
 * - A **fan-out** calls its branches at once and answers one JSON object with each branch's answer
 *   under the branch's name; `onPartialFailure` says what a failed branch does to the answer.
 *
 * Steps and branches name backends of the rule's own `backends` list, so each keeps what the rule
 * compiles for its backends (Service or URLs, TLS, credentials, load balancing, health checks,
 * outlier detection, retries); the rule's weights are not used. Mappings use RFC 6901 JSON
 * Pointers, as the transform body operations do.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ByteSize, cel, DnsLabel, Duration, List, Str, StringEnum } from './schema-helpers.ts';

/** Methods a step may use: each sends a body. */
export const StepMethod = ['POST', 'PUT', 'PATCH'] as const;

export const PartialFailurePolicy = ['Fail', 'Omit', 'SetNull'] as const;

/** The most steps of a pipeline or branches of a fan-out. */
export const MAX_STEPS = 8;

/** What a path may hold besides percent-escapes (RFC 3986 pchar and `/`), then an optional query. */
const STEP_PATH =
  "^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*(\\?[-A-Za-z0-9/._~!$&'()*+,;=:@%?]*)?$";

/**
 * A mapping source: a JSON Pointer into the previous answer (`/tokens`, "" for all of it), or into
 * the client's request (`$request/model`) or an earlier step's answer (`$tokenize/tokens`).
 */
const SOURCE = '^(\\$[a-z0-9]([-a-z0-9]*[a-z0-9])?)?(/([^~]|~[01])*)*$';

/** Messages differ by location: each CEL rule location has its own (the fixtures name rules by message). */
const fieldMapping = (what: 'step' | 'branch') =>
  Type.Object(
    {
      from: Type.Optional(
        Str(1024, {
          pattern: SOURCE,
          description:
            "Where the value comes from: a JSON Pointer into the previous step's answer (`/tokens`; \"\" is all of it; for the first step and for fan-out branches, the client's request body), `$request` followed by a pointer into the client's request body (`$request/model`), or `$<step>` followed by a pointer into an earlier pipeline step's answer (`$tokenize/tokens`). A value that is not there sets nothing.",
        }),
      ),
      value: Type.Optional(
        Type.Unsafe<unknown>({
          'x-kubernetes-preserve-unknown-fields': true,
          description: 'A constant JSON value, instead of from.',
        }),
      ),
      to: Str(1024, {
        pattern: '^(/([^~]|~[01])*)*$',
        description:
          'JSON Pointer in the body being built ("" replaces the whole body). Missing parent objects are created, as by the transform body operation Set; on an array, an index or `-` (append).',
      }),
    },
    {
      additionalProperties: false,
      description: 'One value put into the body a step sends.',
      ...cel({
        rule: 'has(self.from) != has(self.value)',
        message: `${what} request: set exactly one of from or value`,
      }),
    },
  );

export const FieldMappingSchema = fieldMapping('step');

const stepFields = (what: 'step' | 'branch') => ({
  name: DnsLabel(
    what === 'step'
      ? 'Step name, unique in the pipeline; named by errors, metrics and `$<step>` sources.'
      : 'Branch name, unique in the fan-out: the member of the merged answer that holds its answer.',
  ),
  backend: DnsLabel(
    `A backend of this rule's \`backends\` list: the ${what} is balanced, health-checked and retried as that backend.`,
  ),
  path: Type.Optional(
    Str(2048, {
      pattern: STEP_PATH,
      description:
        "Path (and optional query) of the upstream call. Default: the client's path and query, after the rule's urlRewrite.",
    }),
  ),
  method: StringEnum(StepMethod, { default: 'POST', description: 'HTTP method. Default POST.' }),
  timeout: Type.Optional(
    Duration(
      what === 'step'
        ? "Longest time for the whole step, retries included, until its answer is read (the last step: until its first byte). Default: the rule's timeouts only."
        : "Longest time for the branch, retries included, until its answer is read. Default: the rule's timeouts only.",
    ),
  ),
  request: Type.Optional(
    List(fieldMapping(what), 32, {
      description:
        what === 'step'
          ? "Builds the step's JSON body, in order, starting from {}. Unset: the previous step's answer as it is (the first step: the client's body as the client sent it)."
          : "Builds the branch's JSON body, in order, starting from {}. Unset: the client's body as the client sent it.",
      'x-kubernetes-list-type': 'atomic',
    }),
  ),
});

export const PipelineStepSchema = Type.Object(stepFields('step'), {
  additionalProperties: false,
  description: 'One call of a pipeline.',
});

export const FanOutBranchSchema = Type.Object(stepFields('branch'), {
  additionalProperties: false,
  description: 'One call of a fan-out.',
});

const uniqueNames = (what: string) =>
  cel({ rule: 'self.all(s, self.exists_one(t, t.name == s.name))', message: `${what} names must be unique` });

export const PipelineSchema = Type.Object(
  {
    steps: List(PipelineStepSchema, MAX_STEPS, {
      minItems: 1,
      description:
        "Calls made in order. A step's non-2xx answer stops the pipeline (502 MG_PIPELINE_STEP_FAILED); the last step's answer, whatever its status, is the route's answer and may stream.",
      ...uniqueNames('step'),
    }),
  },
  { additionalProperties: false, description: 'Steps in order, each fed by the answer of the one before.' },
);

export const FanOutSchema = Type.Object(
  {
    branches: List(FanOutBranchSchema, MAX_STEPS, {
      minItems: 1,
      description: 'Calls made at once; their answers are merged under their names, in this order.',
      ...uniqueNames('branch'),
    }),
    onPartialFailure: StringEnum(PartialFailurePolicy, {
      default: 'Fail',
      description:
        'What a failed branch (non-2xx, not JSON, unreachable, timed out) does. Fail: the client gets the error (502 MG_FANOUT_FAILED, or 504 MG_STEP_TIMEOUT), the other branches are cancelled. Omit: the branch is left out. SetNull: its member is null (not `Null`, which YAML reads as null). With Omit and SetNull, failures are listed under `_errors`, and if every branch fails the client gets 502. Default Fail.',
    }),
    timeout: Type.Optional(
      Duration('Deadline for the whole fan-out; branches still running then count as timed out.'),
    ),
  },
  { additionalProperties: false, description: 'Parallel calls merged into one JSON object.' },
);

export const CompositionSchema = Type.Object(
  {
    pipeline: Type.Optional(PipelineSchema),
    fanOut: Type.Optional(FanOutSchema),
    maxResponseSize: ByteSize(
      'Largest answer read into memory from an intermediate step or a branch (at most 64Mi); a larger one fails it (MG_PIPELINE_BAD_RESPONSE). Default 1Mi.',
      { default: '1Mi' },
    ),
  },
  {
    additionalProperties: false,
    description:
      "The rule's answer is made of several calls to its backends: a pipeline or a fan-out. Runs after authentication, validation, rate limiting and the request transform, once for the client's request. The rule's backend weights and fallbackBackend do not apply.",
    ...cel({
      rule: 'has(self.pipeline) != has(self.fanOut)',
      message: 'set exactly one of pipeline or fanOut',
    }),
  },
);

export type FieldMapping = Static<typeof FieldMappingSchema>;
export type PipelineStep = Static<typeof PipelineStepSchema>;
export type FanOutBranch = Static<typeof FanOutBranchSchema>;
export type Composition = Static<typeof CompositionSchema>;
