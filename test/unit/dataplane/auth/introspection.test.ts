import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { AuthResult } from '../../../../src/dataplane/auth/identity.ts';
import {
  createIntrospector,
  type IntrospectorOptions,
} from '../../../../src/dataplane/auth/introspection.ts';
import type { CompiledIntrospection } from '../../../../src/routing-table/types.ts';

const CLIENT_ID = 'gateway';
const CLIENT_SECRET = 's3cr3t-value';
const T0 = 1_700_000_000_000;
const T0_S = T0 / 1000;

interface Seen {
  authorization: string | undefined;
  contentType: string | undefined;
  accept: string | undefined;
  method: string | undefined;
  path: string | undefined;
  form: URLSearchParams;
}

type Reply = (seen: Seen, res: ServerResponse) => void;

/** Every result message produced by any test: checked at the end for the token and the secret. */
const messages: string[] = [];

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** How an authorization server checks client_secret_basic: base64, split at `:`, form-decode each. */
function basicMatches(header: string | undefined, id: string, secret: string): boolean {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '');
  if (!m?.[1]) return false;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return false;
  const formDecode = (s: string) => decodeURIComponent(s.replaceAll('+', ' '));
  return formDecode(decoded.slice(0, colon)) === id && formDecode(decoded.slice(colon + 1)) === secret;
}

/**
 * A local introspection endpoint: checks the Basic credentials (401 when wrong), records what it
 * was sent and answers with `reply`, which tests may swap.
 */
