/**
 * Writes crds/<group>_<plural>.yaml for every ModelGate resource (`npm run gen:crds`). The content
 * comes from src/api/crd.ts; test/unit/api/crds-fresh.test.ts fails when crds/ is out of date.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { crdFileName, renderCrdYaml } from '../src/api/crd.ts';
import { GROUP, RESOURCES } from '../src/api/resources.ts';

const dir = join(import.meta.dirname, '..', 'crds');
mkdirSync(dir, { recursive: true });

const written = new Set<string>();
for (const def of RESOURCES) {
  const file = crdFileName(def);
  writeFileSync(join(dir, file), renderCrdYaml(def));
  written.add(file);
  console.log(`wrote crds/${file}`);
}

// Remove CRDs of resources that no longer exist, so crds/ always matches RESOURCES.
for (const file of readdirSync(dir)) {
  if (file.startsWith(`${GROUP}_`) && file.endsWith('.yaml') && !written.has(file)) {
    rmSync(join(dir, file));
    console.log(`removed stale crds/${file}`);
  }
}
