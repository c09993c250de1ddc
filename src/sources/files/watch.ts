/**
 * Watches the inputs of the files source and reloads everything when something changes.
 *
 * Each folder is watched on its own with a plain (non-recursive) `fs.watch`, and the set of
 * watched folders is reconciled before every load. Node 24 does accept `recursive: true` on Linux,
 * but emulates it in JavaScript with one inotify watch per file as well as per folder; watching
 * only folders costs less, and reconciling ourselves means we know exactly which handles exist
 * and that `close()` releases all of them.
 *
 * Whole reloads keep this simple and correct: a change in one file can change what another file
 * means (duplicates, List items), and loading a few hundred manifests is cheap next to a debounce.
 */
import { type FSWatcher, watch as fsWatch } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { type LoadResult, loadFilesWithDigest, walkManifests } from './load.ts';

export interface WatchOptions {
  /** Quiet time after the last event before reloading; each event restarts it. Default 100 ms. */
  debounceMs?: number;
  /** Longest a reload waits after the first event of a burst, so constant writes still reload. Default 1 s. */
  maxDebounceMs?: number;
  /** Timer functions, injectable so tests can drive the debounce with a fake clock. */
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  /**
   * Errors that do not stop the watch: a folder that cannot be watched (such as the inotify limit
   * being reached), or `onChange` throwing. Defaults to a process warning.
   */
  onError?: (err: unknown) => void;
  /**
   * Called after every load, including those skipped because nothing changed; for tests and
   * metrics, which otherwise could not tell "nothing changed" from "not reloaded yet".
   */
  onLoad?: (info: { delivered: boolean; digest: string }) => void;
}

export interface FilesWatch {
  /** Stops watching, cancels pending reloads and waits for a running one; rejects pending `nextReload`s. */
  close(): Promise<void>;
  /** Number of results delivered to `onChange` so far; the initial load is 1. */
  readonly sequence: number;
  /** Resolves with the next result delivered to `onChange` (the initial load, if not yet delivered). */
  nextReload(): Promise<LoadResult>;
}

interface WatchedDir {
  watcher: FSWatcher;
  /** `dev:ino` when the watch was set up: a folder deleted and recreated under the same name needs a new watch. */
  identity: string;
  /** Names in the folder that matter, or null for all of them. */
  names: Set<string> | null;
}

/**
 * Loads `paths` now and again after every change, calling `onChange` with each result whose
 * content differs from the previous one. The first call carries the initial load.
 */
