/**
 * A listener's certificates from files (GatewayConfig `tls.certificates[].certFile/keyFile`, and
 * `tls.clientCA.file`), reloaded when they change.
 *
 * Kubernetes updates a mounted Secret by writing the new files into a fresh folder and swapping the
 * `..data` symlink the file names point through, so watching a file would follow the old inode:
 * the folder holding each file is watched instead, and any event there reloads every file (after a
 * short quiet time, so a multi-file update is read once).
 *
 * At start every file must load: a missing or unparsable file, or a key that does not match its
 * certificate, is an error naming the file. On a reload, a certificate whose files do not load keeps
 * the previous version and the reason is logged; the others are updated.
 */
import { X509Certificate } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import { type CertificateMaterial, createServerContext, type TlsMinVersion } from './contexts.ts';
import type { CertificateEntry, IndexedCertificate } from './sni.ts';

export interface FileCertificateSpec {
  /** Exact names, `*.parent` wildcards or `*`. */
  hostnames: readonly string[];
  certFile: string;
  keyFile: string;
}

export interface FileCertificatesOptions {
  certificates: readonly FileCertificateSpec[];
  /** CA bundle client certificates must chain to, for every certificate of the listener. */
  clientCaFile?: string;
  minVersion: TlsMinVersion;
  logger: Logger;
  /** Quiet time after an event in a watched folder before reloading. Default 200 ms. */
  debounceMs?: number;
  /** The listener's name, for logs. */
  listener?: string;
}

export interface ReloadResult {
  /** True when some certificate (or the CA bundle) was replaced. */
  changed: boolean;
  /** Why files were not taken (the previous version stays). */
  errors: string[];
}

class FileEntry implements CertificateEntry {
  readonly source: string;
  readonly material: CertificateMaterial;
  readonly clientCaPem: string | undefined;
  private readonly built: SecureContext;

  constructor(source: string, material: CertificateMaterial, built: SecureContext) {
    this.source = source;
    this.material = material;
    this.clientCaPem = material.clientCaPem;
    this.built = built;
  }

  context(): SecureContext {
    return this.built;
  }
}

function readPem(file: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!text.includes('-----BEGIN ')) throw new Error(`${what} ${file}: no PEM block`);
  return text;
}

/** Checks that a CA bundle holds at least one certificate and that every block parses. */
function readCaBundle(file: string): string {
  const text = readPem(file, 'client CA');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`client CA ${file}: no certificate`);
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (e) {
      throw new Error(`client CA ${file}: ${(e as Error).message}`);
    }
  }
  return text;
}

export class FileCertificates extends EventEmitter<{ reload: [ReloadResult] }> {
  /** Increments whenever the certificate set changes. */
  version = 0;
  private readonly opts: FileCertificatesOptions;
  private caPem: string | undefined;
  private loaded: IndexedCertificate[];
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;

  /** Loads every file; throws an Error naming each file that does not load. */
  constructor(opts: FileCertificatesOptions) {
    super();
    this.opts = opts;
    const errors: string[] = [];
    if (opts.clientCaFile !== undefined) {
      try {
        this.caPem = readCaBundle(opts.clientCaFile);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    const loaded: IndexedCertificate[] = [];
    for (const spec of opts.certificates) {
      const r = this.build(spec, this.caPem);
      if (r.ok) loaded.push({ hostnames: spec.hostnames, entry: r.entry });
      else errors.push(r.reason);
    }
    if (errors.length > 0) throw new Error(errors.join('; '));
    this.loaded = loaded;
  }

  /** The certificates with their hostnames, in configuration order. */
  get certificates(): readonly IndexedCertificate[] {
    return this.loaded;
  }

  private build(
    spec: FileCertificateSpec,
    caPem: string | undefined,
  ): { ok: true; entry: FileEntry } | { ok: false; reason: string } {
    try {
      const material: CertificateMaterial = {
        certificatePem: readPem(spec.certFile, 'certificate'),
        privateKeyPem: readPem(spec.keyFile, 'key'),
        ...(caPem !== undefined ? { clientCaPem: caPem } : {}),
      };
      const context = createServerContext(material, this.opts.minVersion);
      return { ok: true, entry: new FileEntry(`file ${spec.certFile}`, material, context) };
    } catch (e) {
      const msg = (e as Error).message;
      return {
        ok: false,
        reason: msg.includes(spec.certFile) || msg.includes(spec.keyFile) ? msg : `${spec.certFile}: ${msg}`,
      };
    }
  }

  /** Reads every file again; what does not load keeps its previous version. */
  reload(): ReloadResult {
    const errors: string[] = [];
    let changed = false;
    let caPem = this.caPem;
    if (this.opts.clientCaFile !== undefined) {
      try {
        caPem = readCaBundle(this.opts.clientCaFile);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    const next = this.opts.certificates.map((spec, i): IndexedCertificate => {
      const prev = this.loaded[i]!;
      let certificatePem: string;
      let privateKeyPem: string;
      try {
        certificatePem = readPem(spec.certFile, 'certificate');
        privateKeyPem = readPem(spec.keyFile, 'key');
      } catch (e) {
        errors.push((e as Error).message);
        return prev;
      }
      const m = prev.entry.material;
      if (m.certificatePem === certificatePem && m.privateKeyPem === privateKeyPem && m.clientCaPem === caPem)
        return prev;
      const r = this.build(spec, caPem);
      if (!r.ok) {
        errors.push(r.reason);
        return prev;
      }
      changed = true;
      return { hostnames: spec.hostnames, entry: r.entry };
    });
    if (changed) {
      this.loaded = next;
      this.version++;
    }
    this.caPem = caPem;
    const log = { listener: this.opts.listener };
    for (const reason of errors)
      this.opts.logger.warn(
        { ...log, reason },
        'TLS file not reloaded; the previous certificate stays in use',
      );
    if (changed)
      this.opts.logger.info({ ...log, version: this.version }, 'TLS certificates reloaded from files');
    const result = { changed, errors };
    this.emit('reload', result);
    return result;
  }

  /** Watches the folders of every file; a change reloads after the quiet time. */
  watch(): void {
    if (this.watchers.length > 0) return;
    const files = this.opts.certificates.flatMap((c) => [c.certFile, c.keyFile]);
    if (this.opts.clientCaFile !== undefined) files.push(this.opts.clientCaFile);
    for (const dir of new Set(files.map((f) => dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', (err) =>
          this.opts.logger.warn(
            { listener: this.opts.listener, dir, err: err.message },
            'watching TLS files failed; certificates in this folder no longer reload',
          ),
        );
        this.watchers.push(w);
      } catch (e) {
        this.opts.logger.warn(
          { listener: this.opts.listener, dir, err: (e as Error).message },
          'cannot watch TLS files; certificates in this folder will not reload',
        );
      }
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.reload();
    }, this.opts.debounceMs ?? 200);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }
}
