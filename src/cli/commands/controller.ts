/**
 * `modelgate controller`: watches the cluster, compiles, pushes tables to proxies, writes status.
 */
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { parseDurationMs } from '../../compiler/units.ts';
import { parseHostPort } from '../../config/gateway-config.ts';
import { FileCertificates } from '../../dataplane/tls/file-certificates.ts';
import { createLogger } from '../../observability/logger.ts';
import { startController } from '../../roles/controller.ts';
import { resolveLogLevel } from '../serving.ts';
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
  --push-tls-cert FILE     serve the push stream over https with this PEM certificate (chain),
                           with --push-tls-key FILE (its PEM key); both or neither. Without them
                           the stream is plain http, and the tables it carries (private keys,
                           credentials) cross the network in clear. The files are read at start
                           and reloaded when they change (a mounted Secret's rotation); open
                           streams keep the certificate they started with
  --push-tls-key FILE      see --push-tls-cert
  --admin HOST:PORT        /healthz /readyz /metrics /status /api/v1/status
                           (default 0.0.0.0:9902; read by modelgate status)
  --push-token-secret NAME default modelgate-push-token (created at first start if absent)
  --lease NAME             default modelgate-controller
  --lease-duration DUR     how long a Lease holds without renewal (default 15s)
  --renew-deadline DUR     how long the leader keeps trying to renew before stepping down
                           (default 10s)
  --retry-period DUR       how often each replica reads or renews the Lease (default 2s)
  --log-level LEVEL        trace, debug, info, warn, error, fatal or silent (default info)
                           [MODELGATE_LOG_LEVEL]; debug shows each compile, publish and ACK
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
      'push-tls-cert': { type: 'string' },
      'push-tls-key': { type: 'string' },
      admin: { type: 'string', default: '0.0.0.0:9902' },
      'push-token-secret': { type: 'string' },
      lease: { type: 'string' },
      'lease-duration': { type: 'string' },
      'renew-deadline': { type: 'string' },
      'retry-period': { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${controllerHelp}\n`);
    return 0;
  }
  const env = process.env;
  const logLevel = resolveLogLevel(values['log-level'], env);
  const tlsFiles = pushTlsFlags(values);
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
  const { logger, flush } = createLogger({ level: logLevel });
  const tls = tlsFiles ? loadPushTls(tlsFiles, logger) : undefined;
  const role = await startController({
    kc,
    namespace: values.namespace ?? env.POD_NAMESPACE ?? 'modelgate',
    identity: values.id ?? env.POD_NAME ?? hostname(),
    watchNamespaces: values['watch-namespace'] ?? env.MODELGATE_WATCH_NAMESPACES?.split(',').filter(Boolean),
    listen: listenAt,
    admin: adminAt,
    ...(tls ? { pushTls: pushTlsMaterial(tls) } : {}),
    logger,
    tokenSecretName: values['push-token-secret'],
    leaseName: values.lease,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs,
  });
  if (tls) {
    // A renewed certificate (cert-manager rewrites the mounted Secret) is served without a restart.
    tls.on('reload', (r) => {
      if (r.changed) role.setPushTls(pushTlsMaterial(tls));
    });
    tls.watch();
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      tls?.close();
      role.shutdown().then(
        () => {
          flush();
          resolve(0);
        },
        () => {
          flush();
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** `--push-tls-cert` and `--push-tls-key`: both (push stream over https) or neither. */
export function pushTlsFlags(values: {
  'push-tls-cert'?: string;
  'push-tls-key'?: string;
}): { certFile: string; keyFile: string } | undefined {
  const certFile = values['push-tls-cert'];
  const keyFile = values['push-tls-key'];
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined)
    throw new UsageError('--push-tls-cert and --push-tls-key go together');
  if (certFile === '' || keyFile === '')
    throw new UsageError('--push-tls-cert and --push-tls-key need a file');
  return { certFile, keyFile };
}

/**
 * Reads the push certificate and key: PEM, the key matching the certificate. The result reloads
 * them when `watch()`ed; a rotated pair that does not load keeps the previous one (logged).
 */
export function loadPushTls(files: { certFile: string; keyFile: string }, logger: Logger): FileCertificates {
  try {
    return new FileCertificates({
      certificates: [{ hostnames: ['*'], ...files }],
      minVersion: 'TLSv1.2',
      logger,
      listener: 'push',
    });
  } catch (e) {
    throw new UsageError(`--push-tls-cert/--push-tls-key: ${(e as Error).message}`);
  }
}

function pushTlsMaterial(files: FileCertificates): { cert: string; key: string } {
  const m = files.certificates[0]!.entry.material;
  return { cert: m.certificatePem, key: m.privateKeyPem };
}
