/**
 * The controller's end of the push channel (docs/control-plane.md): one NDJSON stream per
 * connected proxy (GET /v1/stream) and the proxies' ACK/NACK answers (POST /v1/ack).
 *
 * Every replica runs one. Only the leader streams tables: followers send `hello`, `leader` and
 * `ping`, so proxies, which apply the leader's tables only, are not sent whole tables they would
 * throw away. A replica that becomes leader sends its table to every stream at once.
 *
 * Each message is serialised once and the same Buffer is written to every stream: a whole table
 * of 50,000 endpoints is MBs of JSON, and stringifying it per proxy would cost more than sending it.
 * What each stream is sent still depends on that stream: one that already has the previous version
 * gets only the changed endpoints parts; one that has something else (it just connected, or it
 * NACKed) gets the whole table.
 *
 * No Kubernetes here: the controller role wires `handle` into its HTTP server, feeds `publish` with
 * compiled tables and `setLeader` with the leader elector's decisions, and reads `proxies()` and the
 * 'ack' event to compute Programmed. 'staleTerm' tells it when proxies run a term at or above the
 * one it leads (the Lease was recreated), which only a new term from the elector can fix.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { type Logger, pino } from 'pino';
import { withEndpointsPart } from '../routing-table/hash.ts';
import { type RoutingTable, TABLE_SCHEMA_VERSION } from '../routing-table/types.ts';
import { type DownEndpoint, parseEndpointsDown } from './push/endpoint-health-report.ts';
import { bearerMatches, readBody, sendError } from './push/http.ts';
import {
  ACK_PATH,
  type AckBody,
  compareVersions,
  isValidProxyId,
  NDJSON,
  parseAckBody,
  parseVersionLabel,
  REPORT_PATH,
  SCHEMA_HEADER,
  STREAM_PATH,
  type StreamMessage,
  type TableVersion,
  VERSION_HEADER,
  versionLabel,
} from './push/protocol.ts';
import { parseStatsReport, type StatsReport } from './rollout/backend-stats.ts';

export type { TableVersion } from './push/protocol.ts';

export interface PushServerOptions {
  /** This replica's id (the pod name), sent in `hello`. */
  controllerId: string;
  /**
   * The bearer token proxies must present; a function is read on every request (rotation) and may
   * return several accepted tokens (the current and, during a rotation's grace period, the previous).
   */
  token: string | (() => string | readonly string[]);
  /** Milliseconds, for ACK timestamps and forgetting gone proxies. Default Date.now. */
  now?: () => number;
  /** Keep-alive interval; 0 disables. Default 15 s. */
  pingIntervalMs?: number;
  /**
   * A publication that changes more endpoints parts than this is sent as a whole table: each part
   * message costs the sender and every proxy a table-hash computation over all parts. Default 64.
   */
  maxEndpointsMessages?: number;
  /**
   * A stream whose unsent output exceeds this many bytes is closed (the proxy is not reading);
   * it reconnects and gets the whole table. Checked before each write, so one whole table always
   * fits. Default 64 MiB.
   */
  maxBufferedBytes?: number;
  /** Disconnected proxies are forgotten (dropped from `proxies()`) after this long. Default 10 min. */
  forgetAfterMs?: number;
  logger?: Logger;
}

/** An ACK or NACK as received, with the time it arrived. */
export type AckRecord = AckBody & { at: number };

export interface ProxyView {
  id: string;
  connected: boolean;
  /** The proxy's newest answer, ACK or NACK. */
  lastAck: AckRecord | undefined;
  /** The newest version the proxy ACKed (it runs it). */
  applied: TableVersion | undefined;
  /** Set while the proxy's newest answer is a NACK of a version newer than `applied`. */
  refused: { version: TableVersion; reason: string } | undefined;
  /**
   * The endpoints this proxy has taken out of service, from its newest report, and when that
   * arrived; undefined until a report with the list arrives (a proxy that predates it never sends one).
   */
  endpointsDown: { down: DownEndpoint[]; at: number } | undefined;
}

