/**
 * A fake Kubernetes API server for tests: plain HTTP on 127.0.0.1, no authentication, the
 * resources ModelGate uses, real watch streams, and knobs for the failures a controller must
 * survive (errors, slow answers, dropped watches, compacted history). See README.md.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { apiGroupDocument, apiGroupList, apiResourceList, apiVersions, SERVER_VERSION } from './discovery.ts';
import { ApiError, badRequest, expired, notFound, pathNotFound, reasonFor, statusBody } from './errors.ts';
import { JSON_PATCH, jsonPatch, MERGE_PATCH, mergePatch, STRATEGIC_MERGE_PATCH } from './patch.ts';
import { apiVersionOf, findByApiVersionKind, findByName, type ResourceType } from './resources.ts';
import { parseRoute, type Route, verbOf } from './routes.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { type ChangeEvent, Store } from './store.ts';
import { isJsonObject, type StoredObject } from './types.ts';
import { WatchStream } from './watch.ts';

export interface FakeApiServerOptions {
  /** Events retained for watch resumption; older ones are dropped as by `compact()`. Default 10000. */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them. Default 60 s (the real server's). */
  bookmarkIntervalMs?: number;
  /** Clock for `creationTimestamp`. */
  now?: () => Date;
  /** The first resourceVersion handed out is this plus one. Default 1. */
  initialResourceVersion?: number;
}

/** One request as received, decoded into Kubernetes terms. */
export interface RecordedRequest {
  /** 1, 2, 3... in arrival order. */
  seq: number;
  method: string;
  path: string;
  query: URLSearchParams;
  /** list, watch, get, create, update, patch, delete, deletecollection; for non-resource paths the method. */
  verb: string;
  /** Plural (`modelroutes`); undefined for discovery, /version and unknown paths. */
  resource: string | undefined;
  group: string | undefined;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
  contentType: string | undefined;
}

export type RequestMatcher = (req: RecordedRequest) => boolean;

export interface FailOptions {
  /** HTTP status answered, with a matching `Status` body. */
  status: number;
  reason?: string;
  message?: string;
  /** Which requests fail; default every request (discovery included). */
  match?: RequestMatcher;
}

export interface RequestFilter {
  verb?: string;
  path?: string;
  resource?: string;
  namespace?: string;
  name?: string;
  subresource?: string;
  method?: string;
}

/** What `apply()` accepts: any object with apiVersion, kind and a name. */
export interface ObjectInput {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
}

interface FailRule {
  remaining: number;
  opts: FailOptions;
}

interface SlowRule {
  ms: number;
  match: RequestMatcher;
}

interface HoldRule {
  match: RequestMatcher;
  released: Promise<void>;
}

const JSON_TYPE = 'application/json';

function send(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw badRequest(`error decoding request body: ${(e as Error).message}`);
  }
}

function parseRv(value: string): number {
  if (!/^\d+$/.test(value)) throw badRequest(`invalid resource version "${value}"`);
  return Number(value);
}

interface ContinueToken {
  rv: number;
  start: string;
}

const encodeContinue = (t: ContinueToken) => Buffer.from(JSON.stringify(t)).toString('base64url');

function decodeContinue(token: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as ContinueToken;
    if (typeof t.rv === 'number' && typeof t.start === 'string') return t;
  } catch {}
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion');
}

