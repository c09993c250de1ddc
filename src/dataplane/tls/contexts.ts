/**
 * SecureContexts for HTTPS listeners: one TLS policy for every certificate (route-provided or from
 * files), and a cache by content so that a new table carrying the same certificate reuses the
 * context built for the previous one.
 *
 * The policy: TLS 1.2 minimum (1.3 when the listener says so), ECDHE with AEAD ciphers only, the
 * server's cipher order, no renegotiation, and no session resumption. Resumption is off on purpose:
 * a resumed TLS 1.3 session carries no certificate exchange, so a session established under one
 * SNI name (and its client-certificate policy) could be resumed under another; every connection
 * does a full handshake instead (connections are kept alive, so handshakes are rare).
 */
import { constants } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';

/** TLS 1.3 suites first, then TLS 1.2 ECDHE + AEAD (Mozilla "intermediate"). */
export const CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export const SECURE_OPTIONS =
  constants.SSL_OP_NO_RENEGOTIATION |
  constants.SSL_OP_NO_TICKET |
  constants.SSL_OP_NO_COMPRESSION |
  constants.SSL_OP_CIPHER_SERVER_PREFERENCE;

/** A certificate chain and key (PEM), with the CA bundle client certificates must chain to. */
export interface CertificateMaterial {
  certificatePem: string;
  privateKeyPem: string;
  /** Present: clients must present a certificate signed by one of these CAs (mTLS). */
  clientCaPem?: string;
}

/** The listener-wide policy, without any certificate. */
export function baseContextOptions(minVersion: TlsMinVersion): SecureContextOptions {
  return {
    minVersion,
    ciphers: CIPHERS,
    honorCipherOrder: true,
    secureOptions: SECURE_OPTIONS,
  };
}

export function contextOptions(m: CertificateMaterial, minVersion: TlsMinVersion): SecureContextOptions {
  return {
    ...baseContextOptions(minVersion),
    cert: m.certificatePem,
    key: m.privateKeyPem,
    ...(m.clientCaPem !== undefined ? { ca: m.clientCaPem } : {}),
  };
}

/**
 * Builds the context; throws with OpenSSL's reason when the PEM does not parse, the key does not
 * belong to the certificate, or the CA bundle is unreadable.
 */
export function createServerContext(m: CertificateMaterial, minVersion: TlsMinVersion): SecureContext {
  return createSecureContext(contextOptions(m, minVersion));
}

/** One result per distinct material: the context, or why it could not be built. */
export type ContextResult = { ok: true; context: SecureContext } | { ok: false; reason: string };

/**
 * Contexts by content, kept for two generations: `nextGeneration()` is called once per new
 * certificate set, and what the new set does not ask for during its life is dropped at the next one.
 */
export class ContextCache {
  private current = new Map<string, ContextResult>();
  private previous = new Map<string, ContextResult>();
  private readonly minVersion: TlsMinVersion;

  constructor(minVersion: TlsMinVersion) {
    this.minVersion = minVersion;
  }

  get(m: CertificateMaterial): ContextResult {
    const key = `${m.certificatePem}\0${m.privateKeyPem}\0${m.clientCaPem ?? ''}`;
    let r = this.current.get(key);
    if (r !== undefined) return r;
    r = this.previous.get(key);
    if (r === undefined) {
      try {
        r = { ok: true, context: createServerContext(m, this.minVersion) };
      } catch (e) {
        r = { ok: false, reason: (e as Error).message };
      }
    }
    this.current.set(key, r);
    return r;
  }

  nextGeneration(): void {
    this.previous = this.current;
    this.current = new Map();
  }

  get size(): number {
    return this.current.size;
  }
}
