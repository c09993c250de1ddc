/**
 * Which certificate serves a TLS server name (SNI), and whether that name requires a client
 * certificate. Built once per certificate set (routing table × listener files); a lookup is at most
 * four map probes.
 *
 * Order, first match wins:
 *   1. a route certificate naming the host exactly;
 *   2. a route certificate with `*.parent` where the host is one label under `parent`
 *      (`*.example.com` matches `a.example.com`, not `a.b.example.com` nor `example.com`);
 *   3. a listener (file) certificate naming the host exactly, then by one-label wildcard;
 *   4. a listener certificate for `*`;
 *   5. the route default certificate (a route certificate without hostnames);
 *   6. the listener's first certificate.
 * Steps 4–6 also serve clients that send no SNI. Within one step the first certificate listed wins
 * (route certificates come sorted by route).
 */
import type { SecureContext } from 'node:tls';
import type { CertificateMaterial } from './contexts.ts';

export interface CertificateEntry {
  /** For logs: `route ns/name` or `file /path/tls.crt`. */
  readonly source: string;
  /** `ns/name` of the route that provides it; undefined for the listener's own certificates. */
  readonly route?: string;
  readonly material: CertificateMaterial;
  /** The CA bundle (PEM) client certificates must chain to; undefined: no client certificate. */
  readonly clientCaPem: string | undefined;
  /** Built on first use and kept; undefined when the material is unusable (logged once). */
  context(): SecureContext | undefined;
}

export interface IndexedCertificate {
  /** Exact names, `*.parent` wildcards, `*`; empty for a route default certificate. */
  readonly hostnames: readonly string[];
  readonly entry: CertificateEntry;
}

/** Lower-case, without a trailing dot: the form hostnames are indexed and looked up in. */
export function normalizeServerName(name: string): string {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  return n.toLowerCase();
}

function add(map: Map<string, CertificateEntry>, key: string, entry: CertificateEntry): void {
  if (!map.has(key)) map.set(key, entry);
}

export class CertificateIndex {
  private readonly routeExact = new Map<string, CertificateEntry>();
  /** `*.example.com` is stored as `.example.com`. */
  private readonly routeWildcard = new Map<string, CertificateEntry>();
  private readonly fileExact = new Map<string, CertificateEntry>();
  private readonly fileWildcard = new Map<string, CertificateEntry>();
  /** For names nothing else matches, and for clients without SNI. */
  readonly fallback: CertificateEntry | undefined;
  /** True when some name (or the fallback) asks for a client certificate. */
  readonly requiresClientCertificates: boolean;
  /** Every certificate, routes first. */
  readonly entries: readonly CertificateEntry[];

  constructor(routes: readonly IndexedCertificate[], files: readonly IndexedCertificate[]) {
    let routeDefault: CertificateEntry | undefined;
    let fileStar: CertificateEntry | undefined;
    for (const c of routes) {
      if (c.hostnames.length === 0) routeDefault ??= c.entry;
      for (const h of c.hostnames) {
        const name = normalizeServerName(h);
        if (name === '*') routeDefault ??= c.entry;
        else if (name.startsWith('*.')) add(this.routeWildcard, name.slice(1), c.entry);
        else add(this.routeExact, name, c.entry);
      }
    }
    for (const c of files) {
      for (const h of c.hostnames) {
        const name = normalizeServerName(h);
        if (name === '*') fileStar ??= c.entry;
        else if (name.startsWith('*.')) add(this.fileWildcard, name.slice(1), c.entry);
        else add(this.fileExact, name, c.entry);
      }
    }
    this.fallback = fileStar ?? routeDefault ?? files[0]?.entry;
    this.entries = [...routes.map((c) => c.entry), ...files.map((c) => c.entry)];
    this.requiresClientCertificates = this.entries.some((e) => e.clientCaPem !== undefined);
  }

  /** The certificate for a normalised server name ('' when the client sent none). */
  select(name: string): CertificateEntry | undefined {
    if (name !== '') {
      const exact = this.routeExact.get(name);
      if (exact !== undefined) return exact;
      const dot = name.indexOf('.');
      const parent = dot > 0 ? name.slice(dot) : undefined;
      if (parent !== undefined) {
        const wild = this.routeWildcard.get(parent);
        if (wild !== undefined) return wild;
      }
      const file =
        this.fileExact.get(name) ?? (parent !== undefined ? this.fileWildcard.get(parent) : undefined);
      if (file !== undefined) return file;
    }
    return this.fallback;
  }
}
