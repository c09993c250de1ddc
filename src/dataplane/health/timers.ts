/**
 * The timer functions the health modules use. They are injected so that tests move time by hand
 * and every probe, timeout and ejection end happens exactly when a test says so.
 */

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Node's timers, unref'd: health bookkeeping alone must not keep a process alive (the listeners
 * do that), and a test that forgets close() still exits.
 */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

/** Monotonic milliseconds, the same clock the proxy uses. */
export const monotonicNow = (): number => performance.now();
