/**
 * The OTLP/JSON shape of an ExportTraceServiceRequest (opentelemetry-proto, "JSON Protobuf
 * Encoding"): the protobuf JSON mapping with field names in lowerCamelCase, trace and span ids as
 * hex strings (not base64 as plain proto3 JSON would have them), enums as integers, and 64-bit
 * integers (times, intValue) as decimal strings so no precision is lost in JavaScript.
 */

export type AttributeValue = string | number | boolean;

export type OtlpAnyValue =
  | { stringValue: string }
  | { boolValue: boolean }
  | { intValue: string }
  | { doubleValue: number };

export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}

/** Span.SpanKind */
export const SPAN_KIND_SERVER = 2;
export const SPAN_KIND_CLIENT = 3;

/** Status.StatusCode */
export const STATUS_UNSET = 0;
export const STATUS_OK = 1;
export const STATUS_ERROR = 2;

/** Span.flags bits 8 and 9 (SpanFlags): whether the parent's remoteness is known, and is remote. */
export const SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE = 0x100;
export const SPAN_FLAGS_CONTEXT_IS_REMOTE = 0x200;

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  /** Omitted for a root span. */
  parentSpanId?: string;
  /** W3C trace flags in bits 0-7, SpanFlags in 8-9. */
  flags: number;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: OtlpKeyValue[];
  /** Omitted when unset. */
  status?: { code: number; message?: string };
}

export interface OtlpResource {
  attributes: OtlpKeyValue[];
}

export interface OtlpScope {
  name: string;
  version?: string;
}

export interface ExportTraceServiceRequest {
  resourceSpans: {
    resource: OtlpResource;
    scopeSpans: { scope: OtlpScope; spans: OtlpSpan[] }[];
  }[];
}

/** One attribute: integers become intValue (a string, per the int64 mapping), other numbers doubleValue. */
export function keyValue(key: string, value: AttributeValue): OtlpKeyValue {
  switch (typeof value) {
    case 'string':
      return { key, value: { stringValue: value } };
    case 'boolean':
      return { key, value: { boolValue: value } };
    default:
      if (Number.isSafeInteger(value)) return { key, value: { intValue: String(value) } };
      // JSON has no NaN or Infinity (JSON.stringify would write null, which a collector rejects).
      if (!Number.isFinite(value)) return { key, value: { stringValue: String(value) } };
      return { key, value: { doubleValue: value } };
  }
}

/** The request body for one batch: one resource (this process) and one scope (the proxy). */
export function encodeTraces(resource: OtlpResource, scope: OtlpScope, spans: OtlpSpan[]): string {
  const request: ExportTraceServiceRequest = {
    resourceSpans: [{ resource, scopeSpans: [{ scope, spans }] }],
  };
  return JSON.stringify(request);
}
