/**
 * A rule's `transform` and `validation` in table form, with the checks a schema cannot express:
 * regular expressions and their substitutions compile, JSON Schemas compile (json-schema.ts), the
 * prefix a ReplacePrefixMatch replaces is known. Problems are reported per kind, so the route's
 * status can say InvalidTransform or InvalidSchema.
 *
 * User JSON (schemas, Set values) is copied with its keys sorted: the table's bytes then depend on
 * the meaning, not on the order keys were written in, and proxies cache compiled schemas by them.
 */
import type { FieldError } from '../api/cel.ts';
import type { Rule } from '../api/model-route.ts';
import type { BodyOpSpec, HeaderModifier, PathRewrite } from '../api/transform.ts';
import { schemaProblem } from '../routing-table/json-schema.ts';
import { routeRegexProblem } from '../routing-table/route-regex.ts';
import type {
  CompiledBodyOp,
  CompiledHeaderOps,
  CompiledMatch,
  CompiledPathRewrite,
  CompiledTransform,
  CompiledValidation,
} from '../routing-table/types.ts';
import { parseByteSize } from './units.ts';

/** The largest response a rule may hold in memory to rewrite it. */
const MAX_RESPONSE_BODY = 64 * 1024 ** 2;

export interface FilterProblems {
  transform: FieldError[];
  schema: FieldError[];
}

/** A copy of a JSON value with object keys in code-unit order. */
export function canonicalJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonicalJson);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(value).sort()) out[k] = canonicalJson((value as Record<string, unknown>)[k]);
  return out;
}

/** RFC 6901: `""` is the whole document; `~1` is `/` and `~0` is `~`, unescaped in that order. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function headerOps(h: HeaderModifier): CompiledHeaderOps {
  const pairs = (list: { name: string; value: string }[] | undefined) =>
    (list ?? []).map((p) => ({ name: p.name.toLowerCase(), value: p.value }));
  return {
    remove: (h.remove ?? []).map((n) => n.toLowerCase()),
    set: pairs(h.set),
    add: pairs(h.add),
  };
}

function bodyOp(op: BodyOpSpec): CompiledBodyOp {
  const path = parsePointer(op.path);
  switch (op.op) {
    case 'Remove':
      return { op: 'Remove', path };
    case 'Rename':
      return { op: 'Rename', from: parsePointer(op.from ?? ''), path };
    case 'Set':
      return { op: 'Set', path, value: canonicalJson(op.value) };
    case 'Wrap':
      return { op: 'Wrap', path, under: op.under ?? '' };
    case 'Unwrap':
      return { op: 'Unwrap', path };
  }
}

/** V8 says "Invalid regular expression: /…/g: Unterminated group"; keep the reason only. */
/** What a path may hold besides percent-escapes (RFC 3986 pchar and `/`): no `?`, `#` or spaces. */
const PATH_CHAR = /^[-A-Za-z0-9/._~!$&'()*+,;=:@%]$/;

/**
 * Envoy's substitution syntax (`\1`, `\0` for the whole match, `\\` for a backslash) in
 * String.replace's (`$1`, `$&`, `$$`). Undefined with `errors` filled when it refers to a group the
 * pattern lacks or has a stray backslash.
 */
function substitutionOf(text: string, groups: number, at: string, errors: FieldError[]): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '$') out += '$$';
    else if (c !== '\\') {
      if (!PATH_CHAR.test(c)) {
        errors.push({ path: at, message: `${JSON.stringify(c)} cannot appear in a path` });
        return undefined;
      }
      out += c;
    } else {
      const next = text[++i];
      if (next === '\\') out += '\\';
      else if (next !== undefined && next >= '0' && next <= '9') {
        const n = Number(next);
        if (n > groups) {
          errors.push({
            path: at,
            message: `\\${n} refers to capture group ${n}, but the pattern has ${groups}`,
          });
          return undefined;
        }
        out += n === 0 ? '$&' : `$${n}`;
      } else {
        errors.push({
          path: at,
          message: 'a backslash must be followed by a digit (a group) or a backslash',
        });
        return undefined;
      }
    }
  }
  return out;
}

