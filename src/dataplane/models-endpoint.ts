/**
 * `GET /v1/models` and `GET /v1/models/{id}` in the OpenAI shape, answered by the gateway from the
 * routes' exact model matches for the request's host, so OpenAI clients can list what the gateway
 * serves. Only when no route matches the request: a route for these paths goes to its backend.
 * Glob matches cannot be listed and are left out.
 */
import type { ServerResponse } from 'node:http';
import type { RoutingTable } from '../routing-table/types.ts';

function hostServes(matchHost: string, host: string): boolean {
  if (matchHost === '' || matchHost === host) return true;
  return matchHost.startsWith('*.') && host.endsWith(matchHost.slice(1));
}

export function modelsFor(table: RoutingTable, host: string): string[] {
  const names = new Set<string>();
  for (const m of table.routes.matches) {
    if (m.model?.type === 'Exact' && hostServes(m.hostname, host)) names.add(m.model.value);
  }
  return [...names].sort();
}

/** Answers and returns true when the request is a model listing; false to let it 404. */
export function answerModels(
  table: RoutingTable,
  method: string | undefined,
  path: string,
  host: string,
  res: ServerResponse,
  requestId: string,
): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  if (path !== '/v1/models' && !path.startsWith('/v1/models/')) return false;
  const models = modelsFor(table, host);
  const entry = (id: string) => ({ id, object: 'model', created: 0, owned_by: 'modelgate' });
  let status = 200;
  let body: unknown;
  if (path === '/v1/models') {
    body = { object: 'list', data: models.map(entry) };
  } else {
    const id = decodeURIComponent(path.slice('/v1/models/'.length));
    if (models.includes(id)) body = entry(id);
    else {
      status = 404;
      body = {
        error: {
          message: `The model '${id}' does not exist`,
          type: 'invalid_request_error',
          param: null,
          code: 'model_not_found',
        },
      };
    }
  }
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': requestId,
  });
  res.end(method === 'HEAD' ? undefined : text);
  return true;
}