export type PushServerEvents = {
  ack: [AckRecord];
  connect: [{ proxy: string; schema: number }];
  disconnect: [{ proxy: string; reason: string }];
  /** A whole table was sent to one proxy after it NACKed. */
  resend: [{ proxy: string; version: TableVersion; nacked: TableVersion }];
  /** A proxy's rollout counters (POST /v1/report), validated. */
  report: [StatsReport];
  /**
   * While leading: a proxy runs (or refused) a version of a term at or above this replica's that
   * this replica did not publish, so it ignores this replica's tables until the leader takes a
   * higher term. Once per such term seen within a term of this replica.
   */
  staleTerm: [{ proxy: string; version: TableVersion; term: number }];
  /** A request was refused for a missing or unknown token (the token may have been rotated). */
  unauthorized: [];
};

interface Stream {
  proxy: string;
  res: ServerResponse;
  /** Table schema this stream is sent. */
  schema: number;
  /** Version of the last table or part written to the stream: the base for the next part. */
  sent: TableVersion | undefined;
  /** Version of the last whole table written to the stream. */
  lastFull: TableVersion | undefined;
  closed: boolean;
}

interface ProxyRecord {
  connected: boolean;
  lastAck: AckRecord | undefined;
  applied: TableVersion | undefined;
  refused: { version: TableVersion; reason: string } | undefined;
  endpointsDown: { down: DownEndpoint[]; at: number } | undefined;
  disconnectedAt: number;
}

interface Published {
  table: RoutingTable;
  /** Undefined while this replica is a follower (followers do not version or send tables). */
  version: TableVersion | undefined;
  /** The `table` message line, built on first use and shared by every stream. */
  line?: Buffer;
}

const ACK_BODY_LIMIT = 64 * 1024;
/** A report lists a few counters per governed backend: 4 MiB is thousands of rollouts. */
const REPORT_BODY_LIMIT = 4 * 1024 * 1024;

function line(message: StreamMessage): Buffer {
  return Buffer.from(`${JSON.stringify(message)}\n`);
}

const PING_LINE = line({ type: 'ping' });

export class PushServer extends EventEmitter<PushServerEvents> {
  readonly controllerId: string;
  private readonly token: () => string | readonly string[];
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly maxEndpointsMessages: number;
  private readonly maxBufferedBytes: number;
  private readonly forgetAfterMs: number;
  private readonly streams = new Map<string, Stream>();
  private readonly records = new Map<string, ProxyRecord>();
  private readonly pingTimer: NodeJS.Timeout | undefined;
  private leader = false;
  private term = 0;
  private seq = 0;
  private current: Published | undefined;
  private closed = false;
  /** Newest term reported through 'staleTerm' in the current term (once per term seen). */
  private staleReported = 0;
  /** The highest term any proxy has reported (ACK, NACK or stream header), and who reported it. */
  private proxyHigh: { proxy: string; version: TableVersion } | undefined;

  constructor(opts: PushServerOptions) {
    super();
    this.controllerId = opts.controllerId;
    const token = opts.token;
    this.token = typeof token === 'function' ? token : () => token;
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger ?? pino({ level: 'silent' });
    this.maxEndpointsMessages = opts.maxEndpointsMessages ?? 64;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    this.forgetAfterMs = opts.forgetAfterMs ?? 10 * 60_000;
    const ping = opts.pingIntervalMs ?? 15_000;
    if (ping > 0) {
      this.pingTimer = setInterval(() => {
        for (const s of this.streams.values()) this.write(s, PING_LINE);
      }, ping);
      this.pingTimer.unref();
    }
  }

  /**
   * The highest term any proxy has said it runs or refused (0: none yet). A new leadership must take
   * a term above it (LeaderElector's `termFloor`).
   */
  get highestProxyTerm(): number {
    return this.proxyHigh?.version.term ?? 0;
  }