function pathRewrite(
  p: PathRewrite,
  matches: readonly Omit<CompiledMatch, 'hostname'>[],
  at: string,
  errors: FieldError[],
): CompiledPathRewrite | undefined {
  switch (p.type) {
    case 'ReplaceFullPath':
      return { type: 'ReplaceFullPath', path: p.replaceFullPath ?? '/' };
    case 'ReplacePrefixMatch': {
      // A rule without matches gets one PathPrefix `/` match (route-model.ts); CEL allows no other shape.
      const m = matches[0];
      if (matches.length !== 1 || m?.path.type !== 'PathPrefix') {
        errors.push({ path: at, message: 'ReplacePrefixMatch needs the rule to have one PathPrefix match' });
        return undefined;
      }
      const replacement = (p.replacePrefixMatch ?? '').replace(/\/+$/, '');
      return { type: 'ReplacePrefixMatch', prefix: m.path.value, replacement };
    }
    case 'ReplaceRegexMatch': {
      const { pattern, substitution } = p.replaceRegexMatch!;
      const problem = routeRegexProblem(pattern, 'g');
      if (problem) {
        errors.push({ path: `${at}.replaceRegexMatch.pattern`, message: problem });
        return undefined;
      }
      // An alternative that matches the empty string makes exec report every group.
      const groups = new RegExp(`${pattern}|`).exec('')!.length - 1;
      const sub = substitutionOf(substitution, groups, `${at}.replaceRegexMatch.substitution`, errors);
      return sub === undefined ? undefined : { type: 'ReplaceRegexMatch', pattern, substitution: sub };
    }
  }
}

/** Schema checks are memoised per admitted object: unchanged routes are not compiled again. */
const schemaChecks = new WeakMap<object, string | undefined>();

function checkSchema(schema: Record<string, unknown>): string | undefined {
  if (schemaChecks.has(schema)) return schemaChecks.get(schema);
  const problem = schemaProblem(schema);
  schemaChecks.set(schema, problem);
  return problem;
}

export function compileRuleFilters(
  rule: Rule,
  matches: readonly Omit<CompiledMatch, 'hostname'>[],
  at: string,
  problems: FilterProblems,
): { transform?: CompiledTransform; validation?: CompiledValidation } {
  const out: { transform?: CompiledTransform; validation?: CompiledValidation } = {};
  if (rule.validation) {
    const problem = checkSchema(rule.validation.jsonSchema);
    if (problem) problems.schema.push({ path: `${at}.validation.jsonSchema`, message: problem });
    else
      out.validation = { jsonSchema: canonicalJson(rule.validation.jsonSchema) as Record<string, unknown> };
  }
  const t = rule.transform;
  if (!t) return out;
  const transform: CompiledTransform = {};
  if (t.request) {
    const r = t.request;
    const request: NonNullable<CompiledTransform['request']> = {};
    if (r.headers) request.headers = headerOps(r.headers);
    if (r.urlRewrite?.hostname !== undefined) request.hostname = r.urlRewrite.hostname;
    if (r.urlRewrite?.path) {
      const path = pathRewrite(
        r.urlRewrite.path,
        matches,
        `${at}.transform.request.urlRewrite.path`,
        problems.transform,
      );
      if (path) request.path = path;
    }
    if (r.body && r.body.length > 0) request.body = r.body.map(bodyOp);
    transform.request = request;
  }
  if (t.response) {
    const r = t.response;
    const maxBodyBytes = parseByteSize(r.maxBodySize);
    if (!(maxBodyBytes > 0) || maxBodyBytes > MAX_RESPONSE_BODY) {
      problems.transform.push({
        path: `${at}.transform.response.maxBodySize`,
        message: 'must be between 1 byte and 64Mi',
      });
    }
    const response: NonNullable<CompiledTransform['response']> = { maxBodyBytes };
    if (r.headers) response.headers = headerOps(r.headers);
    if (r.body && r.body.length > 0) response.body = r.body.map(bodyOp);
    transform.response = response;
  }
  out.transform = transform;
  return out;
}
