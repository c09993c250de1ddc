/**
 * A ModelRoute after admission, with the semantic checks a schema cannot express (regular
 * expressions that compile, rule names that stay unique once defaulted) and its matches in table
 * form. Backends are resolved later, once canary rollouts have had their say on weights.
 */
import type { FieldError } from '../api/cel.ts';
import type { Match, Rule } from '../api/model-route.ts';
import type { ModelRoute } from '../api/resources.ts';
import { Reason } from '../api/status.ts';
import { anchoredSource, routeRegexProblem } from '../routing-table/route-regex.ts';
import type {
  CompiledCache,
  CompiledComposition,
  CompiledMatch,
  CompiledTransform,
  CompiledTranslation,
  CompiledValidation,
} from '../routing-table/types.ts';
import { compileCache } from './cache.ts';
import { compileComposition } from './composition.ts';
import { compileRuleFilters, type FilterProblems } from './transform.ts';
import { compileTranslation } from './translation.ts';
import { parseByteSize } from './units.ts';

/** The largest request body limit a route may set. */
const MAX_BODY_LIMIT = 16 * 1024 ** 3;

export interface RuleModel {
  index: number;
  name: string;
  /** `namespace/route/rule`. */
  id: string;
  spec: Rule;
  /** Matches without hostname; the compiler fans them out per hostname. */
  matches: Omit<CompiledMatch, 'hostname'>[];
  transform?: CompiledTransform;
  validation?: CompiledValidation;
  composition?: CompiledComposition;
  /** Without its Redis connection, which compile.ts resolves from the Secret. */
  cache?: CompiledCache;
  translation?: CompiledTranslation;
}

export interface RouteModel {
  /** `namespace/name`. */
  key: string;
  namespace: string;
  name: string;
  generation: number;
  created: string | undefined;
  /** Lower-case hosts; `['']` when the route serves any host. */
  hostnames: string[];
  maxRequestBodyBytes: number;
  accessLog: { enabled: boolean; sampleRate: number };
  compression: { enabled: boolean; minBytes: number };
  rules: RuleModel[];
  /** The admitted spec, for the sections compiled with Secrets (auth, tls, cors). */
  spec: ModelRoute['spec'];
}

/** Compiles the pattern as the proxy will (anchored: the whole value must match; linear-time: route-regex.ts). */
function checkRegex(pattern: string, path: string, errors: FieldError[]): void {
  const problem = routeRegexProblem(anchoredSource(pattern));
  if (problem) errors.push({ path, message: problem });
}

/** The schema checks an origin's shape; this checks it parses as the proxy will (host, port 1–65535). */
function checkUrl(text: string, path: string, errors: FieldError[]): void {
  let port: string;
  try {
    port = new URL(text).port;
  } catch {
    errors.push({ path, message: 'not a valid URL' });
    return;
  }
  if (port === '0') errors.push({ path, message: 'port must be between 1 and 65535' });
}

function tableMatch(m: Match, at: string, errors: FieldError[]): Omit<CompiledMatch, 'hostname'> {
  const path = { type: m.path?.type ?? 'PathPrefix', value: m.path?.value ?? '/' } as const;
  if (path.type === 'RegularExpression') checkRegex(path.value, `${at}.path.value`, errors);
  const strings = (list: Match['headers'], field: string, lower: boolean) =>
    (list ?? []).map((h, i) => {
      if (h.type === 'RegularExpression') checkRegex(h.value, `${at}.${field}[${i}].value`, errors);
      return { name: lower ? h.name.toLowerCase() : h.name, type: h.type, value: h.value };
    });
  const out: Omit<CompiledMatch, 'hostname'> = {
    rule: '',
    path: { type: path.type, value: path.type === 'PathPrefix' ? trimPrefix(path.value) : path.value },
    headers: strings(m.headers, 'headers', true),
    queryParams: strings(m.queryParams, 'queryParams', false),
  };
  if (m.method) out.method = m.method;
  if (m.model) out.model = { type: m.model.type, value: m.model.value };
  return out;
}

/** `/v1/` and `/v1` are the same segment prefix; keep one spelling so conflicts are found. */
function trimPrefix(value: string): string {
  return value.length > 1 && value.endsWith('/') ? value.replace(/\/+$/, '') || '/' : value;
}