  /** Whether this replica streams tables, and the term it leads or last saw. */
  get state(): { leader: boolean; term: number; version: TableVersion | undefined } {
    return { leader: this.leader, term: this.term, version: this.leader ? this.current?.version : undefined };
  }

  /**
   * Leadership as decided by the leader elector. Gaining it (or a new term) versions the current
   * table `{term, next seq}` and sends it whole to every stream; losing it tells every stream so.
   * Within one term seq keeps counting, so re-gaining the same term never reuses a version; a
   * lower term than one already seen is not taken (the higher one is kept).
   */
  setLeader(leader: boolean, requestedTerm: number): void {
    let term = requestedTerm;
    if (!Number.isSafeInteger(term) || term < this.term) {
      // The Lease went backwards (deleted and recreated). Versions must not: proxies would ignore
      // them. Keep counting in the highest term this process has seen, and say so loudly.
      this.logger.error(
        { term: requestedTerm, kept: this.term },
        'push: the leader term went backwards; keeping the higher term so versions keep increasing',
      );
      term = this.term;
    }
    const termChanged = term !== this.term;
    const wasLeader = this.leader;
    this.term = term;
    this.leader = leader;
    if (termChanged) {
      this.seq = 0;
      this.staleReported = 0;
    }
    if (!leader && !wasLeader && !termChanged) return;
    if (leader && wasLeader && !termChanged) return;
    const notice = line({ type: 'leader', leader, term });
    if (leader && this.current) this.current = { table: this.current.table, version: this.nextVersion() };
    for (const s of this.streams.values()) {
      this.write(s, notice);
      if (leader) {
        if (this.current) this.sendFull(s);
      } else {
        s.sent = undefined;
        s.lastFull = undefined;
      }
    }
    this.logger.info({ leader, term }, leader ? 'push: leading' : 'push: following');
    // Proxies already said they run this term or a later one (another process led it).
    const high = this.proxyHigh;
    if (leader && termChanged && high && high.version.term >= term) this.staleTerm(high.proxy, high.version);
  }

  /**
   * Makes `table` the current table. As leader, assigns it the next version(s) and sends it: when
   * only endpoints parts changed since the previous table, one `endpoints` message per changed part
   * (each with its own consecutive version, chained by `base`); otherwise the whole table. Returns
   * the new current version, or undefined as a follower. Publishing a table with the current
   * table's hash changes nothing.
   */
  publish(table: RoutingTable): TableVersion | undefined {
    if (this.closed) throw new Error('push server is closed');
    const prev = this.current;
    if (!this.leader) {
      this.current = { table, version: undefined };
      return undefined;
    }
    if (prev?.version && prev.table.hash === table.hash && prev.table.schemaVersion === table.schemaVersion) {
      // "I changed a resource and nothing happened": the compiled table did not change.
      this.logger.debug(
        { version: versionLabel(prev.version), hash: table.hash },
        'push: table unchanged; nothing sent',
      );
      this.current = { ...prev, table };
      return prev.version;
    }
    const chain = prev?.version ? this.endpointsChain(prev.table, prev.version, table) : undefined;
    if (!chain) {
      const version = this.nextVersion();
      this.current = { table, version };
      this.logger.debug(
        { version: versionLabel(version), hash: table.hash, proxies: this.streams.size },
        'push: publishing the whole table',
      );
      for (const s of this.streams.values()) this.sendFull(s);
      return version;
    }
    this.seq = chain.seq;
    const base = prev!.version!;
    this.current = { table, version: chain.version };
    this.logger.debug(
      {
        version: versionLabel(chain.version),
        hash: table.hash,
        endpointsParts: chain.lines.length,
        proxies: this.streams.size,
      },
      'push: publishing endpoints changes',
    );
    for (const s of this.streams.values()) {
      if (s.sent && compareVersions(s.sent, base) === 0) {
        for (const l of chain.lines) if (!this.write(s, l)) break;
        s.sent = chain.version;
      } else {
        // This stream does not have the base (it NACKed, or never got a table): the whole table.
        this.sendFull(s);
      }
    }
    return chain.version;
  }

