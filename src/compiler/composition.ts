/**
 * A rule's `composition` in table form, with the checks its schema cannot express: a `$<step>`
 * source names an earlier step of the pipeline (a fan-out's branches run at once, so they can only
 * read the client's request), steps call backends that speak JSON over HTTP (not gRPC), and the
 * response bound is within limits. That steps name backends of the rule is a CEL rule
 * (model-route.ts), so the API server refuses it too.
 *
 * A plain pointer source reads the previous step's answer; the compiler resolves "previous" to a
 * step name (or to the client's request, for the first step and for branches), so the proxy never
 * has to.
 */
import type { FieldError } from '../api/cel.ts';
import type { FieldMapping, PipelineStep } from '../api/composition.ts';
import type { Rule } from '../api/model-route.ts';
import type { CompiledComposition, CompiledMapping, CompiledStep } from '../routing-table/types.ts';
import { canonicalJson, parsePointer } from './transform.ts';
import { parseByteSize, parseDurationMs } from './units.ts';

/** The most a step's answer may be held in memory. */
const MAX_RESPONSE_BODY = 64 * 1024 ** 2;

/** `$request/model` → request, `/model`; `$tokenize/ids` → tokenize, `/ids`; `/x` → undefined, `/x`. */
function splitSource(from: string): { ref: string | undefined; pointer: string } {
  if (!from.startsWith('$')) return { ref: undefined, pointer: from };
  const slash = from.indexOf('/');
  return slash < 0
    ? { ref: from.slice(1), pointer: '' }
    : { ref: from.slice(1, slash), pointer: from.slice(slash) };
}

function mapping(
  m: FieldMapping,
  previous: string | undefined,
  earlier: ReadonlySet<string>,
  fanOut: boolean,
  at: string,
  errors: FieldError[],
): CompiledMapping {
  const to = parsePointer(m.to);
  if (m.from === undefined) return { value: canonicalJson(m.value), to };
  const { ref, pointer } = splitSource(m.from);
  const path = parsePointer(pointer);
  if (ref === undefined) return { from: previous === undefined ? { path } : { step: previous, path }, to };
  if (ref === 'request') return { from: { path }, to };
  if (!earlier.has(ref)) {
    errors.push({
      path: `${at}.from`,
      message: fanOut
        ? `$${ref}: fan-out branches run at once and can read only $request`
        : `$${ref} is not an earlier step of this pipeline`,
    });
  }
  return { from: { step: ref, path }, to };
}

export function compileComposition(
  rule: Rule,
  at: string,
  errors: FieldError[],
): CompiledComposition | undefined {
  const c = rule.composition;
  if (!c) return undefined;
  const maxResponseBytes = parseByteSize(c.maxResponseSize);
  if (!(maxResponseBytes > 0) || maxResponseBytes > MAX_RESPONSE_BODY) {
    errors.push({ path: `${at}.composition.maxResponseSize`, message: 'must be between 1 byte and 64Mi' });
  }
  const fanOut = c.fanOut !== undefined;
  const list: PipelineStep[] = c.pipeline?.steps ?? c.fanOut?.branches ?? [];
  const where = fanOut ? `${at}.composition.fanOut.branches` : `${at}.composition.pipeline.steps`;
  const protocols = new Map(rule.backends.map((b) => [b.name, b.protocol]));
  const earlier = new Set<string>();
  let previous: string | undefined;
  const steps = list.map((s, i): CompiledStep => {
    const stepAt = `${where}[${i}]`;
    if (s.name === 'request') {
      errors.push({
        path: `${stepAt}.name`,
        message: 'request is reserved: $request names the client request',
      });
    }
    if (protocols.get(s.backend) === 'GRPC') {
      errors.push({
        path: `${stepAt}.backend`,
        message: `backend ${s.backend} speaks gRPC; steps send and read JSON over HTTP`,
      });
    }
    const out: CompiledStep = { name: s.name, backend: s.backend, method: s.method };
    if (s.path !== undefined) out.path = s.path;
    if (s.timeout !== undefined) out.timeoutMs = parseDurationMs(s.timeout);
    if (s.request) {
      out.request = s.request.map((m, mi) =>
        mapping(m, fanOut ? undefined : previous, earlier, fanOut, `${stepAt}.request[${mi}]`, errors),
      );
    }
    if (!fanOut) {
      earlier.add(s.name);
      previous = s.name;
    }
    return out;
  });
  const out: CompiledComposition = { kind: fanOut ? 'FanOut' : 'Pipeline', steps, maxResponseBytes };
  if (c.fanOut) {
    out.onPartialFailure = c.fanOut.onPartialFailure;
    if (c.fanOut.timeout !== undefined) out.timeoutMs = parseDurationMs(c.fanOut.timeout);
  }
  return out;
}
