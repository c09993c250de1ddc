/**
 * `modelgate rollout VERB NAME`: the resource edits that steer a CanaryRollout, for people who
 * would rather not remember annotation names. Every verb is a plain merge patch that kubectl
 * could make too (the README lists them):
 *   pause    spec.paused = true (the step's clock stands still)
 *   resume   spec.paused = false, and modelgate.dev/resume = <now> (goes past a pause step)
 *   promote  modelgate.dev/promote = <now> (weight 100 now)
 *   abort    modelgate.dev/abort = <now> (weight 0 now)
 *   status   prints phase, step, weight, the last verdict and the message
 * Action annotations act once per value, so each call writes a new one (the time in ms).
 */

import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { ACTION_ANNOTATIONS } from '../../controlplane/rollout/status-mapping.ts';
import { KubeError, kubeRequest } from '../../sources/kubernetes/kube-request.ts';
import { UsageError } from '../usage-error.ts';

export const rolloutHelp = `Usage: modelgate rollout (status|pause|resume|promote|abort) NAME [-n NAMESPACE] [--kubeconfig FILE]

Steers a CanaryRollout through resource edits (merge patches kubectl could make as well):
  status    phase, step, weight, last verdict and message
  pause     hold where it is (spec.paused: true)
  resume    go on: clear spec.paused and end a pause step (annotation modelgate.dev/resume)
  promote   weight 100 now, skipping the remaining steps (annotation modelgate.dev/promote)
  abort     back to the stable version now (annotation modelgate.dev/abort)

Options:
  -n, --namespace NS   the rollout's namespace (default: the kubeconfig context's, else default)
  --kubeconfig FILE    kubeconfig to use (default: KUBECONFIG, ~/.kube/config or in-cluster)
  -h, --help           show this help`;

const VERBS = ['status', 'pause', 'resume', 'promote', 'abort'] as const;
export type RolloutVerb = (typeof VERBS)[number];

/** The merge patch of a verb (undefined for status). */
export function patchFor(verb: RolloutVerb, now: number): Record<string, unknown> | undefined {
  const stamp = String(now);
  switch (verb) {
    case 'pause':
      return { spec: { paused: true } };
    case 'resume':
      return { spec: { paused: false }, metadata: { annotations: { [ACTION_ANNOTATIONS.resume]: stamp } } };
    case 'promote':
      return { metadata: { annotations: { [ACTION_ANNOTATIONS.promote]: stamp } } };
    case 'abort':
      return { metadata: { annotations: { [ACTION_ANNOTATIONS.abort]: stamp } } };
    case 'status':
      return undefined;
  }
}

interface RolloutView {
  spec?: { weight?: number; steps?: unknown[] };
  status?: {
    phase?: string;
    currentStep?: number;
    servedWeight?: number;
    stepWeight?: number;
    message?: string;
    lastAnalysis?: { verdict?: string; message?: string };
  };
}

export function describe(name: string, r: RolloutView): string {
  const s = r.status ?? {};
  const steps = r.spec?.steps?.length ?? 0;
  const lines = [
    `${name}: ${s.phase ?? (steps > 0 ? 'not started' : 'manual')}`,
    `  weight   ${s.servedWeight ?? s.stepWeight ?? r.spec?.weight ?? 0}% canary`,
  ];
  if (steps > 0) lines.push(`  step     ${Math.min((s.currentStep ?? 0) + 1, steps)}/${steps}`);
  if (s.lastAnalysis?.verdict)
    lines.push(`  verdict  ${s.lastAnalysis.verdict}: ${s.lastAnalysis.message ?? ''}`);
  if (s.message) lines.push(`  message  ${s.message}`);
  return lines.join('\n');
}

/** Applies a verb; returns what to print. */
export async function rollout(
  kc: KubeConfig,
  verb: RolloutVerb,
  namespace: string,
  name: string,
  now: number = Date.now(),
): Promise<string> {
  const path = `/apis/modelgate.dev/v1alpha1/namespaces/${namespace}/canaryrollouts/${name}`;
  const patch = patchFor(verb, now);
  try {
    const r = (
      patch === undefined
        ? await kubeRequest(kc, path, { method: 'GET' })
        : await kubeRequest(kc, path, { method: 'PATCH', body: patch })
    ) as RolloutView;
    return patch === undefined
      ? describe(`${namespace}/${name}`, r)
      : `${namespace}/${name}: ${verb} requested`;
  } catch (err) {
    if (err instanceof KubeError && err.statusCode === 404) {
      throw new UsageError(`canaryrollout ${namespace}/${name} not found`);
    }
    throw err;
  }
}

export async function rolloutCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      namespace: { type: 'string', short: 'n' },
      kubeconfig: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${rolloutHelp}\n`);
    return 0;
  }
  const [verb, name, ...rest] = positionals;
  if (!VERBS.includes(verb as RolloutVerb)) {
    throw new UsageError(`rollout needs a verb: ${VERBS.join(', ')}${verb ? ` (not ${verb})` : ''}`);
  }
  if (!name || rest.length > 0) throw new UsageError('rollout needs exactly one rollout NAME');
  const kc = new KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();
  const namespace = values.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  process.stdout.write(`${await rollout(kc, verb as RolloutVerb, namespace, name)}\n`);
  return 0;
}
