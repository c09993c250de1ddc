/**
 * Traffic mirroring: a share of the requests the stable backend serves is copied to the canary,
 * and the canary's answers are read and thrown away. The client never waits for a copy: it is
 * dispatched after the real request, shares nothing with it but the (immutable) body buffer, and
 * its failures touch neither the client nor passive health. Extra load is bounded by `maxInFlight`
 * copies per proxy: beyond it, copies are skipped (and counted).
 *
 * Only requests whose body is in memory (or that have none) are copied: a body streamed through
 * once cannot be sent twice.
 */
import type { Dispatcher } from 'undici';
import type { OutgoingHeaders } from '../upstream/headers.ts';

/** What a copy needs to be sent; the exchange fills it from the real request. */
export interface MirrorTarget {
  /** undici's dispatch of the canary endpoint's pool. */
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
}

export interface MirrorOutcome {
  status: number;
  /** Seconds from dispatch to the end of the answer, and to its first byte (-1: none). */
  durationS: number;
  ttfbS: number;
}

export class Mirror {
  readonly percent: number;
  readonly maxInFlight: number;
  inFlight = 0;
  sent = 0;
  skipped = 0;

  constructor(percent: number, maxInFlight: number) {
    this.percent = percent;
    this.maxInFlight = maxInFlight;
  }

  /** Whether this request is to be copied (`roll` in [0, 1)). */
  wants(roll: number): boolean {
    return roll * 100 < this.percent;
  }

  /** Sends a copy unless too many are in flight; `done` gets the canary's outcome. */
  send(
    target: MirrorTarget,
    request: {
      method: string;
      path: string;
      headers: OutgoingHeaders;
      body: Buffer | null;
      headersTimeoutMs: number;
      bodyTimeoutMs: number;
    },
    now: () => number,
    done: (o: MirrorOutcome) => void,
  ): boolean {
    if (this.inFlight >= this.maxInFlight) {
      this.skipped++;
      return false;
    }
    this.inFlight++;
    this.sent++;
    const started = now();
    let firstByte = -1;
    let status = 0;
    let finished = false;
    const finish = (s: number) => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      const t = now();
      done({
        status: s,
        durationS: (t - started) / 1000,
        ttfbS: firstByte < 0 ? -1 : (firstByte - started) / 1000,
      });
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart() {},
      onResponseStart(_c, statusCode) {
        if (statusCode < 200) return;
        status = statusCode;
        firstByte = now();
      },
      onResponseData() {},
      onResponseEnd() {
        finish(status);
      },
      onResponseError() {
        // A copy that failed counts as a canary error (502), like a real request would.
        finish(status >= 500 ? status : 502);
      },
    };
    try {
      target.dispatch(
        {
          path: request.path,
          method: request.method as Dispatcher.HttpMethod,
          headers: { ...request.headers, 'x-modelgate-mirror': '1' },
          body: request.body,
          headersTimeout: request.headersTimeoutMs,
          bodyTimeout: request.bodyTimeoutMs,
        },
        handler,
      );
    } catch {
      finish(502);
    }
    return true;
  }
}
