/**
 * Splits a text/event-stream body into events as the bytes pass through, without delaying them.
 *
 * An event ends with a blank line; lines end with CRLF, LF or CR (so `\n\n`, `\r\n\r\n` and `\r\r`
 * all end an event, mixed forms too), per the HTML Living Standard's event-stream grammar. Every
 * complete event is handed to `onEvent` as it arrives, and forwarded at once unless `onEvent`
 * asks to drop it; only a trailing partial event is held back until the rest of it arrives. Bytes
 * are forwarded exactly as received: when a chunk holds only whole events and none is dropped, the
 * chunk itself is returned (no copy).
 *
 * An event larger than `maxEventBytes` is not held or decoded: its bytes are forwarded as they come,
 * and when it ends `onOversized` gets the text of its last bytes (64 KiB).
 */
import { TailWindow } from './usage-fields.ts';

const LF = 0x0a;
const CR = 0x0d;
const TAIL_BYTES = 64 * 1024;

export interface SseFramerOptions {
  /** Called with each complete event's text (its field lines and terminators); true drops the event. */
  onEvent: (text: string) => boolean;
  /** Called with the tail of each event too large to hold. */
  onOversized: (tail: string) => void;
  maxEventBytes: number;
}

export class SseFramer {
  readonly #onEvent: (text: string) => boolean;
  readonly #onOversized: (tail: string) => void;
  readonly #max: number;
  /** The start of the current event, received in earlier chunks and not yet forwarded (copies). */
  #held: Buffer[] = [];
  #heldLength = 0;
  /** Set while the current event is too large: its bytes are forwarded as they come. */
  #oversized: TailWindow | undefined;
  /** The last byte seen was a CR: an LF right after it completes the same line terminator. */
  #cr = false;
  /** No byte of the current line has been seen yet (a terminator now ends a blank line). */
  #lineStart = true;
  /**
   * An event ended on a CR at the end of the previous chunk: an LF first in this chunk completes its
   * CRLF, and belongs to it: forwarded, or dropped with it.
   */
  #lfAfter: 'keep' | 'drop' | undefined;
  /** No event was handed to onEvent yet (a leading BOM is removed from the first one). */
  #first = true;

  constructor(opts: SseFramerOptions) {
    this.#onEvent = opts.onEvent;
    this.#onOversized = opts.onOversized;
    this.#max = opts.maxEventBytes;
  }

