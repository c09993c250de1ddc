/**
 * Route regexps cannot pin the proxy's thread: patterns that would backtrack catastrophically run in
 * linear time on V8's fallback engine (checked in child processes, killed after a generous bound so
 * a regression fails instead of hanging the suite), patterns the linear engine cannot run are
 * refused at admission, and the linear engine answers as the backtracking one does.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { anchoredSource, routeRegexProblem } from '../../../src/routing-table/route-regex.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** Generous: each script below finishes in well under a second; a backtracking one never does. */
const KILL_AFTER_MS = 30_000;

function runScript(source: string): { stdout: string; killed: boolean } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: KILL_AFTER_MS,
    killSignal: 'SIGKILL',
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return { stdout: r.stdout, killed: r.signal === 'SIGKILL' };
}

describe('catastrophic patterns', () => {
  test('without the fallback, a nested quantifier hangs on 40 characters (the defect)', () => {
    // 2^40 ways to split the a's: the process is killed, never answers. Bounded to 5 s here.
    const r = spawnSync(
      process.execPath,
      ['-e', "console.log(new RegExp('^(?:(a+)+)$').test('a'.repeat(40) + '!'))"],
      { encoding: 'utf8', timeout: 5_000, killSignal: 'SIGKILL' },
    );
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.stdout, '');
  });

  test('path, header, rewrite and model-glob patterns answer on 50,000-character inputs', () => {
    const script = `
      import { compileConditions, headersMatch } from './src/dataplane/router/conditions.ts';
      import { pathRewriter } from './src/dataplane/transform/path-rewrite.ts';
      const evil = 'a'.repeat(50000) + '!';
      const m = compileConditions({
        rule: 'r', hostname: '', path: { type: 'RegularExpression', value: '(a+)+' },
        headers: [{ name: 'x-words', type: 'RegularExpression', value: '(\\\\w+\\\\s?)*' }],
        queryParams: [],
        model: { type: 'Glob', value: '*a*a*a*a*a*b' },
      }, 0, 'r');
      const rewrite = pathRewriter({ type: 'ReplaceRegexMatch', pattern: '(a|a)*b', substitution: 'x' });
      console.log(JSON.stringify([
        m.pathRegex.test(evil),
        m.pathRegex.test('a'.repeat(50000)),
        headersMatch(m.headers, { 'x-words': 'word '.repeat(10000) + '!' }),
        m.model.glob.test(evil),
        rewrite('/' + evil).length,
      ]));`;
    const r = runScript(script);
    assert.equal(r.killed, false, 'a route regexp backtracked catastrophically');
    assert.deepEqual(JSON.parse(r.stdout), [false, true, false, false, 50002]);
  });

  test('the CLI entry point sets the fallback before anything else runs', () => {
    const script = `
      await import('./src/cli/main.ts').catch(() => {});
      console.log(new RegExp('^(?:(a+)+)$').test('a'.repeat(50000) + '!'));`;
    const r = runScript(script);
    assert.equal(r.killed, false);
    assert.match(r.stdout, /false/);
  });
});

describe('admission', () => {
  test('patterns the linear engine cannot run are refused with a reason', () => {
    for (const p of [
      '/(a+)/\\1',
      '(?<x>a)\\k<x>',
      '(?=a)a',
      '(?!free).*',
      '(?i:gpt)',
      'a{17}',
      '(a{4}){5}',
    ]) {
      assert.match(
        routeRegexProblem(anchoredSource(p)) ?? '',
        /^invalid regular expression: cannot run in linear time/,
        p,
      );
    }
    assert.match(routeRegexProblem('^/a/(x', 'g') ?? '', /^invalid regular expression: Unterminated group$/);
  });

  test('ordinary and nested-quantifier patterns are admitted', () => {
    for (const p of [
      '/v1/models/[^/]+/infer',
      '/v2/models/resnet50(/versions/[^/]+)?/infer',
      '/api/(?<ver>v[12])/x',
      'gold|silver',
      '\\bBearer\\s+[\\w.-]{8,}',
      '(?<=/)x',
      '(a+)+',
      '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
      '[0-9]{16}[0-9]{16}',
    ]) {
      assert.equal(routeRegexProblem(anchoredSource(p)), undefined, p);
    }
    assert.equal(routeRegexProblem('^/models/([^/]+)/infer$', 'g'), undefined);
  });
});

describe('the linear engine answers as the backtracking one', () => {
  const atom = fc.constantFrom('a', 'b', '.', '[ab]', '[^a]', '\\w', '\\d', '\\s', '/', '-');
  const pattern: fc.Arbitrary<string> = fc.letrec<{ re: string }>((tie) => ({
    re: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      atom,
      fc.tuple(tie('re'), tie('re')).map(([x, y]) => x + y),
      fc.tuple(tie('re'), tie('re')).map(([x, y]) => `(?:${x}|${y})`),
      fc.tuple(tie('re'), fc.constantFrom('*', '+', '?', '{1,3}', '*?', '+?')).map(([x, q]) => `(${x})${q}`),
    ),
  })).re;
  const input = fc.stringMatching(/^[ab1 /-]{0,12}$/);

  /** What the proxy computes with a pattern: an anchored match with captures, a global rewrite. */
  const evaluate = (p: string, s: string) =>
    JSON.stringify([new RegExp(`^(?:${p})$`).exec(s), s.replace(new RegExp(p, 'g'), '<$1|$&>')]);

  test('same match, captures and rewrite when every match falls back to the linear engine', () => {
    // Admitted patterns only (the linear engine refuses large nested counts, and so does the compiler).
    const cases = fc
      .sample(fc.tuple(pattern, input), { numRuns: 3000, seed: 42 })
      .filter(
        ([p]) =>
          routeRegexProblem(anchoredSource(p)) === undefined && routeRegexProblem(p, 'g') === undefined,
      );
    assert.ok(cases.length > 1000, `only ${cases.length} admitted cases`);
    // Here, on inputs this short, V8 backtracks without falling back. In the child, V8 falls back
    // after one backtrack, so the fallback engine answers nearly every case.
    const expected = cases.map(([p, s]) => evaluate(p, s));
    const script = `
      import { setFlagsFromString } from 'node:v8';
      import { readFileSync } from 'node:fs';
      await import('./src/routing-table/route-regex.ts');
      setFlagsFromString('--regexp-backtracks-before-fallback=1');
      const evaluate = ${evaluate.toString()};
      const cases = JSON.parse(readFileSync(0, 'utf8'));
      console.log(JSON.stringify(cases.map(([p, s]) => evaluate(p, s))));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      input: JSON.stringify(cases),
      encoding: 'utf8',
      timeout: KILL_AFTER_MS,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(r.status, 0, r.stderr);
    const actual = JSON.parse(r.stdout) as string[];
    for (let i = 0; i < cases.length; i++)
      assert.equal(actual[i], expected[i], `${cases[i]![0]} on ${cases[i]![1]}`);
  });
});
