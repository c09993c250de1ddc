/**
 * Writes docs/reference/: a field reference page per kind and an index (`npm run gen:reference`,
 * also run by `npm run gen:crds`). The content comes from src/api/reference-doc.ts;
 * test/unit/api/reference-doc.test.ts fails when docs/reference/ is out of date.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceFiles } from '../src/api/reference-doc.ts';

const dir = join(import.meta.dirname, '..', 'docs', 'reference');
mkdirSync(dir, { recursive: true });

const written = new Set<string>();
for (const { file, text } of referenceFiles()) {
  writeFileSync(join(dir, file), text);
  written.add(file);
  console.log(`wrote docs/reference/${file}`);
}

// The directory is generated as a whole: a page of a kind that no longer exists must not linger.
for (const file of readdirSync(dir)) {
  if (file.endsWith('.md') && !written.has(file)) {
    rmSync(join(dir, file));
    console.log(`removed stale docs/reference/${file}`);
  }
}
