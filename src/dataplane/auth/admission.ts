/**
 * Admission before the body: who may make the gateway read a request body it needs to route.
 *
 * A route that matches on the model finds it in the body (when no `x-model` header names it), so
 * the body is read before the rule, and with it the rule's authentication, is known. Reading first
 * would let anyone make the gateway buffer and parse a body up to the route's limit (64 MiB by
 * default, for multimodal prompts) before answering 401. Instead the proxy asks the router which
 * rules the body could select (Router.candidates) and checks the caller against each:
 *
 * - candidates with the same authentication settings (commonly: one route) are authenticated once;
 *   each candidate then authorizes the outcome as its filter would;
 * - the body is read only when some candidate admits the caller, and only up to the largest
 *   limit among those that do. A candidate without authentication admits everyone: beside a
 *   public rule an anonymous caller may send what that rule accepts, which it could send to it
 *   anyway by naming its model;
 * - when none admits the caller, the first candidate's refusal (401/403/503, counted as its filter
 *   counts it) answers, without a byte of the body read. When the body would have named a model
 *   nobody routes, that is a 401 where it used to be a 404: a caller without credentials learns
 *   nothing about which models exist.
 *
 * Rejected alternatives: scanning only a prefix of the body for the model cannot work, because a
 * body naming `model` twice must be refused (model-field.ts) and that takes the whole body; a
 * fixed, smaller pre-authentication cap would refuse legitimate large requests of callers whose
 * credentials are valid. The outcome is handed to the chosen rule's auth filter
 * (FilterContext.authenticated), so an admitted request is not authenticated twice.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { AuthGate, Rejection } from '../filters/filter.ts';
import type { AuthenticationOutcome } from './route-authenticator.ts';

export interface Candidate {
  /** The rule's auth gate; undefined for a rule without authentication. */
  readonly gate: AuthGate | undefined;
  /** The rule's maxRequestBodyBytes. */
  readonly limit: number;
}

export type Admission =
  | {
      ok: true;
      /** The most the body may be: the largest limit of the candidates that admit the caller. */
      limit: number;
      /** Authentication outcomes by gate key (undefined when no candidate has authentication). */
      outcomes: Map<string, AuthenticationOutcome> | undefined;
    }
  | { ok: false; rejection: Rejection };

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown } | null)?.then === 'function';
}

/** Checks the caller against `candidates` (in precedence order, at least one). */
export function admit(
  candidates: readonly Candidate[],
  headers: IncomingHttpHeaders,
): Admission | Promise<Admission> {
  let pending: Map<string, AuthenticationOutcome | Promise<AuthenticationOutcome>> | undefined;
  let async = false;
  for (const c of candidates) {
    if (c.gate === undefined) continue;
    pending ??= new Map();
    if (pending.has(c.gate.key)) continue;
    const o = c.gate.authenticate(headers);
    if (isPromise(o)) async = true;
    pending.set(c.gate.key, o);
  }
  if (pending === undefined) return decide(candidates, undefined);
  if (!async) return decide(candidates, pending as Map<string, AuthenticationOutcome>);
  const keys = [...pending.keys()];
  return Promise.all(pending.values()).then((settled) =>
    decide(candidates, new Map(keys.map((k, i) => [k, settled[i]!]))),
  );
}

function decide(
  candidates: readonly Candidate[],
  outcomes: Map<string, AuthenticationOutcome> | undefined,
): Admission {
  let limit = -1;
  for (const c of candidates) {
    if (c.limit <= limit) continue;
    if (c.gate === undefined || c.gate.admits(outcomes!.get(c.gate.key)!)) limit = c.limit;
  }
  if (limit >= 0) return { ok: true, limit, outcomes };
  // Nobody admits the caller: every candidate has a gate (one without admits everyone).
  const first = candidates[0]!.gate!;
  return { ok: false, rejection: first.refuse(outcomes!.get(first.key)!) };
}
