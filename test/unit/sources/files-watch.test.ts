/**
 * The watcher against the real file system. Nothing here sleeps or measures wall-clock time:
 * tests wait for delivered reloads (`nextReload`), for loads (`onLoad`), or drive the debounce
 * with a fake clock, so a slow machine only makes them slower.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { type FilesWatch, type LoadResult, watchFiles } from '../../../src/sources/files/index.ts';

/** Generous: only reached when something is broken, and it beats hanging forever. */
const TIMEOUT = { timeout: 60_000 };

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'modelgate-watch-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const service = (name: string, port = 80) =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\nspec:\n  ports:\n    - port: ${port}\n`;

const services = (r: LoadResult) =>
  r.state.services.map((s) => `${s.metadata.name}:${s.spec.ports?.[0]?.port}`);

/**
 * Waits for delivered reloads until one satisfies `ok`. With real timers a reload can, rarely,
 * catch a file between truncation and write; the next event then brings the full content.
 */
async function reloadUntil(w: FilesWatch, ok: (r: LoadResult) => boolean): Promise<LoadResult> {
  for (;;) {
    const r = await w.nextReload();
    if (ok(r)) return r;
  }
}

/** Counts loads, delivered or not, and lets a test wait for the n-th. */
function loadCounter() {
  const loads: boolean[] = [];
  const wake: (() => void)[] = [];
  return {
    loads,
    onLoad: (info: { delivered: boolean }) => {
      loads.push(info.delivered);
      for (const w of wake.splice(0)) w();
    },
    async waitFor(n: number) {
      while (loads.length < n) await new Promise<void>((r) => wake.push(r));
    },
  };
}

interface FakeTimer {
  fn: () => void;
  at: number;
  delay: number;
}

/** A clock that only moves when told to; records what was scheduled and what fired. */
class FakeClock {
  now = 0;
  private nextId = 1;
  private readonly timers = new Map<number, FakeTimer>();
  /** Every setTimeout call, in order. */
  readonly scheduled: { delay: number; at: number }[] = [];
  readonly fired: { delay: number; scheduledAt: number; firedAt: number }[] = [];
  private wake: (() => void)[] = [];

  setTimeout = (fn: () => void, delay: number): unknown => {
    const id = this.nextId++;
    this.timers.set(id, { fn, at: this.now + delay, delay });
    this.scheduled.push({ delay, at: this.now });
    for (const w of this.wake.splice(0)) w();
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward, running due timers in order (ties in scheduling order). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: [number, FakeTimer] | undefined;
      for (const entry of this.timers) {
        if (entry[1].at <= end && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      const [id, timer] = next;
      this.timers.delete(id);
      this.now = timer.at;
      this.fired.push({ delay: timer.delay, scheduledAt: timer.at - timer.delay, firedAt: timer.at });
      timer.fn();
    }
    this.now = end;
  }

  /** Resolves once a timer of `delay` ms has been scheduled after the first `since` calls. */
  async scheduledAfter(since: number, delay: number): Promise<void> {
    while (!this.scheduled.slice(since).some((s) => s.delay === delay)) {
      await new Promise<void>((r) => this.wake.push(r));
    }
  }
}

function start(
  t: TestContext,
  paths: string[],
  opts: Parameters<typeof watchFiles>[2] = {},
): { w: FilesWatch; delivered: LoadResult[] } {
  const delivered: LoadResult[] = [];
  const w = watchFiles(paths, (r) => delivered.push(r), opts);
  t.after(() => w.close());
  return { w, delivered };
}

test('the initial load and a change are delivered', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'a.yaml');
  await writeFile(file, service('a', 80));
  const { w, delivered } = start(t, [dir]);

  const first = await w.nextReload();
  assert.equal(w.sequence, 1);
  assert.deepEqual(services(first), ['a:80']);
  assert.deepEqual(first.problems, []);

  await writeFile(file, service('a', 81));
  const second = await reloadUntil(w, (r) => services(r).join() === 'a:81');
  assert.equal(w.sequence, delivered.length);
  assert.equal(delivered.at(-1), second);
});

test('a burst of writes inside the hold-off is loaded once', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'a.yaml');
  await writeFile(file, service('a', 80));
  const clock = new FakeClock();
  const counter = loadCounter();
  const { w } = start(t, [dir], {
    debounceMs: 100,
    maxDebounceMs: 1000,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    onLoad: counter.onLoad,
  });
  await w.nextReload();
  assert.deepEqual(counter.loads, [true]);

  for (let port = 81; port <= 85; port++) {
    const since = clock.scheduled.length;
    await writeFile(file, service('a', port));
    // The write's event restarted the hold-off; less than a hold-off passes before the next one.
    await clock.scheduledAfter(since, 100);
    clock.advance(60);
  }
  assert.equal(clock.fired.length, 0, 'nothing fired while writes kept coming');

  const next = w.nextReload();
  clock.advance(100);
  assert.deepEqual(
    clock.fired.map((f) => f.delay),
    [100],
  );
  assert.deepEqual(services(await next), ['a:85']);
  assert.equal(w.sequence, 2);
  // Late events from the last write may have armed new timers, but the clock stands still.
  assert.deepEqual(counter.loads, [true, true]);
});

