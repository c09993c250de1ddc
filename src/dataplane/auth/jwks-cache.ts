/**
 * JWKS key sources for JWT verification: a long-lived registry of remote key sets (one cache per
 * JWKS URI, shared by every routing table for the proxy's lifetime) and static key sets read from
 * a Secret.
 *
 * Refresh policy of a remote set:
 * - the set is cached; once older than its max-age (Cache-Control, else defaultMaxAgeMs) a request
 *   starts a background refetch and keeps using the cached set meanwhile;
 * - a request finding no usable set (never fetched, or older than maxStaleMs) waits for a fetch;
 * - a token naming a kid that is not in the set triggers a refetch, and waits for it;
 * - every fetch of a URI is single-flight (concurrent requests share it) and at most one starts
 *   per minRefreshIntervalMs, whatever the reason (so a storm of random kids costs one fetch, and a
 *   dead JWKS server is asked at most once per interval);
 * - when fetches fail, the last good set keeps being served until it is older than maxStaleMs,
 *   then lookups answer `unavailable`.
 * There are no timers: refreshes are started by lookups, and the only timer (a fetch's timeout)
 * does not keep the process alive. `close()` aborts fetches in flight.
 *
 * Keys are imported once per (key, alg) with jose and kept across refetches while their material
 * is unchanged, so a lookup of a known key is synchronous.
 */
import { type CryptoKey, importJWK, type JWK } from 'jose';
import { request } from 'undici';

export type KeyFailure = 'unknown_kid' | 'unavailable';

export type KeyResult = { ok: true; key: CryptoKey } | { ok: false; reason: KeyFailure; message: string };

/** The parts of a JWS protected header that select a key. */
export interface KeyRef {
  alg: string;
  kid?: string | undefined;
}

export interface JwksSource {
  /** The JWKS URI, or `static` for a key set given as a document. */
  readonly id: string;
  /** The key for a token's header; synchronous when the key is cached and imported. Never throws. */
  getKey(ref: KeyRef): KeyResult | Promise<KeyResult>;
  /** Starts a fetch when the source has no keys yet (so the first request need not wait). */
  prefetch(): void;
}

export interface JwksEvent {
  uri: string;
  kind: 'fetched' | 'fetch_failed' | 'served_stale';
  error?: string;
}

export interface FetchedJwks {
  body: unknown;
  /** From the response's Cache-Control; bounded to [minRefreshIntervalMs, 24 h] by the registry. */
  maxAgeMs?: number;
}

export type FetchJwks = (uri: string, signal: AbortSignal) => Promise<FetchedJwks>;

export interface JwksRegistryOptions {
  /** Clock in ms for cache ages (only differences are used). Default: performance.now. */
  now?: () => number;
  fetchJwks?: FetchJwks;
  /** Default 10 s. */
  minRefreshIntervalMs?: number;
  /** Used when the response has no max-age. Default 5 min. */
  defaultMaxAgeMs?: number;
  /** The last good set is served for this long after its fetch when refetches fail. Default 1 h. */
  maxStaleMs?: number;
  /** Per fetch. Default 5 s. */
  timeoutMs?: number;
  onEvent?: (e: JwksEvent) => void;
}

const MAX_AGE_CAP_MS = 24 * 3600_000;
/** A JWKS document larger than this is refused. */
const MAX_JWKS_BYTES = 1 << 20;

/** Algorithms this module can resolve keys for: asymmetric JWS algorithms only. */
export const SUPPORTED_ALGORITHMS: ReadonlySet<string> = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

/** Key type and curve an algorithm needs. */
function keyTypeFits(alg: string, kty: string, crv: string | undefined): boolean {
  switch (alg) {
    case 'RS256':
    case 'RS384':
    case 'RS512':
    case 'PS256':
    case 'PS384':
    case 'PS512':
      return kty === 'RSA';
    case 'ES256':
      return kty === 'EC' && crv === 'P-256';
    case 'ES384':
      return kty === 'EC' && crv === 'P-384';
    case 'ES512':
      return kty === 'EC' && crv === 'P-521';
    case 'EdDSA':
    case 'Ed25519':
      return kty === 'OKP' && crv === 'Ed25519';
    default:
      return false;
  }
}

interface KeyEntry {
  kid: string | undefined;
  kty: string;
  crv: string | undefined;
  /** The key's own `alg`, when it names one. */
  alg: string | undefined;
  /** The public members only (a private or symmetric member is never imported). */
  jwk: JWK;
  /** kty and public members: identifies the key material across refetches. */
  material: string;
  /** Imported keys by alg (a promise while importing). */
  imported: Map<string, KeyResult | Promise<KeyResult>>;
}