  /**
   * The `endpoints` messages that take `prev` to `next`, or undefined when a whole table must be
   * sent: the routes part or schema changed, too many parts changed, or the chain does not end at
   * `next`'s hash (its endpoints keys were not sorted, say).
   */
  private endpointsChain(
    prev: RoutingTable,
    prevVersion: TableVersion,
    next: RoutingTable,
  ): { lines: Buffer[]; version: TableVersion; seq: number } | undefined {
    if (prev.schemaVersion !== next.schemaVersion || prev.routes.hash !== next.routes.hash) return undefined;
    const changed: string[] = [];
    for (const key in next.endpoints) {
      if (prev.endpoints[key]?.hash !== next.endpoints[key]!.hash) changed.push(key);
    }
    for (const key in prev.endpoints) if (!(key in next.endpoints)) changed.push(key);
    if (changed.length === 0 || changed.length > this.maxEndpointsMessages) return undefined;
    changed.sort();
    const lines: Buffer[] = [];
    let t = prev;
    let base = prevVersion;
    let seq = this.seq;
    for (const key of changed) {
      const part = next.endpoints[key];
      t = withEndpointsPart(t, key, part);
      const version = { term: this.term, seq: ++seq };
      lines.push(
        line({ type: 'endpoints', version, base, leader: true, key, part: part ?? null, hash: t.hash }),
      );
      base = version;
    }
    if (t.hash !== next.hash) {
      this.logger.warn(
        { expected: next.hash, got: t.hash },
        'push: endpoints changes do not reproduce the table hash; sending the whole table',
      );
      return undefined;
    }
    return { lines, version: base, seq };
  }

  private nextVersion(): TableVersion {
    return { term: this.term, seq: ++this.seq };
  }

  /** Writes the current table whole to one stream (only ever called while leading). */
  private sendFull(s: Stream): void {
    const cur = this.current;
    if (!cur?.version) return;
    if (cur.table.schemaVersion > s.schema) {
      // Only one schema exists today; a newer compiler with an older proxy ends up here.
      this.refuseSchema(s.res, s.schema, cur.table.schemaVersion);
      return;
    }
    cur.line ??= line({ type: 'table', version: cur.version, leader: true, table: cur.table });
    if (this.write(s, cur.line)) {
      s.sent = cur.version;
      s.lastFull = cur.version;
    }
  }

  private write(s: Stream, buf: Buffer): boolean {
    if (s.closed) return false;
    if (s.res.writableLength > this.maxBufferedBytes) {
      this.logger.warn(
        { proxy: s.proxy, buffered: s.res.writableLength },
        'push: proxy is not reading its stream; closing it (it will reconnect and get the whole table)',
      );
      s.closed = true;
      s.res.destroy();
      return false;
    }
    s.res.write(buf);
    return true;
  }

  /** Every proxy known to this replica (connected, or disconnected less than forgetAfterMs ago). */
  proxies(): ProxyView[] {
    const now = this.now();
    const out: ProxyView[] = [];
    for (const [id, r] of this.records) {
      if (!r.connected && now - r.disconnectedAt > this.forgetAfterMs) {
        this.records.delete(id);
        continue;
      }
      out.push({
        id,
        connected: r.connected,
        lastAck: r.lastAck,
        applied: r.applied,
        refused: r.refused,
        endpointsDown: r.endpointsDown,
      });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Serves GET /v1/stream and POST /v1/ack; returns false (and leaves `res` alone) for any other
   * path, so the controller can serve its own routes on the same server.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === STREAM_PATH) {
      if (req.method !== 'GET') sendError(res, 405, 'method_not_allowed', 'use GET', { allow: 'GET' });
      else this.openStream(req, res);
      return true;
    }
    if (path === ACK_PATH) {
      if (req.method !== 'POST') sendError(res, 405, 'method_not_allowed', 'use POST', { allow: 'POST' });
      else void this.receiveAck(req, res);
      return true;
    }
    if (path === REPORT_PATH) {
      if (req.method !== 'POST') sendError(res, 405, 'method_not_allowed', 'use POST', { allow: 'POST' });
      else void this.receiveReport(req, res);
      return true;
    }
    return false;
  }

