import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { normaliseWeights } from '../../../src/compiler/weights.ts';
import { WEIGHT_TOTAL } from '../../../src/routing-table/types.ts';

const sum = (l: number[]) => l.reduce((a, b) => a + b, 0);

describe('normaliseWeights', () => {
  const cases: [number[], number[]][] = [
    [[1], [10000]],
    [[7], [10000]],
    [
      [1, 1],
      [5000, 5000],
    ],
    [
      [90, 10],
      [9000, 1000],
    ],
    [
      [1, 2],
      [3333, 6667],
    ],
    [
      [2, 1],
      [6667, 3333],
    ],
    // Ties in the remainder go to the earlier backend.
    [
      [1, 1, 1],
      [3334, 3333, 3333],
    ],
    [
      [5, 5, 5],
      [3334, 3333, 3333],
    ],
    [
      [1, 1, 1, 1, 1, 1],
      [1667, 1667, 1667, 1667, 1666, 1666],
    ],
    [
      [1, 1, 1, 1, 1, 1, 1],
      [1429, 1429, 1429, 1429, 1428, 1428, 1428],
    ],
    // Zero gets nothing, and never a rounding unit.
    [
      [0, 1],
      [0, 10000],
    ],
    [
      [1, 0, 1],
      [5000, 0, 5000],
    ],
    [
      [0, 1, 1, 1],
      [0, 3334, 3333, 3333],
    ],
    // All zero: no traffic anywhere (the schema forbids it for a route; a canary pair can be 0+0).
    [
      [0, 0],
      [0, 0],
    ],
    [[], []],
    // Large weights stay exact.
    [
      [1_000_000, 1_000_000, 1_000_000],
      [3334, 3333, 3333],
    ],
  ];
  for (const [raw, expected] of cases) {
    test(`${JSON.stringify(raw)} → ${JSON.stringify(expected)}`, () => {
      const out = normaliseWeights(raw);
      assert.deepEqual(out, expected);
      if (raw.some((w) => w > 0)) assert.equal(sum(out), WEIGHT_TOTAL);
    });
  }

  test('every non-zero sum normalises to WEIGHT_TOTAL and each share is within 1 of exact', () => {
    for (let n = 1; n <= 16; n++) {
      for (let seed = 1; seed <= 50; seed++) {
        const raw = Array.from(
          { length: n },
          (_, i) => ((seed * 7919 + i * 104729) % 1000) * (i % 3 === 0 ? 0 : 1),
        );
        if (sum(raw) === 0) raw[0] = 1;
        const out = normaliseWeights(raw);
        assert.equal(sum(out), WEIGHT_TOTAL, JSON.stringify(raw));
        raw.forEach((w, i) => {
          const exact = (w * WEIGHT_TOTAL) / sum(raw);
          assert.ok(Math.abs(out[i]! - exact) < 1, `${JSON.stringify(raw)}[${i}]`);
          if (w === 0) assert.equal(out[i], 0);
        });
      }
    }
  });

  test('does not modify its input', () => {
    const raw = [3, 1];
    normaliseWeights(raw);
    assert.deepEqual(raw, [3, 1]);
  });
});

test('a non-zero weight never rounds to zero traffic', () => {
  const w = normaliseWeights([100_000_000, 1]);
  assert.deepEqual(w, [9999, 1]);
  assert.equal(
    w.reduce((a, b) => a + b, 0),
    10000,
  );
});
