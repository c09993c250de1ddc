/**
 * The push tokens a controller accepts: the current one and, for a grace period after a rotation,
 * the previous one. Proxies read the token from a kubelet-mounted file, which the kubelet refreshes
 * a minute or more after the Secret changes; until then they present the previous token, and
 * refusing it would disconnect every proxy for that long.
 *
 * The grace period is a fixed time rather than "until no proxy presents the old token": the
 * controller cannot know that every proxy has moved on (a disconnected proxy presents nothing), and
 * a fixed end gives an operator who rotates a leaked token a known moment after which it is dead.
 */
export interface PushTokenHolderOptions {
  /** How long the previous token stays accepted after a change. */
  graceMs: number;
  /** Milliseconds. Default Date.now. */
  now?: () => number;
}

export class PushTokenHolder {
  private currentToken: string;
  private previous: { token: string; until: number } | undefined;
  private readonly graceMs: number;
  private readonly now: () => number;
  /** Changes so far (tests wait on it). */
  changes = 0;

  constructor(initial: string, opts: PushTokenHolderOptions) {
    this.currentToken = initial;
    this.graceMs = opts.graceMs;
    this.now = opts.now ?? Date.now;
  }

  get current(): string {
    return this.currentToken;
  }

  /** The previous token's end of grace (ms), while it is still accepted. */
  get previousUntil(): number | undefined {
    return this.previous && this.now() < this.previous.until ? this.previous.until : undefined;
  }

  /**
   * Makes `token` the current one; the one it replaces stays accepted for the grace period.
   * Returns false (and changes nothing) when it already is the current one.
   */
  set(token: string): boolean {
    if (token === this.currentToken) return false;
    this.previous = { token: this.currentToken, until: this.now() + this.graceMs };
    this.currentToken = token;
    this.changes++;
    return true;
  }

  /** The tokens accepted now: the current one, then the previous one within its grace period. */
  accepted(): string[] {
    if (this.previous && this.now() >= this.previous.until) this.previous = undefined;
    return this.previous ? [this.currentToken, this.previous.token] : [this.currentToken];
  }
}