  /** A request listener serving only the push channel (404 for anything else). */
  requestListener(): RequestListener {
    return (req, res) => {
      if (!this.handle(req, res)) sendError(res, 404, 'not_found', `no route for ${req.method} ${req.url}`);
    };
  }

  private authorized(req: IncomingMessage, res: ServerResponse): boolean {
    const accepted = this.token();
    // Every token is compared (no early exit), so the time taken does not tell which one matched.
    let ok = false;
    for (const t of typeof accepted === 'string' ? [accepted] : accepted) ok = bearerMatches(req, t) || ok;
    if (ok) return true;
    this.emit('unauthorized');
    sendError(res, 401, 'unauthorized', 'a valid push token is required (Authorization: Bearer <token>)', {
      'www-authenticate': 'Bearer realm="modelgate-push"',
    });
    return false;
  }

  private openStream(req: IncomingMessage, res: ServerResponse): void {
    if (!this.authorized(req, res)) return;
    if (this.closed) {
      sendError(res, 503, 'unavailable', 'the controller is shutting down');
      return;
    }
    const proxy = new URL(req.url ?? '/', 'http://push').searchParams.get('proxy');
    if (!isValidProxyId(proxy)) {
      sendError(res, 400, 'bad_request', 'query parameter proxy (the proxy id) is required');
      return;
    }
    const declared = req.headers[SCHEMA_HEADER];
    if (typeof declared !== 'string' || !/^[0-9]{1,9}$/.test(declared.trim())) {
      sendError(res, 400, 'bad_request', `header ${SCHEMA_HEADER} (an integer) is required`);
      return;
    }
    res.writeHead(200, { 'content-type': NDJSON, 'cache-control': 'no-store' });
    // The newest schema the proxy understands that this controller can produce. There is one
    // today, so a proxy declaring less than it cannot be served.
    const schema = Math.min(Number(declared.trim()), TABLE_SCHEMA_VERSION);
    if (schema < TABLE_SCHEMA_VERSION) {
      this.refuseSchema(res, schema, TABLE_SCHEMA_VERSION);
      this.logger.warn({ proxy, schema }, 'push: refused a proxy that does not understand the table schema');
      return;
    }
    // The version the proxy runs, if it says (older proxies do not; their ACK after hello does).
    const declaredVersion = req.headers[VERSION_HEADER];
    const runs = typeof declaredVersion === 'string' ? parseVersionLabel(declaredVersion) : undefined;
    req.socket.setKeepAlive(true, 30_000);
    const stream: Stream = { proxy, res, schema, sent: undefined, lastFull: undefined, closed: false };
    const old = this.streams.get(proxy);
    if (old) {
      // The same proxy reconnected before its old connection was seen to die: the new one wins.
      old.closed = true;
      old.res.end();
    }
    this.streams.set(proxy, stream);
    const record = this.record(proxy);
    record.connected = true;
    res.on('close', () => this.dropStream(stream, res.writableFinished ? 'ended' : 'connection closed'));
    this.write(
      stream,
      line({ type: 'hello', controller: this.controllerId, leader: this.leader, term: this.term }),
    );
    if (this.leader) this.sendFull(stream);
    if (runs) this.reported(proxy, runs, undefined);
    this.announcePeers();
    this.logger.info({ proxy, schema }, 'push: proxy connected');
    this.emit('connect', { proxy, schema });
  }

