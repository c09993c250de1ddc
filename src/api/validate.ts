/**
 * Admission for ModelGate resources outside the API server: metadata checks, the JSON schema
 * (with defaults applied, as the API server does), then the CEL rules. Returns the defaulted
 * object or the field errors; never throws on bad input.
 */
import type { TSchema } from '@sinclair/typebox';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { ajv } from './ajv.ts';
import { evaluateRules, type FieldError } from './cel.ts';
import {
  API_VERSION,
  type CustomResource,
  RESOURCES,
  type ResourceDefinition,
  resourceDefinition,
} from './resources.ts';

export type { FieldError } from './cel.ts';

const specValidators = new Map<string, ValidateFunction>();
for (const r of RESOURCES) specValidators.set(r.kind, ajv.compile(r.spec));

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const FRIENDLY_PATTERNS: Record<string, string> = {
  '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$': 'must be a duration such as 500ms, 2s, 5m or 1h30m',
  '^[0-9]+(Ki|Mi|Gi|k|M|G)?$': 'must be a byte size such as 512Ki, 64Mi or 1048576',
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$': 'must be a lowercase DNS label (a-z, 0-9, -)',
  '^https?://[^/?#@\\s]+/?$': 'must be an http:// or https:// origin without a path or credentials',
};

/** `/rules/0/backends` → `spec.rules[0].backends` */
export function pointerToPath(prefix: string, pointer: string): string {
  let out = prefix;
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  }
  return out;
}

export function describeAjvError(prefix: string, e: ErrorObject): FieldError {
  const path = pointerToPath(prefix, e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties':
      return { path: `${path}.${String(e.params.additionalProperty)}`, message: 'unknown field' };
    case 'required':
      return { path: `${path}.${String(e.params.missingProperty)}`, message: 'required field is missing' };
    case 'enum':
      return { path, message: `must be one of: ${(e.params.allowedValues as string[]).join(', ')}` };
    case 'x-kubernetes-list-type':
      return { path: `${path}[${String(e.params.index)}]`, message: e.message ?? 'duplicate' };
    case 'pattern':
      return {
        path,
        message: FRIENDLY_PATTERNS[String(e.params.pattern)] ?? `must match ${String(e.params.pattern)}`,
      };
    default:
      return { path, message: e.message ?? e.keyword };
  }
}

export interface Admitted<T> {
  ok: true;
  resource: T;
}
export interface Rejected {
  ok: false;
  errors: FieldError[];
}

/** Checks a ModelGate custom resource and returns a defaulted deep copy. */
export function admitCustomResource(raw: unknown): Admitted<CustomResource> | Rejected {
  const errors: FieldError[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, errors: [{ path: '', message: 'a resource must be a YAML mapping' }] };
  }
  const obj = raw as Record<string, unknown>;
  const def = resourceDefinition(String(obj.kind));
  if (!def) return { ok: false, errors: [{ path: 'kind', message: `unknown kind ${String(obj.kind)}` }] };
  if (obj.apiVersion !== API_VERSION) {
    errors.push({ path: 'apiVersion', message: `must be ${API_VERSION}` });
  }
  errors.push(...checkMetadata(obj.metadata));
  const copy = plainCopy(obj);
  if (!copy) return { ok: false, errors: [{ path: '', message: 'a resource must be plain JSON data' }] };
  errors.push(...checkSpec(def, copy));
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, resource: copy as unknown as CustomResource };
}

export function checkMetadata(meta: unknown): FieldError[] {
  if (typeof meta !== 'object' || meta === null)
    return [{ path: 'metadata', message: 'required field is missing' }];
  const m = meta as Record<string, unknown>;
  const out: FieldError[] = [];
  if (typeof m.name !== 'string' || m.name.length > 253 || !NAME.test(m.name)) {
    out.push({
      path: 'metadata.name',
      message: 'must be a lowercase DNS subdomain of at most 253 characters',
    });
  }
  if (
    m.namespace !== undefined &&
    (typeof m.namespace !== 'string' || m.namespace.length > 63 || !NAMESPACE.test(m.namespace))
  ) {
    out.push({
      path: 'metadata.namespace',
      message: 'must be a lowercase DNS label of at most 63 characters',
    });
  }
  return out;
}

function checkSpec(def: ResourceDefinition, obj: Record<string, unknown>): FieldError[] {
  if (obj.spec === undefined) return [{ path: 'spec', message: 'required field is missing' }];
  const validate = specValidators.get(def.kind)!;
  if (!validate(obj.spec)) {
    return (validate.errors ?? []).map((e) => describeAjvError('spec', e));
  }
  // CEL runs only on schema-valid, defaulted input, as in the API server.
  return evaluateRules(def.spec as TSchema, obj.spec, 'spec');
}

/** A JSON round trip: the cheapest deep copy of manifest data (faster than structuredClone). */
function plainCopy(obj: Record<string, unknown>): Record<string, unknown> | undefined {
  try {
    return JSON.parse(JSON.stringify(obj)) as Record<string, unknown>;
  } catch {
    return undefined; // BigInt or a cycle: nothing a YAML or JSON manifest can contain
  }
}
