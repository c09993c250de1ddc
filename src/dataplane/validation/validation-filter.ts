/**
 * The validation filter (see filters/filter.ts): the request body must satisfy the rule's JSON
 * Schema. It runs after authentication and before rate limiting (proxy.ts): it sees the body the
 * client sent (before a token limit adds `stream_options`, before any transform), and a request
 * it refuses spends no quota and takes no queue place. The body is forwarded unchanged.
 *
 * Refusals, all 400 with the gateway's JSON error body:
 * - MG_REQUEST_NOT_JSON: no body (a WebSocket upgrade has none either), not UTF-8, not JSON;
 * - MG_REQUEST_INVALID: the schema fails (the message names the JSON Pointer and the reason), or
 *   an object has a duplicate key (duplicate-keys.ts);
 * - MG_BAD_CONTENT_ENCODING / MG_BODY_TOO_LARGE: a compressed body that does not decode, or
 *   decodes past the route's body limit (gzip, deflate and br are decoded to be checked).
 *
 * Schemas are compiled at table build, once per distinct schema: a validator is reused from the
 * previous table when the schema is unchanged (an endpoint change does not recompile any), and a
 * schema that does not compile refuses the table (the compiler has already checked it).
 */
import type { ProxyMetrics } from '../../observability/proxy-metrics.ts';
import { compileRequestSchema, type ValidateFunction } from '../../routing-table/json-schema.ts';
import type { CompiledRule, RoutingTable } from '../../routing-table/types.ts';
import { type ErrorDefinition, Errors } from '../errors.ts';
import type { Filter, FilterContext, FilterFactory, FilterOutcome } from '../filters/filter.ts';
import { decodeContent } from '../request/model-field.ts';
import { jsonText } from '../transform/json-text.ts';
import { hasDuplicateKeys } from './duplicate-keys.ts';
import { describeValidationErrors } from './error-message.ts';

export type ValidationFailure = 'schema' | 'not_json' | 'duplicate_keys' | 'no_body' | 'encoding';

export class ValidationFilterFactory implements FilterFactory {
  readonly name = 'validation';
  private readonly metrics: ProxyMetrics;
  /** Validators by schema JSON: of the table being built, and of the tables before it. */
  private current = new Map<string, ValidateFunction>();
  private previous = new Map<string, ValidateFunction>();
  private builtFor: RoutingTable | undefined;

  constructor(metrics: ProxyMetrics) {
    this.metrics = metrics;
  }

  build(rule: CompiledRule, table: RoutingTable): Filter | undefined {
    const v = rule.validation;
    if (!v) return undefined;
    if (table !== this.builtFor) {
      this.builtFor = table;
      this.previous = new Map([...this.previous, ...this.current]);
      this.current = new Map();
    }
    const key = JSON.stringify(v.jsonSchema);
    let validate = this.current.get(key) ?? this.previous.get(key);
    if (!validate) {
      try {
        validate = compileRequestSchema(v.jsonSchema);
      } catch (e) {
        throw new Error(`rule ${rule.id}: the validation schema does not compile: ${(e as Error).message}`);
      }
    }
    this.current.set(key, validate);
    return new ValidationFilter(rule, validate, this.metrics);
  }

  /** Validators of schemas the table in service does not use are dropped. */
  applied(): void {
    this.previous = new Map();
  }

  /** Compiled validators kept (for tests). */
  get cached(): number {
    return new Set([...this.previous.keys(), ...this.current.keys()]).size;
  }
}

class ValidationFilter implements Filter {
  readonly name = 'validation';
  readonly readsBody = true;
  private readonly validate: ValidateFunction;
  private readonly maxBytes: number;
  private readonly route: string;
  private readonly metrics: ProxyMetrics;

  constructor(rule: CompiledRule, validate: ValidateFunction, metrics: ProxyMetrics) {
    this.validate = validate;
    this.maxBytes = rule.maxRequestBodyBytes;
    this.route = rule.route;
    this.metrics = metrics;
  }

  private refuse(reason: ValidationFailure, error: ErrorDefinition, message?: string): FilterOutcome {
    this.metrics.validationFailures.child([this.route, reason]).value++;
    return message === undefined ? { error } : { error, message };
  }

  onRequest(ctx: FilterContext): FilterOutcome {
    const body = ctx.body;
    if (body === undefined || body.length === 0) {
      return this.refuse('no_body', Errors.RequestNotJson, 'this route requires a JSON request body');
    }
    const decoded = decodeContent([body], ctx.req.headers['content-encoding'], this.maxBytes);
    if (decoded.kind === 'too-large') return { error: Errors.BodyTooLarge };
    if (decoded.kind === 'bad-encoding') return this.refuse('encoding', Errors.BadContentEncoding);
    const text = jsonText(decoded.body);
    if (text === undefined) {
      return this.refuse('not_json', Errors.RequestNotJson, 'the request body is not valid UTF-8');
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      // V8 quotes a little of the text around the error; that is the client's own input.
      const reason = (e as Error).message;
      return this.refuse(
        'not_json',
        Errors.RequestNotJson,
        `the request body is not valid JSON: ${reason.length > 200 ? `${reason.slice(0, 200)}…` : reason}`,
      );
    }
    if (hasDuplicateKeys(text, value)) {
      return this.refuse(
        'duplicate_keys',
        Errors.RequestInvalid,
        'the request body has an object with the same key twice; JSON parsers disagree on which value counts',
      );
    }
    if (this.validate(value)) return undefined;
    return this.refuse('schema', Errors.RequestInvalid, describeValidationErrors(this.validate.errors));
  }
}
