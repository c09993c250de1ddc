import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { normalizePath } from '../../../../src/dataplane/request/normalize-path.ts';

/** [target, path, query] for accepted targets. */
const accepted: [string, string, string][] = [
  // clean paths (fast path)
  ['/', '/', ''],
  ['/v1/chat/completions', '/v1/chat/completions', ''],
  ['/v1/chat/completions?stream=true', '/v1/chat/completions', '?stream=true'],
  ['/a.b/c..d/...', '/a.b/c..d/...', ''],
  ['/a/b;c=d', '/a/b;c=d', ''],
  ["/a/!$&'()*+,;=:@", "/a/!$&'()*+,;=:@", ''],
  // dot-segments
  ['/api/v1/../admin', '/api/admin', ''],
  ['/api/v1/%2e%2e/admin', '/api/admin', ''],
  ['/api/v1/%2E%2E/admin', '/api/admin', ''],
  ['/api/v1/.%2e/admin', '/api/admin', ''],
  ['/api/v1/..%2Fadmin', '/api/admin', ''],
  ['/api/v1/..%2fadmin', '/api/admin', ''],
  ['/api/v1/..%5cadmin', '/api/admin', ''],
  ['/api/v1/..%5Cadmin', '/api/admin', ''],
  ['/api/v1/..\\admin', '/api/admin', ''],
  ['/a/./b/../../c', '/c', ''],
  ['/a/./b', '/a/b', ''],
  ['/../x', '/x', ''],
  ['/../../../etc/passwd', '/etc/passwd', ''],
  ['/%2e%2e/%2e%2e/x', '/x', ''],
  ['/a/b/..', '/a/', ''],
  ['/a/b/.', '/a/b/', ''],
  ['/a/..', '/', ''],
  ['/..', '/', ''],
  ['/.', '/', ''],
  ['/.well-known/x', '/.well-known/x', ''],
  ['/a/.../b', '/a/.../b', ''],
  // slashes
  ['//admin', '/admin', ''],
  ['///a////b//', '/a/b/', ''],
  ['/a%2f%2fb', '/a/b', ''],
  ['/a\\\\b', '/a/b', ''],
  // trailing slash
  ['/a/', '/a/', ''],
  ['/a', '/a', ''],
  ['/a/?x', '/a/', '?x'],
  ['/a/b/../', '/a/', ''],
  ['/a%2F', '/a/', ''],
  // percent-encoding
  ['/%61dmin', '/admin', ''],
  ['/%7euser/%2D%5f', '/~user/-_', ''],
  ['/a%2fb', '/a/b', ''],
  ['/caf%c3%a9', '/caf%C3%A9', ''],
  ['/caf%C3%A9', '/caf%C3%A9', ''],
  ['/a%20b', '/a%20b', ''],
  ['/a%25b', '/a%25b', ''], // %25 stays encoded: no double decoding
  ['/a%252e%252e/b', '/a%252e%252e/b', ''],
  ['/a%3fb', '/a%3Fb', ''],
  ['/a%0d%0ab', '/a%0D%0Ab', ''], // encoded CR LF stays encoded, harmless
  // query
  ['/x?y=../z', '/x', '?y=../z'],
  ['/x?a=%zz&b=%00', '/x', '?a=%zz&b=%00'],
  ['/x?', '/x', '?'],
  ['/x??', '/x', '??'],
  ['/a/../b?c=/../d', '/b', '?c=/../d'],
  ['/x?q=\u00e9', '/x', '?q=\u00e9'],
  // absolute-form
  ['http://h/a/../b', '/b', ''],
  ['https://h:8443/v1/models?x=1', '/v1/models', '?x=1'],
  ['HTTP://h', '/', ''],
  ['http://h?x', '/', '?x'],
  ['http://user@h//admin', '/admin', ''],
  // non-ASCII as node:http2 delivers it: one latin1 character per byte
  ['/caf\u00c3\u00a9', '/caf%C3%A9', ''],
  ['/\u00ff', '/%FF', ''],
];

/** [target, reason] for rejected targets. */
const rejected: [string, string][] = [
  ['', 'request-target is not origin-form or absolute-form'],
  ['*', 'request-target is not origin-form or absolute-form'],
  ['example.com:443', 'request-target is not origin-form or absolute-form'],
  ['ftp://h/a', 'request-target is not origin-form or absolute-form'],
  ['http:///a', 'request-target is not origin-form or absolute-form'],
  ['http://h#x/a', 'request-target is not origin-form or absolute-form'],
  ['\\admin', 'request-target is not origin-form or absolute-form'],
  ['v1/models', 'request-target is not origin-form or absolute-form'],
  ['/a%00b', 'encoded NUL in path'],
  ['/a%zz', 'invalid percent-escape'],
  ['/a%g1', 'invalid percent-escape'],
  ['/a%1', 'truncated percent-escape'],
  ['/a%', 'truncated percent-escape'],
  ['/a%4?x=1', 'truncated percent-escape'],
  ['/a\u0000b', 'control character or space in path'],
  ['/a\tb', 'control character or space in path'],
  ['/a\r\nb', 'control character or space in path'],
  ['/a b', 'control character or space in path'],
  ['/a\u007fb', 'control character or space in path'],
  ['/a#b', 'fragment in request-target'],
  ['/a?b#c', 'fragment in request-target'],
  ['/a?b\nc', 'control character or space in query'],
  ['/\u4e2d', 'character above U+00FF in path'],
  ['/a?\u4e2d', 'character above U+00FF in query'],
  ['/..;/admin', 'dot-segment with path parameters'],
  ['/api/.;x/admin', 'dot-segment with path parameters'],
  ['/api/%2e%2e;/admin', 'dot-segment with path parameters'],
];

