import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseByteSize, parseDurationMs } from '../../../src/compiler/units.ts';

describe('parseDurationMs', () => {
  const cases: [string, number][] = [
    ['0s', 0],
    ['500ms', 500],
    ['1ms', 1],
    ['2s', 2000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['1h30m', 5_400_000],
    ['1m30s', 90_000],
    ['2h3m4s5ms', 7_384_005],
    ['1.5s', 1500],
    ['0.25m', 15_000],
    ['300s', 300_000],
    // Sub-millisecond parts round to the nearest millisecond.
    ['1.4ms', 1],
    ['0.5ms', 1],
    ['1.0004s', 1000],
    // Repeated units add up, as Go's time.ParseDuration does.
    ['1s1s', 2000],
  ];
  for (const [text, ms] of cases) {
    test(`${text} → ${ms}`, () => assert.equal(parseDurationMs(text), ms));
  }
});

describe('parseByteSize', () => {
  const cases: [string, number][] = [
    ['0', 0],
    ['1', 1],
    ['1048576', 1_048_576],
    ['512Ki', 524_288],
    ['1Mi', 1_048_576],
    ['64Mi', 67_108_864],
    ['2Gi', 2_147_483_648],
    ['1k', 1000],
    ['10M', 10_000_000],
    ['3G', 3_000_000_000],
  ];
  for (const [text, bytes] of cases) {
    test(`${text} → ${bytes}`, () => assert.equal(parseByteSize(text), bytes));
  }
  for (const bad of ['', 'Mi', '1.5Mi', '1Ti', '1 Mi', '1mi', '1K', '-1', '1MiB']) {
    test(`${JSON.stringify(bad)} → NaN`, () => assert.ok(Number.isNaN(parseByteSize(bad))));
  }
});
