/**
 * The certificates an HTTPS listener serves: the routing table's `routes.tls` (route-provided,
 * changing with every applied table) plus the listener's own certificates from files. The index
 * is rebuilt only when one of the two changes (the identity of the `routes.tls` array, the files'
 * version); a route certificate's SecureContext is built the first time a handshake selects it and
 * reused for the life of that material (see ContextCache), never per handshake.
 */
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { CompiledTlsCertificate } from '../../routing-table/types.ts';
import {
  type CertificateMaterial,
  ContextCache,
  type ContextResult,
  type TlsMinVersion,
} from './contexts.ts';
import type { FileCertificates } from './file-certificates.ts';
import { type CertificateEntry, CertificateIndex, type IndexedCertificate } from './sni.ts';

export interface TlsCertificateStoreOptions {
  /** The route certificates of the table in use (`proxy.table?.table.routes.tls`). */
  routeCertificates: () => readonly CompiledTlsCertificate[] | undefined;
  files?: FileCertificates;
  minVersion: TlsMinVersion;
  logger: Logger;
  /** The listener's name, for logs. */
  listener?: string;
}

class RouteEntry implements CertificateEntry {
  readonly source: string;
  readonly route: string;
  readonly material: CertificateMaterial;
  readonly clientCaPem: string | undefined;
  private result: ContextResult | undefined;
  private readonly cache: ContextCache;
  private readonly onBroken: (entry: RouteEntry, reason: string) => void;

  constructor(
    c: CompiledTlsCertificate,
    cache: ContextCache,
    onBroken: (entry: RouteEntry, reason: string) => void,
  ) {
    this.source = `route ${c.route}`;
    this.route = c.route;
    this.material = {
      certificatePem: c.certificatePem,
      privateKeyPem: c.privateKey,
      ...(c.clientCaPem !== undefined ? { clientCaPem: c.clientCaPem } : {}),
    };
    this.clientCaPem = c.clientCaPem;
    this.cache = cache;
    this.onBroken = onBroken;
  }

  context(): SecureContext | undefined {
    if (this.result === undefined) {
      this.result = this.cache.get(this.material);
      if (!this.result.ok) this.onBroken(this, this.result.reason);
    }
    return this.result.ok ? this.result.context : undefined;
  }
}

const NONE: readonly CompiledTlsCertificate[] = [];

export class TlsCertificateStore {
  private readonly opts: TlsCertificateStoreOptions;
  private readonly cache: ContextCache;
  private seenRoutes: readonly CompiledTlsCertificate[] | undefined = undefined;
  private seenFiles = -1;
  private index: CertificateIndex | undefined;
  /** Index rebuilds so far (tests and logs). */
  builds = 0;

  constructor(opts: TlsCertificateStoreOptions) {
    this.opts = opts;
    this.cache = new ContextCache(opts.minVersion);
  }

  get minVersion(): TlsMinVersion {
    return this.opts.minVersion;
  }

  /** The index for the table and files in use now. */
  current(): CertificateIndex {
    const routes = this.opts.routeCertificates() ?? NONE;
    const files = this.opts.files?.version ?? 0;
    if (this.index !== undefined && routes === this.seenRoutes && files === this.seenFiles) return this.index;
    this.seenRoutes = routes;
    this.seenFiles = files;
    this.cache.nextGeneration();
    const onBroken = (entry: RouteEntry, reason: string) =>
      this.opts.logger.warn(
        { listener: this.opts.listener, certificate: entry.source, reason },
        'route certificate unusable: handshakes for its hostnames fail',
      );
    const fromRoutes: IndexedCertificate[] = routes.map((c) => ({
      hostnames: c.hostnames,
      entry: new RouteEntry(c, this.cache, onBroken),
    }));
    this.index = new CertificateIndex(fromRoutes, this.opts.files?.certificates ?? []);
    this.builds++;
    return this.index;
  }
}
