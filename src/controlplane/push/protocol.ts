/**
 * The wire protocol of the push channel (docs/control-plane.md), shared by the controller's
 * PushServer and the proxy's PushClient: paths, headers, message shapes, versions, and the checks
 * each end applies to what it reads from the other. Plain data and pure functions: no I/O, no
 * Kubernetes.
 */
import type { EndpointsPart, RoutingTable } from '../../routing-table/types.ts';

export const STREAM_PATH = '/v1/stream';
export const ACK_PATH = '/v1/ack';
/** Proxies POST their rollout counters here (src/controlplane/rollout/backend-stats.ts). */
export const REPORT_PATH = '/v1/report';
/** Request header: the highest table schemaVersion the proxy understands. */
export const SCHEMA_HEADER = 'x-modelgate-table-schema';
/**
 * Optional request header: the version of the table the proxy runs (`term.seq`), so a leader whose
 * term is below it learns so as the stream opens. Controllers that predate it ignore it; proxies
 * that predate it say the same in the ACK they send after `hello`.
 */
export const VERSION_HEADER = 'x-modelgate-table-version';
export const NDJSON = 'application/x-ndjson';

/** A table version: the leader's term, then the sequence number of the table within the term. */
export interface TableVersion {
  term: number;
  seq: number;
}

/** Negative, zero or positive as `a` is older than, the same as, or newer than `b`. */
export function compareVersions(a: TableVersion, b: TableVersion): number {
  return a.term !== b.term ? a.term - b.term : a.seq - b.seq;
}

/** The string form handed to the proxy's `apply` and shown by /readyz and /config: `term.seq`. */
export function versionLabel(v: TableVersion): string {
  return `${v.term}.${v.seq}`;
}

/** The inverse of `versionLabel`; undefined for anything else. */
export function parseVersionLabel(text: string): TableVersion | undefined {
  const m = /^(\d{1,15})\.(\d{1,15})$/.exec(text.trim());
  if (!m) return undefined;
  const v = { term: Number(m[1]), seq: Number(m[2]) };
  return isVersion(v) ? v : undefined;
}

export function isVersion(v: unknown): v is TableVersion {
  if (typeof v !== 'object' || v === null) return false;
  const { term, seq } = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(term) && Number.isSafeInteger(seq) && (term as number) >= 0 && (seq as number) >= 0
  );
}

export interface HelloMessage {
  type: 'hello';
  controller: string;
  leader: boolean;
  term: number;
}

export interface TableMessage {
  type: 'table';
  version: TableVersion;
  leader: boolean;
  table: RoutingTable;
}

export interface EndpointsMessage {
  type: 'endpoints';
  version: TableVersion;
  /** The version this change applies on top of (the previous version of the same leader). */
  base: TableVersion;
  leader: boolean;
  key: string;
  /** The new part; null when the part was removed. */
  part: EndpointsPart | null;
  /** Hash of the table that results from applying the change to `base`. */
  hash: string;
}

export interface LeaderMessage {
  type: 'leader';
  leader: boolean;
  term: number;
}

/**
 * How many proxies are connected to this replica (every proxy connects to every replica), sent
 * when that changes: policies that split a Local limit across proxies divide by it.
 */
export interface PeersMessage {
  type: 'peers';
  proxies: number;
}

export interface PingMessage {
  type: 'ping';
}

export interface ErrorMessage {
  type: 'error';
  message: string;
}

export type StreamMessage =
  | HelloMessage
  | TableMessage
  | EndpointsMessage
  | LeaderMessage
  | PeersMessage
  | PingMessage
  | ErrorMessage;

/** Body of POST /v1/ack. */
export type AckBody = {
  proxy: string;
  /** The version acknowledged (the one the proxy now runs) or refused. */
  version: TableVersion;
  /** ACK: hash of the table the proxy runs. NACK: the hash announced for the refused version. */
  hash: string;
} & ({ ok: true } | { ok: false; reason: string });

const MAX_ID_LENGTH = 253;

/** Proxy ids come from pod names or flags: printable ASCII, no spaces, bounded. */
export function isValidProxyId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH && /^[\x21-\x7e]+$/.test(id);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Shape check of an ACK body; returns the reason it is invalid, or the body. */
export function parseAckBody(value: unknown): AckBody | string {
  if (!isObject(value)) return 'body must be a JSON object';
  const { proxy, version, hash, ok, reason } = value;
  if (!isValidProxyId(proxy)) return 'proxy must be a non-empty printable string';
  if (!isVersion(version)) return 'version must be {term, seq} with non-negative integers';
  if (typeof hash !== 'string' || hash.length > 128) return 'hash must be a string';
  if (ok === true) return { proxy, version: { term: version.term, seq: version.seq }, hash, ok: true };
  if (ok !== false) return 'ok must be a boolean';
  // Reasons end up in status conditions and logs: keep them bounded.
  const why = typeof reason === 'string' ? reason.slice(0, 1024) : 'no reason given';
  return { proxy, version: { term: version.term, seq: version.seq }, hash, ok: false, reason: why };
}

function isTableShape(t: unknown): t is RoutingTable {
  if (!isObject(t)) return false;
  return (
    Number.isSafeInteger(t.schemaVersion) &&
    typeof t.hash === 'string' &&
    isObject(t.routes) &&
    typeof t.routes.hash === 'string' &&
    isObject(t.endpoints)
  );
}

function isPartShape(p: unknown): p is EndpointsPart {
  return isObject(p) && typeof p.hash === 'string' && Array.isArray(p.endpoints);
}

/**
 * Parses one stream line. The check is structural (what the client needs to route the message);
 * the table's content is checked by hashes on the client and by `apply`.
 */
export function parseStreamMessage(line: string): StreamMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    return `not JSON: ${(e as Error).message}`;
  }
  if (!isObject(value)) return 'not a JSON object';
  switch (value.type) {
    case 'hello':
      if (typeof value.controller !== 'string' || typeof value.leader !== 'boolean') return 'bad hello';
      if (!Number.isSafeInteger(value.term)) return 'bad hello term';
      return value as unknown as HelloMessage;
    case 'leader':
      if (typeof value.leader !== 'boolean' || !Number.isSafeInteger(value.term)) return 'bad leader message';
      return value as unknown as LeaderMessage;
    case 'table':
      if (!isVersion(value.version) || typeof value.leader !== 'boolean') return 'bad table message';
      if (!isTableShape(value.table)) return 'bad table in table message';
      return value as unknown as TableMessage;
    case 'endpoints':
      if (!isVersion(value.version) || !isVersion(value.base) || typeof value.leader !== 'boolean') {
        return 'bad endpoints message';
      }
      if (typeof value.key !== 'string' || typeof value.hash !== 'string') return 'bad endpoints message';
      if (value.part !== null && !isPartShape(value.part)) return 'bad part in endpoints message';
      return value as unknown as EndpointsMessage;
    case 'peers':
      if (!Number.isSafeInteger(value.proxies) || (value.proxies as number) < 0) return 'bad peers message';
      return { type: 'peers', proxies: value.proxies as number };
    case 'ping':
      return { type: 'ping' };
    case 'error':
      return { type: 'error', message: typeof value.message === 'string' ? value.message : 'unknown error' };
    default:
      return `unknown message type ${JSON.stringify(value.type)}`;
  }
}
