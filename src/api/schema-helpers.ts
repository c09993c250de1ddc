/**
 * Small builders on top of TypeBox that keep every schema structural (as Kubernetes requires for
 * CRDs) and CEL-cost-bounded: every string has a maxLength and every list a maxItems, so the API
 * server can estimate the cost of the `x-kubernetes-validations` rules that touch them.
 */
import { type SchemaOptions, type TSchema, type TUnsafe, Type } from '@sinclair/typebox';

/** One CEL rule as the API server expects it under `x-kubernetes-validations`. */
export interface CelRule {
  rule: string;
  message: string;
  /** Field path reported with the error, relative to the object the rule is attached to. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** A string enum written as `{type: string, enum: [...]}`, not TypeBox's anyOf of literals. */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/** A bounded string. */
export function Str(maxLength: number, options: SchemaOptions = {}) {
  return Type.String({ maxLength, ...options });
}

/** A bounded list. */
export function List<T extends TSchema>(items: T, maxItems: number, options: SchemaOptions = {}) {
  return Type.Array(items, { maxItems, ...options });
}

/** Attach CEL rules to a schema. */
export function cel(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/**
 * A Go-style duration: `500ms`, `2s`, `5m`, `1h30m`. Kubernetes users know this shape from every
 * built-in resource, and CEL's `duration()` parses it.
 */
export const Duration = (description: string, options: SchemaOptions = {}) =>
  Type.String({
    maxLength: 32,
    pattern: '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$',
    description,
    ...options,
  });

/** A byte size as a Kubernetes quantity (binary or decimal suffix): `64Mi`, `512Ki`, `10M`, `1048576`. */
export const ByteSize = (description: string, options: SchemaOptions = {}) =>
  Type.String({ maxLength: 16, pattern: '^[0-9]+(Ki|Mi|Gi|k|M|G)?$', description, ...options });

/** A DNS-1123 label, the shape of Kubernetes object and port names. */
export const DnsLabel = (description: string, options: SchemaOptions = {}) =>
  Type.String({
    minLength: 1,
    maxLength: 63,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
    description,
    ...options,
  });

/** A DNS-1123 subdomain, the shape of most Kubernetes object names. */
export const ObjectName = (description: string, options: SchemaOptions = {}) =>
  Type.String({
    minLength: 1,
    maxLength: 253,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
    description,
    ...options,
  });

/** An HTTP header name (RFC 9110 token). */
export const HeaderName = (description: string) =>
  Type.String({ minLength: 1, maxLength: 256, pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", description });
