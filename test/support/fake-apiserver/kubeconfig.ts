/** Client configuration pointing at a fake API server: plain HTTP, no credentials. */
import { writeFile } from 'node:fs/promises';
import { KubeConfig } from '@kubernetes/client-node';

const NAME = 'fake-apiserver';

/** A client-node KubeConfig whose current context talks to `url`, in `namespace`. */
export function kubeConfigFor(url: string, namespace = 'default'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    // client-node v2 refuses an http:// server unless skipTLSVerify is set ("HTTP protocol is
    // not allowed when skipTLSVerify is not set or false"); there is no TLS to verify here.
    clusters: [{ name: NAME, server: url, skipTLSVerify: true }],
    users: [{ name: NAME }],
    contexts: [{ name: NAME, cluster: NAME, user: NAME, namespace }],
    currentContext: NAME,
  });
  return kc;
}

/** The same, as a kubeconfig file for kubectl (JSON, which kubectl reads as YAML). */
export async function writeKubeconfigFile(url: string, path: string, namespace = 'default'): Promise<void> {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: NAME, cluster: { server: url } }],
    users: [{ name: NAME, user: {} }],
    contexts: [{ name: NAME, context: { cluster: NAME, user: NAME, namespace } }],
    'current-context': NAME,
    preferences: {},
  };
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}
