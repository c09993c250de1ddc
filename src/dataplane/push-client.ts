/**
 * The proxy's end of the push channel (docs/control-plane.md).
 *
 * It keeps one stream open to every controller replica, follows the replica that says it leads
 * with the highest term, and applies that replica's tables only, and only versions newer than the
 * one in use, so neither a deposed leader nor a failover can move it backwards. It answers (ACK or
 * NACK) to every replica it is connected to, so whichever replica leads next knows its state.
 *
 * Messages that arrive together are applied together: they are folded into one candidate table in
 * memory (an `endpoints` message is a cheap `withEndpointsPart` on top of the previous candidate)
 * and `apply` — which rebuilds the proxy's runtime table — runs once per batch, after the socket
 * has been drained, then one ACK says where the proxy now is. A node failure that changes a hundred
 * endpoint sets at once therefore costs one rebuild, not a hundred.
 *
 * Every accepted table is written to `<stateDir>/table.json`; `loadPersisted()` serves it when no
 * controller answers at start.
 */
import { EventEmitter } from 'node:events';
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { type Logger, pino } from 'pino';
import type { DownEndpoint } from '../controlplane/push/endpoint-health-report.ts';
import {
  ACK_PATH,
  type AckBody,
  compareVersions,
  type EndpointsMessage,
  NDJSON,
  parseStreamMessage,
  REPORT_PATH,
  SCHEMA_HEADER,
  STREAM_PATH,
  type TableMessage,
  type TableVersion,
  VERSION_HEADER,
  versionLabel,
} from '../controlplane/push/protocol.ts';
import type { StatsReport } from '../controlplane/rollout/backend-stats.ts';
import { hashEndpointsPart, tableHash, withEndpointsPart } from '../routing-table/hash.ts';
import { type RoutingTable, TABLE_SCHEMA_VERSION } from '../routing-table/types.ts';
import { type BackoffOptions, backoffDelay } from './push/backoff.ts';
import type { ControllerTarget } from './push/controller-address.ts';
import { LineSplitter, LineTooLongError } from './push/ndjson.ts';
import { readPersisted, writePersisted } from './push/persist.ts';

export type { TableVersion } from '../controlplane/push/protocol.ts';
export type { ControllerTarget } from './push/controller-address.ts';

export type PushApplyResult = { ok: true } | { ok: false; reason: string };

/** Timer functions, injectable so tests drive reconnects without waiting. */
export interface PushTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: PushTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface PushClientOptions {
  /** This proxy's id (the pod name). */
  proxyId: string;
  /**
   * Controller base URLs (`http://10.0.0.5:8443`), or a resolver (DNS of a headless Service). A
   * target with `servername` is verified against that name instead of its URL's host (a replica
   * dialled by IP whose certificate names the Service).
   */
  controllers: (string | ControllerTarget)[] | (() => Promise<(string | ControllerTarget)[]>);
  /** The push token; a function is read on every request (rotation). */
  token: string | (() => string);
  /** Swaps the table in (GatewayProxy.apply); `version` is `term.seq`. */
  apply: (table: RoutingTable, version: string) => PushApplyResult;
  /** Where table.json is kept; no persistence without it. */
  stateDir?: string;
  /** Milliseconds, for the times in status. Default Date.now. */
  now?: () => number;
  logger?: Logger;
  backoff?: BackoffOptions;
  /** [0, 1), for backoff jitter. Default Math.random. */
  random?: () => number;
  timers?: PushTimers;
  /** Re-resolve a resolver's list this often (and after each connection failure); 0: only on failures. Default 30 s. */
  resolveIntervalMs?: number;
  /** A stream silent for this long (the controller pings every 15 s) is dropped and redialled; 0 disables. Default 45 s. */
  idleTimeoutMs?: number;
  /** CA bundle (PEM) for https controller URLs; default: the system CAs. */
  ca?: string | Buffer;
  /** Largest message accepted. Default 512 MiB. */
  maxMessageBytes?: number;
  /** Highest table schema declared to controllers. Default TABLE_SCHEMA_VERSION. */
  tableSchema?: number;
  /** The proxy's rollout counters, sent to every connected replica (the leader analyses them). */
  stats?: () => (StatsReport & { endpointsDown?: DownEndpoint[] }) | undefined;
  /** How often stats are sent; 0: never. Default 5 s. */
  reportIntervalMs?: number;
}