async function startIdp(
  t: TestContext,
  reply: Reply,
  credentials: { id: string; secret: string } = { id: CLIENT_ID, secret: CLIENT_SECRET },
) {
  const idp = { count: 0, seen: [] as Seen[], reply, url: '' };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    idp.count++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = {
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        accept: req.headers.accept,
        method: req.method,
        path: req.url,
        form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      };
      idp.seen.push(seen);
      if (!basicMatches(seen.authorization, credentials.id, credentials.secret)) {
        json(res, 401, { error: 'invalid_client' });
        return;
      }
      idp.reply(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  idp.url = `http://127.0.0.1:${port}/oauth2/introspect`;
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return idp;
}

function config(endpoint: string, over: Partial<CompiledIntrospection> = {}): CompiledIntrospection {
  return {
    source: { header: 'authorization', bearer: true },
    endpoint,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    cacheTtlMs: 60_000,
    negativeCacheTtlMs: 10_000,
    timeoutMs: 2_000,
    consumerClaim: 'sub',
    groupsClaim: 'groups',
    ...over,
  };
}

/** An introspector on a fake clock, closed after the test. */
function introspector(t: TestContext, cfg: CompiledIntrospection, opts: IntrospectorOptions = {}) {
  const clock = { now: T0 };
  const intro = createIntrospector(cfg, { now: () => clock.now, ...opts });
  t.after(() => intro.close());
  return { intro, clock };
}

async function verify(intro: { verify(token: string): AuthResult | Promise<AuthResult> }, token: string) {
  const result = await intro.verify(token);
  if (!result.ok) messages.push(result.message);
  return result;
}

/** Asserts a synchronous (cached) answer. */
function verifySync(
  intro: { verify(token: string): AuthResult | Promise<AuthResult> },
  token: string,
): AuthResult {
  const result = intro.verify(token);
  assert.ok(!(result instanceof Promise), 'expected a synchronous (cached) answer');
  if (!result.ok) messages.push(result.message);
  return result;
}

const activeAnswer = (over: Record<string, unknown> = {}) => ({
  active: true,
  sub: 'alice',
  username: 'alice-user',
  client_id: 'app-1',
  scope: 'read write',
  groups: ['ml', 'admins'],
  exp: T0_S + 3600,
  ...over,
});

test('an active token gives an identity from the answer; the request is a Basic-authenticated form POST', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()));
  const { intro } = introspector(t, config(idp.url));
  const result = await verify(intro, 'tok-active');
  assert.ok(result.ok);
  assert.equal(result.identity.method, 'introspection');
  assert.equal(result.identity.consumer, 'alice');
  assert.deepEqual(result.identity.groups, ['ml', 'admins']);
  assert.deepEqual(result.identity.scopes, ['read', 'write']);
  assert.deepEqual(result.identity.claims, activeAnswer());
  assert.equal(idp.count, 1);
  const seen = idp.seen[0];
  assert.ok(seen);
  assert.equal(seen.method, 'POST');
  assert.equal(seen.path, '/oauth2/introspect');
  assert.equal(seen.contentType, 'application/x-www-form-urlencoded');
  assert.equal(seen.accept, 'application/json');
  assert.equal(
    seen.authorization,
    `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
  );
  assert.deepEqual(
    [...seen.form],
    [
      ['token', 'tok-active'],
      ['token_type_hint', 'access_token'],
    ],
  );
});

test('the token is form-encoded in the body', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()));
  const { intro } = introspector(t, config(idp.url));
  const token = 'a+b/c=d&token=evil %';
  assert.ok((await verify(intro, token)).ok);
  assert.deepEqual(
    [...(idp.seen[0]?.form ?? [])],
    [
      ['token', token],
      ['token_type_hint', 'access_token'],
    ],
  );
});

test('the Basic credentials are base64(urlencode(id):urlencode(secret)) (RFC 6749 §2.3.1)', async (t) => {
  const id = 'client:id é';
  const secret = 'p@ss w+rd/%&:=';
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()), { id, secret });
  const { intro } = introspector(t, config(idp.url, { clientId: id, clientSecret: secret }));
  const result = await verify(intro, 'tok');
  assert.ok(result.ok, 'the server accepted the credentials');
  const expected = `Basic ${Buffer.from('client%3Aid+%C3%A9:p%40ss+w%2Brd%2F%25%26%3A%3D').toString('base64')}`;
  assert.equal(idp.seen[0]?.authorization, expected);
});

test('consumer falls back to username, then client_id; none is missing_claim; no groupsClaim: no groups', async (t) => {
  let answer: Record<string, unknown> = {};
  const idp = await startIdp(t, (_, res) => json(res, 200, answer));
  const { intro } = introspector(t, config(idp.url, { groupsClaim: undefined }));

  answer = { active: true, username: 'bob', client_id: 'app', groups: ['x'] };
  let r = await verify(intro, 'tok-1');
  assert.ok(r.ok);
  assert.equal(r.identity.consumer, 'bob');
  assert.deepEqual(r.identity.groups, []);
  assert.deepEqual(r.identity.scopes, []);

  answer = { active: true, client_id: 'app', scope: ['a', 'b'] };
  r = await verify(intro, 'tok-2');
  assert.ok(r.ok);
  assert.equal(r.identity.consumer, 'app');
  assert.deepEqual(r.identity.scopes, ['a', 'b']);

  answer = { active: true, scope: 'a' };
  r = await verify(intro, 'tok-3');
  assert.equal(r.ok, false);
  assert.equal(r.ok === false && r.reason, 'missing_claim');
});

test('an inactive token is inactive, and the answer is cached for negativeCacheTtlMs', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, { active: false }));
  const { intro, clock } = introspector(t, config(idp.url));
  const r = await verify(intro, 'tok-inactive');
  assert.equal(r.ok === false && r.reason, 'inactive');
  clock.now += 9_999;
  const cached = verifySync(intro, 'tok-inactive');
  assert.equal(cached.ok === false && cached.reason, 'inactive');
  assert.equal(idp.count, 1);
  clock.now += 1;
  const again = await verify(intro, 'tok-inactive');
  assert.equal(again.ok === false && again.reason, 'inactive');
  assert.equal(idp.count, 2);
});

test('an active answer is cached until cacheTtlMs when exp is later', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer({ exp: T0_S + 3600 })));
  const { intro, clock } = introspector(t, config(idp.url, { cacheTtlMs: 60_000 }));
  const first = await verify(intro, 'tok');
  assert.ok(first.ok);
  clock.now += 59_999;
  const hit = verifySync(intro, 'tok');
  assert.ok(hit.ok);
  assert.equal(hit.identity.consumer, 'alice');
  assert.equal(idp.count, 1);
  clock.now += 1;
  const miss = intro.verify('tok');
  assert.ok(miss instanceof Promise);
  assert.ok((await miss).ok);
  assert.equal(idp.count, 2);
});

test('an active answer is cached until exp when exp comes before cacheTtlMs', async (t) => {
  let exp = T0_S + 30;
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer({ exp })));
  const { intro, clock } = introspector(t, config(idp.url, { cacheTtlMs: 60_000 }));
  assert.ok((await verify(intro, 'tok')).ok);
  clock.now += 29_999;
  assert.ok(verifySync(intro, 'tok').ok);
  assert.equal(idp.count, 1);
  clock.now += 1;
  // At exp the cached answer is gone; the server (now) says the token is active again with a later exp.
  exp = T0_S + 3600;
  const r = intro.verify('tok');
  assert.ok(r instanceof Promise);
  assert.ok((await r).ok);
  assert.equal(idp.count, 2);
});

test('an active answer whose exp is past is expired; one whose nbf is ahead is not_yet_valid', async (t) => {
  let answer: Record<string, unknown> = activeAnswer({ exp: T0_S - 1 });
  const idp = await startIdp(t, (_, res) => json(res, 200, answer));
  const { intro } = introspector(t, config(idp.url));
  const expired = await verify(intro, 'tok-old');
  assert.equal(expired.ok, false);
  assert.equal(expired.ok === false && expired.reason, 'expired');

  answer = activeAnswer({ nbf: T0_S + 60 });
  const early = await verify(intro, 'tok-early');
  assert.equal(early.ok === false && early.reason, 'not_yet_valid');
});

test('a non-numeric exp is a malformed answer: unavailable', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer({ exp: 'tomorrow' })));
  const { intro } = introspector(t, config(idp.url));
  const r = await verify(intro, 'tok');
  assert.equal(r.ok === false && r.reason, 'unavailable');
});

/** Asserts `unavailable`, then that the failure was not cached: the next call asks again and succeeds. */
async function assertUnavailableNotCached(
  intro: { verify(token: string): AuthResult | Promise<AuthResult> },
  idp: { count: number; reply: Reply },
  token: string,
): Promise<void> {
  const r = await verify(intro, token);
  assert.equal(r.ok, false);
  assert.equal(r.ok === false && r.reason, 'unavailable');
  const before = idp.count;
  idp.reply = (_, res) => json(res, 200, activeAnswer());
  const again = intro.verify(token);
  assert.ok(again instanceof Promise, 'a failure is not cached');
  assert.ok((await again).ok);
  assert.equal(idp.count, before + 1);
}

test('HTTP 500 is unavailable and not cached', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 500, { error: 'server_error' }));
  const { intro } = introspector(t, config(idp.url));
  await assertUnavailableNotCached(intro, idp, 'tok');
});

test('invalid JSON is unavailable and not cached', async (t) => {
  const idp = await startIdp(t, (_, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"active": tru');
  });
  const { intro } = introspector(t, config(idp.url));
  await assertUnavailableNotCached(intro, idp, 'tok');
});

test('an answer without a boolean active, or not an object, is unavailable and not cached', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, { sub: 'alice' }));
  const { intro } = introspector(t, config(idp.url));
  await assertUnavailableNotCached(intro, idp, 'tok-1');
  idp.reply = (_, res) => json(res, 200, [true]);
  await assertUnavailableNotCached(intro, idp, 'tok-2');
  idp.reply = (_, res) => json(res, 200, { active: 'true', sub: 'alice' });
  await assertUnavailableNotCached(intro, idp, 'tok-3');
});

test('wrong client credentials: the endpoint answers 401, which is unavailable (not the client’s fault)', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()));
  const { intro } = introspector(t, config(idp.url, { clientSecret: 'wrong' }));
  const r = await verify(intro, 'tok');
  assert.equal(r.ok === false && r.reason, 'unavailable');
  assert.equal(idp.count, 1);
  assert.match(r.ok === false ? r.message : '', /401/);
  // Not cached either.
  assert.ok(intro.verify('tok') instanceof Promise);
});

test('connection refused is unavailable and not cached', async (t) => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address() as AddressInfo;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const { intro } = introspector(t, config(`http://127.0.0.1:${port}/introspect`));
  const r = await verify(intro, 'tok');
  assert.equal(r.ok === false && r.reason, 'unavailable');
  assert.match(r.ok === false ? r.message : '', /ECONNREFUSED/);
  const again = intro.verify('tok');
  assert.ok(again instanceof Promise, 'not cached');
  assert.equal((await again).ok === false, true);
});

