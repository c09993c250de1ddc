/**
 * Admission inside the compiler: every custom resource from a source is checked again (schema with
 * defaults, then CEL), because files have no API server in front of them and a bad object must be
 * reported, never trusted. Results are memoised per object identity: sources hand the same object
 * back while it is unchanged, so an endpoint change does not re-validate 10,000 routes.
 */
import type { FieldError } from '../api/cel.ts';
import type { CustomResource } from '../api/resources.ts';
import { admitCustomResource } from '../api/validate.ts';

type Admission = { ok: true; resource: CustomResource } | { ok: false; errors: FieldError[] };

const memo = new WeakMap<object, Admission>();

/**
 * Admits `raw`, as a `kind` when given: an object of another kind in a state's list (a source's
 * mistake, or a hand-built state) is rejected, never read with the wrong shape.
 */
export function admit(raw: unknown, kind?: CustomResource['kind']): Admission {
  if (typeof raw !== 'object' || raw === null) return admitCustomResource(raw);
  const actual = (raw as { kind?: unknown }).kind;
  if (kind !== undefined && actual !== kind) {
    return { ok: false, errors: [{ path: 'kind', message: `must be ${kind}, not ${String(actual)}` }] };
  }
  let result = memo.get(raw);
  if (!result) {
    result = admitCustomResource(raw);
    memo.set(raw, result);
  }
  return result;
}

/** One line per error, as status messages show them. */
export function describeErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; ');
}

/** The identity of a possibly malformed object, for its status. */
export function identify(
  raw: unknown,
  fallbackIndex: number,
): { namespace: string; name: string; generation: number } {
  const meta = (
    typeof raw === 'object' && raw !== null ? (raw as { metadata?: unknown }).metadata : undefined
  ) as { name?: unknown; namespace?: unknown; generation?: unknown } | undefined;
  const name = typeof meta?.name === 'string' && meta.name !== '' ? meta.name : `<unnamed-${fallbackIndex}>`;
  const namespace = typeof meta?.namespace === 'string' && meta.namespace !== '' ? meta.namespace : 'default';
  const generation =
    typeof meta?.generation === 'number' && Number.isInteger(meta.generation) && meta.generation >= 0
      ? meta.generation
      : 0;
  return { namespace, name, generation };
}