export type TableSource = 'controller' | 'persisted' | 'none';

export interface PushClientStatus {
  source: TableSource;
  version: TableVersion | null;
  hash: string | null;
  /** Id of the controller replica followed (the leader with the highest term), if any. */
  leader: string | null;
  /** Replicas with an open stream. */
  connected: number;
  /** The last connection or protocol problem, with the controller URL. */
  lastError: string | null;
}

export type PushClientEvents = {
  /** A stream opened (hello received). */
  connected: [{ url: string; controller: string; leader: boolean; term: number }];
  /** A stream failed or could not be opened; `statusCode` when the controller answered with an HTTP error. */
  disconnected: [{ url: string; reason: string; statusCode?: number }];
  /** Each message read, with its size on the wire. */
  message: [{ url: string; type: string; bytes: number; version?: TableVersion }];
  /** A table (or part) from a replica that is not followed, or not newer than the table in use. */
  ignored: [{ url: string; type: string; version: TableVersion; why: 'not leader' | 'not newer' }];
  applied: [{ version: TableVersion; hash: string; source: TableSource }];
  rejected: [{ version: TableVersion; reason: string }];
  /** An answer was delivered to a replica. */
  answered: [{ url: string; body: AckBody; statusCode: number }];
  persisted: [{ version: TableVersion }];
  /** A stats report was answered by a replica. */
  reported: [{ url: string; statusCode: number }];
  /** How many proxies share the traffic, as the controllers say (see peerCount()). */
  peers: [{ proxies: number }];
  reconnectScheduled: [{ url: string; delayMs: number; attempt: number }];
};

interface Conn {
  url: string;
  /** TLS server name for https (SNI and the name verified); undefined: the URL's host. */
  servername: string | undefined;
  controller: string | undefined;
  leader: boolean;
  term: number;
  /** Hello received and the stream still up. */
  open: boolean;
  /** Bumped per attempt; events of an older attempt are ignored. */
  attempt: number;
  active: boolean;
  req: ClientRequest | undefined;
  failures: number;
  retryTimer: unknown;
  /** No longer listed by the resolver: dropped instead of redialled when it fails. */
  unlisted: boolean;
  /** ACKs to one replica go one at a time, so they arrive in order. */
  answers: Promise<void>;
  /** Proxies this replica last said are connected to it (0: not said yet). */
  peers: number;
}

interface TableState {
  version: TableVersion;
  table: RoutingTable;
}

interface Refusal {
  version: TableVersion;
  hash: string;
  reason: string;
}

export class PushClient extends EventEmitter<PushClientEvents> {
  private readonly o: PushClientOptions;
  private readonly logger: Logger;
  private readonly timers: PushTimers;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly conns = new Map<string, Conn>();
  private readonly httpAgent: HttpAgent;
  private readonly httpsAgent: HttpsAgent;
  private readonly inflight = new Set<ClientRequest>();
  private applied: TableState | undefined;
  private source: TableSource = 'none';
  /** The batch being folded: the candidate table, whether a reply is owed, the newest refusal. */
  private candidate: TableState | undefined;
  private owesAnswer = false;
  private refusal: Refusal | undefined;
  private flushScheduled = false;
  private followed: Conn | undefined;
  private lastError: string | null = null;
  private resolving = false;
  private resolveAgain = false;
  private resolveTimer: unknown;
  private persistNext: TableState | undefined;
  private persisting: Promise<void> | undefined;
  private started = false;
  private closed = false;

