/**
 * One open watch: a chunked HTTP response carrying one JSON event per line, as the real server
 * streams `application/json` watches. Writes can be held back (the server's `pause()`) and are
 * then delivered in order, end of stream included.
 */
import type { ServerResponse } from 'node:http';
import type { Status } from './errors.ts';
import { apiVersionOf, type ResourceType } from './resources.ts';
import type { Selector } from './selectors.ts';
import type { ChangeEvent } from './store.ts';
import type { StoredObject } from './types.ts';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface WatchOptions {
  resource: ResourceType;
  /** Undefined: all namespaces. */
  namespace: string | undefined;
  labels: Selector;
  fields: Selector;
  bookmarks: boolean;
  isPaused: () => boolean;
  onClose: (w: WatchStream) => void;
}

export class WatchStream {
  readonly resource: ResourceType;
  readonly namespace: string | undefined;
  readonly bookmarks: boolean;
  readonly #res: ServerResponse;
  readonly #opts: WatchOptions;
  /** Lines held while paused; `null` stands for the end of the stream. */
  #pending: (string | null)[] = [];
  #closed = false;
  /** The last chunk was written: nothing may follow it. */
  #ended = false;
  readonly #timers: NodeJS.Timeout[] = [];

  constructor(res: ServerResponse, opts: WatchOptions) {
    this.#res = res;
    this.#opts = opts;
    this.resource = opts.resource;
    this.namespace = opts.namespace;
    this.bookmarks = opts.bookmarks;
    res.on('close', () => this.#closeNow());
  }

  get closed(): boolean {
    return this.#closed;
  }

  #matches(obj: StoredObject): boolean {
    if (this.namespace !== undefined && (obj.metadata.namespace ?? '') !== this.namespace) return false;
    return this.#opts.labels(obj) && this.#opts.fields(obj);
  }

  #write(line: string | null): void {
    if (this.#closed || this.#ended) return;
    if (this.#opts.isPaused() || this.#pending.length > 0) {
      this.#pending.push(line);
      return;
    }
    if (line === null) {
      this.#ended = true;
      this.#res.end();
    } else this.#res.write(line);
  }

  send(type: WatchEventType, object: StoredObject | Status): void {
    this.#write(`${JSON.stringify({ type, object })}\n`);
  }

  /**
   * Sends a stored change as this watcher sees it. With a selector, an object that starts
   * matching arrives as ADDED and one that stops matching as DELETED, as the real server does.
   */
  deliver(ev: ChangeEvent): void {
    if (ev.resource !== this.resource) return;
    const now = ev.type !== 'DELETED' && this.#matches(ev.object);
    const before = ev.prev !== undefined && this.#matches(ev.prev);
    if (ev.type === 'ADDED') {
      if (now) this.send('ADDED', ev.object);
    } else if (ev.type === 'DELETED') {
      if (before) this.send('DELETED', ev.object);
    } else if (now && before) this.send('MODIFIED', ev.object);
    else if (now) this.send('ADDED', ev.object);
    else if (before) this.send('DELETED', ev.object);
  }

  /** The initial state for a watch without a resourceVersion: one ADDED per object. */
  sendInitial(objects: StoredObject[]): void {
    for (const o of objects) if (this.#matches(o)) this.send('ADDED', o);
  }

  /** A bookmark: an object of the watched kind carrying only the current resourceVersion. */
  bookmark(resourceVersion: string): void {
    if (!this.bookmarks) return;
    this.send('BOOKMARK', {
      apiVersion: apiVersionOf(this.resource),
      kind: this.resource.kind,
      metadata: { name: '', resourceVersion },
    });
  }

  /** Runs `fn` every `ms` while the stream is open (bookmarks). */
  every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.#timers.push(t);
  }

  /** Ends the stream after `ms` (the request's `timeoutSeconds`). */
  endAfter(ms: number): void {
    const t = setTimeout(() => this.end(), ms);
    t.unref();
    this.#timers.push(t);
  }

  /** Ends the stream cleanly (the last chunk is sent), after anything held back. */
  end(): void {
    this.#write(null);
  }

  /** Cuts the connection mid-stream: clients see a network error, not a clean end. */
  destroy(): void {
    this.#pending = [];
    this.#res.socket?.destroy();
    this.#res.destroy();
    this.#closeNow();
  }

  /** Delivers what was held back while paused. */
  flush(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const line of pending) this.#write(line);
  }

  #closeNow(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#opts.onClose(this);
  }
}
