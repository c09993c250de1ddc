/**
 * Certificates made at test time with the openssl CLI (as test/fixtures/tls/generate.sh makes the
 * fixtures): a CA, and server certificates it signs for the names a test needs. EC P-256, valid
 * for a day. `createCa` returns undefined when openssl is not installed (the caller skips).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Issued {
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** The certificate's serial number, upper-case hex as Node's `serialNumber` gives it. */
  serial: string;
}

export interface TestCa {
  /** PEM certificate of the CA (what a client trusts). */
  readonly cert: string;
  /** A server certificate for `dnsNames` (and `ips`), signed by this CA. */
  issue(cn: string, dnsNames: readonly string[], ips?: readonly string[]): Issued;
  /** Removes the working folder. */
  close(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function createCa(cn: string): TestCa | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-pki-'));
  try {
    openssl(
      [
        'req',
        '-x509',
        ...EC,
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '1',
        '-subj',
        `/CN=${cn}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  let n = 0;
  return {
    cert: readFileSync(join(dir, 'ca.crt'), 'utf8'),
    issue(leaf, dnsNames, ips = []) {
      const base = `leaf-${++n}`;
      openssl(['req', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${leaf}`], dir);
      const san = [...dnsNames.map((d) => `DNS:${d}`), ...ips.map((i) => `IP:${i}`)].join(',');
      writeFileSync(
        join(dir, `${base}.ext`),
        `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
      );
      // A random serial, so two certificates for the same names can be told apart.
      // (Positive, no leading zero: 16 hex digits, as Node prints it.)
      const bytes = randomBytes(8);
      bytes[0] = (bytes[0]! & 0x7f) | 0x10;
      const serial = bytes.toString('hex').toUpperCase();
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${base}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-set_serial',
          `0x${serial}`,
          '-days',
          '1',
          '-extfile',
          `${base}.ext`,
          '-out',
          `${base}.crt`,
        ],
        dir,
      );
      return {
        cert: readFileSync(join(dir, `${base}.crt`), 'utf8'),
        key: readFileSync(join(dir, `${base}.key`), 'utf8'),
        serial,
      };
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