  private refuseSchema(res: ServerResponse, declared: number, needed: number): void {
    const message = `this controller sends table schema ${needed}; the proxy understands only up to ${declared}: upgrade the proxy`;
    res.end(line({ type: 'error', message }));
  }

  /** Tells every connected proxy how many there are (splitAcrossProxies divides by it). */
  private announcePeers(): void {
    const notice = line({ type: 'peers', proxies: this.streams.size });
    for (const s of this.streams.values()) this.write(s, notice);
  }

  private dropStream(stream: Stream, reason: string): void {
    stream.closed = true;
    if (this.streams.get(stream.proxy) !== stream) return;
    this.streams.delete(stream.proxy);
    const record = this.record(stream.proxy);
    record.connected = false;
    record.disconnectedAt = this.now();
    this.announcePeers();
    this.logger.info({ proxy: stream.proxy, reason }, 'push: proxy disconnected');
    this.emit('disconnect', { proxy: stream.proxy, reason });
  }

  private record(proxy: string): ProxyRecord {
    let r = this.records.get(proxy);
    if (!r) {
      r = {
        connected: false,
        lastAck: undefined,
        applied: undefined,
        refused: undefined,
        endpointsDown: undefined,
        disconnectedAt: this.now(),
      };
      this.records.set(proxy, r);
    }
    return r;
  }

