/**
 * The `Programmed` condition, decided from what the proxies acknowledged: True once every connected
 * proxy has ACKed a table version that contains the resource's current generation; False naming
 * the proxies that refused (NACKed) the newest table; Unknown while no proxy is connected or some
 * are still catching up.
 */
import type { Condition } from '../api/status.ts';
import type { ResourceStatus } from '../compiler/compile.ts';

export interface TableVersion {
  term: number;
  seq: number;
}

export function compareVersions(a: TableVersion, b: TableVersion): number {
  return a.term - b.term || a.seq - b.seq;
}

export function formatVersion(v: TableVersion): string {
  return `${v.term}.${v.seq}`;
}

export interface ProxyAckView {
  id: string;
  connected: boolean;
  /** The newest version the proxy has applied (ACKed). */
  applied: TableVersion | undefined;
  /** Its answer to the newest table it received, when that was a NACK. */
  refused: { version: TableVersion; reason: string } | undefined;
}

/**
 * For every resource key (`Kind/ns/name`) and generation, the first table version that carried it;
 * recorded by the controller each time it publishes.
 */
export class GenerationLedger {
  private readonly firstSeen = new Map<string, { generation: number; version: TableVersion }>();

  record(version: TableVersion, statuses: readonly ResourceStatus[]): void {
    for (const s of statuses) {
      const key = `${s.kind}/${s.namespace}/${s.name}`;
      const seen = this.firstSeen.get(key);
      if (!seen || seen.generation !== s.status.observedGeneration) {
        this.firstSeen.set(key, { generation: s.status.observedGeneration, version });
      }
    }
  }

  versionFor(key: string, generation: number): TableVersion | undefined {
    const seen = this.firstSeen.get(key);
    return seen && seen.generation === generation ? seen.version : undefined;
  }

  retain(keys: ReadonlySet<string>): void {
    for (const k of this.firstSeen.keys()) if (!keys.has(k)) this.firstSeen.delete(k);
  }
}

export function programmedCondition(
  status: ResourceStatus,
  ledger: GenerationLedger,
  proxies: readonly ProxyAckView[],
): Condition {
  const g = status.status.observedGeneration;
  const accepted = status.status.conditions.find((c) => c.type === 'Accepted')?.status === 'True';
  const base = { type: 'Programmed', observedGeneration: g };
  if (!accepted)
    return {
      ...base,
      status: 'False',
      reason: 'NotProgrammed',
      message: 'not programmed: the resource is not accepted',
    };
  const key = `${status.kind}/${status.namespace}/${status.name}`;
  const needed = ledger.versionFor(key, g);
  const connected = proxies.filter((p) => p.connected);
  if (!needed)
    return { ...base, status: 'Unknown', reason: 'Pending', message: 'not yet in a published table' };
  if (connected.length === 0)
    return { ...base, status: 'Unknown', reason: 'Pending', message: 'no proxy is connected' };
  const refused = connected.filter((p) => p.refused && compareVersions(p.refused.version, needed) >= 0);
  if (refused.length > 0) {
    const who = refused.map(
      (p) => `${p.id} refused table ${formatVersion(p.refused!.version)}: ${p.refused!.reason}`,
    );
    return { ...base, status: 'False', reason: 'NotProgrammed', message: who.join('; ') };
  }
  const behind = connected.filter((p) => !p.applied || compareVersions(p.applied, needed) < 0);
  const done = connected.length - behind.length;
  if (behind.length > 0) {
    return {
      ...base,
      status: 'Unknown',
      reason: 'Pending',
      message: `${done}/${connected.length} proxies at table ${formatVersion(needed)} or newer; waiting for ${behind.map((p) => p.id).join(', ')}`,
    };
  }
  return {
    ...base,
    status: 'True',
    reason: 'Programmed',
    message: `${done}/${connected.length} proxies at table ${formatVersion(needed)} or newer`,
  };
}
