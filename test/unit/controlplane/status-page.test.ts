/**
 * The status page's files as the admin listener serves them: content types, the strict
 * Content-Security-Policy, relative references (so a path prefix works), and a script that is
 * valid JavaScript (type-stripped source when run from .ts). Its behaviour in a browser is
 * tested in test/integration/browser/status-page.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Script } from 'node:vm';
import Fastify from 'fastify';
import { SCRIPT_JS } from '../../../src/controlplane/status-page/assets.ts';
import { registerStatusPage } from '../../../src/controlplane/status-page/routes.ts';

test('page, script and style: types, CSP, no inline script, relative references', async () => {
  const app = Fastify();
  registerStatusPage(app);
  const page = await app.inject({ method: 'GET', url: '/' });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/, 'no unsafe-inline');
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  // Every reference is relative: behind kubectl proxy the page lives under a long path prefix.
  for (const ref of page.body.matchAll(/(?:src|href)="([^"]+)"/g)) assert.doesNotMatch(ref[1]!, /^\//);
  assert.doesNotMatch(page.body, /<script>(?!<\/script>)/, 'no inline script (CSP forbids it)');

  const js = await app.inject({ method: 'GET', url: '/ui/app.js' });
  assert.match(String(js.headers['content-type']), /^text\/javascript/);
  assert.equal(js.body, SCRIPT_JS);
  assert.doesNotThrow(() => new Script(js.body), 'the served script parses');
  assert.doesNotMatch(js.body, /\binnerHTML\b/, 'API data is never parsed as HTML');
  assert.match(js.body, /fetch\('api\/v1\/status'/);

  const css = await app.inject({ method: 'GET', url: '/ui/style.css' });
  assert.match(String(css.headers['content-type']), /^text\/css/);
  await app.close();
});
