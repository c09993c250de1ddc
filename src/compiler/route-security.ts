/**
 * The security sections of a route in table form: authentication (API keys from Secrets reduced to
 * SHA-256 digests, JWT providers, introspection credentials), per-rule authorization, CORS, the
 * route's TLS certificate and the credentials injected towards a backend. Secrets that are missing
 * or malformed become problems for the route's ResolvedRefs condition; the route stays in the
 * table and fails closed (no key matches, the hostname has no certificate, the backend has no
 * endpoint), so a broken reference never opens a route.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import type { Secret } from '../api/kubernetes-types.ts';
import type { ModelRoute } from '../api/resources.ts';
import type {
  CompiledApiKey,
  CompiledAuth,
  CompiledAuthorization,
  CompiledCors,
  CompiledJwtProvider,
  CompiledTlsCertificate,
  CredentialSource,
} from '../routing-table/types.ts';
import { compareText } from './precedence.ts';
import { type SecretIndex, secretValue } from './secrets.ts';
import { parseDurationMs } from './units.ts';

type Spec = ModelRoute['spec'];
type AuthSpec = NonNullable<Spec['auth']>;
type RuleSpec = Spec['rules'][number];
type BackendSpec = RuleSpec['backends'][number];

/** [reason, message] for the ResolvedRefs condition. */
export type Problem = [string, string];

export const CONSUMER_ANNOTATION = 'modelgate.dev/consumer';
export const GROUPS_ANNOTATION = 'modelgate.dev/groups';
/** Shorter API keys are refused: they can be guessed. */
export const MIN_API_KEY_LENGTH = 16;

function source(header: string | undefined): CredentialSource {
  const h = (header ?? 'authorization').toLowerCase();
  return { header: h, bearer: h === 'authorization' };
}

/** Every value of a Secret (data decoded, stringData as written), by key, sorted by key. */
function secretEntries(s: Secret): [string, string][] {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(s.data ?? {})) {
    if (typeof v === 'string') out.set(k, Buffer.from(v, 'base64').toString('utf8'));
  }
  for (const [k, v] of Object.entries(s.stringData ?? {})) if (typeof v === 'string') out.set(k, v);
  return [...out].sort((a, b) => compareText(a[0], b[0]));
}

function matchesLabels(s: Secret, labels: Record<string, string>): boolean {
  const have = s.metadata.labels ?? {};
  return Object.entries(labels).every(([k, v]) => have[k] === v);
}

export function apiKeyDigest(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('base64url');
}

function compileApiKeys(
  spec: NonNullable<AuthSpec['apiKeys']>,
  namespace: string,
  secrets: SecretIndex,
  problems: Problem[],
): CompiledAuth['apiKeys'] {
  const chosen = new Map<string, Secret>();
  for (const ref of spec.secretRefs ?? []) {
    const s = secrets.get(`${namespace}/${ref.name}`);
    if (s) chosen.set(ref.name, s);
    else problems.push(['SecretNotFound', `spec.auth.apiKeys: secret ${namespace}/${ref.name} not found`]);
  }
  if (spec.secretSelector) {
    for (const [key, s] of secrets) {
      if (key.startsWith(`${namespace}/`) && matchesLabels(s, spec.secretSelector.matchLabels)) {
        chosen.set(s.metadata.name, s);
      }
    }
  }
  const keys: CompiledApiKey[] = [];
  const owner = new Map<string, string>();
  for (const name of [...chosen.keys()].sort(compareText)) {
    const s = chosen.get(name)!;
    const annotations = s.metadata.annotations ?? {};
    const consumer = annotations[CONSUMER_ANNOTATION]?.trim() || name;
    const groups = [
      ...new Set(
        (annotations[GROUPS_ANNOTATION] ?? '')
          .split(',')
          .map((g) => g.trim())
          .filter((g) => g.length > 0),
      ),
    ].sort(compareText);
    for (const [entry, raw] of secretEntries(s)) {
      const value = raw.trim();
      if (value.length < MIN_API_KEY_LENGTH) {
        problems.push([
          'InvalidSecret',
          `spec.auth.apiKeys: secret ${namespace}/${name} key ${entry} is shorter than ${MIN_API_KEY_LENGTH} characters and is ignored`,
        ]);
        continue;
      }
      const sha256 = apiKeyDigest(value);
      const first = owner.get(sha256);
      if (first !== undefined) {
        if (first !== consumer) {
          problems.push([
            'InvalidSecret',
            `spec.auth.apiKeys: secret ${namespace}/${name} key ${entry} is also a key of consumer ${first}; it stays with ${first}`,
          ]);
        }
        continue;
      }
      owner.set(sha256, consumer);
      keys.push({ sha256, consumer, groups });
    }
  }
  keys.sort((a, b) => compareText(a.sha256, b.sha256));
  return { source: source(spec.header), keys };
}

