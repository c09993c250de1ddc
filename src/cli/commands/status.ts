/**
 * `modelgate status`: what a controller knows, like `istioctl proxy-status`: which proxies run the
 * current table (SYNCED), an older one (STALE) or refused the newest (NACKED); each route's
 * conditions; each rollout's phase, step, weight and last verdict. Reads the controller's
 * `GET /api/v1/status` (src/controlplane/status-api.ts).
 *
 * Exit codes: 0 every connected proxy runs the current table and none NACKed it; 1 otherwise (or
 * the controller is a follower, which does not version tables); 2 usage errors or the controller
 * could not be reached.
 */
import { parseArgs } from 'node:util';
import {
  STATUS_API_PATH,
  type StatusApiResponse,
  type StatusProxyView,
} from '../../controlplane/status-api.ts';
import { UsageError } from '../usage-error.ts';

export const DEFAULT_CONTROLLER_ADMIN = 'http://127.0.0.1:9902';

export const statusHelp = `Usage: modelgate status [--controller URL] [-o table|json]

Shows what a controller knows (its admin endpoint ${STATUS_API_PATH}): each proxy's table version
and whether it runs the current one, each ModelRoute's conditions, each CanaryRollout's progress.
Ask the leader: only it versions tables, so a follower cannot say who is in sync.

  PROXY     SYNCED   the proxy runs the current table
            STALE    it runs an older one (or none yet)
            NACKED   it refused a newer table (the reason is printed below the table)

Options:
  --controller URL   the controller's admin address (default ${DEFAULT_CONTROLLER_ADMIN});
                     a URL with a path prefix works, such as kubectl proxy's (below)
  -o, --output FMT   table (default) or json (the ${STATUS_API_PATH} document as is)
  --timeout MS       give up after this many milliseconds (default 5000)
  -h, --help         show this help

In a cluster, ask the leader (the Lease names its pod) through the API server's pod proxy: the
chart binds admin listeners to the pod IP (adminBindAddress: podIP), which kubectl port-forward
cannot reach, and a port-forward to the Deployment may pick a follower. For the release modelgate
in the namespace modelgate:

  LEADER=$(kubectl -n modelgate get lease modelgate-controller -o jsonpath='{.spec.holderIdentity}')
  kubectl proxy --port 8001 &
  modelgate status --controller "http://127.0.0.1:8001/api/v1/namespaces/modelgate/pods/$LEADER:9902/proxy/"

Exit status: 0 when every connected proxy runs the current table and none NACKed it, 1 otherwise
(or when the controller is not the leader), 2 when the controller cannot be reached.`;

export type SyncState = 'SYNCED' | 'STALE' | 'NACKED';

export function syncState(p: StatusProxyView): SyncState {
  if (p.refused) return 'NACKED';
  return p.inSync ? 'SYNCED' : 'STALE';
}

/** 0 when every connected proxy is SYNCED and the controller leads, else 1. */
export function exitCodeFor(s: StatusApiResponse): number {
  if (!s.controller.leader || s.table.version === null) return 1;
  return s.proxies.every((p) => !p.connected || syncState(p) === 'SYNCED') ? 0 : 1;
}

/** Left-aligned columns, two spaces apart, like kubectl and istioctl. */
export function renderTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The human-readable form of a status document. */
export function renderStatus(s: StatusApiResponse): string {
  const out: string[] = [];
  const c = s.controller;
  out.push(
    `CONTROLLER ${c.identity} (${c.leader ? 'leader' : 'follower'}, term ${c.term})  ` +
      `TABLE ${s.table.version ?? '-'}${s.table.hash ? ` ${s.table.hash.slice(0, 12)}` : ''}` +
      `${s.table.publishedAt ? `  published ${s.table.publishedAt}` : ''}`,
  );
  if (!c.leader) out.push('note: this controller is not the leader; only the leader knows who is in sync');
  out.push('');

  if (s.proxies.length === 0) out.push('No proxies.');
  else {
    out.push(
      renderTable(
        ['PROXY', 'SYNCED', 'VERSION', 'CONNECTED', 'LAST SEEN'],
        s.proxies.map((p) => [
          p.id,
          syncState(p),
          p.appliedVersion ?? '-',
          p.connected ? 'yes' : 'no',
          p.lastSeen ?? '-',
        ]),
      ),
    );
    for (const p of s.proxies) {
      if (p.refused) out.push(`  ${p.id} refused ${p.refused.version}: ${p.refused.reason}`);
    }
  }
  out.push('');

  if (s.routes.length === 0) out.push('No ModelRoutes.');
  else {
    const cond = (v: { status: string } | null) => v?.status ?? '-';
    out.push(
      renderTable(
        ['ROUTE', 'RULES', 'ACCEPTED', 'RESOLVEDREFS', 'PROGRAMMED', 'REASON'],
        s.routes.map((r) => {
          const k = r.conditions;
          // The reason of the first condition that is not True, with its message.
          const bad = [k.Accepted, k.ResolvedRefs, k.Programmed].find((x) => x && x.status !== 'True');
          return [
            `${r.namespace}/${r.name}`,
            String(r.rules),
            cond(k.Accepted),
            cond(k.ResolvedRefs),
            cond(k.Programmed),
            bad ? `${bad.reason}: ${bad.message}` : '',
          ];
        }),
      ),
    );
  }
  out.push('');

  if (s.rollouts.length === 0) out.push('No CanaryRollouts.');
  else {
    out.push(
      renderTable(
        ['ROLLOUT', 'PHASE', 'STEP', 'WEIGHT', 'VERDICT'],
        s.rollouts.map((r) => [
          `${r.namespace}/${r.name}`,
          r.phase ?? (r.steps > 0 ? 'NotStarted' : 'Manual'),
          r.steps > 0 ? `${Math.min((r.currentStep ?? 0) + 1, r.steps)}/${r.steps}` : '-',
          `${r.servedWeight ?? r.stepWeight ?? 0}%`,
          r.lastVerdict?.verdict ?? '-',
        ]),
      ),
    );
  }
  const down = outOfService(s);
  if (down.length > 0)
    out.push('', renderTable(['BACKEND', 'ENDPOINT', 'HEALTH', 'OUT OF SERVICE ON'], down));
  return out.join('\n');
}