  constructor(opts: PushClientOptions) {
    super();
    this.o = opts;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.timers = opts.timers ?? realTimers;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? Date.now;
    this.httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 4 });
    this.httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 4, ...(opts.ca ? { ca: opts.ca } : {}) });
  }

  /** Resolves the controllers and connects to each. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.resolve();
    this.scheduleReport();
  }

  private reportTimer: unknown;
  /** Replicas a report is being posted to (one at a time each: a slow replica is skipped, not queued). */
  private readonly reporting = new Set<string>();

  private scheduleReport(): void {
    const every = this.o.reportIntervalMs ?? 5000;
    if (!this.o.stats || every <= 0 || this.closed) return;
    this.reportTimer = this.timers.setTimeout(() => {
      this.sendReport();
      this.scheduleReport();
    }, every);
  }

  /** Posts the current counters to every open replica now (also used by tests). */
  sendReport(): void {
    const report = this.o.stats?.();
    if (report === undefined || this.closed) return;
    const text = JSON.stringify(report);
    for (const c of this.conns.values()) {
      if (!c.open || this.reporting.has(c.url)) continue;
      this.reporting.add(c.url);
      void this.postJson(c, REPORT_PATH, text, 'report').finally(() => this.reporting.delete(c.url));
    }
  }

  /** A small authenticated POST to one replica; failures are logged, not retried (the next carries newer data). */
  private postJson(c: Conn, path: string, text: string, what: string): Promise<void> {
    const token = this.token();
    if (token === undefined) {
      this.logger.warn({ controller: c.url, what }, `push: ${what} not sent: ${this.lastError}`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const url = new URL(`${c.url}${path}`);
      const https = url.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: 'POST',
        agent: https ? this.httpsAgent : this.httpAgent,
        ...(https && c.servername ? { servername: c.servername } : {}),
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
      });
      this.inflight.add(req);
      const done = () => {
        this.inflight.delete(req);
        resolve();
      };
      req.on('timeout', () => req.destroy(new Error(`${what} timed out`)));
      req.on('error', (e) => {
        this.logger.debug({ controller: c.url, err: e.message }, `push: could not deliver a ${what}`);
        done();
      });
      req.on('response', (res) => {
        void readSmall(res).then((reply) => {
          if ((res.statusCode ?? 0) >= 300) {
            this.logger.warn(
              { controller: c.url, statusCode: res.statusCode, reply },
              `push: ${what} refused`,
            );
          }
          this.emit('reported', { url: c.url, statusCode: res.statusCode ?? 0 });
          done();
        });
      });
      req.end(text);
    });
  }

  status(): PushClientStatus {
    let connected = 0;
    for (const c of this.conns.values()) if (c.open) connected++;
    return {
      source: this.source,
      version: this.applied?.version ?? null,
      hash: this.applied?.table.hash ?? null,
      leader: this.leader()?.controller ?? null,
      connected,
      lastError: this.lastError,
    };
  }

  /** The table in use, with its version. */
  get table(): { version: TableVersion; table: RoutingTable } | undefined {
    return this.applied;
  }

  /**
   * Applies `<stateDir>/table.json` when no table is in use yet (call it when no controller
   * answered in time). Its version then counts as the version in use, so a controller can only
   * replace it with a newer one.
   */
  async loadPersisted(): Promise<{ ok: true; version: TableVersion } | { ok: false; reason: string }> {
    if (!this.o.stateDir) return { ok: false, reason: 'no state directory' };
    if (this.applied) return { ok: false, reason: 'a table is already in use' };
    const read = await readPersisted(this.o.stateDir);
    if (read === undefined) return { ok: false, reason: 'no persisted table' };
    if (typeof read === 'string') {
      this.logger.warn({ reason: read }, 'push: persisted table unusable');
      return { ok: false, reason: read };
    }
    // A controller may have answered while the file was read.
    if (this.applied) return { ok: false, reason: 'a table is already in use' };
    const r = this.callApply(read.table, read.version);
    if (!r.ok) {
      this.logger.error({ reason: r.reason }, 'push: persisted table refused');
      return r;
    }
    this.applied = read;
    this.source = 'persisted';
    this.logger.warn(
      { version: versionLabel(read.version), hash: read.table.hash },
      'push: serving the persisted table (no controller answered)',
    );
    this.emit('applied', { version: read.version, hash: read.table.hash, source: 'persisted' });
    return { ok: true, version: read.version };
  }

  /** Ends every stream, stops timers, and waits for the table file being written. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.resolveTimer !== undefined) this.timers.clearTimeout(this.resolveTimer);
    if (this.reportTimer !== undefined) this.timers.clearTimeout(this.reportTimer);
    for (const c of this.conns.values()) this.drop(c);
    this.conns.clear();
    for (const r of this.inflight) r.destroy();
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    await this.persisting;
  }

  // ---- controllers ------------------------------------------------------------------------------

  private async resolve(): Promise<void> {
    if (this.closed) return;
    if (this.resolving) {
      this.resolveAgain = true;
      return;
    }
    this.resolving = true;
    const { controllers } = this.o;
    do {
      this.resolveAgain = false;
      let urls: (string | ControllerTarget)[] | undefined;
      try {
        urls = typeof controllers === 'function' ? await controllers() : controllers;
      } catch (e) {
        this.lastError = `resolving controllers: ${(e as Error).message}`;
        this.logger.warn({ err: (e as Error).message }, 'push: cannot resolve the controllers');
      }
      if (this.closed) return;
      if (urls) this.reconcile(urls);
    } while (this.resolveAgain);
    this.resolving = false;
    const every = this.o.resolveIntervalMs ?? 30_000;
    if (typeof controllers === 'function' && every > 0) {
      if (this.resolveTimer !== undefined) this.timers.clearTimeout(this.resolveTimer);
      this.resolveTimer = this.timers.setTimeout(() => {
        this.resolveTimer = undefined;
        void this.resolve();
      }, every);
    }
  }

  private reconcile(list: (string | ControllerTarget)[]): void {
    const targets = new Map<string, string | undefined>();
    for (const t of list) {
      const { url, servername } = typeof t === 'string' ? { url: t, servername: undefined } : t;
      targets.set(url.replace(/\/+$/, ''), servername);
    }
    const urls = new Set(targets.keys());
    if (urls.size === 0) this.logger.warn('push: the controller list is empty');
    // Which replicas a dns: name resolved to, when that changes (a headless Service's pods).
    const added = [...urls].filter((u) => !this.conns.has(u));
    const removed = [...this.conns.values()].filter((c) => !urls.has(c.url) && !c.unlisted).map((c) => c.url);
    if (added.length > 0 || removed.length > 0)
      this.logger.debug({ controllers: [...urls], added, removed }, 'push: controller list changed');
    for (const [url, servername] of targets) {
      const c = this.conns.get(url);
      if (c) {
        c.unlisted = false;
        c.servername = servername; // used from the next dial
      } else this.connect(this.newConn(url, servername));
    }
    for (const c of [...this.conns.values()]) {
      if (urls.has(c.url)) continue;
      // A name missing from DNS for a moment (a rollout) must not cut a working stream: an open
      // stream stays until it fails; one that is not open is dropped now.
      if (c.open) c.unlisted = true;
      else {
        this.drop(c);
        this.conns.delete(c.url);
      }
    }
  }

  private newConn(url: string, servername: string | undefined): Conn {
    const c: Conn = {
      url,
      servername,
      controller: undefined,
      leader: false,
      term: 0,
      open: false,
      attempt: 0,
      active: false,
      req: undefined,
      failures: 0,
      retryTimer: undefined,
      unlisted: false,
      answers: Promise.resolve(),
      peers: 0,
    };
    this.conns.set(url, c);
    return c;
  }

  /**
   * The bearer token, or undefined when it cannot be read now: a Secret the controller has not
   * created yet, or a file caught mid-rotation. Callers then retry later instead of throwing.
   */
  private token(): string | undefined {
    const t = this.o.token;
    if (typeof t !== 'function') return t;
    try {
      return t();
    } catch (err) {
      this.lastError = `push token unreadable: ${(err as Error).message}`;
      return undefined;
    }
  }

  private connect(c: Conn): void {
    c.retryTimer = undefined;
    if (this.closed) return;
    const attempt = ++c.attempt;
    c.active = true;
    const token = this.token();
    if (token === undefined) {
      // Dial again with backoff: the token Secret appears once a controller has created it.
      this.fail(c, attempt, this.lastError ?? 'push token unreadable');
      return;
    }
    const url = new URL(`${c.url}${STREAM_PATH}`);
    url.searchParams.set('proxy', this.o.proxyId);
    const https = url.protocol === 'https:';
    const req = (https ? httpsRequest : httpRequest)(url, {
      method: 'GET',
      // A stream holds its connection for hours: its own socket, never one from the ACK pool.
      agent: false,
      ...(https && this.o.ca ? { ca: this.o.ca } : {}),
      ...(https && c.servername ? { servername: c.servername } : {}),
      headers: {
        authorization: `Bearer ${token}`,
        [SCHEMA_HEADER]: String(this.o.tableSchema ?? TABLE_SCHEMA_VERSION),
        // The version in use (persisted or pushed): a leader whose term is not above it knows at
        // once that it must take a higher one (a recreated Lease).
        ...(this.applied ? { [VERSION_HEADER]: versionLabel(this.applied.version) } : {}),
        accept: NDJSON,
      },
    });
    c.req = req;
    const live = () => c.attempt === attempt && c.active;
    req.on('error', (e) => this.fail(c, attempt, dialError(e, https)));
    req.on('response', (res) => {
      if (!live()) {
        res.destroy();
        return;
      }
      if (res.statusCode !== 200) {
        void readSmall(res).then((text) =>
          this.fail(c, attempt, `HTTP ${res.statusCode}: ${errorText(text)}`, res.statusCode),
        );
        return;
      }
      const idle = this.o.idleTimeoutMs ?? 45_000;
      if (idle > 0) {
        res.socket.setTimeout(idle, () => this.fail(c, attempt, `no message for ${idle} ms`));
      }
      const splitter = new LineSplitter(this.o.maxMessageBytes ?? 512 * 1024 * 1024);
      res.on('data', (chunk: Buffer) => {
        let lines: { text: string; bytes: number }[];
        try {
          lines = splitter.push(chunk);
        } catch (e) {
          if (e instanceof LineTooLongError) return this.fail(c, attempt, e.message);
          throw e;
        }
        for (const l of lines) {
          if (!live()) return;
          this.onLine(c, l.text, l.bytes, attempt);
        }
      });
      res.on('end', () => this.fail(c, attempt, 'the controller ended the stream'));
      res.on('error', (e) => this.fail(c, attempt, e.message));
      res.on('close', () => this.fail(c, attempt, 'stream closed'));
    });
    req.end();
  }

  /** Ends the current attempt on `c`, then redials with backoff (or forgets an unlisted replica). */
  private fail(c: Conn, attempt: number, reason: string, statusCode?: number): void {
    if (c.attempt !== attempt || !c.active) return;
    const wasFollowed = this.followed === c;
    this.drop(c);
    this.lastError = `${c.url}: ${reason}`;
    this.logger.warn({ controller: c.url, reason }, 'push: stream to controller failed');
    this.emit(
      'disconnected',
      statusCode === undefined ? { url: c.url, reason } : { url: c.url, reason, statusCode },
    );
    if (wasFollowed) this.updateFollowed();
    if (this.closed) return;
    if (c.unlisted) {
      this.conns.delete(c.url);
    } else {
      const delayMs = backoffDelay(c.failures, this.o.backoff ?? {}, this.random);
      c.failures++;
      this.logger.debug(
        { controller: c.url, inMs: Math.round(delayMs), attempt: c.failures },
        'push: redialing',
      );
      c.retryTimer = this.timers.setTimeout(() => this.connect(c), delayMs);
      this.emit('reconnectScheduled', { url: c.url, delayMs, attempt: c.failures });
    }
    if (typeof this.o.controllers === 'function') void this.resolve();
  }

  /** Stops whatever `c` is doing: the stream, a pending redial. */
  private drop(c: Conn): void {
    c.active = false;
    c.open = false;
    c.leader = false;
    if (c.retryTimer !== undefined) {
      this.timers.clearTimeout(c.retryTimer);
      c.retryTimer = undefined;
    }
    c.req?.destroy();
    c.req = undefined;
  }

  /** The replica followed: open, says it leads, highest term; the one already followed wins a tie. */
  private leader(): Conn | undefined {
    let best: Conn | undefined;
    for (const c of this.conns.values()) {
      if (!c.open || !c.leader) continue;
      if (!best || c.term > best.term || (c.term === best.term && c === this.followed)) best = c;
    }
    return best;
  }

  /**
   * Proxies sharing the traffic: what the followed leader says, else the most any connected
   * replica says (every proxy connects to every replica, so they agree once settled); at least 1.
   */
  peerCount(): number {
    if (this.followed && this.followed.peers > 0) return this.followed.peers;
    let n = 1;
    for (const c of this.conns.values()) if (c.open && c.peers > n) n = c.peers;
    return n;
  }

  private lastPeers = 1;

  private announcePeers(): void {
    const n = this.peerCount();
    if (n === this.lastPeers) return;
    this.lastPeers = n;
    this.emit('peers', { proxies: n });
  }

  private updateFollowed(): void {
    const next = this.leader();
    if (next === this.followed) return;
    this.followed = next;
    if (next)
      this.logger.info({ controller: next.controller, term: next.term }, 'push: following a new leader');
    else this.logger.warn('push: no leader connected; keeping the table in use');
  }

  // ---- messages ---------------------------------------------------------------------------------

  private onLine(c: Conn, text: string, bytes: number, attempt: number): void {
    const m = parseStreamMessage(text);
    if (typeof m === 'string') {
      // Unknown types are skipped, not fatal: a newer controller may send messages this proxy
      // does not know yet.
      this.logger.debug({ controller: c.url, problem: m }, 'push: message skipped');
      return;
    }
    this.emit(
      'message',
      m.type === 'table' || m.type === 'endpoints'
        ? { url: c.url, type: m.type, bytes, version: m.version }
        : { url: c.url, type: m.type, bytes },
    );
    switch (m.type) {
      case 'hello':
        c.controller = m.controller;
        c.leader = m.leader;
        c.term = m.term;
        c.open = true;
        c.failures = 0;
        this.updateFollowed();
        this.emit('connected', { url: c.url, controller: m.controller, leader: m.leader, term: m.term });
        // Tell the replica at once what this proxy runs: it may lead next.
        if (this.applied) this.answer(c, this.ackBody(this.applied));
        return;
      case 'leader':
        c.leader = m.leader;
        c.term = m.term;
        this.updateFollowed();
        return;
      case 'peers':
        c.peers = m.proxies;
        this.announcePeers();
        return;
      case 'ping':
        return;
      case 'error':
        this.fail(c, attempt, `controller refused the stream: ${m.message}`);
        return;
      case 'table':
      case 'endpoints':
        c.leader = m.leader;
        if (m.version.term > c.term) c.term = m.version.term;
        this.updateFollowed();
        if (this.followed !== c) {
          this.emit('ignored', { url: c.url, type: m.type, version: m.version, why: 'not leader' });
          return;
        }
        this.fold(c, m);
        return;
    }
  }

  /** Folds a leader's table or part into the batch's candidate table. */
  private fold(c: Conn, m: TableMessage | EndpointsMessage): void {
    const head = this.candidate ?? this.applied;
    this.owesAnswer = true;
    this.scheduleFlush();
    if (head && compareVersions(m.version, head.version) <= 0) {
      // Not newer: a reconnect resending what this proxy has, or a leader that is behind.
      if (
        this.applied &&
        this.source === 'persisted' &&
        compareVersions(m.version, this.applied.version) === 0
      ) {
        const hash = m.type === 'table' ? m.table.hash : m.hash;
        if (hash === this.applied.table.hash) this.source = 'controller'; // the leader confirms the persisted table
      }
      this.emit('ignored', { url: c.url, type: m.type, version: m.version, why: 'not newer' });
      return;
    }
    if (m.type === 'table') {
      const t = m.table;
      if (tableHash(t.schemaVersion, t.routes, t.endpoints) !== t.hash) {
        this.refuse({ version: m.version, hash: t.hash, reason: 'the table does not match its hash' });
        return;
      }
      this.candidate = { version: m.version, table: t };
      return;
    }
    if (!head || compareVersions(m.base, head.version) !== 0) {
      const have = head ? versionLabel(head.version) : 'none';
      this.refuse({
        version: m.version,
        hash: m.hash,
        reason: `endpoints change applies on ${versionLabel(m.base)}, this proxy has ${have}`,
      });
      return;
    }
    if (m.part && hashEndpointsPart(m.part.endpoints).hash !== m.part.hash) {
      this.refuse({
        version: m.version,
        hash: m.hash,
        reason: `endpoints part ${m.key} does not match its hash`,
      });
      return;
    }
    const next = withEndpointsPart(head.table, m.key, m.part ?? undefined);
    if (next.hash !== m.hash) {
      this.refuse({
        version: m.version,
        hash: m.hash,
        reason: `table hash after the endpoints change is ${next.hash}, the controller says ${m.hash}`,
      });
      return;
    }
    this.candidate = { version: m.version, table: next };
  }

  private refuse(r: Refusal): void {
    if (!this.refusal || compareVersions(r.version, this.refusal.version) > 0) this.refusal = r;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // After the I/O phase: every chunk already read is folded in before apply runs.
    setImmediate(() => this.flush());
  }

  /** Applies the batch's candidate once, then answers every replica. */
  private flush(): void {
    this.flushScheduled = false;
    const candidate = this.candidate;
    let refusal = this.refusal;
    const owes = this.owesAnswer;
    this.candidate = undefined;
    this.refusal = undefined;
    this.owesAnswer = false;
    if (this.closed) return;
    let answered = false;
    if (candidate) {
      const r = this.callApply(candidate.table, candidate.version);
      if (r.ok) {
        this.applied = candidate;
        this.source = 'controller';
        this.logger.info(
          { version: versionLabel(candidate.version), hash: candidate.table.hash },
          'push: table applied',
        );
        this.emit('applied', {
          version: candidate.version,
          hash: candidate.table.hash,
          source: 'controller',
        });
        this.persist(candidate);
        this.answerAll(this.ackBody(candidate));
        answered = true;
      } else {
        this.emit('rejected', { version: candidate.version, reason: r.reason });
        const failed = { version: candidate.version, hash: candidate.table.hash, reason: r.reason };
        if (!refusal || compareVersions(failed.version, refusal.version) > 0) refusal = failed;
      }
    }
    if (refusal && (!this.applied || compareVersions(refusal.version, this.applied.version) > 0)) {
      this.answerAll({
        proxy: this.o.proxyId,
        version: refusal.version,
        hash: refusal.hash,
        ok: false,
        reason: refusal.reason,
      });
      answered = true;
    }
    // Messages not newer than the table in use are answered with an ACK of that table (ACKs are
    // cumulative), so a replica always learns where this proxy is.
    if (!answered && owes && this.applied) this.answerAll(this.ackBody(this.applied));
  }

  private callApply(table: RoutingTable, version: TableVersion): PushApplyResult {
    try {
      return this.o.apply(table, versionLabel(version));
    } catch (e) {
      return { ok: false, reason: `apply failed: ${(e as Error).message}` };
    }
  }

  private ackBody(s: TableState): AckBody {
    return { proxy: this.o.proxyId, version: s.version, hash: s.table.hash, ok: true };
  }

  // ---- answers ----------------------------------------------------------------------------------

  private answerAll(body: AckBody): void {
    for (const c of this.conns.values()) if (c.open) this.answer(c, body);
  }

  private answer(c: Conn, body: AckBody): void {
    c.answers = c.answers.then(() => this.post(c, body));
  }

  private post(c: Conn, body: AckBody): Promise<void> {
    if (this.closed) return Promise.resolve();
    const token = this.token();
    if (token === undefined) {
      // The stream was opened with a token; the next table's answer will go once it reads again.
      this.logger.warn({ controller: c.url }, `push: answer not sent: ${this.lastError}`);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const text = JSON.stringify(body);
      const url = new URL(`${c.url}${ACK_PATH}`);
      const https = url.protocol === 'https:';
      const req = (https ? httpsRequest : httpRequest)(url, {
        method: 'POST',
        agent: https ? this.httpsAgent : this.httpAgent,
        ...(https && c.servername ? { servername: c.servername } : {}),
        timeout: 10_000,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
      });
      this.inflight.add(req);
      const done = () => {
        this.inflight.delete(req);
        resolve();
      };
      req.on('timeout', () => req.destroy(new Error('ACK timed out')));
      req.on('error', (e) => {
        // Not retried: the next answer carries the newer state, and a reconnect triggers one.
        this.logger.warn({ controller: c.url, err: e.message }, 'push: could not deliver an ACK');
        done();
      });
      req.on('response', (res) => {
        void readSmall(res).then((reply) => {
          const statusCode = res.statusCode ?? 0;
          if (statusCode >= 300) {
            this.lastError = `${c.url}: ACK answered HTTP ${statusCode}: ${errorText(reply)}`;
            this.logger.warn({ controller: c.url, statusCode, reply }, 'push: ACK refused');
          }
          this.emit('answered', { url: c.url, body, statusCode });
          done();
        });
      });
      req.end(text);
    });
  }

  // ---- persistence ------------------------------------------------------------------------------

  /** Writes the newest accepted table; writes never overlap, and intermediate tables are skipped. */
  private persist(s: TableState): void {
    const dir = this.o.stateDir;
    if (!dir) return;
    this.persistNext = s;
    this.persisting ??= (async () => {
      for (let next = this.persistNext; next; next = this.persistNext) {
        this.persistNext = undefined;
        try {
          await writePersisted(dir, next);
          this.emit('persisted', { version: next.version });
        } catch (e) {
          this.logger.error({ err: (e as Error).message }, 'push: could not persist the table');
        }
      }
      this.persisting = undefined;
    })();
  }
}

