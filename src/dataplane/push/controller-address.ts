/**
 * The proxy's controller addresses (`modelgate proxy --controller`, MODELGATE_CONTROLLERS) and
 * what each one dials.
 *
 * Forms:
 *
 * - `https://HOST:PORT`, `http://HOST:PORT`: one replica, with that scheme.
 * - `HOST:PORT`: one replica; https when the proxy has a push CA (`--push-ca`), else http.
 * - `dns:NAME:PORT`: every A/AAAA address of NAME (a headless Service lists every replica); https
 *   when the proxy has a push CA, else http.
 * - `dns:https://NAME:PORT`, `dns:http://NAME:PORT`: the same with the scheme written out.
 *
 * With a push CA, a plaintext address (`http://`, `dns:http://`) is refused: the tables carry
 * private keys and credentials, and a CA given for nothing would hide that they travel in clear.
 *
 * Names verified: a replica found through `dns:NAME` is dialled by IP address, so its certificate
 * is checked against NAME (sent as SNI too), not against the address: a certificate issued for the
 * Service's DNS name verifies. `serverName` (`--push-server-name`) replaces the name for every
 * https address, e.g. `<service>.<namespace>.svc` while the proxies resolve
 * `<service>.<namespace>.svc.cluster.local`. Verification is never turned off.
 */
import { resolve4, resolve6 } from 'node:dns/promises';
import { isIP } from 'node:net';

/** One replica to dial: its base URL and, for https, the name its certificate must hold. */
export interface ControllerTarget {
  url: string;
  /** TLS server name (SNI and verification); default: the URL's host. */
  servername?: string;
}

export type ControllerAddress =
  | { kind: 'url'; url: string; host: string }
  | { kind: 'dns'; scheme: 'http' | 'https'; name: string; port: number };

export interface ControllerAddressOptions {
  /** The proxy trusts a push CA: addresses without a scheme use https, plaintext ones are refused. */
  tls?: boolean;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/;

function port(text: string): number | undefined {
  const n = Number(text);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** Parses one address; a string says what is wrong with it. */
export function parseControllerAddress(
  text: string,
  opts: ControllerAddressOptions = {},
): ControllerAddress | string {
  const tls = opts.tls === true;
  const plaintext = (what: string) =>
    `${what}: plaintext http while a push CA is given; use https (or leave the scheme out)`;
  if (text.startsWith('dns:')) {
    const rest = text.slice(4);
    const m = /^(?:(https?):\/\/)?([A-Za-z0-9._-]+):(\d{1,5})\/?$/.exec(rest);
    const p = m ? port(m[3]!) : undefined;
    if (!m || p === undefined || isIP(m[2]!) !== 0)
      return `${text}: expected dns:NAME:PORT or dns:https://NAME:PORT (NAME a DNS name)`;
    const scheme = (m[1] as 'http' | 'https' | undefined) ?? (tls ? 'https' : 'http');
    if (scheme === 'http' && tls) return plaintext(text);
    return { kind: 'dns', scheme, name: m[2]!.replace(/\.$/, ''), port: p };
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    const m = HOST_PORT.exec(text);
    if (!m || port(m[2]!) === undefined)
      return `${text}: expected https://HOST:PORT, http://HOST:PORT, HOST:PORT or dns:NAME:PORT`;
    return { kind: 'url', url: `${tls ? 'https' : 'http'}://${m[1]}:${m[2]}`, host: m[1]! };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `${text}: not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `${text}: the scheme must be http or https`;
  if (url.username || url.password || url.search || url.hash)
    return `${text}: no credentials, query or fragment in a controller URL`;
  if (url.protocol === 'http:' && tls) return plaintext(text);
  return { kind: 'url', url: `${url.origin}${url.pathname}`.replace(/\/+$/, ''), host: url.hostname };
}

export interface ResolverOptions extends ControllerAddressOptions {
  /** The name every https replica's certificate is checked against (default: see above). */
  serverName?: string;
  /** Addresses of a DNS name (default: its A and AAAA records). */
  lookup?: (name: string) => Promise<string[]>;
}

/** IPv6 in brackets, for a URL. */
const urlHost = (address: string) => (isIP(address) === 6 ? `[${address}]` : address);

/**
 * The replicas the addresses name now: `dns:` entries are resolved on every call (a headless
 * Service's addresses change as pods come and go). Throws on an address `parseControllerAddress`
 * refuses, so a mistake fails at start instead of on the first dial.
 */
export function controllerTargets(
  entries: readonly string[],
  opts: ResolverOptions,
): () => Promise<ControllerTarget[]> {
  const parsed = entries.map((e) => {
    const a = parseControllerAddress(e, opts);
    if (typeof a === 'string') throw new Error(`controller address ${a}`);
    return a;
  });
  const lookup = opts.lookup ?? lookupAll;
  const named = (url: string, servername: string | undefined): ControllerTarget =>
    url.startsWith('https:') && servername !== undefined ? { url, servername } : { url };
  return async () => {
    const out: ControllerTarget[] = [];
    for (const a of parsed) {
      if (a.kind === 'url') {
        out.push(named(a.url, opts.serverName));
        continue;
      }
      for (const ip of await lookup(a.name))
        out.push(named(`${a.scheme}://${urlHost(ip)}:${a.port}`, opts.serverName ?? a.name));
    }
    return out;
  };
}

async function lookupAll(name: string): Promise<string[]> {
  const v4 = await resolve4(name).catch(() => [] as string[]);
  const v6 = await resolve6(name).catch(() => [] as string[]);
  return [...v4, ...v6];
}
