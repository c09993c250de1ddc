/**
 * The gateway child as compiled JavaScript, for the memory figures. Node's built-in type
 * stripping keeps its transformer (a WebAssembly module) resident once it has run, which adds
 * about 30 MB of RSS that a deployed gateway (running `dist/`, built by tsc) does not have. Running
 * the .ts files is fine for CPU (stripping only replaces types with blanks; the code V8 runs is the
 * same), not for RSS. This builds bench/lib/gateway-child.ts and what it imports with the
 * project's own tsc into a temp dir; undefined when that fails (the caller then runs the .ts).
 */
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTracked } from './procs.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

export async function compileGatewayChild(dir: string): Promise<string | undefined> {
  const tsc = path.join(root, 'node_modules', '.bin', 'tsc');
  if (!existsSync(tsc)) return undefined;
  const out = path.join(dir, 'js');
  const config = path.join(dir, 'tsconfig.bench.json');
  writeFileSync(
    config,
    JSON.stringify({
      extends: path.join(root, 'tsconfig.json'),
      compilerOptions: { noEmit: false, rootDir: root, outDir: out, declaration: false, sourceMap: false },
      include: [],
      files: [path.join(root, 'bench', 'lib', 'gateway-child.ts')],
    }),
  );
  // Type errors (others may be mid-edit) do not stop the emit; only a missing output does.
  await runTracked(process.execPath, [tsc, '-p', config], 120_000);
  const child = path.join(out, 'bench', 'lib', 'gateway-child.js');
  if (!existsSync(child)) return undefined;
  writeFileSync(path.join(out, 'package.json'), '{"type": "module"}\n');
  symlinkSync(path.join(root, 'node_modules'), path.join(out, 'node_modules'));
  return child;
}