const objectKey = (o: StoredObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export class FakeApiServer {
  /** 'change' (ChangeEvent), 'request' (RecordedRequest), 'watch' ({ open: boolean, resource }). */
  readonly events = new EventEmitter();
  readonly #store: Store;
  readonly #server: Server;
  readonly #bookmarkIntervalMs: number;
  readonly #watches = new Set<WatchStream>();
  readonly #requests: RecordedRequest[] = [];
  #fails: FailRule[] = [];
  #slow: SlowRule[] = [];
  #holds: HoldRule[] = [];
  #paused = false;
  #changes = 0;
  #url = '';
  readonly #waiters = new Set<() => void>();

  constructor(opts: FakeApiServerOptions = {}) {
    this.#store = new Store(opts);
    this.#bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 60_000;
    this.#store.onChange((ev) => this.#changed(ev));
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) send(res, 500, statusBody(500, 'InternalError', String(e)));
        else res.destroy();
      });
    });
  }

  // ---- lifecycle -------------------------------------------------------------------------

  async start(): Promise<{ url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = this.#server.address() as AddressInfo;
    this.#url = `http://127.0.0.1:${port}`;
    return { url: this.#url };
  }

  get url(): string {
    return this.#url;
  }

  async close(): Promise<void> {
    for (const w of this.#watches) w.destroy();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  // ---- state for tests -------------------------------------------------------------------

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#store.resourceVersion);
  }

  /** How many writes the store has seen: a sequence number tests can wait past. */
  get changes(): number {
    return this.#changes;
  }

  #type(kind: string): ResourceType {
    const r = findByName(kind);
    if (!r) throw new Error(`fake apiserver: unknown kind or resource "${kind}"`);
    return r;
  }

  /** A copy of one object. `kind` may also be a plural or short name; namespace '' for cluster-scoped. */
  get<T extends object = StoredObject>(kind: string, namespace: string, name: string): T | undefined {
    const o = this.#store.peek(this.#type(kind), namespace, name);
    return o === undefined ? undefined : (structuredClone(o) as unknown as T);
  }

  /** Copies of the objects of a kind (in one namespace, or all), sorted by namespace and name. */
  list<T extends object = StoredObject>(kind: string, namespace?: string): T[] {
    return this.#store.list(this.#type(kind), namespace) as unknown as T[];
  }

  /**
   * Creates or replaces an object as `kubectl apply` would, with watch events and a new
   * resourceVersion: every field but `status` (for kinds with a status subresource) and the
   * server-owned metadata comes from `obj`; `generation` moves when the spec changes.
   */
  apply<T extends ObjectInput>(obj: T): StoredObject {
    const r = findByApiVersionKind(obj.apiVersion, obj.kind);
    if (!r) throw new Error(`fake apiserver: cannot serve ${obj.apiVersion} ${obj.kind}`);
    const input = structuredClone(obj) as unknown as StoredObject;
    const {
      resourceVersion: _rv,
      uid: _uid,
      creationTimestamp: _ct,
      generation: _g,
      ...meta
    } = input.metadata;
    const ns = r.namespaced ? (meta.namespace ?? 'default') : undefined;
    const existing = this.#store.peek(r, ns ?? '', meta.name);
    if (!existing) return this.#store.create(r, { ...input, metadata: meta }, ns);
    return this.#store.update(r, { ...input, metadata: meta }, ns, { unconditional: true });
  }

  /** Writes `status` through the status subresource: no generation change, spec untouched. */
  setStatus(kind: string, namespace: string, name: string, status: unknown): StoredObject {
    const r = this.#type(kind);
    const current = this.#store.peek(r, namespace, name);
    if (!current) throw new Error(`fake apiserver: ${kind} ${namespace}/${name} not found`);
    return this.#store.update(r, { ...structuredClone(current), status }, namespace, {
      subresource: 'status',
      unconditional: true,
    });
  }

  /** Deletes an object (with a DELETED watch event); undefined when there was none. */
  remove(kind: string, namespace: string, name: string): StoredObject | undefined {
    const r = this.#type(kind);
    if (!this.#store.peek(r, namespace, name)) return undefined;
    return this.#store.delete(r, namespace, name);
  }

  /** core/v1 Events created through the API, for assertions. */
  recordedEvents(namespace?: string): StoredObject[] {
    return this.list('Event', namespace);
  }

  /**
   * Resolves with the predicate's first truthy (non-null, non-false) value, re-checked after
   * every write, request, watch open/close and `resume()`. Rejects after `timeoutMs` (default
   * 15 s) so a broken test fails with `message` rather than hanging.
   */
  waitFor<T>(
    predicate: (server: FakeApiServer) => T | undefined | null | false,
    opts: { timeoutMs?: number; message?: string } = {},
  ): Promise<T> {
    const ms = opts.timeoutMs ?? 15_000;
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): boolean => {
        let v: T | undefined | null | false;
        try {
          v = predicate(this);
        } catch (e) {
          done();
          reject(e);
          return true;
        }
        if (v === undefined || v === null || v === false) return false;
        done();
        resolve(v);
        return true;
      };
      const done = () => {
        if (timer) clearTimeout(timer);
        this.#waiters.delete(check);
      };
      if (check()) return;
      this.#waiters.add(check);
      timer = setTimeout(() => {
        done();
        reject(
          new Error(
            `fake apiserver: waitFor timed out after ${ms} ms${opts.message ? `: ${opts.message}` : ''}`,
          ),
        );
      }, ms);
    });
  }

  #poke(): void {
    for (const check of [...this.#waiters]) check();
  }

  // ---- requests and faults ---------------------------------------------------------------

  /** Every request received so far, in order. */
  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }

  /** How many requests matched `filter` (every given field equal). */
  count(filter: RequestFilter = {}): number {
    return this.#requests.filter((r) => matchesFilter(r, filter)).length;
  }

  /** Request counts keyed `"<verb> <resource>[/<subresource>]"`, e.g. `"list modelroutes"`. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.#requests) {
      if (!r.resource) continue;
      const k = `${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }

  /** Forgets recorded requests (counters start again from zero). */
  resetRequests(): void {
    this.#requests.length = 0;
  }

  /** The next `n` requests that match fail with `status` and a Status body. Rules queue up. */
  failNext(n: number, opts: FailOptions): void {
    this.#fails.push({ remaining: n, opts });
  }

  /** Delays matching requests (default all) by `ms` before answering; returns an undo. `slow(0)` clears all. */
  slow(ms: number, match: RequestMatcher = () => true): () => void {
    if (ms <= 0) {
      this.#slow = [];
      return () => {};
    }
    const rule = { ms, match };
    this.#slow.push(rule);
    return () => {
      this.#slow = this.#slow.filter((r) => r !== rule);
    };
  }

  /**
   * Holds matching requests (received and counted, not answered) until the returned function is
   * called: a deterministic way to act while a client's request is in flight.
   */
  hold(match: RequestMatcher = () => true): () => void {
    let release = () => {};
    const rule: HoldRule = { match, released: new Promise<void>((resolve) => (release = resolve)) };
    this.#holds.push(rule);
    return () => {
      this.#holds = this.#holds.filter((r) => r !== rule);
      release();
    };
  }

  /** Holds every watch event (and stream end) until `resume()`; requests are still answered. */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    for (const w of this.#watches) w.flush();
    this.#poke();
  }

  /**
   * Ends open watches. By default abruptly (the connection is destroyed mid-stream, as when an
   * API server restarts or a load balancer drops it); `graceful` ends them with the last chunk,
   * as the server's own watch timeout does. Returns how many were ended.
   */
  dropWatches(opts: { graceful?: boolean; resource?: string } = {}): number {
    let n = 0;
    for (const w of [...this.#watches]) {
      if (opts.resource && w.resource.plural !== opts.resource && w.resource.kind !== opts.resource) continue;
      n++;
      if (opts.graceful) w.end();
      else w.destroy();
    }
    return n;
  }

  /** Open watch streams, optionally of one resource (plural or kind). */
  openWatches(resource?: string): number {
    let n = 0;
    for (const w of this.#watches) {
      if (!resource || w.resource.plural === resource || w.resource.kind === resource) n++;
    }
    return n;
  }

  /** Sends a BOOKMARK now on every watch that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.#watches) w.bookmark(this.resourceVersion);
  }

  /**
   * Forgets history up to `resourceVersion` (default: now). Watches and exact or paginated lists
   * from an older resourceVersion then get 410 Expired. Returns the compacted resourceVersion.
   */
  compact(resourceVersion?: string): string {
    this.#store.compact(resourceVersion === undefined ? undefined : Number(resourceVersion));
    return String(this.#store.compactedRevision);
  }

  // ---- HTTP ------------------------------------------------------------------------------

  #changed(ev: ChangeEvent): void {
    this.#changes++;
    for (const w of this.#watches) w.deliver(ev);
    this.events.emit('change', ev);
    this.#poke();
  }

  #record(req: IncomingMessage, url: URL, route: Route): RecordedRequest {
    const res = route.kind === 'resource' ? route : undefined;
    const rec: RecordedRequest = {
      seq: this.#requests.length + 1,
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      verb: verbOf(req.method ?? 'GET', route, url.searchParams),
      resource: res?.resource.plural,
      group: res?.resource.group,
      namespace: res?.namespace,
      name: res?.name,
      subresource: res?.subresource,
      contentType: req.headers['content-type']?.split(';')[0]?.trim(),
    };
    this.#requests.push(rec);
    this.events.emit('request', rec);
    return rec;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const route = parseRoute(url.pathname);
    const rec = this.#record(req, url, route);
    const body = await readBody(req);
    this.#poke();

    const slowMs = this.#slow.filter((r) => r.match(rec)).reduce((sum, r) => sum + r.ms, 0);
    if (slowMs > 0) await delay(slowMs);
    const held = this.#holds.filter((h) => h.match(rec)).map((h) => h.released);
    if (held.length > 0) await Promise.all(held);

    const fail = this.#fails.find((f) => f.remaining > 0 && (f.opts.match ?? (() => true))(rec));
    if (fail) {
      fail.remaining--;
      this.#fails = this.#fails.filter((f) => f.remaining > 0);
      const { status } = fail.opts;
      const reason = fail.opts.reason ?? reasonFor(status);
      send(
        res,
        status,
        statusBody(status, reason, fail.opts.message ?? `injected failure (${status} ${reason})`),
      );
      return;
    }

    try {
      const reply = this.#dispatch(req, res, url, route, rec, body);
      if (reply) send(res, reply[0], reply[1]);
    } catch (e) {
      if (e instanceof ApiError) send(res, e.code, e.toStatus());
      else throw e;
    }
  }

  #dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    route: Route,
    rec: RecordedRequest,
    body: string,
  ): [number, unknown] | undefined {
    const method = req.method ?? 'GET';
    if (route.kind !== 'resource') {
      if (method !== 'GET') throw pathNotFound();
      const doc = this.#discovery(route, req);
      if (doc === undefined) throw pathNotFound();
      return [200, doc];
    }
    const { resource: r, namespace, name, subresource } = route;
    if (subresource !== undefined && subresource !== 'status') throw pathNotFound();
    if (subresource === 'status' && !r.statusSubresource) throw pathNotFound();
    // A namespaced object is only reachable under its namespace.
    if (r.namespaced && name !== undefined && namespace === undefined) throw pathNotFound();
    const q = url.searchParams;
    switch (rec.verb) {
      case 'list':
        return [200, this.#list(r, namespace, q)];
      case 'watch':
        this.#watch(res, r, namespace, q);
        return undefined;
      case 'get': {
        const o = this.#store.peek(r, namespace ?? '', name!);
        if (!o) throw notFound(r, name!);
        return [200, o];
      }
      case 'create': {
        if (r.namespaced && namespace === undefined) throw methodNotAllowed(method);
        const obj = parseJson(body);
        if (!isJsonObject(obj)) throw badRequest('the request body must be an object');
        return [201, this.#store.create(r, obj as StoredObject, namespace)];
      }
      case 'update': {
        const obj = parseJson(body);
        if (!isJsonObject(obj) || !isJsonObject(obj.metadata))
          throw badRequest('the request body must be an object');
        const bodyName = (obj as StoredObject).metadata.name;
        if (bodyName !== name) {
          throw badRequest(
            `the name of the object (${bodyName}) does not match the name on the URL (${name})`,
          );
        }
        const sub = subresource === 'status' ? { subresource: 'status' as const } : {};
        return [200, this.#store.update(r, obj as StoredObject, namespace, sub)];
      }
      case 'patch':
        return [200, this.#patch(r, namespace, name!, subresource, rec.contentType, body)];
      case 'delete': {
        const opts = body.trim() ? parseJson(body) : {};
        const pre = isJsonObject(opts) && isJsonObject(opts.preconditions) ? opts.preconditions : {};
        const gone = this.#store.delete(r, namespace ?? '', name!, {
          uid: typeof pre.uid === 'string' ? pre.uid : undefined,
          resourceVersion: typeof pre.resourceVersion === 'string' ? pre.resourceVersion : undefined,
        });
        // Custom resources answer with the deleted object; these built-ins with a Status.
        if (r.custom) return [200, gone];
        return [
          200,
          {
            kind: 'Status',
            apiVersion: 'v1',
            metadata: {},
            status: 'Success',
            details: { name, group: r.group, kind: r.plural, uid: gone.metadata.uid },
          },
        ];
      }
      default:
        throw methodNotAllowed(method);
    }
  }

  #discovery(route: Route, req: IncomingMessage): unknown {
    switch (route.kind) {
      case 'version':
        return SERVER_VERSION;
      case 'api':
        return apiVersions(req.headers.host ?? '127.0.0.1');
      case 'apis':
        return apiGroupList();
      case 'group':
        return apiGroupDocument(route.group);
      case 'resourceList':
        return apiResourceList(route.group, route.version);
      default:
        return undefined;
    }
  }

  #list(r: ResourceType, namespace: string | undefined, q: URLSearchParams) {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), r);
    const limitParam = q.get('limit');
    const limit = limitParam ? Number(limitParam) : 0;
    if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit "${limitParam}"`);
    const rvParam = q.get('resourceVersion') ?? '';
    const match = q.get('resourceVersionMatch') ?? '';
    const cont = q.get('continue');

    // Which state to list: the current one, or (Exact semantics) the one at a resourceVersion.
    // The real server serves "not older than" lists from its cache at the newest state, but
    // exact lists, paginated lists with a resourceVersion and continuations from etcd at that
    // revision, which fails with 410 once compacted.
    let at: number | undefined;
    let start = '';
    if (cont) {
      const t = decodeContinue(cont);
      if (t.rv < this.#store.compactedRevision) {
        throw expired(
          'The provided continue parameter is too old to display a consistent list result. ' +
            'You can start a new list without the continue parameter.',
        );
      }
      at = t.rv;
      start = t.start;
    } else if (rvParam !== '' && rvParam !== '0') {
      const rv = parseRv(rvParam);
      if (match === 'Exact' || (match === '' && limit > 0)) at = rv;
      else if (match !== '' && match !== 'NotOlderThan')
        throw badRequest(`invalid resourceVersionMatch "${match}"`);
    }
    const listRv = at ?? this.#store.resourceVersion;
    let items = (
      at === undefined ? this.#store.list(r, namespace) : this.#store.listAt(r, at, namespace)
    ).filter((o) => labels(o) && fields(o));
    if (start) items = items.filter((o) => objectKey(o) > start);
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    if (limit > 0 && items.length > limit) {
      const rest = items.length - limit;
      items = items.slice(0, limit);
      metadata.continue = encodeContinue({ rv: listRv, start: objectKey(items[items.length - 1]!) });
      metadata.remainingItemCount = rest;
    }
    return {
      apiVersion: apiVersionOf(r),
      kind: `${r.kind}List`,
      metadata,
      // Built-in list items come without apiVersion/kind from the real server; custom ones keep them.
      items: r.custom ? items : items.map(({ apiVersion: _a, kind: _k, ...rest }) => rest),
    };
  }

  #watch(res: ServerResponse, r: ResourceType, namespace: string | undefined, q: URLSearchParams): void {
    const labels = parseLabelSelector(q.get('labelSelector'));
    const fields = parseFieldSelector(q.get('fieldSelector'), r);
    const rvParam = q.get('resourceVersion') ?? '';
    const from = rvParam === '' || rvParam === '0' ? undefined : parseRv(rvParam);
    const timeoutParam = q.get('timeoutSeconds');
    const timeoutSeconds = timeoutParam ? Number(timeoutParam) : 0;
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const initialEvents = q.get('sendInitialEvents') === 'true';

    res.writeHead(200, { 'content-type': JSON_TYPE, 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const w = new WatchStream(res, {
      resource: r,
      namespace,
      labels,
      fields,
      bookmarks,
      isPaused: () => this.#paused,
      onClose: (closed) => {
        // A watch refused with an ERROR event was never registered, so never "opened".
        if (!this.#watches.delete(closed)) return;
        this.events.emit('watch', { open: false, resource: r.plural });
        this.#poke();
      },
    });

    if (from === undefined || initialEvents) {
      // No resourceVersion: the current state as ADDED events, then changes.
      w.sendInitial(this.#store.list(r, namespace));
      if (initialEvents && bookmarks) {
        w.send('BOOKMARK', {
          apiVersion: apiVersionOf(r),
          kind: r.kind,
          metadata: {
            name: '',
            resourceVersion: this.resourceVersion,
            annotations: { 'k8s.io/initial-events-end': 'true' },
          },
        });
      }
    } else {
      let replay: ChangeEvent[];
      try {
        replay = this.#store.eventsSince(r, from);
      } catch (e) {
        // The real server answers a watch from a compacted resourceVersion with 200 and a single
        // ERROR event carrying the 410 Status, then ends the stream.
        if (!(e instanceof ApiError)) throw e;
        w.send('ERROR', e.toStatus());
        w.end();
        return;
      }
      for (const ev of replay) w.deliver(ev);
    }

    this.#watches.add(w);
    if (bookmarks) w.every(this.#bookmarkIntervalMs, () => w.bookmark(this.resourceVersion));
    if (timeoutSeconds > 0) w.endAfter(timeoutSeconds * 1000);
    this.events.emit('watch', { open: true, resource: r.plural });
    this.#poke();
  }

  #patch(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    subresource: string | undefined,
    contentType: string | undefined,
    body: string,
  ): StoredObject {
    let apply: (target: unknown, patch: unknown) => unknown;
    if (contentType === MERGE_PATCH || contentType === STRATEGIC_MERGE_PATCH) apply = mergePatch;
    else if (contentType === JSON_PATCH) apply = jsonPatch;
    else {
      throw new ApiError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: ` +
          `${JSON_PATCH}, ${MERGE_PATCH}, ${STRATEGIC_MERGE_PATCH}`,
      );
    }
    const patch = parseJson(body);
    const current = this.#store.peek(r, namespace ?? '', name);
    if (!current) throw notFound(r, name);
    const patched = apply(structuredClone(current), patch);
    if (!isJsonObject(patched) || !isJsonObject(patched.metadata)) {
      throw badRequest('the patched object is not a Kubernetes object');
    }
    const obj = patched as StoredObject;
    if (obj.metadata.name !== name) throw badRequest('metadata.name cannot be changed by a patch');
    // The patched object keeps the stored resourceVersion unless the patch names one, which then
    // acts as a precondition (409 when stale), exactly as on the real server.
    return this.#store.update(r, obj, namespace, {
      unconditional: true,
      ...(subresource === 'status' ? { subresource: 'status' as const } : {}),
    });
  }
}

function methodNotAllowed(method: string): ApiError {
  return new ApiError(
    405,
    'MethodNotAllowed',
    `the server does not allow this method on the requested resource (${method})`,
  );
}

function matchesFilter(r: RecordedRequest, f: RequestFilter): boolean {
  return (
    (f.verb === undefined || r.verb === f.verb) &&
    (f.path === undefined || r.path === f.path) &&
    (f.resource === undefined || r.resource === f.resource) &&
    (f.namespace === undefined || r.namespace === f.namespace) &&
    (f.name === undefined || r.name === f.name) &&
    (f.subresource === undefined || r.subresource === f.subresource) &&
    (f.method === undefined || r.method === f.method)
  );
}
