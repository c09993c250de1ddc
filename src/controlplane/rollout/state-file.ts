/**
 * Standalone mode has no API server to keep a rollout's state in its status, so the engine's
 * status fields live in `<stateDir>/rollouts.json` instead:
 * `{"version": 1, "rollouts": {"<namespace>/<name>": {...status}}}`.
 *
 * The engine always writes a rollout's whole status (statusOf), so an entry is replaced, never
 * merged; nulls (which clear a field under a merge patch) are dropped. Writes are atomic
 * (temporary file, fsync, rename) and serialised, so a crash leaves the previous or the new file,
 * never half of one. An unreadable or corrupt file is reported and the rollouts start afresh:
 * losing progress is better than refusing to serve.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../dataplane/push/persist.ts';

export const ROLLOUTS_FILE = 'rollouts.json';

type Status = Record<string, unknown>;

export class RolloutStateFile {
  readonly path: string;
  private readonly entries = new Map<string, Status>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(path: string) {
    this.path = path;
  }

  /** Reads the file; `problem` says why its content was not used (missing is not a problem). */
  static async open(stateDir: string): Promise<{ file: RolloutStateFile; problem?: string }> {
    const file = new RolloutStateFile(join(stateDir, ROLLOUTS_FILE));
    let text: string;
    try {
      text = await readFile(file.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { file };
      return { file, problem: `cannot read ${file.path}: ${(e as Error).message}` };
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      return { file, problem: `${file.path} is not JSON: ${(e as Error).message}` };
    }
    const rollouts = isObject(doc) ? doc.rollouts : undefined;
    if (!isObject(doc) || doc.version !== 1 || !isObject(rollouts)) {
      return { file, problem: `${file.path} is not a version 1 rollout state file` };
    }
    for (const [key, status] of Object.entries(rollouts)) {
      if (isObject(status)) file.entries.set(key, status);
    }
    return { file };
  }

  /** The stored status of `namespace/name`. */
  get(key: string): Status | undefined {
    return this.entries.get(key);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /** Replaces a rollout's status and writes the file. */
  put(key: string, status: Status): Promise<void> {
    this.entries.set(key, withoutNulls(status));
    return this.write();
  }

  /** Forgets rollouts that no longer exist; writes only when something went. */
  retain(live: ReadonlySet<string>): Promise<void> {
    let changed = false;
    for (const key of [...this.entries.keys()]) {
      if (!live.has(key)) {
        this.entries.delete(key);
        changed = true;
      }
    }
    return changed ? this.write() : this.writing;
  }

  /** Resolves when every write queued so far has finished (or failed). */
  settled(): Promise<void> {
    return this.writing.catch(() => undefined);
  }

  private write(): Promise<void> {
    // Each write captures the state when it runs, so the last one queued wins.
    const next = this.writing
      .catch(() => undefined)
      .then(() =>
        writeFileAtomic(
          this.path,
          `${JSON.stringify({ version: 1, rollouts: Object.fromEntries(this.entries) }, null, 2)}\n`,
        ),
      );
    this.writing = next;
    return next;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function withoutNulls(status: Status): Status {
  const out: Status = {};
  for (const [k, v] of Object.entries(status)) {
    if (v === null) continue;
    out[k] = isObject(v) ? withoutNulls(v) : v;
  }
  return out;
}
