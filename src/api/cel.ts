/**
 * Evaluates the schema's `x-kubernetes-validations` rules the way the API server does: after
 * defaulting, with `self` bound to the object the rule is attached to. `modelgate validate` and the
 * compiler use this, so files users never `kubectl apply` get the same checks as cluster users.
 */
import { celEnv, isCelError, parse, plan } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import type { TSchema } from '@sinclair/typebox';
import type { CelRule } from './schema-helpers.ts';

export interface FieldError {
  /** Dotted path such as `spec.rules[0].backends[1].weight`. */
  path: string;
  message: string;
}

type Program = (bindings: { self: unknown }) => unknown;

const env = celEnv({ funcs: strings });
const programs = new Map<string, Program>();

function program(rule: string): Program {
  let p = programs.get(rule);
  if (!p) {
    p = plan(env, parse(rule)) as unknown as Program;
    programs.set(rule, p);
  }
  return p;
}

/** Throws when a rule does not parse; the CRD tests run this over every rule in the schemas. */
export function compileRule(rule: string): void {
  program(rule);
}

/**
 * Converts a JSON value to CEL's runtime shape, guided by the schema: integers become `int`
 * (bigint), objects become maps, so `has()` and arithmetic behave as in the API server.
 */
export function toCelValue(schema: TSchema, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (schema.type === 'integer' && typeof value === 'number') return BigInt(Math.trunc(value));
  if (schema.type === 'array' && Array.isArray(value)) {
    const items = schema.items as TSchema;
    return value.map((v) => toCelValue(items, v));
  }
  if (schema.type === 'object' && typeof value === 'object' && !Array.isArray(value)) {
    const props = (schema.properties ?? {}) as Record<string, TSchema>;
    const m = new Map<string, unknown>();
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const ps = props[k];
      m.set(k, ps ? toCelValue(ps, v) : v);
    }
    return m;
  }
  return value;
}

function rulesOf(schema: TSchema): CelRule[] {
  return (schema['x-kubernetes-validations'] as CelRule[] | undefined) ?? [];
}

/** Walks `value` along `schema` and evaluates every rule on the way; returns the violations. */
export function evaluateRules(
  schema: TSchema,
  value: unknown,
  path: string,
  out: FieldError[] = [],
): FieldError[] {
  if (value === null || value === undefined) return out;
  if (schema.type === 'array' && Array.isArray(value)) {
    const items = schema.items as TSchema;
    value.forEach((v, i) => {
      evaluateRules(items, v, `${path}[${i}]`, out);
    });
  } else if (schema.type === 'object' && typeof value === 'object') {
    const props = (schema.properties ?? {}) as Record<string, TSchema>;
    for (const [k, ps] of Object.entries(props)) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) evaluateRules(ps, v, path ? `${path}.${k}` : k, out);
    }
  }
  const rules = rulesOf(schema);
  if (rules.length === 0) return out;
  const self = toCelValue(schema, value);
  for (const r of rules) {
    const result = program(r.rule)({ self });
    const at = r.fieldPath ? `${path}${r.fieldPath}` : path;
    if (isCelError(result))
      out.push({ path: at, message: `rule could not be evaluated (${result.message}): ${r.message}` });
    else if (result !== true) out.push({ path: at, message: r.message });
  }
  return out;
}

/** Every rule in a schema with the path of the node it is attached to (for tests and docs). */
export function collectRules(schema: TSchema, path = ''): { path: string; schema: TSchema; rule: CelRule }[] {
  const found: { path: string; schema: TSchema; rule: CelRule }[] = [];
  for (const rule of rulesOf(schema)) found.push({ path, schema, rule });
  if (schema.type === 'array') found.push(...collectRules(schema.items as TSchema, `${path}[]`));
  if (schema.type === 'object') {
    for (const [k, ps] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) {
      found.push(...collectRules(ps, path ? `${path}.${k}` : k));
    }
  }
  return found;
}
