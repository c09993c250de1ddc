/**
 * The proxy's copy of its last accepted table, `<stateDir>/table.json` = `{version, table}`,
 * written so that a crash at any moment leaves either the old file or the new one, whole: write
 * to a temporary file in the same directory, fsync it, rename it over the old one, fsync the
 * directory (so the rename itself survives a power cut).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isVersion, type TableVersion } from '../../controlplane/push/protocol.ts';
import { tableHash } from '../../routing-table/hash.ts';
import type { RoutingTable } from '../../routing-table/types.ts';

export const TABLE_FILE = 'table.json';

export interface PersistedTable {
  version: TableVersion;
  table: RoutingTable;
}

export function tablePath(stateDir: string): string {
  return join(stateDir, TABLE_FILE);
}

export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic there.
  }
}

export async function writePersisted(stateDir: string, state: PersistedTable): Promise<void> {
  await writeFileAtomic(tablePath(stateDir), JSON.stringify({ version: state.version, table: state.table }));
}

/** The persisted table; undefined when there is none; a string saying why when it is unusable. */
export async function readPersisted(stateDir: string): Promise<PersistedTable | undefined | string> {
  let text: string;
  try {
    text = await readFile(tablePath(stateDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `cannot read ${tablePath(stateDir)}: ${(e as Error).message}`;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return `${tablePath(stateDir)} is not JSON: ${(e as Error).message}`;
  }
  const v = value as { version?: unknown; table?: Partial<RoutingTable> } | null;
  if (!v || !isVersion(v.version)) return `${tablePath(stateDir)} has no valid version`;
  const t = v.table;
  if (
    !t ||
    typeof t !== 'object' ||
    typeof t.hash !== 'string' ||
    typeof t.schemaVersion !== 'number' ||
    !t.routes ||
    !t.endpoints
  ) {
    return `${tablePath(stateDir)} has no valid table`;
  }
  const table = t as RoutingTable;
  if (tableHash(table.schemaVersion, table.routes, table.endpoints) !== table.hash) {
    return `${tablePath(stateDir)}: the table does not match its hash`;
  }
  return { version: { term: v.version.term, seq: v.version.seq }, table };
}
