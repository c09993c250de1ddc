/**
 * A raw watch client for tests that talk HTTP directly: reads the JSON-lines stream and hands out
 * events one at a time, and says how the stream ended (cleanly, or with a network error), which
 * is what distinguishes a server-side timeout from a dropped connection.
 */
import type { StoredMeta } from './types.ts';
import type { WatchEventType } from './watch.ts';

/** An event's object: a resource, or for ERROR events a Status (`code`, `reason`, `message`). */
export interface WatchObject {
  apiVersion?: string;
  kind?: string;
  metadata: StoredMeta;
  code?: number;
  reason?: string;
  message?: string;
  [key: string]: unknown;
}

export interface WatchLine {
  type: WatchEventType;
  object: WatchObject;
}

export type WatchEnd = { clean: true } | { clean: false; error: Error };

export class WatchReader {
  readonly status: number;
  /** Settles when the stream ends; never rejects. */
  readonly ended: Promise<WatchEnd>;
  readonly #lines: WatchLine[] = [];
  readonly #waiters: (() => void)[] = [];
  readonly #abort: AbortController;
  #end: WatchEnd | undefined;

  private constructor(status: number, body: ReadableStream<Uint8Array> | null, abort: AbortController) {
    this.status = status;
    this.#abort = abort;
    this.ended = this.#pump(body);
  }

  /** Opens `url` (a full URL with `watch=true`); resolves once the response headers arrive. */
  static async open(url: string): Promise<WatchReader> {
    const abort = new AbortController();
    const res = await fetch(url, { signal: abort.signal });
    return new WatchReader(res.status, res.body, abort);
  }

  async #pump(body: ReadableStream<Uint8Array> | null): Promise<WatchEnd> {
    let buf = '';
    const decoder = new TextDecoder();
    try {
      if (body) {
        for await (const chunk of body) {
          buf += decoder.decode(chunk, { stream: true });
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) this.#lines.push(JSON.parse(line) as WatchLine);
            this.#wake();
          }
        }
      }
      this.#end = { clean: true };
    } catch (e) {
      this.#end = { clean: false, error: e as Error };
    }
    this.#wake();
    return this.#end;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Events received and not yet taken. */
  get buffered(): number {
    return this.#lines.length;
  }

  /** The next event; rejects when the stream has ended without one. */
  async next(): Promise<WatchLine> {
    for (;;) {
      const line = this.#lines.shift();
      if (line) return line;
      if (this.#end)
        throw new Error(`watch stream ended (${this.#end.clean ? 'cleanly' : this.#end.error.message})`);
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** The next event satisfying `ok`, skipping others (e.g. bookmarks). */
  async nextWhere(ok: (e: WatchLine) => boolean): Promise<WatchLine> {
    for (;;) {
      const e = await this.next();
      if (ok(e)) return e;
    }
  }

  close(): void {
    this.#abort.abort();
  }
}
