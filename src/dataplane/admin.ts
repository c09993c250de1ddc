/**
 * The admin listener (fastify; not on the hot path): health, readiness, the table in use, and
 * Prometheus metrics. It binds to 127.0.0.1 by default and is never served on the public listener.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { redact } from '../routing-table/redact.ts';
import type { GatewayProxy } from './proxy.ts';

export interface AdminOptions {
  address: string;
  port: number;
  /** Extra JSON documents served under /status (standalone serves resource statuses there). */
  status?: () => unknown;
  /** Readiness beyond "a table is loaded" (e.g. shutting down). */
  ready?: () => boolean;
  /** Extra facts for /readyz (the proxy role says where its table came from). */
  readyDetails?: () => Record<string, unknown>;
}

export async function buildAdmin(
  proxy: GatewayProxy,
  opts: Omit<AdminOptions, 'address' | 'port'>,
): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const table = proxy.table;
    const ready = table !== undefined && !proxy.draining && (opts.ready?.() ?? true);
    reply.code(ready ? 200 : 503);
    return ready
      ? { status: 'ready', version: table.version, ...opts.readyDetails?.() }
      : { status: 'not ready', reason: table ? 'shutting down' : 'no routing table yet' };
  });
  app.get('/config', async (_req, reply) => {
    const t = proxy.table;
    if (!t) return reply.code(503).send({ error: 'no routing table yet' });
    const endpoints = Object.values(t.table.endpoints).reduce((n, p) => n + p.endpoints.length, 0);
    return {
      version: t.version,
      hash: t.table.hash,
      schemaVersion: t.table.schemaVersion,
      rules: t.table.routes.rules.length,
      matches: t.table.routes.matches.length,
      endpointSets: Object.keys(t.table.endpoints).length,
      endpoints,
      models: t.table.routes.models,
      sequence: proxy.sequence,
    };
  });
  app.get('/config/dump', async (_req, reply) => {
    const t = proxy.table;
    if (!t) return reply.code(503).send({ error: 'no routing table yet' });
    return { version: t.version, table: redact(t.table) };
  });
  if (opts.status) {
    const status = opts.status;
    app.get('/status', async () => status());
  }
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', proxy.metrics.registry.contentType);
    return proxy.metrics.registry.metrics();
  });
  return app;
}

export async function listenAdmin(
  proxy: GatewayProxy,
  opts: AdminOptions,
): Promise<{ app: FastifyInstance; url: string }> {
  const app = await buildAdmin(proxy, opts);
  const url = await app.listen({ host: opts.address, port: opts.port });
  return { app, url };
}