test('an endpoint that never answers times out: unavailable, not cached', async (t) => {
  const idp = await startIdp(t, () => {
    /* never answers */
  });
  const { intro } = introspector(t, config(idp.url, { timeoutMs: 50 }));
  const r = await verify(intro, 'tok');
  assert.equal(r.ok === false && r.reason, 'unavailable');
  assert.match(r.ok === false ? r.message : '', /50 ms/);
  assert.equal(idp.count, 1);
  await assertUnavailableNotCached(intro, idp, 'tok');
});

test('the timeout holds even for a request function that ignores the abort signal', async (t) => {
  let calls = 0;
  const { intro } = introspector(t, config('http://idp.invalid/introspect', { timeoutMs: 20 }), {
    request: () => {
      calls++;
      return new Promise(() => {});
    },
  });
  const r = await verify(intro, 'tok');
  assert.equal(r.ok === false && r.reason, 'unavailable');
  assert.equal(calls, 1);
});

test('100 concurrent verifications of one token send one request', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()));
  const { intro } = introspector(t, config(idp.url));
  const pending = Array.from({ length: 100 }, () => intro.verify('tok-shared'));
  assert.ok(pending.every((p) => p instanceof Promise));
  const results = await Promise.all(pending);
  assert.equal(idp.count, 1);
  for (const r of results) {
    assert.ok(r.ok);
    assert.equal(r.identity.consumer, 'alice');
  }
  assert.ok(verifySync(intro, 'tok-shared').ok);
  assert.equal(idp.count, 1);
});

