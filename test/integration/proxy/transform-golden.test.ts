/**
 * Golden request/response pairs for transforms and validation: each file in
 * test/fixtures/transform/ gives a rule (its matches, transform, validation), the request a client
 * sends, and the answer the upstream gives; `expected` is what the upstream received and what the
 * client got, through a real gateway and a real upstream. Adding a case is adding a file;
 * `UPDATE_GOLDEN=1` rewrites `expected` (review the diff as you would review code).
 *
 * Bodies are written as `{"json": value}` when they are compact JSON (so byte-for-byte equality
 * still holds) and as `{"text": "..."}` otherwise. Headers that vary by run (date, ids, ports) are
 * left out or masked.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { send } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

const DIR = fileURLToPath(new URL('../../fixtures/transform/', import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === '1';

type Body = { json: unknown } | { text: string } | undefined;

interface Pair {
  description: string;
  rule: Record<string, unknown>;
  request: { method?: string; path: string; headers?: Record<string, string>; body?: Body };
  upstream: { status: number; headers?: OutgoingHttpHeaders; body?: Body };
  expected?: {
    upstream: { method: string; path: string; headers: Record<string, unknown>; body: Body } | null;
    client: { status: number; headers: Record<string, unknown>; body: Body };
  };
}

const VOLATILE = new Set(['date', 'x-request-id', 'traceparent', 'connection', 'keep-alive']);

function bodyText(b: Body): string | undefined {
  if (b === undefined) return undefined;
  return 'json' in b ? JSON.stringify(b.json) : b.text;
}

function asBody(buf: Buffer): Body {
  if (buf.length === 0) return undefined;
  const text = buf.toString('utf8');
  try {
    const json = JSON.parse(text);
    if (JSON.stringify(json) === text) return { json };
  } catch {}
  return { text };
}

function stable(headers: IncomingHttpHeaders, port: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(headers).sort()) {
    if (VOLATILE.has(name)) continue;
    const v = headers[name];
    out[name] = typeof v === 'string' ? v.replaceAll(String(port), '<port>') : v;
  }
  return out;
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort();

describe('transform and validation golden pairs', () => {
  const pairs = files.map((f) => ({
    file: f,
    pair: JSON.parse(readFileSync(path.join(DIR, f), 'utf8')) as Pair,
  }));
  const received = new Map<
    string,
    { method: string; url: string; headers: IncomingHttpHeaders; body: Buffer }
  >();
  const upstreams: TestUpstream[] = [];
  let gw: TestGateway;

  before(async () => {
    let yaml = '';
    for (const { file, pair } of pairs) {
      const name = file.replace(/\.json$/, '');
      const up = await startUpstream(name, (req, res, body) => {
        received.set(name, { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        res.writeHead(pair.upstream.status, pair.upstream.headers ?? {});
        res.end(bodyText(pair.upstream.body));
      });
      upstreams.push(up);
      const spec = {
        hostnames: [`${name}.test`],
        rules: [{ ...pair.rule, backends: [{ name: 'b', urls: [up.url] }] }],
      };
      yaml += route(name, JSON.stringify(spec));
    }
    gw = await startGateway(yaml);
  });

  after(async () => {
    await gw.close();
    for (const up of upstreams) await up.close();
  });

  test('there are golden pairs', () => assert.ok(pairs.length >= 10, `${pairs.length} pairs`));

  for (const { file, pair } of pairs) {
    const name = file.replace(/\.json$/, '');
    test(`${name}: ${pair.description}`, async () => {
      received.delete(name);
      const reply = await send(gw.url, {
        method: pair.request.method ?? (pair.request.body ? 'POST' : 'GET'),
        path: pair.request.path,
        headers: { host: `${name}.test`, ...pair.request.headers },
        body: bodyText(pair.request.body),
      });
      const port = Number(new URL(gw.url).port);
      const got = received.get(name);
      const actual: NonNullable<Pair['expected']> = {
        upstream: got
          ? { method: got.method, path: got.url, headers: stable(got.headers, port), body: asBody(got.body) }
          : null,
        client: { status: reply.status, headers: stable(reply.headers, port), body: asBody(reply.body) },
      };
      if (actual.client.body && 'json' in actual.client.body) {
        // The gateway's own errors carry the request id; mask it.
        const error = (actual.client.body.json as { error?: { requestId?: string } }).error;
        if (error?.requestId) {
          // Masked, with the length it changes (ids grow as the counter does).
          error.requestId = '<request-id>';
          delete actual.client.headers['content-length'];
        }
      }
      if (UPDATE) {
        const { expected: _old, ...rest } = pair;
        writeFileSync(path.join(DIR, file), `${JSON.stringify({ ...rest, expected: actual }, null, 2)}\n`);
      } else {
        assert.ok(pair.expected, `${file} has no expected part: run with UPDATE_GOLDEN=1`);
        assert.deepEqual(JSON.parse(JSON.stringify(actual)), pair.expected);
      }
    });
  }
});
