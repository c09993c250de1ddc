/** Standalone rollout state on disk: round trip, nulls, corrupt files, forgetting, write order. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ROLLOUTS_FILE, RolloutStateFile } from '../../../../src/controlplane/rollout/state-file.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'modelgate-state-file-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const fresh = async (name: string) => {
  const d = join(dir, name);
  return { d, ...(await RolloutStateFile.open(d)) };
};

test('a missing file is an empty state, not a problem', async () => {
  const { file, problem } = await fresh('missing');
  assert.equal(problem, undefined);
  assert.deepEqual(file.keys(), []);
});

test('what is put is read back by the next process, with nulls dropped at every depth', async () => {
  const { d, file } = await fresh('roundtrip');
  await file.put('ml/chat', {
    phase: 'Paused',
    currentStep: 1,
    pausedAt: null,
    lastAnalysis: { verdict: 'Pass', error: null, canaryErrorRate: 0 },
    history: [{ weight: 30, at: '2026-11-24T10:00:00.000Z', reason: 'step 0' }],
  });
  const again = await RolloutStateFile.open(d);
  assert.equal(again.problem, undefined);
  assert.deepEqual(again.file.get('ml/chat'), {
    phase: 'Paused',
    currentStep: 1,
    lastAnalysis: { verdict: 'Pass', canaryErrorRate: 0 },
    history: [{ weight: 30, at: '2026-11-24T10:00:00.000Z', reason: 'step 0' }],
  });
});

test('writes land in the order they were asked for: the last one wins', async () => {
  const { d, file } = await fresh('order');
  const writes = Array.from({ length: 20 }, (_, i) => file.put('ml/chat', { currentStep: i }));
  await Promise.all(writes);
  const text = JSON.parse(await readFile(join(d, ROLLOUTS_FILE), 'utf8'));
  assert.deepEqual(text, { version: 1, rollouts: { 'ml/chat': { currentStep: 19 } } });
});

test('retain forgets rollouts that are gone and keeps the rest', async () => {
  const { d, file } = await fresh('retain');
  await file.put('ml/a', { phase: 'Progressing' });
  await file.put('ml/b', { phase: 'Paused' });
  await file.retain(new Set(['ml/b']));
  assert.deepEqual((await RolloutStateFile.open(d)).file.keys(), ['ml/b']);
});

test('a corrupt or foreign file is reported and the rollouts start afresh', async () => {
  for (const [name, text, why] of [
    ['garbage', '{"version": 1, "rollouts": ', /is not JSON/],
    ['foreign', '{"version": 2, "rollouts": {}}', /not a version 1 rollout state file/],
    ['array', '[1, 2]', /not a version 1 rollout state file/],
    ['null', 'null', /not a version 1 rollout state file/],
  ] as const) {
    const d = join(dir, name);
    await mkdir(d);
    await writeFile(join(d, ROLLOUTS_FILE), text);
    const { file, problem } = await RolloutStateFile.open(d);
    assert.match(problem ?? '', why, name);
    assert.deepEqual(file.keys(), [], name);
    // The next write replaces the bad file.
    await file.put('ml/chat', { phase: 'Progressing' });
    assert.equal((await RolloutStateFile.open(d)).problem, undefined, name);
  }
});
