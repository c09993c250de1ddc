/**
 * OAuth 2.0 token introspection (RFC 7662): asks the authorization server whether an opaque token
 * is active, and turns its answer into an Identity.
 *
 * Answers are cached, keyed by the SHA-256 of the token (the raw token is never kept): an active
 * answer until its `exp` or `cacheTtlMs`, whichever comes first; a definitive refusal for
 * `negativeCacheTtlMs`. Failures to get an answer (timeout, connection refused, non-200, a
 * malformed answer) are `unavailable` (the gateway answers 503, not 401) and never cached, so a
 * flaky endpoint neither blames the client nor poisons the cache. Concurrent verifications of one
 * token share one request. A cache hit is answered synchronously.
 *
 * No message ever carries the token, the client secret, or text from the endpoint's answer.
 */
import { createHash } from 'node:crypto';
import { Agent, request as undiciRequest } from 'undici';
import type { CompiledIntrospection } from '../../routing-table/types.ts';
import { type AuthFailure, type AuthResult, claimList, type Identity } from './identity.ts';

/** What an introspection request sends; `signal` aborts it (timeout or close). */
export interface IntrospectionRequestInit {
  headers: Record<string, string>;
  body: string;
  signal: AbortSignal;
}

/** Sends one introspection request; `body` is the parsed JSON answer (may throw on any failure). */
export type IntrospectionRequest = (
  url: string,
  init: IntrospectionRequestInit,
) => Promise<{ status: number; body: unknown }>;

export interface IntrospectorOptions {
  /** Clock in milliseconds (cache expiry, `exp` and `nbf`); default Date.now. */
  now?: () => number;
  /** Most cached answers (least recently used go first); default 10,000; 0 disables the cache. */
  cacheSize?: number;
  /** Replaces the HTTP client (tests); default: undici on a private connection pool. */
  request?: IntrospectionRequest;
}

export interface Introspector {
  /** The token's identity or the reason it is refused; synchronous on a cache hit. Never rejects. */
  verify(token: string): AuthResult | Promise<AuthResult>;
  /** Aborts requests in flight (they resolve `unavailable`), drops the cache and the connections. */
  close(): void;
}

export const DEFAULT_INTROSPECTION_CACHE_SIZE = 10_000;
/** Largest introspection answer read, in bytes. */
const MAX_ANSWER_BYTES = 1024 * 1024;

interface CacheEntry {
  result: AuthResult;
  expiresAt: number;
}

/** Why an answer could not be had; the message is ours only (never the endpoint's text). */
class Unavailable extends Error {}

export function createIntrospector(
  config: CompiledIntrospection,
  opts: IntrospectorOptions = {},
): Introspector {
  const now = opts.now ?? Date.now;
  const cacheSize = Math.max(0, Math.floor(opts.cacheSize ?? DEFAULT_INTROSPECTION_CACHE_SIZE));
  let agent: Agent | undefined;
  let send: IntrospectionRequest;
  if (opts.request) {
    send = opts.request;
  } else {
    const dispatcher = new Agent({ maxResponseSize: MAX_ANSWER_BYTES });
    agent = dispatcher;
    send = (url, init) => defaultRequest(dispatcher, url, init);
  }

  const authorization = `Basic ${Buffer.from(
    `${formEncode(config.clientId)}:${formEncode(config.clientSecret)}`,
    'utf8',
  ).toString('base64')}`;
  /** Insertion order is recency order: a hit moves its entry to the end. */
  const cache = new Map<string, CacheEntry>();
  const inflight = new Map<string, Promise<AuthResult>>();
  const controllers = new Set<AbortController>();
  let closed = false;

  function remember(key: string, result: AuthResult, expiresAt: number): void {
    if (cacheSize === 0 || closed || !(expiresAt > now())) return;
    cache.delete(key);
    cache.set(key, { result, expiresAt });
    while (cache.size > cacheSize) {
      const oldest = cache.keys().next();
      if (oldest.done) break;
      cache.delete(oldest.value);
    }
  }

  async function introspect(key: string, token: string): Promise<AuthResult> {
    const controller = new AbortController();
    controllers.add(controller);
    let timer: NodeJS.Timeout | undefined;
    try {
      const aborted = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const err = new Unavailable(`introspection endpoint did not answer within ${config.timeoutMs} ms`);
          controller.abort(err);
        }, config.timeoutMs);
        controller.signal.addEventListener(
          'abort',
          () => {
            const reason: unknown = controller.signal.reason;
            reject(reason instanceof Unavailable ? reason : new Unavailable('introspector closed'));
          },
          { once: true },
        );
      });
      // A request function that ignores the signal still cannot outlive the timeout.
      aborted.catch(() => {});
      const answer = await Promise.race([
        send(config.endpoint, {
          headers: {
            authorization,
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
          },
          body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
          signal: controller.signal,
        }),
        aborted,
      ]);
      if (answer.status !== 200) {
        throw new Unavailable(`introspection endpoint answered HTTP ${answer.status}`);
      }
      const decided = judge(answer.body, config, now());
      if (decided.cacheUntil !== undefined) remember(key, decided.result, decided.cacheUntil);
      return decided.result;
    } catch (err) {
      return { ok: false, reason: 'unavailable', message: describeError(err) };
    } finally {
      clearTimeout(timer);
      controllers.delete(controller);
    }
  }

  return {
    verify(token: string): AuthResult | Promise<AuthResult> {
      if (typeof token !== 'string' || token.length === 0) {
        return { ok: false, reason: 'malformed', message: 'empty token' };
      }
      if (closed) return { ok: false, reason: 'unavailable', message: 'introspector closed' };
      const key = createHash('sha256').update(token, 'utf8').digest('base64url');
      const hit = cache.get(key);
      if (hit !== undefined) {
        cache.delete(key);
        if (hit.expiresAt > now()) {
          cache.set(key, hit);
          return hit.result;
        }
      }
      const pending = inflight.get(key);
      if (pending !== undefined) return pending;
      const started = introspect(key, token).finally(() => inflight.delete(key));
      inflight.set(key, started);
      return started;
    },
    close(): void {
      if (closed) return;
      closed = true;
      for (const controller of controllers) controller.abort(new Unavailable('introspector closed'));
      controllers.clear();
      cache.clear();
      if (agent) void agent.destroy().catch(() => {});
    },
  };
}