test('accepted request-targets normalise as documented', () => {
  for (const [target, path, query] of accepted) {
    assert.deepEqual(normalizePath(target), { ok: true, path, query }, JSON.stringify(target));
  }
});

test('rejected request-targets say why', () => {
  for (const [target, reason] of rejected) {
    assert.deepEqual(normalizePath(target), { ok: false, reason }, JSON.stringify(target));
  }
});

test('there are at least 40 vectors', () => {
  assert.ok(accepted.length + rejected.length >= 40);
});

// Properties over targets built from the characters that matter.
const pathChar = fc.constantFrom(
  'a',
  'b',
  'Z',
  '0',
  '.',
  '/',
  '\\',
  '%2e',
  '%2E',
  '%2f',
  '%5C',
  '%41',
  '%c3',
  '%25',
  '-',
  '~',
  ';',
  ':',
  '\u00e9',
);
const dirtyTarget = fc.array(pathChar, { maxLength: 20 }).map((parts) => '/' + parts.join(''));

test('normalisation is idempotent and its output has no dot-segment, empty segment or backslash', () => {
  fc.assert(
    fc.property(dirtyTarget, (target) => {
      const r = normalizePath(target);
      if (!r.ok) {
        // In this alphabet only `.;` and `..;` segments are rejectable.
        assert.equal(r.reason, 'dot-segment with path parameters', target);
        return;
      }
      const again = normalizePath(r.path);
      assert.deepEqual(again, { ok: true, path: r.path, query: '' });
      assert.ok(r.path.startsWith('/'));
      assert.ok(!r.path.includes('//'));
      assert.ok(!r.path.includes('\\'));
      for (const seg of r.path.split('/')) assert.ok(seg !== '.' && seg !== '..', r.path);
      for (const [pct] of r.path.matchAll(/%../g)) {
        assert.match(pct, /^%[0-9A-F]{2}$/, r.path);
        const byte = Number.parseInt(pct.slice(1), 16);
        assert.ok(!/[A-Za-z0-9._~/\\]/.test(String.fromCharCode(byte)), `${r.path} keeps ${pct}`);
      }
      assert.ok(!/[^\x21-\x7e]/.test(r.path), r.path);
    }),
    { numRuns: 2000 },
  );
});

test('every spelling of a path normalises to the same thing', () => {
  // Each character of a plain path may be written raw, percent-encoded in either case, and each
  // `/` also as `\`, `%2F` or `%5c`.
  const segment = fc.stringMatching(/^[a-z0-9._~-]{1,6}$/);
  fc.assert(
    fc.property(
      fc.array(segment, { minLength: 1, maxLength: 6 }),
      fc.infiniteStream(fc.nat(3)),
      (segs, choices) => {
        const plain = '/' + segs.join('/');
        const it = choices[Symbol.iterator]();
        const pick = () => it.next().value as number;
        let spelled = '';
        for (const ch of plain) {
          const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
          if (ch === '/') spelled += ['/', '\\', '%2F', '%5c'][pick()];
          else spelled += [ch, '%' + hex, '%' + hex.toUpperCase(), ch][pick()];
        }
        if (!spelled.startsWith('/')) spelled = '/' + spelled;
        assert.deepEqual(normalizePath(spelled), normalizePath(plain), spelled);
      },
    ),
    { numRuns: 1000 },
  );
});

test('clean targets come back unchanged (fast path)', () => {
  const clean = fc.stringMatching(/^(\/[a-zA-Z0-9_~-][a-zA-Z0-9._~:@!$&'()*+,;=-]{0,8}){1,5}\/?$/);
  fc.assert(
    fc.property(clean, fc.option(fc.stringMatching(/^[a-z=&./%]{0,10}$/)), (path, q) => {
      const target = q === null ? path : `${path}?${q}`;
      assert.deepEqual(normalizePath(target), { ok: true, path, query: q === null ? '' : `?${q}` });
    }),
    { numRuns: 1000 },
  );
});

// The non-ASCII rule in the header comment rests on what node's parsers deliver; pin it.
test('node:http refuses raw non-ASCII bytes in the request-target', async () => {
  const server = http.createServer((_req, res) => res.end('reached'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as net.AddressInfo;
    const response = await new Promise<string>((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.write(
          Buffer.concat([
            Buffer.from('GET /caf'),
            Buffer.from('é'),
            Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n'),
          ]),
        );
      });
      let data = '';
      socket.on('data', (d) => {
        data += d.toString('latin1');
      });
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    assert.match(response, /^HTTP\/1\.1 400 /);
  } finally {
    server.close();
  }
});

test('node:http2 delivers raw UTF-8 in :path as latin1, which normalises like the encoded form', async () => {
  const server = http2.createServer();
  let seen = '';
  server.on('stream', (stream, headers) => {
    seen = headers[':path'] ?? '';
    stream.respond({ ':status': 200 });
    stream.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  try {
    await new Promise<void>((resolve, reject) => {
      // The client writes header values as latin1: this sends the UTF-8 bytes C3 A9.
      const req = client.request({ ':path': '/caf\u00c3\u00a9' });
      req.on('error', reject);
      req.on('close', resolve);
      req.resume();
      req.end();
    });
    assert.equal(seen, '/caf\u00c3\u00a9');
    assert.deepEqual(normalizePath(seen), normalizePath('/caf%c3%a9'));
  } finally {
    client.close();
    server.close();
  }
});
