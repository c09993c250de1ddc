/** A backend's `tls` section with its Secrets resolved into PEM text. */
import type { BackendTlsSchema } from '../api/model-route.ts';
import type { CompiledUpstreamTls } from '../routing-table/types.ts';
import { type SecretIndex, secretValue } from './secrets.ts';

type BackendTls = (typeof BackendTlsSchema)['static'];

export function resolveUpstreamTls(
  spec: BackendTls,
  defaultServerName: string,
  namespace: string,
  secrets: SecretIndex,
): { ok: true; tls: CompiledUpstreamTls } | { ok: false; reason: string; message: string } {
  const tls: CompiledUpstreamTls = {
    serverName: spec.serverName ?? defaultServerName,
    insecureSkipVerify: spec.insecureSkipVerify,
  };
  if (spec.caSecretRef) {
    const ca = secretValue(secrets, namespace, spec.caSecretRef.name, 'ca.crt');
    if (!ca.ok) return ca;
    tls.caPem = ca.value;
  }
  if (spec.clientCertificateSecretRef) {
    const name = spec.clientCertificateSecretRef.name;
    const cert = secretValue(secrets, namespace, name, 'tls.crt');
    if (!cert.ok) return cert;
    const key = secretValue(secrets, namespace, name, 'tls.key');
    if (!key.ok) return key;
    tls.certificatePem = cert.value;
    tls.privateKey = key.value;
  }
  return { ok: true, tls };
}
