/**
 * The JSON Schema dialect of request validation (`CompiledRule.validation`): which drafts, which
 * Ajv options. The compiler checks a route's schema with `schemaProblem` and the proxy compiles it
 * with `compileRequestSchema`, so both read a schema alike; it lives beside the table types
 * because it is part of what the table means.
 *
 * - Drafts: draft-07 by default; `$schema` may name draft-07, 2019-09 or 2020-12 (Ajv cannot mix
 *   2020-12 with older drafts in one instance, so the dialect picks the class). Anything else is
 *   refused.
 * - Formats: ajv-formats' full set (email, uri, date-time, uuid, ...). An unknown format or an
 *   unknown keyword is an error, not ignored: a typo such as `requried` must not silently accept
 *   every body. `example` (OpenAPI's annotation) is allowed.
 * - The data is never changed (no defaults, no coercion, no removal): the upstream receives the
 *   bytes the client sent, so what was validated is what is forwarded.
 * - First error only (`allErrors: false`): collecting every error lets a crafted body make the
 *   validator allocate without bound (why fastify turned it off too).
 * - One Ajv instance per schema: a schema's `$id` can neither clash with another route's nor be
 *   `$ref`erenced by it. Remote `$ref`s are never fetched; a schema that needs one does not compile.
 * - Bounded: at most 64 KiB of JSON and 32 levels deep, since Ajv's compiler recurses and a proxy
 *   must never overflow its stack building a table.
 *
 * Cost: compiling costs about 0.5 ms per schema (the proxy skips the meta-schema check, which the
 * compiler has done; a fresh instance that ran it would cost 7 ms); validating an OpenAI-style
 * chat request about 1 µs beyond the JSON.parse.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

export type { ErrorObject, ValidateFunction };

export const MAX_SCHEMA_BYTES = 64 * 1024;
export const MAX_SCHEMA_DEPTH = 32;

const DRAFT_07 = 'http://json-schema.org/draft-07/schema';
const DRAFT_2019 = 'https://json-schema.org/draft/2019-09/schema';
const DRAFT_2020 = 'https://json-schema.org/draft/2020-12/schema';

type Dialect = 'draft-07' | '2019-09' | '2020-12';

const OPTIONS: Options = {
  allErrors: false,
  useDefaults: false,
  coerceTypes: false,
  removeAdditional: false,
  strictSchema: true,
  strictNumbers: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
};

// ajv-formats is CommonJS with `exports.default`; node's ESM loader hands over module.exports.
type FormatsPlugin = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: FormatsPlugin }).default ??
  addFormatsModule) as unknown as FormatsPlugin;

function dialectOf(schema: Record<string, unknown>): Dialect | string {
  const declared = schema.$schema;
  if (declared === undefined) return 'draft-07';
  if (typeof declared !== 'string') return 'the $schema keyword must be a string';
  const uri = declared.replace(/#$/, '');
  if (uri === DRAFT_07) return 'draft-07';
  if (uri === DRAFT_2019) return '2019-09';
  if (uri === DRAFT_2020) return '2020-12';
  return `$schema ${declared} is not supported (use draft-07, 2019-09 or 2020-12)`;
}

function isDialect(d: string): d is Dialect {
  return d === 'draft-07' || d === '2019-09' || d === '2020-12';
}

function newAjv(dialect: Dialect, validateSchema: boolean): Ajv {
  const opts = { ...OPTIONS, validateSchema };
  const ajv =
    dialect === '2020-12'
      ? (new Ajv2020(opts) as unknown as Ajv)
      : dialect === '2019-09'
        ? (new Ajv2019(opts) as unknown as Ajv)
        : new Ajv(opts);
  addFormats(ajv);
  ajv.addKeyword({ keyword: 'example' });
  return ajv;
}

/** One instance per dialect that only checks schemas against the meta-schema (never compiles them). */
const metaCheckers = new Map<Dialect, Ajv>();

function metaChecker(dialect: Dialect): Ajv {
  let ajv = metaCheckers.get(dialect);
  if (!ajv) {
    ajv = newAjv(dialect, true);
    metaCheckers.set(dialect, ajv);
  }
  return ajv;
}

function depthOf(value: unknown, limit: number, depth = 0): number {
  if (depth > limit || value === null || typeof value !== 'object') return depth;
  let max = depth;
  for (const v of Array.isArray(value) ? value : Object.values(value)) {
    max = Math.max(max, depthOf(v, limit, depth + 1));
    if (max > limit) break;
  }
  return max;
}

/** V8 and Ajv messages can quote the whole schema; a status message needs the reason only. */
function short(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/** Why `schema` cannot be used for validation, or undefined when it compiles. For the compiler. */
export function schemaProblem(schema: Record<string, unknown>): string | undefined {
  const bytes = Buffer.byteLength(JSON.stringify(schema));
  if (bytes > MAX_SCHEMA_BYTES) return `the schema is ${bytes} bytes of JSON; at most ${MAX_SCHEMA_BYTES}`;
  if (depthOf(schema, MAX_SCHEMA_DEPTH) > MAX_SCHEMA_DEPTH)
    return `the schema nests deeper than ${MAX_SCHEMA_DEPTH} levels`;
  const dialect = dialectOf(schema);
  if (!isDialect(dialect)) return dialect;
  const meta = metaChecker(dialect);
  if (!meta.validateSchema(schema)) {
    return short(`not a valid ${dialect} schema: ${meta.errorsText(meta.errors, { dataVar: 'schema' })}`);
  }
  try {
    compileRequestSchema(schema);
  } catch (e) {
    return short((e as Error).message);
  }
  return undefined;
}

/**
 * The validator of a schema the compiler accepted. Throws when it does not compile (a table from
 * a compiler of another version, say). For the proxy, once per distinct schema.
 */
export function compileRequestSchema(schema: Record<string, unknown>): ValidateFunction {
  const dialect = dialectOf(schema);
  if (!isDialect(dialect)) throw new Error(dialect);
  return newAjv(dialect, false).compile(schema);
}
