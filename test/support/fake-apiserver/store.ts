/**
 * The object store: one global resourceVersion counter (as etcd's revision), every write recorded
 * in a bounded history so watches can resume from a resourceVersion and lists can be served at
 * an exact one, and compaction that makes older resourceVersions fail with 410 as etcd's does.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { ApiError, alreadyExists, conflict, expired, invalid, notFound } from './errors.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import { isJsonObject, jsonEqual, type StoredObject } from './types.ts';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ChangeEvent {
  type: ChangeType;
  resource: ResourceType;
  /** The resourceVersion this write produced. */
  rv: number;
  /** The object after the write; for DELETED, the last state stamped with the deletion's rv. */
  object: StoredObject;
  /** The object before the write (absent for ADDED). */
  prev?: StoredObject;
}

export interface WriteOptions {
  /** `status`: the status subresource, which writes only `status`. */
  subresource?: 'status';
  /**
   * Skips the custom-resource rule that PUT must carry a resourceVersion: patches and `apply()`
   * are unconditional unless they name a resourceVersion themselves.
   */
  unconditional?: boolean;
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/** RFC 3339 to the second, as `metav1.Time` serialises. */
const timestamp = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

/** Everything in an object except metadata and status: what `generation` tracks. */
function specPart(obj: StoredObject): Record<string, unknown> {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

export class Store {
  #rv: number;
  readonly #objects = new Map<ResourceType, Map<string, StoredObject>>();
  #history: ChangeEvent[] = [];
  readonly #historyLimit: number;
  /** The highest resourceVersion whose event is no longer retained (0: nothing dropped). */
  #compactedRev = 0;
  readonly #now: () => Date;
  readonly #listeners: ((ev: ChangeEvent) => void)[] = [];

  constructor(opts: { historyLimit?: number; now?: () => Date; initialResourceVersion?: number } = {}) {
    this.#historyLimit = opts.historyLimit ?? 10_000;
    this.#now = opts.now ?? (() => new Date());
    this.#rv = opts.initialResourceVersion ?? 1;
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  get compactedRevision(): number {
    return this.#compactedRev;
  }

  onChange(listener: (ev: ChangeEvent) => void): void {
    this.#listeners.push(listener);
  }

  #bucket(r: ResourceType): Map<string, StoredObject> {
    let m = this.#objects.get(r);
    if (!m) {
      m = new Map();
      this.#objects.set(r, m);
    }
    return m;
  }

  #record(ev: ChangeEvent): void {
    this.#history.push(ev);
    while (this.#history.length > this.#historyLimit) {
      const dropped = this.#history.shift()!;
      this.#compactedRev = Math.max(this.#compactedRev, dropped.rv);
    }
    for (const l of this.#listeners) l(ev);
  }

  /** Live object (not a copy): callers must clone before handing it out. */
  peek(r: ResourceType, namespace: string, name: string): StoredObject | undefined {
    return this.#objects.get(r)?.get(key(namespace, name));
  }

  /** Current objects of a type, sorted by namespace then name (the real server's etcd key order). */
  list(r: ResourceType, namespace?: string): StoredObject[] {
    return [...(this.#objects.get(r)?.entries() ?? [])]
      .filter(([, o]) => namespace === undefined || (o.metadata.namespace ?? '') === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o));
  }

  #checkRetained(rv: number): void {
    if (rv < this.#compactedRev) throw expired(`too old resource version: ${rv} (${this.#compactedRev})`);
  }

  /**
   * The objects of a type as they were at `rv`, rebuilt by undoing later events. 410 when the
   * history needed has been compacted away.
   */
  listAt(r: ResourceType, rv: number, namespace?: string): StoredObject[] {
    if (rv >= this.#rv) return this.list(r, namespace);
    this.#checkRetained(rv);
    const state = new Map(this.#objects.get(r) ?? []);
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const ev = this.#history[i]!;
      if (ev.rv <= rv) break;
      if (ev.resource !== r) continue;
      const k = key(ev.object.metadata.namespace ?? '', ev.object.metadata.name);
      if (ev.type === 'ADDED') state.delete(k);
      else state.set(k, ev.prev!);
    }
    return [...state.entries()]
      .filter(([, o]) => namespace === undefined || (o.metadata.namespace ?? '') === namespace)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o));
  }

  /** Every event of a type after `rv`, in order; 410 when some of them are no longer retained. */
  eventsSince(r: ResourceType, rv: number): ChangeEvent[] {
    this.#checkRetained(rv);
    return this.#history.filter((ev) => ev.rv > rv && ev.resource === r);
  }

  /**
   * Drops the retained history up to `rv` (default: now), as etcd compaction and the watch
   * cache's window do: watches and exact lists from an older resourceVersion then get 410.
   */
  compact(rv: number = this.#rv): void {
    this.#compactedRev = Math.max(this.#compactedRev, rv);
    this.#history = this.#history.filter((ev) => ev.rv > this.#compactedRev);
  }

  #normaliseKind(r: ResourceType, obj: StoredObject, name: string): void {
    const apiVersion = apiVersionOf(r);
    if ((obj.apiVersion && obj.apiVersion !== apiVersion) || (obj.kind && obj.kind !== r.kind)) {
      throw new ApiError(
        400,
        'BadRequest',
        `the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersion})` +
          ` or the kind (${obj.kind}) does not match ${r.kind} for "${name}"`,
      );
    }
    obj.apiVersion = apiVersion;
    obj.kind = r.kind;
  }

  create(r: ResourceType, input: StoredObject, namespace: string | undefined): StoredObject {
    const obj = structuredClone(input);
    if (!isJsonObject(obj.metadata)) obj.metadata = { name: '' };
    const meta = obj.metadata;
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName) {
      meta.name = meta.generateName + randomBytes(4).toString('hex').slice(0, 5);
    }
    if (!meta.name) throw invalid(r, '', 'metadata.name', 'Required value: name or generateName is required');
    this.#normaliseKind(r, obj, meta.name);
    if (r.namespaced) {
      if (meta.namespace && namespace && meta.namespace !== namespace) {
        throw new ApiError(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      meta.namespace = namespace ?? meta.namespace;
      if (!meta.namespace) throw invalid(r, meta.name, 'metadata.namespace', 'Required value');
    } else {
      delete meta.namespace;
    }
    // The real server refuses this with exactly this (500) error; clients that create an object
    // they read earlier must clear it, so the fake makes them.
    if (meta.resourceVersion) {
      throw new ApiError(500, 'InternalError', 'resourceVersion should not be set on objects to be created');
    }
    const bucket = this.#bucket(r);
    const k = key(meta.namespace ?? '', meta.name);
    if (bucket.has(k)) throw alreadyExists(r, meta.name);

    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp(this.#now());
    delete meta.deletionTimestamp;
    delete meta.managedFields;
    if (r.generation) meta.generation = 1;
    else delete meta.generation;
    if (r.statusSubresource) delete obj.status;
    normaliseFields(r, obj);
    this.#rv++;
    meta.resourceVersion = String(this.#rv);
    bucket.set(k, obj);
    this.#record({ type: 'ADDED', resource: r, rv: this.#rv, object: structuredClone(obj) });
    return structuredClone(obj);
  }

  /**
   * PUT semantics. With `subresource: 'status'` only `status` is taken from `input`; otherwise
   * everything but `status` (when the type has a status subresource) and the server-owned
   * metadata. A write that changes nothing is not a write: no new resourceVersion, no event.
   */
  update(r: ResourceType, input: StoredObject, namespace: string | undefined, opts: WriteOptions = {}) {
    const name = input.metadata?.name;
    if (!name) throw invalid(r, '', 'metadata.name', 'Required value: name is required');
    const ns = r.namespaced ? (namespace ?? input.metadata.namespace ?? '') : '';
    if (r.namespaced && input.metadata.namespace && input.metadata.namespace !== ns) {
      throw new ApiError(
        400,
        'BadRequest',
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    const bucket = this.#bucket(r);
    const k = key(ns, name);
    const old = bucket.get(k);
    if (!old) throw notFound(r, name);

    const given = input.metadata.resourceVersion;
    if (given === undefined || given === '') {
      if (r.custom && !opts.unconditional) {
        throw invalid(
          r,
          name,
          'metadata.resourceVersion',
          'Invalid value: 0x0: must be specified for an update',
        );
      }
    } else if (given !== old.metadata.resourceVersion) {
      throw conflict(r, name);
    }

    let next: StoredObject;
    if (opts.subresource === 'status') {
      next = structuredClone(old);
      if (input.status === undefined) delete next.status;
      else next.status = structuredClone(input.status);
    } else {
      next = structuredClone(input);
      this.#normaliseKind(r, next, name);
      const { metadata: om } = old;
      next.metadata = {
        ...structuredClone(input.metadata),
        name,
        uid: om.uid,
        creationTimestamp: om.creationTimestamp,
        resourceVersion: om.resourceVersion,
      };
      if (r.namespaced) next.metadata.namespace = ns;
      else delete next.metadata.namespace;
      delete next.metadata.managedFields;
      if (om.deletionTimestamp === undefined) delete next.metadata.deletionTimestamp;
      else next.metadata.deletionTimestamp = om.deletionTimestamp;
      if (r.generation) next.metadata.generation = om.generation;
      else delete next.metadata.generation;
      if (r.statusSubresource) {
        if (old.status === undefined) delete next.status;
        else next.status = structuredClone(old.status);
      }
      normaliseFields(r, next);
      if (r.generation && !jsonEqual(specPart(old), specPart(next))) {
        next.metadata.generation = (om.generation ?? 0) + 1;
      }
    }
    if (jsonEqual(next, old)) return structuredClone(old);
    this.#rv++;
    next.metadata.resourceVersion = String(this.#rv);
    bucket.set(k, next);
    this.#record({
      type: 'MODIFIED',
      resource: r,
      rv: this.#rv,
      object: structuredClone(next),
      prev: structuredClone(old),
    });
    return structuredClone(next);
  }

  delete(
    r: ResourceType,
    namespace: string,
    name: string,
    preconditions: { uid?: string; resourceVersion?: string } = {},
  ): StoredObject {
    const bucket = this.#bucket(r);
    const k = key(r.namespaced ? namespace : '', name);
    const old = bucket.get(k);
    if (!old) throw notFound(r, name);
    if (preconditions.resourceVersion && preconditions.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(r, name);
    }
    if (preconditions.uid && preconditions.uid !== old.metadata.uid) {
      throw new ApiError(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${old.metadata.uid}`,
      );
    }
    bucket.delete(k);
    this.#rv++;
    const gone = structuredClone(old);
    gone.metadata.resourceVersion = String(this.#rv);
    this.#record({ type: 'DELETED', resource: r, rv: this.#rv, object: structuredClone(gone), prev: old });
    return gone;
  }
}

/** What the real server rewrites on the way in, where clients can see the difference. */
function normaliseFields(r: ResourceType, obj: StoredObject): void {
  if (r.kind === 'Secret') foldStringData(obj);
  if (r.kind === 'Lease' && isJsonObject(obj.spec)) {
    for (const field of ['acquireTime', 'renewTime']) {
      const v = obj.spec[field];
      if (typeof v === 'string') obj.spec[field] = microTime(v);
    }
  }
}

/**
 * metav1.MicroTime: RFC 3339 in UTC with exactly six fractional digits. A JavaScript Date
 * serialises with three (`.123Z`); the real server answers `.123000Z`.
 */
function microTime(value: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(value);
  if (m) return `${m[1]}.${(m[2] ?? '').padEnd(6, '0').slice(0, 6)}Z`;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return value;
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The real server folds Secret `stringData` into base64 `data` and never stores stringData. */
function foldStringData(obj: StoredObject): void {
  const stringData = obj.stringData;
  if (!isJsonObject(stringData)) return;
  const data = isJsonObject(obj.data) ? { ...obj.data } : {};
  for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
  obj.data = data;
  delete obj.stringData;
}
