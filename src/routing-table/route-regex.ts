/**
 * Route authors' regular expressions (path, header and query matches, ReplaceRegexMatch): how the
 * compiler admits them and how the proxy builds them, so a pattern can never pin the proxy's one
 * thread with catastrophic backtracking (`^(a+)+$` against `aaaa…a!`), whatever the request.
 *
 * V8's own answer, no dependency: importing this module turns on V8's linear-time (automaton)
 * regexp engine as a fallback. Every regexp runs on V8's usual backtracking engine (full speed);
 * one that backtracks more than `--regexp-backtracks-before-fallback` (V8's default, 50,000) times
 * in one match is re-run from the start on the linear engine, which returns the same result in time
 * linear in the input. V8 does this only for patterns its linear engine can run, so the compiler
 * admits only those (`routeRegexProblem`): no backreferences (`\1`, `\k<name>`), no lookahead
 * (`(?=…)`, `(?!…)`), no inline modifiers (`(?i:…)`) — constructs RE2 (Envoy's engine) also
 * refuses — and repetition counts of at most 16, multiplied along nesting (`a{16}`, `(a{4}){4}`
 * and `[0-9a-f]{8}-[0-9a-f]{4}` pass; `a{17}` and `(a{4}){5}` do not: V8's linear engine unrolls
 * counted repetitions). Everything else keeps JavaScript's syntax and meaning (groups, named
 * groups, classes, `\d \w \s \b`, `*`, `+`, `?`, lazy quantifiers, lookbehind).
 *
 * The flags are process-wide and take effect for regexps built after they are set; route regexps
 * are built only through this module (or after it was imported), so they always get the fallback.
 * `v8.setFlagsFromString` is the only way: NODE_OPTIONS does not pass these V8 flags.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine');
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
/** V8's linear-engine flag; never in a literal, which V8 would refuse before the flags are set. */
const LINEAR = 'l';
try {
  new RegExp('', LINEAR);
} catch {
  // An unknown V8 flag is only warned about: fail loudly rather than run route regexps unbounded.
  throw new Error(`V8's linear-time regexp engine is not available in Node ${process.version}`);
}

/** The flags a route regexp may be built with (`g` for ReplaceRegexMatch, `s` for model globs). */
export type RouteRegExpFlags = '' | 'g' | 's';

/** A match pattern as the proxy builds it: anchored, since it must match the whole value. */
export function anchoredSource(pattern: string): string {
  return `^(?:${pattern})$`;
}

/**
 * A route regexp. Patterns the compiler admitted fall back to the linear engine when they
 * backtrack too much; build every regexp that runs on request data through this.
 */
export function routeRegExp(pattern: string, flags: RouteRegExpFlags = ''): RegExp {
  return new RegExp(pattern, flags);
}

/** V8 says "Invalid regular expression: /^(?:…)$/: Unterminated group"; keep the reason only. */
export function regexReason(e: unknown): string {
  return (e as Error).message.replace(/^Invalid regular expression: \/.*\/[a-z]*: /s, '');
}

/**
 * Why `pattern` (as it will be built: `source` is the full source, e.g. anchored) cannot be a
 * route regexp, or undefined. The message starts with "invalid regular expression".
 */
export function routeRegexProblem(source: string, flags: RouteRegExpFlags = ''): string | undefined {
  try {
    new RegExp(source, flags);
  } catch (e) {
    return `invalid regular expression: ${regexReason(e)}`;
  }
  try {
    // `l`: V8's linear engine only; it refuses what it cannot run in linear time.
    new RegExp(source, flags + LINEAR);
  } catch {
    return 'invalid regular expression: cannot run in linear time (no backreferences, lookahead or modifiers such as (?i:); repetition counts at most 16, nested ones multiplied: write [0-9]{32} as [0-9]{16}[0-9]{16}, or use + and *)';
  }
  return undefined;
}
