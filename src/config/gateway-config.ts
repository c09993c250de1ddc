/**
 * Gateway-wide settings that are not per route: listeners and their ports, TLS certificates per
 * hostname, trusted proxy CIDRs, the admin listener and the state directory. They belong to whoever
 * runs the gateway (a Helm value, a file), not to the teams writing routes, so they live in a small
 * file (`--config`) plus flags rather than in a fourth CRD.
 */
import { isIP } from 'node:net';
import { type Static, Type } from '@sinclair/typebox';
import { ajv } from '../api/ajv.ts';
import type { FieldError } from '../api/cel.ts';
import { List, ObjectName, Str, StringEnum } from '../api/schema-helpers.ts';
import { describeAjvError } from '../api/validate.ts';

const Port = (description: string, def: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
const Address = (description: string, def: string) => Str(253, { minLength: 1, default: def, description });

const SecretRef = Type.Object(
  {
    name: ObjectName('Secret name.'),
    namespace: Type.Optional(ObjectName("Secret namespace; default: the gateway's namespace.")),
  },
  { additionalProperties: false },
);

export const CertificateSchema = Type.Object(
  {
    hostnames: List(Str(253, { minLength: 1 }), 64, {
      minItems: 1,
      description: 'SNI names this certificate serves; `*.example.com` wildcards and `*` (default) allowed.',
    }),
    secretRef: Type.Optional(SecretRef),
    certFile: Type.Optional(Str(4096, { description: 'PEM certificate chain file (standalone).' })),
    keyFile: Type.Optional(Str(4096, { description: 'PEM private key file (standalone).' })),
  },
  {
    additionalProperties: false,
    description: 'Either secretRef (a kubernetes.io/tls Secret) or certFile+keyFile.',
  },
);

export const ListenerSchema = Type.Object(
  {
    name: Str(63, {
      minLength: 1,
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      description: 'Listener name.',
    }),
    address: Address('Bind address; `0.0.0.0` or `::` for all. Default 0.0.0.0.', '0.0.0.0'),
    port: Port('TCP port; 0 picks a free one (tests). Default 8080.', 8080),
    protocol: StringEnum(['HTTP', 'HTTPS'] as const, {
      default: 'HTTP',
      description: 'HTTP or HTTPS. Default HTTP.',
    }),
    tls: Type.Optional(
      Type.Object(
        {
          certificates: List(CertificateSchema, 256, { minItems: 1, description: 'Chosen by SNI.' }),
          minVersion: StringEnum(['TLSv1.2', 'TLSv1.3'] as const, {
            default: 'TLSv1.2',
            description: 'Default TLSv1.2.',
          }),
          clientCA: Type.Optional(
            Type.Object(
              { secretRef: Type.Optional(SecretRef), file: Type.Optional(Str(4096)) },
              { additionalProperties: false, description: 'CA bundle for client certificates (mTLS).' },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export const GatewayConfigSchema = Type.Object(
  {
    apiVersion: Type.Literal('modelgate.dev/v1alpha1'),
    kind: Type.Literal('GatewayConfig'),
    listeners: List(ListenerSchema, 16, {
      minItems: 1,
      default: [{ name: 'http' }],
      description: 'Public listeners. Default one HTTP listener on 0.0.0.0:8080.',
    }),
    admin: Type.Object(
      {
        address: Address(
          'Admin bind address (metrics, health, config dump). Default 127.0.0.1.',
          '127.0.0.1',
        ),
        port: Port('Admin port. Default 9901.', 9901),
      },
      { additionalProperties: false, default: {} },
    ),
    trustedProxies: Type.Object(
      {
        cidrs: List(Str(64), 64, {
          default: [],
          description:
            'Peers whose x-forwarded-for is believed (e.g. the cloud load balancer). Default none.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    tracing: Type.Object(
      {
        otlpEndpoint: Type.Optional(
          Str(2048, {
            pattern: '^https?://',
            description:
              'OTLP/HTTP collector base URL (spans go to <endpoint>/v1/traces). Tracing is off when unset.',
          }),
        ),
        sampleRatio: Type.Number({
          minimum: 0,
          maximum: 1,
          default: 1,
          description:
            'Share of new traces sampled; a sampled incoming traceparent is always followed. Default 1.',
        }),
        serviceName: Str(253, {
          default: 'modelgate',
          description: 'service.name of the spans. Default modelgate.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'OpenTelemetry spans for the proxy hop.' },
    ),
    stateDir: Str(4096, {
      default: './.modelgate',
      description: 'Where the proxy keeps its last accepted table and rollout state. Default ./.modelgate.',
    }),
  },
  { additionalProperties: false },
);

export type GatewayConfig = Static<typeof GatewayConfigSchema>;
export type Listener = Static<typeof ListenerSchema>;

const validateConfig = ajv.compile(GatewayConfigSchema);

/** True for `10.0.0.0/8`, `2001:db8::/32`, or a bare address. */
export function isCidr(text: string): boolean {
  const [addr, bits, extra] = text.split('/');
  if (extra !== undefined || addr === undefined) return false;
  const family = isIP(addr);
  if (family === 0) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (family === 4 ? 32 : 128);
}

/** Validates and defaults a parsed config document; `undefined` gives the all-defaults config. */
export function parseGatewayConfig(
  raw: unknown,
): { ok: true; config: GatewayConfig } | { ok: false; errors: FieldError[] } {
  const doc = structuredClone(raw ?? { apiVersion: 'modelgate.dev/v1alpha1', kind: 'GatewayConfig' });
  if (!validateConfig(doc))
    return { ok: false, errors: (validateConfig.errors ?? []).map((e) => describeAjvError('', e)) };
  const config = doc as GatewayConfig;
  const errors: FieldError[] = [];
  config.trustedProxies.cidrs.forEach((c, i) => {
    if (!isCidr(c))
      errors.push({ path: `trustedProxies.cidrs[${i}]`, message: `${c} is not an IP address or CIDR` });
  });
  const names = new Set<string>();
  config.listeners.forEach((l, i) => {
    if (names.has(l.name))
      errors.push({ path: `listeners[${i}].name`, message: `listener name ${l.name} is used twice` });
    names.add(l.name);
    if (l.protocol === 'HTTPS' && !l.tls)
      errors.push({ path: `listeners[${i}].tls`, message: 'required for HTTPS' });
    if (l.protocol === 'HTTP' && l.tls)
      errors.push({ path: `listeners[${i}].tls`, message: 'only allowed for HTTPS' });
    l.tls?.certificates.forEach((c, j) => {
      const fromSecret = c.secretRef !== undefined;
      const fromFiles = c.certFile !== undefined && c.keyFile !== undefined;
      if (fromSecret === fromFiles || (!fromFiles && (c.certFile !== undefined || c.keyFile !== undefined))) {
        errors.push({
          path: `listeners[${i}].tls.certificates[${j}]`,
          message: 'set either secretRef or certFile and keyFile',
        });
      }
    });
  });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, config };
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` from a flag. */
export function parseHostPort(text: string): { address: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const address = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { address, port };
}
