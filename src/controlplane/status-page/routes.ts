/** Serves the status page's three files on the controller's admin listener (read-only, GET). */
import type { FastifyInstance } from 'fastify';
import {
  CONTENT_SECURITY_POLICY,
  PAGE_HTML,
  PAGE_PATH,
  SCRIPT_JS,
  SCRIPT_PATH,
  STYLE_CSS,
  STYLE_PATH,
} from './assets.ts';

const files: [path: string, type: string, body: string][] = [
  [PAGE_PATH, 'text/html; charset=utf-8', PAGE_HTML],
  [SCRIPT_PATH, 'text/javascript; charset=utf-8', SCRIPT_JS],
  [STYLE_PATH, 'text/css; charset=utf-8', STYLE_CSS],
];

export function registerStatusPage(admin: FastifyInstance): void {
  for (const [path, type, body] of files) {
    admin.get(path, async (_req, reply) => {
      reply
        .header('content-type', type)
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        // The page and its script change with the binary; a stale cached copy after an upgrade
        // would read a document shape it does not know.
        .header('cache-control', 'no-cache');
      return body;
    });
  }
}
