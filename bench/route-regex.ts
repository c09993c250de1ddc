/**
 * bench/route-regex: the cost of route regexps on the hot path with V8's linear-time fallback
 * (src/routing-table/route-regex.ts) against plain V8 regexps, and the time of a catastrophic
 * pattern on a 50,000-character input with the fallback. Each side runs in its own process, since
 * the fallback is a process-wide V8 flag. Prints JSON; `--quick` is the CI smoke. No thresholds.
 *
 *   node bench/route-regex.ts            2,000,000 matches per pattern, best of 5
 *   node bench/route-regex.ts --quick      100,000 matches per pattern, best of 3
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { quick: { type: 'boolean', default: false }, side: { type: 'string' } },
});

/** Anchored as the router builds them, with inputs that match (or, for the last, do not). */
const CASES: [string, string][] = [
  ['^(?:/v1/models/[^/]+/infer)$', '/v1/models/resnet-50/infer'],
  ['^(?:/v[0-9]+/(chat|completions)/.*)$', '/v2/chat/completions/abc/def'],
  ['^(?:Bearer [A-Za-z0-9._-]+)$', `Bearer ${'x'.repeat(200)}`],
  ['^(?:gpt-4.*|claude-.*)$', 'claude-3-opus-20240229'],
  ['^(?:/api/(?<ver>v[12])/x)$', '/api/v3/x'],
];

async function measure(fallback: boolean, n: number, rounds: number): Promise<Record<string, unknown>> {
  const make = fallback
    ? (await import('../src/routing-table/route-regex.ts')).routeRegExp
    : (p: string) => new RegExp(p);
  const out: Record<string, number> = {};
  let sink = 0;
  for (const [pattern, input] of CASES) {
    const re = make(pattern);
    for (let i = 0; i < 10_000; i++) sink += re.test(input) ? 1 : 0;
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < rounds; r++) {
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) sink += re.test(input) ? 1 : 0;
      best = Math.min(best, Number(process.hrtime.bigint() - t) / n);
    }
    out[pattern] = Math.round(best * 10) / 10;
  }
  const result: Record<string, unknown> = { nsPerMatch: out, sink };
  if (fallback) {
    const evil = `${'a'.repeat(50_000)}!`;
    const re = make('^(?:(a+)+)$');
    const t = process.hrtime.bigint();
    re.test(evil);
    result.catastrophic50kMs = Math.round(Number(process.hrtime.bigint() - t) / 1e4) / 100;
  }
  return result;
}

if (values.side) {
  const n = values.quick ? 100_000 : 2_000_000;
  console.log(JSON.stringify(await measure(values.side === 'fallback', n, values.quick ? 3 : 5)));
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (side: string) => {
    const r = spawnSync(process.execPath, [self, '--side', side, ...(values.quick ? ['--quick'] : [])], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };
  console.log(JSON.stringify({ plain: run('plain'), fallback: run('fallback') }, null, 2));
}