interface KeySet {
  entries: KeyEntry[];
  byKid: Map<string, KeyEntry[]>;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** The public members of a signing key, or undefined when the key cannot be used to verify. */
function publicEntry(k: unknown): KeyEntry | undefined {
  if (typeof k !== 'object' || k === null || Array.isArray(k)) return undefined;
  const o = k as Record<string, unknown>;
  if (o.use !== undefined && o.use !== 'sig') return undefined;
  if (o.key_ops !== undefined && !(Array.isArray(o.key_ops) && o.key_ops.includes('verify')))
    return undefined;
  if (o.kid !== undefined && typeof o.kid !== 'string') return undefined;
  if (o.alg !== undefined && typeof o.alg !== 'string') return undefined;
  let jwk: JWK;
  switch (o.kty) {
    case 'RSA': {
      const n = str(o.n);
      const e = str(o.e);
      if (!n || !e) return undefined;
      jwk = { kty: 'RSA', n, e };
      break;
    }
    case 'EC': {
      const crv = str(o.crv);
      const x = str(o.x);
      const y = str(o.y);
      if (!crv || !x || !y) return undefined;
      jwk = { kty: 'EC', crv, x, y };
      break;
    }
    case 'OKP': {
      const crv = str(o.crv);
      const x = str(o.x);
      if (!crv || !x) return undefined;
      jwk = { kty: 'OKP', crv, x };
      break;
    }
    default:
      // `oct` (symmetric) keys are never used: that is the HS256 key-confusion attack.
      return undefined;
  }
  return {
    kid: o.kid as string | undefined,
    kty: jwk.kty as string,
    crv: jwk.crv,
    alg: o.alg as string | undefined,
    jwk,
    material: JSON.stringify(jwk),
    imported: new Map(),
  };
}

/**
 * Parses a JWKS document. Throws when it is not one; keys that cannot verify (symmetric, `use`
 * other than `sig`, unknown type, incomplete) are skipped. Imported keys of `previous` whose kid
 * and material are unchanged are carried over.
 */
function parseJwks(doc: unknown, previous?: KeySet): KeySet {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new Error('not a JWKS document: expected a JSON object with a "keys" array');
  }
  const keys = (doc as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new Error('not a JWKS document: no "keys" array');
  const entries: KeyEntry[] = [];
  const byKid = new Map<string, KeyEntry[]>();
  for (const k of keys) {
    const entry = publicEntry(k);
    if (!entry) continue;
    if (previous) {
      const old = previous.entries.find((p) => p.kid === entry.kid && p.material === entry.material);
      if (old) entry.imported = old.imported;
    }
    entries.push(entry);
    if (entry.kid !== undefined) {
      const list = byKid.get(entry.kid);
      if (list) list.push(entry);
      else byKid.set(entry.kid, [entry]);
    }
  }
  return { entries, byKid };
}

function fits(e: KeyEntry, alg: string): boolean {
  return (e.alg === undefined || e.alg === alg) && keyTypeFits(alg, e.kty, e.crv);
}

/** The entry for a header: by kid, or the only key that fits the alg when the token has no kid. */
function select(set: KeySet, ref: KeyRef): KeyEntry | undefined {
  if (ref.kid !== undefined) {
    const list = set.byKid.get(ref.kid);
    if (!list) return undefined;
    for (const e of list) if (fits(e, ref.alg)) return e;
    return undefined;
  }
  let found: KeyEntry | undefined;
  for (const e of set.entries) {
    if (!fits(e, ref.alg)) continue;
    if (found) return undefined; // ambiguous
    found = e;
  }
  return found;
}

function keyOf(entry: KeyEntry, alg: string): KeyResult | Promise<KeyResult> {
  const cached = entry.imported.get(alg);
  if (cached !== undefined) return cached;
  const pending = importJWK(entry.jwk, alg).then(
    (key): KeyResult => {
      // Public JWKs import as CryptoKeys; only `oct` would give bytes, and those are skipped.
      const r: KeyResult =
        key instanceof Uint8Array
          ? { ok: false, reason: 'unknown_kid', message: 'the matching key is not a public key' }
          : { ok: true, key };
      entry.imported.set(alg, r);
      return r;
    },
    (err: unknown): KeyResult => {
      const r: KeyResult = {
        ok: false,
        reason: 'unknown_kid',
        message: `the matching key${describeKid(entry.kid)} cannot be imported for ${alg}: ${errorText(err)}`,
      };
      entry.imported.set(alg, r);
      return r;
    },
  );
  entry.imported.set(alg, pending);
  return pending;
}

function describeKid(kid: string | undefined): string {
  return kid === undefined ? '' : ` ${JSON.stringify(kid.length > 64 ? kid.slice(0, 64) + '…' : kid)}`;
}

function noKey(ref: KeyRef, where: string): KeyResult {
  return {
    ok: false,
    reason: 'unknown_kid',
    message:
      ref.kid === undefined
        ? `the token has no kid and not exactly one key of ${where} fits ${ref.alg}`
        : `no key with kid${describeKid(ref.kid)} for ${ref.alg} in ${where}`,
  };
}

function errorText(err: unknown): string {
  const s = err instanceof Error ? err.message : String(err);
  return s.length > 200 ? s.slice(0, 200) + '…' : s;
}

/**
 * A key source from a JWKS document (JSON text), e.g. from a Kubernetes Secret. Throws an Error
 * saying why when the text is not JSON or not a JWKS. A document without any usable key is
 * accepted: every token then fails with `unknown_kid`.
 */
export function staticJwks(jsonText: string): JwksSource {
  let doc: unknown;
  try {
    doc = JSON.parse(jsonText);
  } catch (err) {
    throw new Error(`JWKS is not valid JSON: ${errorText(err)}`);
  }
  const set = parseJwks(doc);
  return {
    id: 'static',
    getKey(ref) {
      const entry = select(set, ref);
      return entry ? keyOf(entry, ref.alg) : noKey(ref, 'the static JWKS');
    },
    prefetch() {},
  };
}

function maxAgeFromCacheControl(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const s = Array.isArray(value) ? value.join(',') : value;
  if (/(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)/i.test(s)) return 0;
  const m = /(?:^|,)\s*max-age\s*=\s*"?(\d{1,12})"?\s*(?:,|$)/i.exec(s);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** GET with undici: non-2xx is an error, the body must be JSON of at most 1 MiB. */
async function defaultFetchJwks(uri: string, signal: AbortSignal): Promise<FetchedJwks> {
  const res = await request(uri, {
    method: 'GET',
    signal,
    headers: { accept: 'application/jwk-set+json, application/json' },
  });
  if (res.statusCode < 200 || res.statusCode > 299) {
    await res.body.dump().catch(() => {});
    throw new Error(`HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length;
    if (size > MAX_JWKS_BYTES) {
      res.body.destroy();
      throw new Error(`JWKS larger than ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new Error(`response is not JSON: ${errorText(err)}`);
  }
  const maxAgeMs = maxAgeFromCacheControl(res.headers['cache-control']);
  return maxAgeMs === undefined ? { body } : { body, maxAgeMs };
}

class RemoteJwks implements JwksSource {
  readonly id: string;
  private readonly registry: JwksRegistry;
  private set: KeySet | undefined;
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private maxAgeMs = 0;
  private lastAttemptAt = Number.NEGATIVE_INFINITY;
  private inflight: Promise<void> | undefined;
  private lastError: string | undefined;
  /** A refetch failed while a set was cached: the next request served from it reports served_stale. */
  private staleNotice = false;
  closed = false;

  constructor(uri: string, registry: JwksRegistry) {
    this.id = uri;
    this.registry = registry;
  }

  prefetch(): void {
    if (this.set === undefined) this.startFetch(this.registry.now());
  }

  getKey(ref: KeyRef): KeyResult | Promise<KeyResult> {
    const now = this.registry.now();
    const set = this.usable(now);
    if (set === undefined) {
      const fetching = this.startFetch(now);
      if (fetching) return fetching.then(() => this.lookupAfterFetch(ref));
      return this.unavailable();
    }
    if (now - this.fetchedAt >= this.maxAgeMs) this.startFetch(now); // background; this request goes on
    if (this.staleNotice) {
      this.staleNotice = false;
      this.registry.emit({ uri: this.id, kind: 'served_stale', error: this.lastError ?? 'refresh failed' });
    }
    const entry = select(set, ref);
    if (entry) return keyOf(entry, ref.alg);
    const fetching = this.startFetch(now);
    if (fetching) return fetching.then(() => this.lookupAfterFetch(ref));
    return noKey(ref, this.id);
  }

  private lookupAfterFetch(ref: KeyRef): KeyResult | Promise<KeyResult> {
    const set = this.usable(this.registry.now());
    if (set === undefined) return this.unavailable();
    const entry = select(set, ref);
    return entry ? keyOf(entry, ref.alg) : noKey(ref, this.id);
  }

  /** The cached set unless it is older than maxStale. */
  private usable(now: number): KeySet | undefined {
    return this.set !== undefined && now - this.fetchedAt <= this.registry.maxStaleMs ? this.set : undefined;
  }

  private unavailable(): KeyResult {
    return {
      ok: false,
      reason: 'unavailable',
      message:
        this.set === undefined
          ? `JWKS ${this.id} could not be fetched${this.lastError ? `: ${this.lastError}` : ''}`
          : `JWKS ${this.id} is stale and could not be refreshed${this.lastError ? `: ${this.lastError}` : ''}`,
    };
  }

  /** The fetch in flight, or a new one if the rate bound allows; undefined when neither. */
  private startFetch(now: number): Promise<void> | undefined {
    if (this.inflight) return this.inflight;
    if (this.closed || now - this.lastAttemptAt < this.registry.minRefreshIntervalMs) return undefined;
    this.lastAttemptAt = now;
    const registry = this.registry;
    // The state (inflight included) is settled before the event, so that an observer acting on the
    // event sees the fetch as done.
    const failed = (err: unknown) => {
      this.inflight = undefined;
      this.lastError = errorText(err);
      if (this.set !== undefined) this.staleNotice = true;
      registry.emit({ uri: this.id, kind: 'fetch_failed', error: this.lastError });
    };
    const p = registry.runFetch(this.id).then((fetched) => {
      let set: KeySet;
      try {
        set = parseJwks(fetched.body, this.set);
      } catch (err) {
        failed(err);
        return;
      }
      const maxAge = fetched.maxAgeMs ?? registry.defaultMaxAgeMs;
      this.inflight = undefined;
      this.set = set;
      this.fetchedAt = registry.now();
      this.maxAgeMs = Math.min(Math.max(maxAge, registry.minRefreshIntervalMs), MAX_AGE_CAP_MS);
      this.lastError = undefined;
      this.staleNotice = false;
      registry.emit({ uri: this.id, kind: 'fetched' });
    }, failed);
    this.inflight = p;
    return p;
  }
}

/** Remote key sets by JWKS URI, for the proxy's lifetime. */
export class JwksRegistry {
  readonly now: () => number;
  readonly minRefreshIntervalMs: number;
  readonly defaultMaxAgeMs: number;
  readonly maxStaleMs: number;
  readonly timeoutMs: number;
  private readonly fetchJwks: FetchJwks;
  private readonly onEvent: ((e: JwksEvent) => void) | undefined;
  private readonly sources = new Map<string, RemoteJwks>();
  private readonly controllers = new Set<AbortController>();
  private closed = false;

  constructor(opts: JwksRegistryOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.fetchJwks = opts.fetchJwks ?? defaultFetchJwks;
    this.minRefreshIntervalMs = opts.minRefreshIntervalMs ?? 10_000;
    this.defaultMaxAgeMs = opts.defaultMaxAgeMs ?? 300_000;
    this.maxStaleMs = opts.maxStaleMs ?? 3_600_000;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.onEvent = opts.onEvent;
  }

  /** The source of a JWKS URI: the same object for the same URI. */
  source(uri: string): JwksSource {
    let s = this.sources.get(uri);
    if (!s) {
      s = new RemoteJwks(uri, this);
      s.closed = this.closed;
      this.sources.set(uri, s);
    }
    return s;
  }

  /** Forgets the sources whose URI is not in `keep` (no table uses them any more). */
  retainOnly(keep: ReadonlySet<string>): void {
    for (const [uri, s] of this.sources) {
      if (!keep.has(uri)) {
        s.closed = true;
        this.sources.delete(uri);
      }
    }
  }

  /** Aborts fetches in flight; no fetch starts afterwards (cached keys are still served). */
  close(): void {
    this.closed = true;
    for (const s of this.sources.values()) s.closed = true;
    for (const c of this.controllers) c.abort(new Error('JWKS registry closed'));
    this.controllers.clear();
  }

  /** @internal One fetch with the timeout and close()'s abort; settles even if fetchJwks ignores the signal. */
  runFetch(uri: string): Promise<FetchedJwks> {
    const controller = new AbortController();
    this.controllers.add(controller);
    const timeoutMs = this.timeoutMs;
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs)]);
    return new Promise<FetchedJwks>((resolve, reject) => {
      const onAbort = () => {
        const r: unknown = signal.reason;
        reject(
          r instanceof DOMException && r.name === 'TimeoutError'
            ? new Error(`timed out after ${timeoutMs} ms`)
            : r instanceof Error
              ? r
              : new Error('aborted'),
        );
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      let fetching: Promise<FetchedJwks>;
      try {
        fetching = this.fetchJwks(uri, signal);
      } catch (err) {
        fetching = Promise.reject(err);
      }
      fetching.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    }).finally(() => this.controllers.delete(controller));
  }

  /** @internal */
  emit(e: JwksEvent): void {
    if (!this.onEvent) return;
    try {
      this.onEvent(e);
    } catch {
      // an observer's failure must not break key resolution
    }
  }
}