  private async receiveAck(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorized(req, res)) {
      req.resume();
      return;
    }
    const body = await readBody(req, ACK_BODY_LIMIT);
    if (!body) {
      sendError(res, 413, 'too_large', `ACK bodies are at most ${ACK_BODY_LIMIT} bytes`);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      sendError(res, 400, 'bad_request', 'body is not JSON');
      return;
    }
    const ack = parseAckBody(value);
    if (typeof ack === 'string') {
      sendError(res, 400, 'bad_request', ack);
      return;
    }
    res.writeHead(204).end();
    this.onAck(ack);
  }

  /** A proxy's rollout counters: validated, then handed to whoever analyses rollouts ('report'). */
  private async receiveReport(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorized(req, res)) {
      req.resume();
      return;
    }
    const body = await readBody(req, REPORT_BODY_LIMIT);
    if (!body) {
      sendError(res, 413, 'too_large', `reports are at most ${REPORT_BODY_LIMIT} bytes`);
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(body.toString('utf8'));
    } catch {
      sendError(res, 400, 'bad_request', 'body is not JSON');
      return;
    }
    const report = parseStatsReport(value);
    const down = parseEndpointsDown(value);
    if (typeof report === 'string' || typeof down === 'string') {
      sendError(res, 400, 'bad_request', typeof report === 'string' ? report : String(down));
      return;
    }
    res.writeHead(204).end();
    // Only a proxy this replica knows (it has a stream or answered before) gets a record, so a
    // token holder cannot grow the table with made-up ids.
    const known = this.records.get(report.proxy);
    if (down !== undefined && known !== undefined) known.endpointsDown = { down, at: this.now() };
    this.emit('report', report);
  }

  private onAck(ack: AckBody): void {
    const rec: AckRecord = { ...ack, at: this.now() };
    const r = this.record(ack.proxy);
    r.lastAck = rec;
    if (ack.ok) {
      if (!r.applied || compareVersions(ack.version, r.applied) >= 0) r.applied = ack.version;
      if (r.refused && compareVersions(ack.version, r.refused.version) >= 0) r.refused = undefined;
    } else if (!r.applied || compareVersions(ack.version, r.applied) > 0) {
      r.refused = { version: ack.version, reason: ack.reason };
    }
    if (!ack.ok) {
      this.logger.warn(
        { proxy: ack.proxy, version: versionLabel(ack.version), reason: ack.reason },
        'push: proxy refused a table',
      );
    } else {
      this.logger.debug(
        { proxy: ack.proxy, version: versionLabel(ack.version) },
        'push: proxy applied a table',
      );
    }
    this.emit('ack', rec);
    this.reported(ack.proxy, ack.version, ack.hash);
    if (this.leader) this.reactToAck(ack);
  }

  /**
   * A proxy said it runs (or refused) `version`, announced with `hash` (unknown from the stream
   * header). Keeps the highest term proxies have reported; while leading, a version of a term at
   * or above this replica's that it did not publish is a 'staleTerm'.
   */
  private reported(proxy: string, version: TableVersion, hash: string | undefined): void {
    if (!this.proxyHigh || version.term > this.proxyHigh.version.term) this.proxyHigh = { proxy, version };
    if (!this.leader) return;
    const cur = this.current?.version
      ? { version: this.current.version, hash: this.current.table.hash }
      : undefined;
    const foreign =
      version.term > this.term ||
      (version.term === this.term &&
        (version.seq > this.seq ||
          (hash !== undefined &&
            cur !== undefined &&
            compareVersions(version, cur.version) === 0 &&
            hash !== cur.hash)));
    if (foreign) this.staleTerm(proxy, version);
  }

  private staleTerm(proxy: string, version: TableVersion): void {
    if (version.term <= this.staleReported) return;
    this.staleReported = version.term;
    // A term that went backwards (the Lease was recreated), another process that led this term, or
    // a deposed leader still thinking it leads: proxies ignore this replica's tables until it leads
    // a higher term. Said once per term seen.
    this.logger.warn(
      { proxy, proxyVersion: versionLabel(version), term: this.term },
      'push: a proxy runs a table from a term at or above the one this replica leads; it needs a higher term',
    );
    this.emit('staleTerm', { proxy, version, term: this.term });
  }

  private reactToAck(ack: AckBody): void {
    // A higher term: proxies ignore this replica's versions until it leads above it ('staleTerm').
    if (ack.version.term !== this.term) return;
    const cur = this.current;
    const collision =
      cur?.version !== undefined &&
      compareVersions(ack.version, cur.version) === 0 &&
      ack.hash !== cur.table.hash;
    if (ack.ok && cur && (ack.version.seq > this.seq || collision)) {
      // A previous process of this replica led the same term (it restarted and took its own Lease
      // back without a transition) and got as far or further: proxies ignore versions not above
      // theirs, and one equal to theirs may name another table. Continue above the highest seq
      // seen and send the table again, whole.
      this.logger.warn(
        { proxy: ack.proxy, proxyVersion: versionLabel(ack.version), seq: this.seq },
        'push: a proxy runs a newer version of this term; continuing above it',
      );
      this.seq = Math.max(this.seq, ack.version.seq);
      this.current = { table: cur.table, version: this.nextVersion() };
      for (const s of this.streams.values()) this.sendFull(s);
      return;
    }
    if (ack.ok) return;
    const s = this.streams.get(ack.proxy);
    if (!s || !this.current?.version) return;
    // A whole table sent at or after the refused version already answers this NACK (several
    // chained parts fail together), or was itself refused: sending it again would loop.
    if (s.lastFull && compareVersions(s.lastFull, ack.version) >= 0) return;
    this.logger.debug(
      { proxy: ack.proxy, nacked: versionLabel(ack.version), version: versionLabel(this.current.version) },
      'push: sending the whole table after a NACK',
    );
    this.sendFull(s);
    this.emit('resend', { proxy: ack.proxy, version: this.current.version, nacked: ack.version });
  }

  /** Ends every stream (proxies reconnect to another replica) and stops the keep-alive timer. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.pingTimer) clearInterval(this.pingTimer);
    for (const s of [...this.streams.values()]) {
      s.closed = true;
      s.res.end();
      this.dropStream(s, 'push server closed');
    }
  }
}
