/**
 * bench/normalize: ns/op and approximate bytes allocated per call of normalizePath for clean
 * request-targets (the fast path) and dirty ones (the slow path). No thresholds.
 *
 *   node bench/normalize.ts [--iterations N]
 *
 * Bytes/op is the heapUsed growth over a batch of calls, median over batches that saw no GC; it
 * includes the result object, so the floor on the fast path is one small object (plus the two
 * slices when there is a query).
 */
import { parseArgs } from 'node:util';
import { normalizePath } from '../src/dataplane/request/normalize-path.ts';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '2000000' } } });
const ITERATIONS = Number(values.iterations);

const CASES: [kind: string, target: string][] = [
  ['clean', '/v1/chat/completions'],
  ['clean', '/v1/models'],
  ['clean', '/v1/chat/completions?api-version=2024-06-01'],
  ['clean', '/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-06-01&x=1'],
  ['dirty', '/v1/chat/../chat/completions'],
  ['dirty', '/v1//chat/completions'],
  ['dirty', '/v1/chat/%63ompletions'],
  ['dirty', '/models/caf%c3%a9/x'],
  ['dirty', '/api/v1/..%2Fadmin?x=1'],
  ['dirty', 'http://upstream.example:8080/v1/models'],
];

let sink = 0;

function time(target: string, n: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = normalizePath(target);
    sink += r.ok ? r.path.length : 0;
  }
  return Number(process.hrtime.bigint() - start) / n;
}

function bytesPerOp(target: string): number {
  const batch = 2000;
  const samples: number[] = [];
  for (let trial = 0; trial < 50 && samples.length < 15; trial++) {
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < batch; i++) {
      const r = normalizePath(target);
      sink += r.ok ? 1 : 0;
    }
    const grown = process.memoryUsage().heapUsed - before;
    if (grown >= 0) samples.push(grown / batch);
  }
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1] ?? Number.NaN;
}

console.log(`node ${process.version}, ${ITERATIONS} iterations per case`);
console.log('kind   ns/op  bytes/op  target -> path');
for (const [kind, target] of CASES) {
  time(target, ITERATIONS / 10); // warm-up
  const ns = Math.min(time(target, ITERATIONS), time(target, ITERATIONS));
  const bytes = bytesPerOp(target);
  const r = normalizePath(target);
  const out = r.ok ? r.path + r.query : `rejected: ${r.reason}`;
  console.log(`${kind}  ${ns.toFixed(1).padStart(6)}  ${bytes.toFixed(0).padStart(8)}  ${target} -> ${out}`);
}
if (sink === 42) console.log('');
