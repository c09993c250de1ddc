/** Parsers for the string units the resources use. Inputs are schema-checked before they get here. */

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `1h30m` → 5400000; `1.5s` → 1500. Milliseconds, rounded. */
export function parseDurationMs(text: string): number {
  let total = 0;
  for (const m of text.matchAll(DURATION_PART)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return Math.round(total);
}

const SIZE = /^([0-9]+)(Ki|Mi|Gi|k|M|G)?$/;
const SIZE_UNIT: Record<string, number> = {
  '': 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
};

/** `64Mi` → 67108864. */
export function parseByteSize(text: string): number {
  const m = SIZE.exec(text);
  if (!m) return Number.NaN;
  return Number(m[1]) * SIZE_UNIT[m[2] ?? '']!;
}