function isJwks(doc: unknown): boolean {
  return (
    typeof doc === 'object' &&
    doc !== null &&
    Array.isArray((doc as { keys?: unknown }).keys) &&
    (doc as { keys: unknown[] }).keys.every((k) => typeof k === 'object' && k !== null && 'kty' in k)
  );
}

function compileJwt(
  providers: NonNullable<AuthSpec['jwt']>,
  namespace: string,
  secrets: SecretIndex,
  problems: Problem[],
): CompiledJwtProvider[] {
  const out: CompiledJwtProvider[] = [];
  providers.forEach((p, i) => {
    const compiled: CompiledJwtProvider = {
      name: p.name,
      source: source(p.header),
      issuer: p.issuer,
      audiences: [...(p.audiences ?? [])].sort(compareText),
      algorithms: [...p.algorithms].sort(compareText),
      clockSkewMs: parseDurationMs(p.clockSkew),
      requiredClaims: [...p.requiredClaims].sort(compareText),
      consumerClaim: p.consumerClaim,
      scopesClaim: p.scopesClaim,
      forwardClaims: p.forwardClaims.map((f) => ({ claim: f.claim, header: f.header.toLowerCase() })),
    };
    if (p.groupsClaim !== undefined) compiled.groupsClaim = p.groupsClaim;
    if (p.jwksUri !== undefined) compiled.jwksUri = p.jwksUri;
    if (p.jwksSecretRef) {
      const ref = p.jwksSecretRef;
      const v = secretValue(secrets, namespace, ref.name, ref.key);
      if (!v.ok) {
        problems.push([v.reason, `spec.auth.jwt[${i}].jwksSecretRef: ${v.message}`]);
        // No keys: every token of this provider fails (closed), and the status says why.
        compiled.jwks = '{"keys":[]}';
      } else {
        let doc: unknown;
        try {
          doc = JSON.parse(v.value);
        } catch {
          doc = undefined;
        }
        if (isJwks(doc)) compiled.jwks = JSON.stringify(doc);
        else {
          problems.push([
            'InvalidSecret',
            `spec.auth.jwt[${i}].jwksSecretRef: secret ${namespace}/${ref.name} key ${ref.key} is not a JWKS document`,
          ]);
          compiled.jwks = '{"keys":[]}';
        }
      }
    }
    out.push(compiled);
  });
  return out;
}

export function compileAuth(
  spec: AuthSpec,
  routeKey: string,
  namespace: string,
  secrets: SecretIndex,
  problems: Problem[],
): CompiledAuth {
  const auth: CompiledAuth = {
    route: routeKey,
    jwt: spec.jwt ? compileJwt(spec.jwt, namespace, secrets, problems) : [],
    anonymous: spec.anonymous,
    forwardCredentials: spec.forwardCredentials,
  };
  if (spec.apiKeys) auth.apiKeys = compileApiKeys(spec.apiKeys, namespace, secrets, problems);
  if (spec.introspection) {
    const i = spec.introspection;
    const ref = i.clientSecretRef.name;
    const id = secretValue(secrets, namespace, ref, 'client-id');
    const secret = secretValue(secrets, namespace, ref, 'client-secret');
    if (!id.ok) problems.push([id.reason, `spec.auth.introspection.clientSecretRef: ${id.message}`]);
    else if (!secret.ok)
      problems.push([secret.reason, `spec.auth.introspection.clientSecretRef: ${secret.message}`]);
    auth.introspection = {
      source: source(i.header),
      endpoint: i.endpoint,
      // Without credentials the endpoint refuses the gateway: tokens are answered 503, not let in.
      clientId: id.ok ? id.value.trim() : '',
      clientSecret: secret.ok ? secret.value.trim() : '',
      cacheTtlMs: parseDurationMs(i.cacheTTL),
      negativeCacheTtlMs: parseDurationMs(i.negativeCacheTTL),
      timeoutMs: parseDurationMs(i.timeout),
      consumerClaim: i.consumerClaim,
    };
    if (i.groupsClaim !== undefined) auth.introspection.groupsClaim = i.groupsClaim;
  }
  return auth;
}