test('the cache is LRU-bounded by cacheSize', async (t) => {
  const idp = await startIdp(t, (seen, res) => json(res, 200, activeAnswer({ sub: seen.form.get('token') })));
  const { intro } = introspector(t, config(idp.url), { cacheSize: 2 });
  await verify(intro, 'a');
  await verify(intro, 'b');
  verifySync(intro, 'a'); // a is now the most recent
  await verify(intro, 'c'); // evicts b
  assert.equal(idp.count, 3);
  const a = verifySync(intro, 'a');
  assert.equal(a.ok && a.identity.consumer, 'a');
  verifySync(intro, 'c');
  const b = intro.verify('b');
  assert.ok(b instanceof Promise, 'b was evicted');
  const rb = await b;
  assert.equal(rb.ok && rb.identity.consumer, 'b');
  assert.equal(idp.count, 4);
});

test('cacheTtlMs 0 and negativeCacheTtlMs 0 disable caching', async (t) => {
  const idp = await startIdp(t, (_, res) => json(res, 200, activeAnswer()));
  const { intro } = introspector(t, config(idp.url, { cacheTtlMs: 0, negativeCacheTtlMs: 0 }));
  assert.ok((await verify(intro, 'tok')).ok);
  assert.ok(intro.verify('tok') instanceof Promise);
  await intro.verify('tok');
  idp.reply = (_, res) => json(res, 200, { active: false });
  await verify(intro, 'tok-inactive');
  assert.ok(intro.verify('tok-inactive') instanceof Promise);
});

test('close() resolves requests in flight as unavailable and refuses later verifications', async (t) => {
  const idp = await startIdp(t, () => {
    /* never answers */
  });
  const { intro } = introspector(t, config(idp.url, { timeoutMs: 60_000 }));
  const pending = intro.verify('tok');
  while (idp.count === 0) await new Promise((resolve) => setImmediate(resolve));
  intro.close();
  const r = await pending;
  assert.equal(r.ok === false && r.reason, 'unavailable');
  const after = await intro.verify('tok');
  assert.equal(after.ok === false && after.reason, 'unavailable');
});

test('no message carries the token or the client secret, even when the endpoint echoes them', async (t) => {
  const token = 'SeCrEtToKeN-0123456789abcdef';
  const echo = (seen: Seen) => `${seen.form.get('token')} ${seen.authorization}`;
  const idp = await startIdp(t, (seen, res) => json(res, 500, { error: echo(seen) }));
  const { intro } = introspector(t, config(idp.url, { timeoutMs: 100 }));
  const seenMessages: string[] = [];
  const run = async (reply: Reply) => {
    idp.reply = reply;
    const r = await verify(intro, token);
    assert.equal(r.ok, false);
    if (!r.ok) seenMessages.push(r.message);
  };
  await run((seen, res) => json(res, 500, { error: echo(seen) }));
  await run((seen, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`not json ${echo(seen)}`);
  });
  await run((seen, res) => json(res, 200, { active: 'yes', token: echo(seen) }));
  await run((seen, res) => json(res, 200, { active: true, exp: echo(seen) }));
  await run(() => {});
  await run((seen, res) => json(res, 200, { active: true, exp: T0_S - 1, note: echo(seen) }));
  await run((seen, res) => json(res, 200, { active: true, note: echo(seen) }));
  await run((seen, res) => json(res, 200, { active: false, note: echo(seen) }));
  assert.equal(seenMessages.length, 8);
  const b64secret = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64');
  for (const m of seenMessages) {
    assert.ok(m.length > 0);
    assert.ok(!m.includes(token), m);
    assert.ok(!m.includes(CLIENT_SECRET), m);
    assert.ok(!m.includes(b64secret), m);
  }
  // Nor did any message of the earlier tests (their tokens are `tok-…`; messages say `token`).
  for (const m of messages) {
    assert.ok(!m.includes('tok-'), m);
    assert.ok(!m.includes(CLIENT_SECRET), m);
  }
});