  /** Takes one chunk; returns the bytes to forward now (undefined when none). */
  push(chunk: Buffer): Buffer | undefined {
    const n = chunk.length;
    if (n === 0) return undefined;
    let out: Buffer[] | undefined; // pieces to forward before the current run
    let runStart = 0; // chunk[runStart, eventStart) is forwarded
    let eventStart = 0; // where the current event starts in this chunk (after any held bytes)
    let i = 0;
    if (this.#lfAfter !== undefined) {
      if (chunk[0] === LF) {
        this.#cr = false;
        i = eventStart = 1;
        if (this.#lfAfter === 'drop') runStart = 1;
      }
      this.#lfAfter = undefined;
    }
    let cr = this.#cr;
    let lineStart = this.#lineStart;
    // The next LF / CR at or after i (n when none): found with native scans, as most bytes are
    // neither; a chunk without CR (the usual LF-only stream) is never scanned for CR again.
    let nextLF = -1;
    let nextCR = chunk.indexOf(CR, i) === -1 ? n : -1;
    for (; i < n; i++) {
      const c = chunk[i];
      if (c !== LF && c !== CR) {
        cr = false;
        lineStart = false;
        if (nextLF < i) {
          nextLF = chunk.indexOf(LF, i);
          if (nextLF === -1) nextLF = n;
        }
        if (nextCR < i) {
          nextCR = chunk.indexOf(CR, i);
          if (nextCR === -1) nextCR = n;
        }
        i = Math.min(nextLF, nextCR) - 1;
        continue;
      }
      if (c === LF && cr) {
        cr = false; // the second half of a CRLF
        continue;
      }
      if (c === CR) {
        if (i + 1 < n && chunk[i + 1] === LF) i++;
        else cr = true;
      } else {
        cr = false;
      }
      if (!lineStart) {
        lineStart = true;
        continue;
      }
      // A blank line: the event chunk[eventStart, i] (after the held bytes) is complete.
      const end = i + 1;
      const held = this.#held;
      const drop = this.#event(chunk, eventStart, end);
      if (cr && end === n) this.#lfAfter = drop ? 'drop' : 'keep';
      if (drop) {
        if (eventStart > runStart) {
          out ??= [];
          out.push(chunk.subarray(runStart, eventStart));
        }
        runStart = end;
      } else if (held.length > 0) {
        // Only the first event of a chunk can have held bytes: nothing of this chunk is out yet.
        out = held;
      }
      eventStart = end;
    }
    this.#cr = cr;
    this.#lineStart = lineStart;

    let runEnd = n;
    if (eventStart < n) {
      const partial = chunk.subarray(eventStart, n);
      if (this.#oversized) {
        this.#oversized.push(partial);
      } else if (this.#heldLength + partial.length > this.#max) {
        // Too large to hold: forward what was held and everything of it from now on.
        const tail = new TailWindow(TAIL_BYTES);
        for (const h of this.#held) tail.push(h);
        tail.push(partial);
        this.#oversized = tail;
        if (this.#heldLength > 0) out = [...this.#held, ...(out ?? [])];
        this.#held = [];
        this.#heldLength = 0;
      } else {
        this.#held.push(Buffer.from(partial));
        this.#heldLength += partial.length;
        runEnd = eventStart;
      }
    }

    if (out === undefined) {
      if (runStart === 0 && runEnd === n) return chunk;
      return runEnd > runStart ? chunk.subarray(runStart, runEnd) : undefined;
    }
    if (runEnd > runStart) out.push(chunk.subarray(runStart, runEnd));
    if (out.length === 0) return undefined;
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /** Upstream ended: a trailing event without its blank line is handled, and returned unless dropped. */
  end(): Buffer | undefined {
    if (this.#oversized) {
      this.#onOversized(this.#oversized.text());
      this.#oversized = undefined;
      return undefined;
    }
    if (this.#heldLength === 0) return undefined;
    const rest = Buffer.concat(this.#held, this.#heldLength);
    this.#held = [];
    this.#heldLength = 0;
    return this.#handle(rest.toString('utf8')) ? undefined : rest;
  }

  /**
   * A complete event: the held bytes then chunk[start, end). True when it is to be dropped. The
   * held bytes are let go of (the caller forwards them unless the event is dropped).
   */
  #event(chunk: Buffer, start: number, end: number): boolean {
    const held = this.#held;
    const heldLength = this.#heldLength;
    if (heldLength > 0) {
      this.#held = [];
      this.#heldLength = 0;
    }
    if (this.#oversized) {
      this.#oversized.push(chunk.subarray(start, end));
      this.#onOversized(this.#oversized.text());
      this.#oversized = undefined;
      return false;
    }
    const length = heldLength + end - start;
    if (length > this.#max) {
      // Complete, but too large to decode: only its tail is looked at.
      const tail = new TailWindow(TAIL_BYTES);
      for (const h of held) tail.push(h);
      tail.push(chunk.subarray(start, end));
      this.#onOversized(tail.text());
      return false;
    }
    let text: string;
    if (heldLength === 0) {
      text = chunk.toString('utf8', start, end);
    } else {
      text = Buffer.concat([...held, chunk.subarray(start, end)], length).toString('utf8');
    }
    return this.#handle(text);
  }

  #handle(text: string): boolean {
    if (this.#first) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    return this.#onEvent(text);
  }
}