/** metadata.generation is not schema-checked; statuses and the table need a non-negative integer. */
function validGeneration(g: unknown): number {
  return typeof g === 'number' && Number.isInteger(g) && g >= 0 ? g : 0;
}

export function buildRouteModel(
  route: ModelRoute,
): { ok: true; model: RouteModel } | { ok: false; errors: FieldError[]; reason: string } {
  const errors: FieldError[] = [];
  // Kept apart so the status can say which kind of problem keeps the route out.
  const filterProblems: FilterProblems = { transform: [], schema: [] };
  const namespace = route.metadata.namespace ?? 'default';
  const key = `${namespace}/${route.metadata.name}`;
  const names = new Map<string, number>();
  const rules: RuleModel[] = route.spec.rules.map((rule, index) => {
    const name = rule.name ?? `rule-${index}`;
    const first = names.get(name);
    if (first !== undefined) {
      // Only a defaulted name can collide here (CEL refuses two explicit equal names).
      const [named, unnamed] = rule.name === undefined ? [first, index] : [index, first];
      errors.push({
        path: `spec.rules[${named}].name`,
        message: `${name} is also the default name of the unnamed rule spec.rules[${unnamed}]; name that rule or choose another name`,
      });
    }
    names.set(name, index);
    const id = `${key}/${name}`;
    if (rule.loadBalancing?.consistentHash?.consumer && !route.spec.auth) {
      errors.push({
        path: `spec.rules[${index}].loadBalancing.consistentHash.consumer`,
        message: 'hashing on the consumer needs spec.auth (without it no request has a consumer)',
      });
    }
    rule.backends.forEach((b, bi) => {
      (b.urls ?? []).forEach((u, ui) => {
        checkUrl(u, `spec.rules[${index}].backends[${bi}].urls[${ui}]`, errors);
      });
    });
    const specMatches = rule.matches && rule.matches.length > 0 ? rule.matches : [{}];
    const matches = specMatches.map((m, i) => ({
      ...tableMatch(m, `spec.rules[${index}].matches[${i}]`, errors),
      rule: id,
    }));
    const filters = compileRuleFilters(rule, matches, `spec.rules[${index}]`, filterProblems);
    const composition = compileComposition(rule, `spec.rules[${index}]`, errors);
    const cache = compileCache(rule, `spec.rules[${index}]`, errors);
    const translation = compileTranslation(rule, `spec.rules[${index}]`, errors);
    return {
      index,
      name,
      id,
      spec: rule,
      matches,
      ...filters,
      ...(composition && { composition }),
      ...(cache && { cache }),
      ...(translation && { translation }),
    };
  });
  const maxRequestBodyBytes = parseByteSize(route.spec.maxRequestBodySize);
  if (!(maxRequestBodyBytes > 0) || maxRequestBodyBytes > MAX_BODY_LIMIT) {
    errors.push({ path: 'spec.maxRequestBodySize', message: 'must be between 1 byte and 16Gi' });
  }
  if (errors.length > 0 || filterProblems.schema.length > 0 || filterProblems.transform.length > 0) {
    // A rule that cannot validate or rewrite as asked is never served without it.
    const reason =
      errors.length > 0
        ? Reason.Invalid
        : filterProblems.schema.length > 0
          ? Reason.InvalidSchema
          : Reason.InvalidTransform;
    return { ok: false, errors: [...errors, ...filterProblems.schema, ...filterProblems.transform], reason };
  }
  const hostnames =
    route.spec.hostnames && route.spec.hostnames.length > 0
      ? [...new Set(route.spec.hostnames)].sort()
      : [''];
  return {
    ok: true,
    model: {
      key,
      namespace,
      name: route.metadata.name,
      generation: validGeneration(route.metadata.generation),
      created: route.metadata.creationTimestamp,
      hostnames,
      maxRequestBodyBytes,
      accessLog: { enabled: route.spec.accessLog.enabled, sampleRate: route.spec.accessLog.sampleRate },
      compression: { enabled: route.spec.compression.enabled, minBytes: route.spec.compression.minBytes },
      rules,
      spec: route.spec,
    },
  };
}