test('the maximum hold-off reloads under a constant stream of events', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'a.yaml');
  await writeFile(file, service('a', 0));
  const clock = new FakeClock();
  const { w } = start(t, [dir], {
    debounceMs: 100,
    maxDebounceMs: 1000,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
  });
  await w.nextReload();

  const next = w.nextReload();
  let port = 0;
  let firstEventAt: number | undefined;
  // Every 90 ms a new write: the 100 ms hold-off never runs out, only the 1 s cap can fire.
  while (clock.fired.length === 0) {
    assert.ok(port < 100, 'the maximum hold-off never fired');
    port++;
    const since = clock.scheduled.length;
    await writeFile(file, service('a', port));
    await clock.scheduledAfter(since, 100);
    firstEventAt ??= clock.scheduled.find((s) => s.delay === 1000)?.at;
    clock.advance(90);
  }
  assert.deepEqual(clock.fired, [{ delay: 1000, scheduledAt: firstEventAt, firedAt: firstEventAt! + 1000 }]);
  assert.ok(port >= 11, `the cap fired after ${port} writes, before 1 s of events had passed`);
  assert.deepEqual(services(await next), [`a:${port}`]);
  assert.equal(w.sequence, 2);
});

test('rewriting a file with identical bytes delivers nothing', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'a.yaml');
  await writeFile(file, service('a', 80));
  const clock = new FakeClock();
  const counter = loadCounter();
  const { w, delivered } = start(t, [dir], {
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    onLoad: counter.onLoad,
  });
  await w.nextReload();

  let since = clock.scheduled.length;
  await writeFile(file, service('a', 80));
  await clock.scheduledAfter(since, 100);
  clock.advance(100);
  await counter.waitFor(2);
  assert.deepEqual(counter.loads, [true, false], 'the reload ran and found nothing new');
  assert.equal(w.sequence, 1);

  since = clock.scheduled.length;
  await writeFile(file, service('a', 81));
  await clock.scheduledAfter(since, 100);
  const next = w.nextReload();
  clock.advance(100);
  assert.deepEqual(services(await next), ['a:81']);
  assert.equal(w.sequence, 2, 'only the real change was delivered');
  assert.equal(delivered.length, 2);
});

test('files created, replaced by rename, and deleted, including in new folders', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'a.yaml'), service('a'));
  const { w } = start(t, [dir]);
  await w.nextReload();

  await writeFile(path.join(dir, 'b.yaml'), service('b'));
  await reloadUntil(w, (r) => services(r).join() === 'a:80,b:80');

  await mkdir(path.join(dir, 'sub', 'deeper'), { recursive: true });
  await writeFile(path.join(dir, 'sub', 'deeper', 'c.yaml'), service('c'));
  await reloadUntil(w, (r) => services(r).join() === 'a:80,b:80,c:80');

  // Editors save by writing a hidden temporary file and renaming it over the original.
  await writeFile(path.join(dir, '.a.yaml.tmp'), service('a', 90));
  await rename(path.join(dir, '.a.yaml.tmp'), path.join(dir, 'a.yaml'));
  await reloadUntil(w, (r) => services(r).join() === 'a:90,b:80,c:80');

  // The new folder is watched too: a later change inside it is seen.
  await writeFile(path.join(dir, 'sub', 'deeper', 'c.yaml'), service('c', 91));
  await reloadUntil(w, (r) => services(r).join() === 'a:90,b:80,c:91');

  await rm(path.join(dir, 'sub'), { recursive: true });
  await rm(path.join(dir, 'b.yaml'));
  const last = await reloadUntil(w, (r) => services(r).join() === 'a:90');
  assert.deepEqual(last.problems, []);
});

test('a single file replaced by rename, deleted and created again', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'routes.yaml');
  await writeFile(file, service('a'));
  const { w } = start(t, [file]);
  await w.nextReload();

  await writeFile(`${file}.new`, service('a', 81));
  await rename(`${file}.new`, file);
  await reloadUntil(w, (r) => services(r).join() === 'a:81');

  await rm(file);
  const gone = await reloadUntil(w, (r) => r.problems.length > 0);
  assert.deepEqual(gone.problems, [{ file, message: 'no such file or directory' }]);
  assert.deepEqual(services(gone), []);

  await writeFile(file, service('a', 82));
  await reloadUntil(w, (r) => services(r).join() === 'a:82');
});

test('close() stops everything and leaves no handles behind', TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  await writeFile(path.join(dir, 'a.yaml'), service('a'));
  await mkdir(path.join(dir, 'sub'));
  const count = (type: string) => process.getActiveResourcesInfo().filter((r) => r === type).length;
  const watchersBefore = count('FSEventWrap');
  const timersBefore = count('Timeout');

  const delivered: LoadResult[] = [];
  const w = watchFiles([dir], (r) => delivered.push(r));
  await w.nextReload();
  assert.ok(
    count('FSEventWrap') >= watchersBefore + 3,
    'the parent, the folder and its subfolder are watched',
  );

  // An event arms the real debounce timers; close() must cancel them.
  await writeFile(path.join(dir, 'a.yaml'), service('a', 81));
  const pending = w.nextReload();
  await w.close();
  await assert.rejects(pending, /closed/);
  await assert.rejects(w.nextReload(), /closed/);

  // Handles are released by the event loop a turn or two after close; bounded, not timed.
  for (let turn = 0; turn < 1000 && count('FSEventWrap') > watchersBefore; turn++) {
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(count('FSEventWrap'), watchersBefore);
  assert.equal(count('Timeout'), timersBefore);
  const seen = delivered.length;
  await writeFile(path.join(dir, 'a.yaml'), service('a', 82));
  assert.equal(delivered.length, seen);
  await w.close(); // idempotent
});