/** Rows for endpoints some proxy took out of service (none when all are up: nothing to say). */
function outOfService(s: StatusApiResponse): string[][] {
  const rows: string[][] = [];
  // `backends` came after the first controllers that serve this document.
  for (const b of s.backends ?? []) {
    for (const e of b.endpoints) {
      if (e.health !== 'down' && e.health !== 'partial') continue;
      const host = e.address.includes(':') ? `[${e.address}]` : e.address;
      const why = e.down.map(
        (d) =>
          `${d.proxy} (${[d.unhealthy && 'failing checks', d.ejected && 'ejected'].filter(Boolean).join(', ')})`,
      );
      rows.push([
        `${b.route}/${b.rule}/${b.name}`,
        `${host}:${e.port}`,
        e.health.toUpperCase(),
        why.join(', '),
      ]);
    }
  }
  return rows;
}

export class ControllerUnreachableError extends Error {
  override name = 'ControllerUnreachableError';
}

/** Fetches the status document; ControllerUnreachableError when there is no good answer. */
export async function fetchStatus(controller: string, timeoutMs = 5000): Promise<StatusApiResponse> {
  // Relative, so a controller behind a path prefix (kubectl proxy's service proxy) works too.
  const url = new URL(STATUS_API_PATH.slice(1), controller.endsWith('/') ? controller : `${controller}/`);
  let res: Response;
  try {
    res = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: 'application/json' },
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why =
      err.name === 'TimeoutError'
        ? `no answer in ${timeoutMs} ms`
        : (err.cause?.code ?? err.cause?.message ?? err.message);
    throw new ControllerUnreachableError(`cannot reach the controller at ${url.origin}: ${why}`);
  }
  if (!res.ok) {
    throw new ControllerUnreachableError(
      `${url.href} answered ${res.status}${res.status === 404 ? ' (is this a ModelGate controller admin address, of a version with the status API?)' : ''}`,
    );
  }
  const body = (await res.json().catch(() => undefined)) as StatusApiResponse | undefined;
  if (!body || typeof body !== 'object' || !Array.isArray(body.proxies) || !body.controller) {
    throw new ControllerUnreachableError(`${url.href} did not answer a status document`);
  }
  return body;
}

export interface StatusOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** The command without process I/O: what to print and the exit code. */
export async function status(opts: {
  controller: string;
  output: 'table' | 'json';
  timeoutMs?: number;
}): Promise<StatusOutput> {
  let s: StatusApiResponse;
  try {
    s = await fetchStatus(opts.controller, opts.timeoutMs);
  } catch (e) {
    if (e instanceof ControllerUnreachableError)
      return { code: 2, stdout: '', stderr: `modelgate status: ${e.message}\n` };
    throw e;
  }
  const stdout = opts.output === 'json' ? `${JSON.stringify(s, null, 2)}\n` : `${renderStatus(s)}\n`;
  return { code: exitCodeFor(s), stdout, stderr: '' };
}

export async function statusCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      controller: { type: 'string', default: DEFAULT_CONTROLLER_ADMIN },
      output: { type: 'string', short: 'o', default: 'table' },
      timeout: { type: 'string', default: '5000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${statusHelp}\n`);
    return 0;
  }
  if (positionals.length > 0)
    throw new UsageError(`status takes no arguments (got ${positionals.join(' ')})`);
  const output = values.output;
  if (output !== 'table' && output !== 'json') throw new UsageError(`-o ${output}: expected table or json`);
  const controller = values.controller ?? DEFAULT_CONTROLLER_ADMIN;
  if (!/^https?:\/\//.test(controller) || !URL.canParse(controller))
    throw new UsageError(`--controller ${controller}: expected a URL like ${DEFAULT_CONTROLLER_ADMIN}`);
  const timeoutMs = Number(values.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0)
    throw new UsageError(`--timeout ${values.timeout}: expected milliseconds`);
  const r = await status({ controller, output, timeoutMs });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  return r.code;
}