export function compileAuthorization(spec: NonNullable<RuleSpec['authorization']>): CompiledAuthorization {
  return {
    scopes: [...(spec.scopes ?? [])].sort(compareText),
    groups: [...(spec.groups ?? [])].sort(compareText),
    claims: (spec.claims ?? []).map((c) => ({ name: c.name, values: [...c.values] })),
  };
}

export function compileCors(spec: NonNullable<Spec['cors']>): CompiledCors {
  return {
    allowOrigins: spec.allowOrigins.map((o) => o.toLowerCase()),
    allowMethods: spec.allowMethods,
    allowHeaders: spec.allowHeaders.map((h) => h.toLowerCase()),
    exposeHeaders: spec.exposeHeaders.map((h) => h.toLowerCase()),
    allowCredentials: spec.allowCredentials,
    maxAgeS: Math.floor(parseDurationMs(spec.maxAge) / 1000),
  };
}

/** Checks that PEM text holds a certificate whose key is `keyPem`; the reason when not. */
function checkKeyPair(certPem: string, keyPem: string): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'tls.crt is not a PEM certificate';
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'tls.key does not belong to tls.crt';
  } catch {
    return 'tls.key is not a PEM private key';
  }
  return undefined;
}

function checkCaBundle(pem: string): boolean {
  try {
    new X509Certificate(pem);
    return true;
  } catch {
    return false;
  }
}

/**
 * The route's certificate for HTTPS listeners. `undefined` with a problem when it cannot be used:
 * then its hostnames are served with the default certificate, unless the route asks for client
 * certificates, in which case `blocked` says why the route must not be served at all (serving it
 * without the client check would open what the route closes).
 */
export function compileRouteTls(
  spec: NonNullable<Spec['tls']>,
  routeKey: string,
  namespace: string,
  hostnames: readonly string[],
  secrets: SecretIndex,
  problems: Problem[],
): { certificate?: CompiledTlsCertificate; blocked?: string } {
  const blocked = (why: string) => (spec.clientValidation ? { blocked: why } : {});
  const name = spec.certificateRef.name;
  const cert = secretValue(secrets, namespace, name, 'tls.crt');
  const key = secretValue(secrets, namespace, name, 'tls.key');
  if (!cert.ok || !key.ok) {
    const failed = !cert.ok ? cert : (key as Extract<typeof key, { ok: false }>);
    problems.push([failed.reason, `spec.tls.certificateRef: ${failed.message}`]);
    return blocked(`spec.tls.certificateRef: ${failed.message}`);
  }
  const bad = checkKeyPair(cert.value, key.value);
  if (bad) {
    problems.push(['InvalidSecret', `spec.tls.certificateRef: secret ${namespace}/${name}: ${bad}`]);
    return blocked(`spec.tls.certificateRef: secret ${namespace}/${name}: ${bad}`);
  }
  const out: CompiledTlsCertificate = {
    route: routeKey,
    hostnames: hostnames.filter((h) => h !== ''),
    certificatePem: cert.value,
    privateKey: key.value,
  };
  if (spec.clientValidation) {
    const caName = spec.clientValidation.caSecretRef.name;
    const ca = secretValue(secrets, namespace, caName, 'ca.crt');
    if (!ca.ok || !checkCaBundle(ca.value)) {
      const message = `spec.tls.clientValidation.caSecretRef: ${ca.ok ? `secret ${namespace}/${caName} ca.crt is not a PEM certificate` : ca.message}`;
      problems.push([ca.ok ? 'InvalidSecret' : ca.reason, message]);
      return { blocked: message };
    }
    out.clientCaPem = ca.value;
  }
  return { certificate: out };
}

/** The header a backend gets from a Secret, or a problem (the backend then has no endpoint). */
export function resolveBackendCredentials(
  spec: NonNullable<BackendSpec['credentials']>,
  namespace: string,
  secrets: SecretIndex,
):
  | { ok: true; credentials: { header: string; headerValue: string } }
  | { ok: false; reason: string; message: string } {
  const v = secretValue(secrets, namespace, spec.secretKeyRef.name, spec.secretKeyRef.key);
  if (!v.ok) return v;
  return {
    ok: true,
    credentials: { header: spec.header.toLowerCase(), headerValue: spec.prefix + v.value.trim() },
  };
}
