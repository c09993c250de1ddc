/**
 * CanaryRollout: moves traffic between a stable and a canary backend of one ModelRoute, by hand
 * (`weight`) or through `steps`. The compiler reads the weight to serve from here: `spec.weight` in
 * manual mode, `status.stepWeight` (written by the rollout engine) while steps run.
 */
import { type Static, Type } from '@sinclair/typebox';
import { cel, DnsLabel, Duration, HeaderName, List, ObjectName, Str, StringEnum } from './schema-helpers.ts';
import { ConditionsSchema } from './status.ts';

export const RolloutPhase = ['Progressing', 'Paused', 'Promoted', 'RolledBack', 'Failed'] as const;

const Percent = (description: string) => Type.Integer({ minimum: 0, maximum: 100, description });
const Count = (description: string) => Type.Integer({ minimum: 0, maximum: 1_000_000_000_000, description });
const Time = (description: string) => Type.String({ format: 'date-time', maxLength: 64, description });

export const AnalysisSchema = Type.Object(
  {
    interval: Duration('How often canary and stable are compared. Default 1m.', { default: '1m' }),
    minRequests: Type.Integer({
      minimum: 0,
      maximum: 1000000000,
      default: 100,
      description: 'Canary requests needed in an interval before judging. Default 100.',
    }),
    maxErrorRate: Type.Optional(
      Type.Number({ minimum: 0, maximum: 1, description: 'Highest canary 5xx share allowed (0..1).' }),
    ),
    maxLatencyP99Ratio: Type.Optional(
      Type.Number({ minimum: 1, maximum: 100, description: 'Highest canary/stable p99 latency ratio.' }),
    ),
    maxTtftRatio: Type.Optional(
      Type.Number({
        minimum: 1,
        maximum: 100,
        description: 'Highest canary/stable p99 time-to-first-byte ratio.',
      }),
    ),
    failureLimit: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 0,
      description: 'Failed intervals tolerated before rolling back. Default 0.',
    }),
    intervals: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 1,
      description: 'Intervals that must pass before the step completes. Default 1.',
    }),
  },
  {
    additionalProperties: false,
    description: 'Compare canary with stable; roll back when a threshold is exceeded too often.',
  },
);

export const StepSchema = Type.Object(
  {
    setWeight: Type.Optional(Percent('Canary share to serve from this step on.')),
    pause: Type.Optional(
      Type.Object(
        { duration: Type.Optional(Duration('How long to wait; unset waits until resumed.')) },
        {
          additionalProperties: false,
          description: 'Hold the current weight for a while, or until resumed.',
        },
      ),
    ),
    analysis: Type.Optional(AnalysisSchema),
  },
  {
    additionalProperties: false,
    description: 'One step, run in order: set a weight, pause, or analyse (exactly one).',
    ...cel({
      rule: '[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1',
      message: 'each step sets exactly one of setWeight, pause or analysis',
    }),
  },
);

