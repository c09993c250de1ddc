/**
 * A composed rule in table form (CompiledRule.composition): a pipeline or a fan-out over backends
 * of the rule. Plain data, like the rest of the table; kept in its own file because it is a
 * concern of its own. JSON Pointers are split into unescaped tokens (`[]` is the whole document).
 */

/** Where a mapped value is read: the client's request body, or the answer of a named step. */
export interface CompiledMappingSource {
  /**
   * Name of the pipeline step whose answer is read; absent: the client's request body (after the
   * rule's request transform).
   */
  step?: string;
  /** JSON Pointer tokens into that document. */
  path: string[];
}

/** One value put into a step's body: read from `from`, or the constant `value`. */
export interface CompiledMapping {
  from?: CompiledMappingSource;
  /** A constant (keys sorted), when there is no `from`. */
  value?: unknown;
  /** JSON Pointer tokens in the body being built; `[]` replaces the whole body. */
  to: string[];
}

export interface CompiledStep {
  /** Unique in the composition; a fan-out's member name. */
  name: string;
  /** Name of a backend of the rule. */
  backend: string;
  /** Upstream path with an optional query; absent: the client's path (after urlRewrite) and query. */
  path?: string;
  method: 'POST' | 'PUT' | 'PATCH';
  /** Whole-step deadline in milliseconds, retries included; absent: only the rule's timeouts. */
  timeoutMs?: number;
  /**
   * Builds the body from {} in order. Absent: a pipeline step sends the previous step's answer
   * (the first step, and every fan-out branch: the client's body as sent).
   */
  request?: CompiledMapping[];
}

export interface CompiledComposition {
  kind: 'Pipeline' | 'FanOut';
  /** Pipeline steps in order, or fan-out branches in merge order. */
  steps: CompiledStep[];
  /** Fan-out only: what a failed branch does to the answer. */
  onPartialFailure?: 'Fail' | 'Omit' | 'SetNull';
  /** Fan-out only: deadline of the whole fan-out, in milliseconds. */
  timeoutMs?: number;
  /** Largest answer read into memory from an intermediate step or a branch, in bytes. */
  maxResponseBytes: number;
}
