/**
 * `modelgate controller`: watches the cluster, compiles, pushes tables to proxies, writes status.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { parseDurationMs } from '../../compiler/units.ts';
import { parseHostPort } from '../../config/gateway-config.ts';
import { startController } from '../../roles/controller.ts';
import { UsageError } from '../usage-error.ts';

export const controllerHelp = `Usage: modelgate controller [options]

Watches ModelRoutes, RateLimitPolicies, CanaryRollouts, Services, EndpointSlices and Secrets,
compiles them into routing tables, pushes them to every proxy, and (as the elected leader) writes
each resource's status. Run two or more replicas; one leads at a time (a Lease).

Options (environment variables in brackets):
  --kubeconfig FILE        default: in-cluster config, or $KUBECONFIG / ~/.kube/config
  --namespace NS           the controller's namespace: its Lease and push-token Secret
                           [POD_NAMESPACE; default modelgate]
  --watch-namespace NS     watch only these namespaces; repeatable [MODELGATE_WATCH_NAMESPACES,
                           comma-separated; default: all]
  --id ID                  this replica's name [POD_NAME; default: the host name]
  --listen HOST:PORT       push stream for proxies (default 0.0.0.0:8443)
  --admin HOST:PORT        /healthz /readyz /metrics /status /api/v1/status
                           (default 0.0.0.0:9902; read by modelgate status)
  --push-token-secret NAME default modelgate-push-token (created at first start if absent)
  --lease NAME             default modelgate-controller
  --lease-duration DUR     how long a Lease holds without renewal (default 15s)
  --renew-deadline DUR     how long the leader keeps trying to renew before stepping down
                           (default 10s)
  --retry-period DUR       how often each replica reads or renews the Lease (default 2s)
  -h, --help               show this help`;

export async function controllerCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      'watch-namespace': { type: 'string', multiple: true },
      id: { type: 'string' },
      listen: { type: 'string', default: '0.0.0.0:8443' },
      admin: { type: 'string', default: '0.0.0.0:9902' },
      'push-token-secret': { type: 'string' },
      lease: { type: 'string' },
      'lease-duration': { type: 'string' },
      'renew-deadline': { type: 'string' },
      'retry-period': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${controllerHelp}\n`);
    return 0;
  }
  const env = process.env;
  const kc = new KubeConfig();
  if (values.kubeconfig) kc.loadFromFile(values.kubeconfig);
  else kc.loadFromDefault();
  const listenAt = parseHostPort(values.listen ?? '');
  const adminAt = parseHostPort(values.admin ?? '');
  if (!listenAt) throw new UsageError(`--listen ${values.listen}: expected HOST:PORT`);
  if (!adminAt) throw new UsageError(`--admin ${values.admin}: expected HOST:PORT`);
  const duration = (flag: 'lease-duration' | 'renew-deadline' | 'retry-period') => {
    const text = values[flag];
    if (text === undefined) return undefined;
    if (!/^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/.test(text) || parseDurationMs(text) <= 0)
      throw new UsageError(`--${flag} ${text}: expected a duration like 15s`);
    return parseDurationMs(text);
  };
  const leaseDurationMs = duration('lease-duration');
  const renewDeadlineMs = duration('renew-deadline');
  const retryPeriodMs = duration('retry-period');
  const role = await startController({
    kc,
    namespace: values.namespace ?? env.POD_NAMESPACE ?? 'modelgate',
    identity: values.id ?? env.POD_NAME ?? hostname(),
    watchNamespaces: values['watch-namespace'] ?? env.MODELGATE_WATCH_NAMESPACES?.split(',').filter(Boolean),
    listen: listenAt,
    admin: adminAt,
    tokenSecretName: values['push-token-secret'],
    leaseName: values.lease,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      role.shutdown().then(
        () => resolve(0),
        () => resolve(1),
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
