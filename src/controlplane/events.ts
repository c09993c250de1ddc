/**
 * Kubernetes Events about ModelGate resources (core/v1 Event): what `kubectl describe` shows.
 * Written by the leader only (fenced), best effort: an Event that cannot be written is logged by
 * the caller, never retried.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeRequest } from '../sources/kubernetes/kube-request.ts';

export interface EventTarget {
  kind: string;
  namespace: string;
  name: string;
}

export async function postEvent(
  kc: KubeConfig,
  opts: { fence: () => void; component: string; now?: () => number },
  target: EventTarget,
  e: { type: 'Normal' | 'Warning'; reason: string; message: string },
): Promise<void> {
  const now = new Date((opts.now ?? Date.now)()).toISOString();
  opts.fence();
  await kubeRequest(kc, `/api/v1/namespaces/${target.namespace}/events`, {
    method: 'POST',
    body: {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${target.name}.`, namespace: target.namespace },
      involvedObject: {
        apiVersion: 'modelgate.dev/v1alpha1',
        kind: target.kind,
        namespace: target.namespace,
        name: target.name,
      },
      type: e.type,
      reason: e.reason,
      message: e.message.slice(0, 1024),
      source: { component: opts.component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    },
  });
}