export function watchFiles(
  paths: string[],
  onChange: (result: LoadResult) => void,
  opts: WatchOptions = {},
): FilesWatch {
  const debounceMs = opts.debounceMs ?? 100;
  const maxDebounceMs = opts.maxDebounceMs ?? 1000;
  const setTimer = opts.setTimeout ?? ((fn: () => void, ms: number) => setTimeout(fn, ms));
  const clearTimer = opts.clearTimeout ?? ((h: unknown) => clearTimeout(h as NodeJS.Timeout));
  const reportError =
    opts.onError ??
    ((err: unknown) =>
      process.emitWarning(`files watch: ${err instanceof Error ? err.message : String(err)}`));

  const watched = new Map<string, WatchedDir>();
  let closed = false;
  let sequence = 0;
  let lastDigest: string | undefined;
  let holdTimer: unknown;
  let maxTimer: unknown;
  let loading = false;
  let again = false;
  let inflight: Promise<void> = Promise.resolve();
  let waiters: { resolve: (r: LoadResult) => void; reject: (e: Error) => void }[] = [];

  const clearTimers = () => {
    if (holdTimer !== undefined) clearTimer(holdTimer);
    if (maxTimer !== undefined) clearTimer(maxTimer);
    holdTimer = maxTimer = undefined;
  };

  const fire = () => {
    clearTimers();
    requestReload();
  };

  // Every event restarts the hold-off; the first one of a burst also starts the cap.
  const schedule = () => {
    if (closed) return;
    if (holdTimer !== undefined) clearTimer(holdTimer);
    holdTimer = setTimer(fire, debounceMs);
    if (maxTimer === undefined) maxTimer = setTimer(fire, maxDebounceMs);
  };

  const requestReload = () => {
    if (closed) return;
    if (loading) {
      // Loads never overlap; the running one goes round once more when it finishes.
      again = true;
      return;
    }
    loading = true;
    inflight = run();
  };

  const run = async () => {
    try {
      do {
        again = false;
        try {
          // Watch first, then read: whatever changes after a folder is read is seen as an event.
          await reconcile();
          if (closed) return;
          const { result, digest } = await loadFilesWithDigest(paths);
          if (closed) return;
          const delivered = digest !== lastDigest;
          if (delivered) deliver(result, digest);
          opts.onLoad?.({ delivered, digest });
        } catch (err) {
          reportError(err);
        }
      } while (again && !closed);
    } finally {
      // Set in the same synchronous step as the loop's last check, so no request slips between.
      loading = false;
    }
  };

  const deliver = (result: LoadResult, digest: string) => {
    lastDigest = digest;
    sequence++;
    try {
      onChange(result);
    } catch (err) {
      reportError(err);
    }
    const pending = waiters;
    waiters = [];
    for (const w of pending) w.resolve(result);
  };

  const onEvent = (entry: WatchedDir, name: string | null) => {
    if (closed) return;
    // Names starting with `..` are the links kubelet swaps to update a mounted ConfigMap at once.
    if (entry.names === null || name === null || entry.names.has(name) || name.startsWith('..')) {
      schedule();
    }
  };

  const unwatch = (dir: string, entry: WatchedDir) => {
    entry.watcher.close();
    if (watched.get(dir) === entry) watched.delete(dir);
  };

  /** Brings the set of watched folders in line with what is on disk now. */
  const reconcile = async () => {
    const wanted = await watchTargets(paths);
    for (const [dir, entry] of watched) {
      if (!wanted.has(dir)) unwatch(dir, entry);
    }
    for (const [dir, names] of wanted) {
      let identity: string;
      try {
        const s = await stat(dir);
        if (!s.isDirectory()) throw new Error('not a directory');
        identity = `${s.dev}:${s.ino}`;
      } catch {
        // Gone or never there: its parent's watch (if any) reports when it appears.
        const old = watched.get(dir);
        if (old) unwatch(dir, old);
        continue;
      }
      if (closed) return;
      const existing = watched.get(dir);
      if (existing && existing.identity === identity) {
        existing.names = names;
        continue;
      }
      if (existing) unwatch(dir, existing);
      let watcher: FSWatcher;
      const entry = { identity, names } as WatchedDir;
      try {
        watcher = fsWatch(dir, { persistent: true }, (_event, name) => onEvent(entry, name));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') reportError(err);
        continue;
      }
      entry.watcher = watcher;
      watcher.on('error', (err) => {
        // The watch is dead; drop it and reload, which sets up a new one if the folder is still there.
        unwatch(dir, entry);
        if (closed) return;
        reportError(err);
        schedule();
      });
      watched.set(dir, entry);
    }
  };

  requestReload();

  return {
    get sequence() {
      return sequence;
    },
    nextReload() {
      if (closed) return Promise.reject(new Error('files watch is closed'));
      return new Promise<LoadResult>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimers();
      for (const [dir, entry] of watched) unwatch(dir, entry);
      const pending = waiters;
      waiters = [];
      for (const w of pending) w.reject(new Error('files watch is closed'));
      await inflight;
      // A reconcile that was running may have opened a watch before it saw `closed`.
      for (const [dir, entry] of watched) unwatch(dir, entry);
    },
  };
}

/**
 * The folders to watch, each with the names in it that matter (null: all). Every input's parent
 * is watched for that input's name, so a file or folder that is created, deleted or replaced by
 * rename (as editors save) is seen; input folders and their subfolders are watched whole; and
 * for files reached through links, the folder holding the link's target too.
 */
async function watchTargets(paths: string[]): Promise<Map<string, Set<string> | null>> {
  const targets = new Map<string, Set<string> | null>();
  const want = (dir: string, name?: string) => {
    const current = targets.get(dir);
    if (current === null) return;
    if (name === undefined) {
      targets.set(dir, null);
    } else if (current) {
      current.add(name);
    } else {
      targets.set(dir, new Set([name]));
    }
  };
  for (const p of paths) {
    const abs = path.resolve(p);
    want(path.dirname(abs), path.basename(abs));
  }
  const tree = await walkManifests(paths);
  for (const dir of tree.dirs) want(path.resolve(dir));
  for (const target of tree.links.values()) want(path.dirname(target), path.basename(target));
  return targets;
}
