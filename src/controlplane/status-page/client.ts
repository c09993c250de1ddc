/// <reference lib="dom" />
/**
 * The status page's browser script. It is served as the source of `statusPageMain` (see
 * assets.ts), so it must be self-contained: no imports, no references outside the function.
 * Every value from the API is put into the page with textContent or attributes, never parsed as
 * HTML, so a route or reason containing markup shows as text.
 *
 * It fetches `api/v1/status` relative to the page, so the page also works behind a path prefix
 * (`kubectl proxy`'s pod proxy URL), and refreshes every 5 s, keeping the last good data on
 * screen (marked stale) when the controller does not answer.
 */
export function statusPageMain(): void {
  type Json = Record<string, unknown>;
  const REFRESH_MS = 5000;
  const root = document.getElementById('app') as HTMLElement;
  const banner = document.getElementById('banner') as HTMLElement;
  const updated = document.getElementById('updated') as HTMLElement;

  function el(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    for (const c of children) e.append(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  }
  const s = (v: unknown, dflt = '-'): string =>
    v === null || v === undefined || v === '' ? dflt : String(v);
  const badge = (text: string, tone: string) => el('span', { class: `badge ${tone}` }, text);

  function table(id: string, header: string[], rows: HTMLElement[], empty: string): HTMLElement {
    if (rows.length === 0) return el('p', { class: 'empty', id }, empty);
    return el(
      'table',
      { id },
      el('thead', {}, el('tr', {}, ...header.map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows),
    );
  }
  const section = (title: string, ...body: Node[]) => el('section', {}, el('h2', {}, title), ...body);

  function proxyState(p: Json): [string, string] {
    if (p.refused) return ['NACKED', 'bad'];
    if (p.inSync) return ['SYNCED', 'good'];
    return [p.connected ? 'STALE' : 'GONE', 'warn'];
  }

  function proxies(doc: Json): HTMLElement {
    const rows = (doc.proxies as Json[]).map((p) => {
      const [state, tone] = proxyState(p);
      const refused = p.refused as Json | null;
      return el(
        'tr',
        { 'data-proxy': String(p.id), 'data-state': state },
        el('td', {}, String(p.id)),
        el('td', {}, badge(state, tone)),
        el('td', {}, s(p.appliedVersion)),
        el('td', {}, p.connected ? 'yes' : 'no'),
        el('td', {}, s(p.lastSeen)),
        el('td', { class: 'reason' }, refused ? `refused ${s(refused.version)}: ${s(refused.reason)}` : ''),
      );
    });
    return section(
      'Proxies',
      table(
        'proxies',
        ['Proxy', 'State', 'Table', 'Connected', 'Last answer', 'Refusal'],
        rows,
        'No proxies.',
      ),
    );
  }

  function routes(doc: Json): HTMLElement {
    const rows = (doc.routes as Json[]).map((r) => {
      const k = r.conditions as Record<string, Json | null>;
      const cell = (c: Json | null) => {
        if (!c) return el('td', {}, '-');
        const td = el(
          'td',
          { title: `${s(c.reason)}: ${s(c.message, '')}` },
          badge(s(c.status), c.status === 'True' ? 'good' : 'bad'),
        );
        if (c.status !== 'True')
          td.append(' ', el('span', { class: 'reason' }, `${s(c.reason)}: ${s(c.message, '')}`));
        return td;
      };
      const name = `${s(r.namespace)}/${s(r.name)}`;
      return el(
        'tr',
        { 'data-route': name },
        el('td', {}, name),
        el('td', {}, s(r.rules)),
        cell(k.Accepted ?? null),
        cell(k.ResolvedRefs ?? null),
        cell(k.Programmed ?? null),
      );
    });
    return section(
      'Routes',
      table(
        'routes',
        ['ModelRoute', 'Rules', 'Accepted', 'ResolvedRefs', 'Programmed'],
        rows,
        'No ModelRoutes.',
      ),
    );
  }

  function backends(doc: Json): HTMLElement {
    const rows: HTMLElement[] = [];
    for (const b of (doc.backends as Json[] | undefined) ?? []) {
      const eps = b.endpoints as Json[];
      const list = el('ul', { class: 'endpoints' });
      for (const e of eps) {
        const health = s(e.health);
        const tone = health === 'up' ? 'good' : health === 'unknown' ? 'muted' : 'bad';
        const host = String(e.address).includes(':') ? `[${s(e.address)}]` : s(e.address);
        const item = el(
          'li',
          { 'data-endpoint': `${host}:${s(e.port)}`, 'data-health': health },
          `${host}:${s(e.port)} `,
          badge(health, tone),
        );
        if (e.state === 'draining') item.append(' ', badge('draining', 'warn'));
        const down = (e.down as Json[]).map(
          (d) =>
            `${s(d.proxy)} (${[d.unhealthy ? 'failing checks' : '', d.ejected ? 'ejected' : ''].filter(Boolean).join(', ')})`,
        );
        if (down.length > 0) item.append(' ', el('span', { class: 'reason' }, `out on ${down.join(', ')}`));
        list.append(item);
      }
      const n = b.counts as Record<string, number>;
      const omitted = Number(b.endpointsOmitted ?? 0);
      if (omitted > 0) list.append(el('li', { class: 'note' }, `and ${omitted} more not up`));
      // The counts cover every endpoint; the list holds only those some proxy took out.
      const summaryParts = [`${n.total} endpoint${n.total === 1 ? '' : 's'}`];
      for (const k of ['up', 'down', 'partial', 'unknown', 'draining']) {
        if ((n[k] ?? 0) > 0) summaryParts.push(`${n[k]} ${k}`);
      }
      const counts = el('div', {
        class: (n.down ?? 0) + (n.partial ?? 0) > 0 ? 'reason' : 'note',
        'data-counts': '',
      });
      counts.textContent = b.unavailable ? s(b.unavailable) : summaryParts.join(', ');
      const name = `${s(b.route)}/${s(b.rule)}/${s(b.name)}`;
      rows.push(
        el(
          'tr',
          { 'data-backend': name },
          el('td', {}, name, b.role ? el('span', { class: 'role' }, ` ${s(b.role)}`) : ''),
          el('td', {}, `${s(b.weightPercent)}%`),
          el('td', {}, s(b.protocol)),
          el('td', {}, s(b.modelRevision)),
          el('td', {}, counts, list),
        ),
      );
    }
    return section(
      'Backends',
      table(
        'backends',
        ['Backend', 'Weight', 'Protocol', 'Revision', 'Endpoints'],
        rows,
        'No backends in the table.',
      ),
    );
  }

  /** A step chart of the canary weight over the history entries, 0–100 %. */
  function weightChart(history: Json[]): SVGElement {
    const NS = 'http://www.w3.org/2000/svg';
    const W = 240;
    const H = 48;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('role', 'img');
    const weights = history.map((h) => Number(h.weight));
    svg.setAttribute('aria-label', `canary weight history: ${weights.join(', ')} %`);
    if (weights.length === 0) return svg;
    const step = W / Math.max(weights.length, 1);
    const y = (w: number) => H - 2 - ((H - 4) * Math.min(Math.max(w, 0), 100)) / 100;
    let d = `M0 ${y(weights[0] as number)}`;
    weights.forEach((w, i) => {
      d += ` L${i * step} ${y(w)} L${(i + 1) * step} ${y(w)}`;
    });
    const path = document.createElementNS(NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
    return svg;
  }

  function rollouts(doc: Json): HTMLElement {
    const rows = (doc.rollouts as Json[]).map((r) => {
      const history = r.history as Json[];
      const verdict = r.lastVerdict as Json | null;
      const steps = Number(r.steps);
      const phase = s(r.phase, steps > 0 ? 'NotStarted' : 'Manual');
      const tone =
        phase === 'Promoted' ? 'good' : phase === 'RolledBack' || phase === 'Failed' ? 'bad' : 'warn';
      const hist = el('ol', { class: 'history' });
      for (const h of history)
        hist.append(el('li', { title: s(h.reason, '') }, `${s(h.weight)}% at ${s(h.at)}`));
      const name = `${s(r.namespace)}/${s(r.name)}`;
      return el(
        'tr',
        { 'data-rollout': name, 'data-phase': phase },
        el('td', {}, name),
        el(
          'td',
          {},
          badge(phase, tone),
          r.message ? el('div', { class: tone === 'bad' ? 'reason' : 'note' }, s(r.message)) : '',
        ),
        el('td', {}, steps > 0 ? `${Math.min(Number(r.currentStep ?? 0) + 1, steps)}/${steps}` : '-'),
        el('td', {}, `${s(r.servedWeight ?? r.stepWeight, '0')}%`),
        el('td', {}, verdict ? `${s(verdict.verdict)}: ${s(verdict.message, '')}` : '-'),
        el('td', {}, weightChart(history), hist),
      );
    });
    return section(
      'Rollouts',
      table(
        'rollouts',
        ['CanaryRollout', 'Phase', 'Step', 'Weight', 'Last verdict', 'Weight history'],
        rows,
        'No CanaryRollouts.',
      ),
    );
  }

  function summary(doc: Json): HTMLElement {
    const c = doc.controller as Json;
    const t = doc.table as Json;
    const ps = doc.proxies as Json[];
    const connected = ps.filter((p) => p.connected);
    const synced = connected.filter((p) => p.inSync).length;
    const nacked = connected.filter((p) => p.refused).length;
    const box = el(
      'dl',
      { id: 'summary' },
      el('dt', {}, 'Controller'),
      el('dd', {}, `${s(c.identity)} (${c.leader ? 'leader' : 'follower'}, term ${s(c.term)})`),
      el('dt', {}, 'Table'),
      el(
        'dd',
        {},
        `${s(t.version)} ${s(t.hash, '').slice(0, 19)}${t.publishedAt ? `, published ${s(t.publishedAt)}` : ''}`,
      ),
      el('dt', {}, 'Proxies in sync'),
      el(
        'dd',
        { id: 'in-sync' },
        `${synced} of ${connected.length}${nacked > 0 ? `, ${nacked} refused the table` : ''}`,
      ),
    );
    if (!c.leader)
      box.append(
        el('dd', { class: 'reason' }, 'Not the leader: only the leader knows which proxies are in sync.'),
      );
    return box;
  }

  async function refresh(): Promise<void> {
    try {
      const res = await fetch('api/v1/status', {
        cache: 'no-store',
        headers: { accept: 'application/json' },
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const doc = (await res.json()) as Json;
      root.replaceChildren(summary(doc), proxies(doc), routes(doc), backends(doc), rollouts(doc));
      banner.hidden = true;
      updated.textContent = `updated ${new Date().toISOString()}`;
      document.body.setAttribute('data-loaded', 'true');
    } catch (err) {
      banner.hidden = false;
      banner.textContent = `The controller did not answer (${(err as Error).message}); showing the last data.`;
    } finally {
      setTimeout(refresh, REFRESH_MS);
    }
  }
  void refresh();
}