/**
 * The verdict on a 200 answer, and until when it may be cached (absent: not at all). Throws
 * Unavailable for an answer that is not an introspection response.
 */
function judge(
  body: unknown,
  config: CompiledIntrospection,
  nowMs: number,
): { result: AuthResult; cacheUntil?: number } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new Unavailable('introspection answer is not a JSON object');
  }
  const answer = body as Record<string, unknown>;
  if (typeof answer.active !== 'boolean') {
    throw new Unavailable('introspection answer has no boolean "active"');
  }
  const negativeUntil = nowMs + config.negativeCacheTtlMs;
  if (!answer.active) return { result: refuse('inactive', 'token is not active'), cacheUntil: negativeUntil };

  const exp = numericDate(answer, 'exp');
  const nbf = numericDate(answer, 'nbf');
  if (exp !== undefined && exp <= nowMs) {
    return { result: refuse('expired', 'token has expired'), cacheUntil: negativeUntil };
  }
  if (nbf !== undefined && nbf > nowMs) {
    return {
      result: refuse('not_yet_valid', 'token is not valid yet'),
      cacheUntil: Math.min(negativeUntil, nbf),
    };
  }
  const consumer =
    claimString(answer[config.consumerClaim]) ??
    claimString(answer.username) ??
    claimString(answer.client_id);
  if (consumer === undefined) {
    return {
      result: refuse(
        'missing_claim',
        `introspection answer has no "${config.consumerClaim}", "username" or "client_id"`,
      ),
      cacheUntil: negativeUntil,
    };
  }
  const identity: Identity = {
    method: 'introspection',
    consumer,
    groups: Object.freeze(config.groupsClaim === undefined ? [] : claimList(answer[config.groupsClaim])),
    scopes: Object.freeze(claimList(answer.scope)),
    claims: Object.freeze({ ...answer }),
  };
  const positiveUntil = nowMs + config.cacheTtlMs;
  return {
    result: { ok: true, identity },
    cacheUntil: exp === undefined ? positiveUntil : Math.min(positiveUntil, exp),
  };
}

function refuse(reason: AuthFailure, message: string): AuthResult {
  return { ok: false, reason, message };
}

/** An RFC 7519 NumericDate claim in milliseconds; absent: undefined; anything else: Unavailable. */
function numericDate(answer: Record<string, unknown>, name: 'exp' | 'nbf'): number | undefined {
  const value = answer[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Unavailable(`introspection answer has a non-numeric "${name}"`);
  }
  return value * 1000;
}

function claimString(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 §2.3.1, Appendix B). */
function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

/**
 * A description of a failure that never repeats an error's message (a JSON syntax error quotes the
 * answer, which could echo the token): our own messages, else the error code or class.
 */
function describeError(err: unknown): string {
  if (err instanceof Unavailable) return err.message;
  if (err instanceof SyntaxError) return 'introspection answer is not valid JSON';
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z0-9_]+$/.test(code))
    return `introspection endpoint unreachable (${code})`;
  const name = err instanceof Error ? err.name : typeof err;
  return `introspection endpoint failed (${name})`;
}

async function defaultRequest(
  dispatcher: Agent,
  url: string,
  init: IntrospectionRequestInit,
): Promise<{ status: number; body: unknown }> {
  const res = await undiciRequest(url, {
    method: 'POST',
    headers: init.headers,
    body: init.body,
    signal: init.signal,
    dispatcher,
  });
  if (res.statusCode !== 200) {
    await res.body.dump().catch(() => {});
    return { status: res.statusCode, body: undefined };
  }
  const text = await res.body.text();
  return { status: 200, body: JSON.parse(text) as unknown };
}