export const CanaryRolloutSpecSchema = Type.Object(
  {
    routeRef: Type.Object(
      { name: ObjectName("ModelRoute in the rollout's namespace.") },
      { additionalProperties: false, description: 'The ModelRoute whose backends this rollout shifts.' },
    ),
    stableBackend: DnsLabel("Backend name (in the route's rules) serving the current version."),
    canaryBackend: DnsLabel('Backend name serving the new version.'),
    weight: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 0,
      description: 'Canary share in percent in manual mode; ignored while steps run. Default 0.',
    }),
    steps: Type.Optional(
      List(StepSchema, 32, {
        description: 'Automated progression; when set, the rollout engine drives the weight.',
      }),
    ),
    stickiness: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(HeaderName('Assign by this header value.')),
          cookie: Type.Optional(Str(256, { minLength: 1, description: 'Assign by this cookie.' })),
          consumer: Type.Optional(Type.Boolean({ description: 'Assign by the authenticated consumer.' })),
        },
        {
          additionalProperties: false,
          description: 'Sticky assignment: a key keeps its bucket, so it moves stable→canary only once.',
          ...cel({
            rule: '[has(self.header), has(self.cookie), has(self.consumer) && self.consumer].filter(x, x).size() == 1',
            message: 'set exactly one of header, cookie or consumer',
          }),
        },
      ),
    ),
    strategy: StringEnum(['Canary', 'BlueGreen'] as const, {
      default: 'Canary',
      description:
        'Canary: traffic moves by weight. BlueGreen: the new version is reached only through `preview` until the switch (weight 100), and switches back at once on abort. Default Canary.',
    }),
    paused: Type.Optional(
      Type.Boolean({ description: 'Holds the rollout where it is (steps mode); set false to go on.' }),
    ),
    preview: Type.Optional(
      Type.Object(
        {
          hostname: Type.Optional(
            Str(253, {
              pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
              description: "Requests for this host (one of the route's hostnames) always get the canary.",
            }),
          ),
          header: Type.Optional(
            Type.Object(
              { name: HeaderName('Header name.'), value: Str(256, { description: 'Exact value.' }) },
              {
                additionalProperties: false,
                description: 'Requests carrying this header value always get the canary.',
              },
            ),
          ),
        },
        {
          additionalProperties: false,
          description:
            'A match that always reaches the canary (the blue-green preview), whatever the weight.',
          ...cel({
            rule: 'has(self.hostname) != has(self.header)',
            message: 'set exactly one of hostname or header',
          }),
        },
      ),
    ),
    mirror: Type.Optional(
      Type.Object(
        {
          percent: Type.Integer({
            minimum: 1,
            maximum: 100,
            description: 'Share of the requests served by stable that are copied to the canary.',
          }),
          maxInFlight: Type.Integer({
            minimum: 1,
            maximum: 10000,
            default: 16,
            description:
              'Mirrored requests in flight per proxy at most; beyond, copies are skipped. Default 16.',
          }),
        },
        {
          additionalProperties: false,
          description:
            'Copies traffic to the canary and discards its answers: the client never waits for them. Bodies streamed without a length are not copied.',
        },
      ),
    ),
    analysisProvider: Type.Optional(
      Type.Object(
        {
          prometheus: Type.Object(
            { url: Str(2048, { pattern: '^https?://', description: 'Prometheus base URL.' }) },
            {
              additionalProperties: false,
              description:
                "A Prometheus that scrapes the proxies: analysis queries ModelGate's own metrics there.",
            },
          ),
        },
        {
          additionalProperties: false,
          description:
            "Where analysis reads canary and stable figures. Default: the proxies' own counters, reported to the controller.",
        },
      ),
    ),
    override: Type.Optional(
      Type.Object(
        {
          header: Type.Object(
            {
              name: HeaderName('Header testers set.'),
              always: Type.Optional(Str(256, { description: 'Value that always selects the canary.' })),
              never: Type.Optional(Str(256, { description: 'Value that never selects the canary.' })),
            },
            {
              additionalProperties: false,
              description: 'The header, and the values that force or prevent the canary.',
              ...cel({
                rule: '(has(self.always) || has(self.never)) && (!has(self.always) || !has(self.never) || self.always != self.never)',
                message: 'set always or never (or both, with different values)',
              }),
            },
          ),
        },
        {
          additionalProperties: false,
          description: 'Lets testers choose the canary or the stable version with a request header.',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...cel(
      {
        rule: 'self.stableBackend != self.canaryBackend',
        message: 'stableBackend and canaryBackend must differ',
      },
      {
        rule: "self.strategy != 'BlueGreen' || has(self.preview)",
        message: 'BlueGreen needs a preview (hostname or header)',
      },
      {
        rule: "self.strategy != 'BlueGreen' || ((self.weight == 0 || self.weight == 100) && (!has(self.steps) || self.steps.all(s, !has(s.setWeight) || s.setWeight == 0 || s.setWeight == 100)))",
        message: 'BlueGreen switches all at once: weights are 0 or 100',
      },
    ),
  },
);

export const CanaryRolloutStatusSchema = Type.Object(
  {
    observedGeneration: Type.Optional(
      Type.Integer({ minimum: 0, description: 'Generation the status describes.' }),
    ),
    phase: Type.Optional(StringEnum(RolloutPhase, { description: 'Where the rollout is.' })),
    currentStep: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 32, description: 'Index of the running step.' }),
    ),
    stepWeight: Type.Optional(Percent('Canary share chosen by the rollout engine (steps mode).')),
    servedWeight: Type.Optional(Percent('Canary share in the routing table now.')),
    conditions: Type.Optional(ConditionsSchema),
    revision: Type.Optional(
      Str(64, { description: 'Digest of the backends and steps this run is for; a change starts over.' }),
    ),
    message: Type.Optional(Str(1024, { description: 'Where the rollout is, in one sentence.' })),
    stepStartedAt: Type.Optional(Time('When the current step started.')),
    intervalStartedAt: Type.Optional(Time('When the current analysis interval started.')),
    pausedAt: Type.Optional(Time('When spec.paused took effect (the step clock is frozen from then).')),
    analysisRuns: Type.Optional(
      Type.Object(
        {
          passed: Count('Intervals passed in the current analysis step.'),
          failed: Count('Intervals failed in the current analysis step.'),
          errors: Count('Consecutive intervals the analysis could not be evaluated.'),
        },
        { additionalProperties: false, description: 'Counts of the current analysis step.' },
      ),
    ),
    lastAnalysis: Type.Optional(
      Type.Object(
        {
          verdict: StringEnum(['Pass', 'Fail', 'Inconclusive'] as const, { description: 'The verdict.' }),
          message: Str(1024, { description: 'Why.' }),
          at: Time('When it was judged.'),
          canaryRequests: Count('Canary requests in the interval.'),
          stableRequests: Count('Stable requests in the interval.'),
          canaryErrorRate: Type.Optional(Type.Number({ minimum: 0, description: 'Canary 5xx share.' })),
          stableErrorRate: Type.Optional(Type.Number({ minimum: 0, description: 'Stable 5xx share.' })),
          latencyP99Ratio: Type.Optional(
            Type.Number({ minimum: 0, description: 'Canary/stable p99 latency.' }),
          ),
          ttftRatio: Type.Optional(
            Type.Number({ minimum: 0, description: 'Canary/stable p99 time to first byte.' }),
          ),
          error: Type.Optional(Type.Boolean({ description: 'The figures could not be read.' })),
        },
        { additionalProperties: false, description: 'The last analysis interval judged.' },
      ),
    ),
    handledActions: Type.Optional(
      Type.Object(
        {
          resume: Type.Optional(Str(256, { description: 'Last modelgate.dev/resume value acted on.' })),
          promote: Type.Optional(Str(256, { description: 'Last modelgate.dev/promote value acted on.' })),
          abort: Type.Optional(Str(256, { description: 'Last modelgate.dev/abort value acted on.' })),
        },
        {
          additionalProperties: false,
          description: 'Action annotations already carried out (each acts once per value).',
        },
      ),
    ),
    history: Type.Optional(
      List(
        Type.Object(
          {
            weight: Percent('Canary share from then on.'),
            at: Time('When.'),
            reason: Str(256, { description: 'Why it changed.' }),
          },
          { additionalProperties: false, description: 'One change of the served canary weight.' },
        ),
        20,
        { description: 'Recent weight changes, oldest first.', 'x-kubernetes-list-type': 'atomic' },
      ),
    ),
  },
  { additionalProperties: false },
);

export type Step = Static<typeof StepSchema>;
export type CanaryRolloutSpec = Static<typeof CanaryRolloutSpecSchema>;
export type CanaryRolloutStatus = Static<typeof CanaryRolloutStatusSchema>;
