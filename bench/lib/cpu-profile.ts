/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per area (project
 * file, package, node internal module, GC, idle), as shares of the busy (non-idle) time.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  selfMs: number;
  percent: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  top: SelfTime[];
  byArea: { area: string; selfMs: number; percent: number }[];
}

function shortUrl(url: string, root: string): string {
  if (url === '') return '';
  let u = url.startsWith('file://') ? decodeURIComponent(url.slice(7)) : url;
  if (u.startsWith(root)) u = u.slice(root.length);
  const nm = u.lastIndexOf('node_modules/');
  return nm >= 0 ? u.slice(nm + 'node_modules/'.length) : u;
}

function areaOf(name: string, where: string): string {
  if (where === '') return name.startsWith('(') ? name : '(native)';
  if (where.startsWith('node:')) return where.split(':')[1]!.split('/').slice(0, 2).join('/');
  if (where.startsWith('src/') || where.startsWith('bench/')) return where.replace(/:\d+$/, '');
  const pkg = where.startsWith('@') ? where.split('/').slice(0, 2).join('/') : where.split('/')[0]!;
  return pkg;
}

export function summariseProfile(file: string, root: string, topN = 25): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    // timeDeltas[i + 1] is the time until the next sample: the time sample i stood for.
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  let idleUs = 0;
  let busyUs = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    const name = cf.functionName || '(anonymous)';
    if (name === '(idle)') {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const url = shortUrl(cf.url, root);
    const where = url ? `${url}:${cf.lineNumber + 1}` : '';
    const key = `${name} ${where}`;
    const f = fns.get(key) ?? { name, where, us: 0 };
    f.us += us;
    fns.set(key, f);
  }
  const pct = (us: number) => Math.round((us / busyUs) * 1000) / 10;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const sorted = [...fns.values()].sort((a, b) => b.us - a.us);
  const areas = new Map<string, number>();
  for (const f of sorted) {
    const a = areaOf(f.name, f.where);
    areas.set(a, (areas.get(a) ?? 0) + f.us);
  }
  return {
    busyMs: ms(busyUs),
    idleMs: ms(idleUs),
    top: sorted
      .slice(0, topN)
      .map((f) => ({ name: f.name, where: f.where, selfMs: ms(f.us), percent: pct(f.us) })),
    byArea: [...areas]
      .sort((a, b) => b[1] - a[1])
      .slice(0, topN)
      .map(([area, us]) => ({ area, selfMs: ms(us), percent: pct(us) })),
  };
}
