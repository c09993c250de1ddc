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
import { ByteSize, List, Str, StringEnum } from '../api/schema-helpers.ts';
import { describeAjvError } from '../api/validate.ts';

const Port = (description: string, def: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });
const Address = (description: string, def: string) => Str(253, { minLength: 1, default: def, description });

export const CertificateSchema = Type.Object(
  {
    hostnames: List(
      Str(253, { minLength: 1, description: 'An exact host name, a `*.` wildcard or `*`.' }),
      64,
      {
        minItems: 1,
        description:
          'SNI names this certificate serves; `*.example.com` wildcards and `*` (default) allowed.',
      },
    ),
    certFile: Str(4096, {
      minLength: 1,
      description: 'PEM certificate chain file (a mounted kubernetes.io/tls Secret: `.../tls.crt`).',
    }),
    keyFile: Str(4096, { minLength: 1, description: 'PEM private key file (`.../tls.key`).' }),
  },
  {
    additionalProperties: false,
    description:
      "A certificate from files, reloaded when they change. Proxies have no Kubernetes API access: mount the Secret. Routes' own certificates come through the routing table.",
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
      description:
        "HTTP or HTTPS. Default HTTP. An HTTPS listener serves the routes' certificates and its own.",
    }),
    tls: Type.Optional(
      Type.Object(
        {
          certificates: List(CertificateSchema, 256, {
            default: [],
            description:
              "The listener's own certificates, chosen by SNI after the routes' certificates. Default none.",
          }),
          minVersion: StringEnum(['TLSv1.2', 'TLSv1.3'] as const, {
            default: 'TLSv1.2',
            description:
              "Lowest TLS version the listener accepts, with its own certificates and the routes' alike. Default TLSv1.2.",
          }),
          clientCA: Type.Optional(
            Type.Object(
              { file: Str(4096, { minLength: 1, description: 'PEM CA bundle file.' }) },
              {
                additionalProperties: false,
                description:
                  "CA bundle the clients of this listener's own certificates must present a certificate from (mTLS).",
              },
            ),
          ),
        },
        {
          additionalProperties: false,
          description:
            'TLS settings of an HTTPS listener (refused on an HTTP one): its own certificates, the lowest TLS version and the client CA.',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'A public listener: a name, the address and port it binds, HTTP or HTTPS.',
  },
);

export const GatewayConfigSchema = Type.Object(
  {
    apiVersion: Type.Literal('modelgate.dev/v1alpha1', {
      description: 'Version of this file format; always modelgate.dev/v1alpha1.',
    }),
    kind: Type.Literal('GatewayConfig', { description: 'Always GatewayConfig.' }),
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
      {
        additionalProperties: false,
        default: {},
        description:
          'The admin listener: health, readiness, the table in use and Prometheus metrics. Never served on a public listener.',
      },
    ),
    trustedProxies: Type.Object(
      {
        cidrs: List(
          Str(64, { description: 'An IP address or CIDR, e.g. 10.0.0.0/8 or 2001:db8::/32.' }),
          64,
          {
            default: [],
            description:
              'Peers whose x-forwarded-for is believed (e.g. the cloud load balancer). Default none.',
          },
        ),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          "Peers that may tell the gateway the client's address (x-forwarded-for); from any other peer the header is discarded and the client is the peer itself. The address keys ClientIP rate limits and is logged.",
      },
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
    cache: Type.Object(
      {
        maxBytes: ByteSize(
          'Memory for the response cache of every route with store Local together; least recently used answers go first. Default 256Mi.',
          { default: '256Mi' },
        ),
      },
      {
        additionalProperties: false,
        default: {},
        description:
          "The proxy's local response cache (routes' rules[].cache). One budget per proxy: the pod's memory is the operator's, not a route's.",
      },
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

/** An exact DNS name, a `*.` wildcard of one, or `*`. */
const HOSTNAME =
  /^(\*|(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*)$/;

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
    if (l.protocol === 'HTTP' && l.tls)
      errors.push({ path: `listeners[${i}].tls`, message: 'only allowed for HTTPS' });
    if (l.tls?.clientCA && l.tls.certificates.length === 0)
      errors.push({
        path: `listeners[${i}].tls.clientCA`,
        message: "applies to the listener's own certificates, and it has none",
      });
    l.tls?.certificates.forEach((c, j) => {
      c.hostnames.forEach((h, k) => {
        if (!HOSTNAME.test(h))
          errors.push({
            path: `listeners[${i}].tls.certificates[${j}].hostnames[${k}]`,
            message: `${h} is not a host name, a *.wildcard or *`,
          });
      });
    });
  });
  for (const message of bindConflicts(config.listeners, config.admin))
    errors.push({ path: 'listeners', message });
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

const WILDCARD_ADDRESSES = new Set(['0.0.0.0', '::', '[::]', '']);

/** True when binding both would collide: same port (not 0) and the same or a wildcard address. */
function sameBinding(a: { address: string; port: number }, b: { address: string; port: number }): boolean {
  if (a.port === 0 || a.port !== b.port) return false;
  return a.address === b.address || WILDCARD_ADDRESSES.has(a.address) || WILDCARD_ADDRESSES.has(b.address);
}

/**
 * Why these listeners cannot all be bound: two public listeners, or the admin listener and a
 * public one, on the same address and port. Empty when there is no conflict.
 */
export function bindConflicts(
  listeners: readonly { name: string; address: string; port: number }[],
  admin: { address: string; port: number },
): string[] {
  const out: string[] = [];
  listeners.forEach((l, i) => {
    for (const other of listeners.slice(0, i)) {
      if (sameBinding(l, other))
        out.push(`listeners ${other.name} and ${l.name} both bind ${l.address}:${l.port}`);
    }
    if (sameBinding(l, admin))
      out.push(
        `the admin listener (${admin.address}:${admin.port}) would share its port with the public listener ${l.name} (${l.address}:${l.port}); give it another --admin address or port`,
      );
  });
  return out;
}

export interface ListenerOverrides {
  /** `--listen`: the first HTTP listener's address (one is added if there is none). */
  listen?: { address: string; port: number };
  /** `--listen-https`: the first HTTPS listener's address (one is added if there is none). */
  listenHttps?: { address: string; port: number };
  /** `--tls-cert`/`--tls-key`: the HTTPS listener's certificates become this one, for every name. */
  certificate?: { certFile: string; keyFile: string };
}

function unusedName(listeners: readonly Listener[], base: string): string {
  const taken = new Set(listeners.map((l) => l.name));
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

/**
 * The listeners after the command-line flags. Errors are returned as messages (the caller turns
 * them into usage errors).
 */
export function applyListenerOverrides(
  listeners: readonly Listener[],
  o: ListenerOverrides,
): { ok: true; listeners: Listener[] } | { ok: false; error: string } {
  const out = listeners.map((l) => structuredClone(l));
  if (o.listen) {
    const i = out.findIndex((l) => l.protocol === 'HTTP');
    if (i >= 0) out[i] = { ...out[i]!, ...o.listen };
    else out.unshift({ name: unusedName(out, 'http'), protocol: 'HTTP', ...o.listen });
  }
  if (o.listenHttps || o.certificate) {
    let i = out.findIndex((l) => l.protocol === 'HTTPS');
    if (i < 0) {
      if (!o.listenHttps)
        return { ok: false, error: '--tls-cert and --tls-key need an HTTPS listener (--listen-https)' };
      // Without --tls-cert it serves the routes' certificates only.
      out.push({
        name: unusedName(out, 'https'),
        protocol: 'HTTPS',
        ...o.listenHttps,
        tls: { certificates: [], minVersion: 'TLSv1.2' },
      });
      i = out.length - 1;
    } else if (o.listenHttps) {
      out[i] = { ...out[i]!, ...o.listenHttps };
    }
    if (o.certificate) {
      const l = out[i]!;
      out[i] = {
        ...l,
        tls: {
          ...(l.tls ?? { minVersion: 'TLSv1.2' }),
          certificates: [{ hostnames: ['*'], ...o.certificate }],
        },
      };
    }
  }
  return { ok: true, listeners: out };
}

/**
 * The public listeners a role starts: `listeners` with `listen` applied (see ListenerOverrides).
 * Throws when there is none or when two of them, or one and the admin listener, share an address.
 */
export function publicListeners(
  listeners: readonly Listener[] | undefined,
  listen: { address: string; port: number } | undefined,
  admin: { address: string; port: number },
): Listener[] {
  const r = applyListenerOverrides(listeners ?? [], { listen });
  if (!r.ok) throw new Error(r.error);
  if (r.listeners.length === 0) throw new Error('no public listener: give listeners or listen');
  const conflicts = bindConflicts(r.listeners, admin);
  if (conflicts.length > 0) throw new Error(conflicts.join('; '));
  return r.listeners;
}
