/**
 * A cache filter on a compiled rule, with request contexts built by hand (no sockets): the unit
 * tests drive its lookups, fills and coalescing directly, on a fake wall clock.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import type { Identity } from '../../../../src/dataplane/auth/identity.ts';
import { CacheFilterFactory } from '../../../../src/dataplane/cache/cache-filter.ts';
import type {
  ChosenBackend,
  ExchangeEnd,
  Filter,
  FilterContext,
  FilterOutcome,
} from '../../../../src/dataplane/filters/filter.ts';
import { ProxyMetrics } from '../../../../src/observability/proxy-metrics.ts';
import type { CompiledRule, RoutingTable } from '../../../../src/routing-table/types.ts';
import { compileYaml } from '../../../support/gateway.ts';

export interface Harness {
  factory: CacheFilterFactory;
  filter: Filter;
  rule: CompiledRule;
  table: RoutingTable;
  metrics: ProxyMetrics;
  clock: { now: number };
}

/** `cache` is the rule's cache section (YAML flow); `backends` its backends. */
export function harness(
  cache: string,
  opts: { backends?: string; auth?: boolean; maxBytes?: number } = {},
): Harness {
  const table = compileYaml(`apiVersion: modelgate.dev/v1alpha1
kind: ModelRoute
metadata: {name: chat, namespace: ml}
spec:
  ${opts.auth ? 'auth: {anonymous: true}' : ''}
  rules:
    - backends: ${opts.backends ?? '[{name: b, urls: ["http://127.0.0.1:9"], modelRevision: v1}]'}
      cache: ${cache}
`);
  const clock = { now: 1_000_000 };
  const metrics = new ProxyMetrics({ processMetrics: false });
  const factory = new CacheFilterFactory({
    metrics,
    logger: pino({ level: 'silent' }),
    now: () => clock.now,
    ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
  });
  const rule = table.routes.rules[0]!;
  const filter = factory.build(rule)!;
  factory.applied(table);
  return { factory, filter, rule, table, metrics, clock };
}

export interface RequestSpec {
  method?: string;
  url?: string;
  headers?: Record<string, string>;
  body?: string;
  identity?: Identity;
  backend?: ChosenBackend | undefined;
}

export function context(h: Harness, r: RequestSpec = {}): FilterContext & { chosen: number } {
  const url = r.url ?? '/v1/chat';
  const q = url.indexOf('?');
  const headers = { host: 'chat.test', 'content-type': 'application/json', ...r.headers };
  const backend = 'backend' in r ? r.backend : { name: 'b', modelRevision: 'v1' };
  const ctx = {
    req: { method: r.method ?? 'POST', url, headers } as unknown as IncomingMessage,
    res: {} as ServerResponse,
    requestId: 'r',
    rule: h.rule,
    model: undefined,
    upstreamHeaders: { ...headers },
    path: q < 0 ? url : url.slice(0, q),
    hostRewrite: undefined,
    responseHeaders: undefined,
    identity: r.identity,
    clientIp: '10.0.0.1',
    body: r.body === undefined ? undefined : Buffer.from(r.body),
    observers: undefined,
    chosen: 0,
    chooseBackend() {
      ctx.chosen++;
      return backend;
    },
  } as FilterContext & { chosen: number };
  return ctx;
}

export const END_OK: ExchangeEnd = {
  status: 200,
  responseStarted: true,
  clientAborted: false,
  incomplete: false,
  backend: 'b',
};

/** Plays an upstream answer through the observers the filter left, as the exchange would. */
export function respond(
  ctx: FilterContext,
  status: number,
  headers: Record<string, string>,
  body: string,
  end: Partial<ExchangeEnd> = {},
): void {
  for (const o of ctx.observers ?? []) {
    const t = o.onResponseStart?.(status, headers, { ...headers });
    t?.data(Buffer.from(body));
    t?.end();
  }
  for (const o of ctx.observers ?? []) o.onEnd({ ...END_OK, status, ...end });
}

export async function outcome(o: FilterOutcome | Promise<FilterOutcome>): Promise<FilterOutcome> {
  return o;
}

export function answerText(o: FilterOutcome): string | undefined {
  return o && 'answer' in o ? o.answer.body.toString('utf8') : undefined;
}

export const ALICE: Identity = { method: 'apiKey', consumer: 'alice', groups: [], scopes: [], claims: {} };
export const BOB: Identity = { method: 'apiKey', consumer: 'bob', groups: [], scopes: [], claims: {} };