/** OpenSSL's verification failures (Node puts them in `code`), and Node's own name check. */
const CERTIFICATE_ERRORS = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'INVALID_CA',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
]);

/**
 * Why a dial failed, said so that an operator can act on it: a certificate the proxy does not
 * trust (wrong or missing --push-ca, a name the certificate lacks), or a plaintext dial that a
 * TLS controller hung up on.
 */
function dialError(e: Error & { code?: string }, https: boolean): string {
  if (https && e.code !== undefined && CERTIFICATE_ERRORS.has(e.code))
    return `TLS certificate of the controller not accepted (${e.code}: ${e.message}); check --push-ca and --push-server-name`;
  if (!https && (e.code === 'ECONNRESET' || e.message === 'socket hang up'))
    return `${e.message} (if the controller serves TLS, dial it over https with --push-ca)`;
  if (https && e.code === 'EPROTO' && /wrong version number|packet length too long/.test(e.message))
    return `${e.message.trim()} (the controller answers in plaintext: does it have --push-tls-cert?)`;
  return e.message;
}

/** Reads a short response body (error details), at most 4 KiB kept. */
function readSmall(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (s: string) => {
      if (text.length < 4096) text += s;
    });
    res.on('end', () => resolve(text.slice(0, 4096)));
    res.on('error', () => resolve(text));
    res.on('close', () => resolve(text));
  });
}

/** The `message` of a JSON error body, or the text itself. */
function errorText(text: string): string {
  try {
    const v = JSON.parse(text) as { message?: unknown; error?: unknown };
    if (typeof v.message === 'string')
      return typeof v.error === 'string' ? `${v.error}: ${v.message}` : v.message;
  } catch {
    // Not JSON.
  }
  return text.trim() || '(no body)';
}
