/** Path rewrites: Gateway API's ReplacePrefixMatch table, ReplaceFullPath, ReplaceRegexMatch. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pathRewriter } from '../../../../src/dataplane/transform/path-rewrite.ts';

/** As the compiler stores them: the prefix and the replacement without trailing slashes. */
const prefix = (p: string, replacement: string) =>
  pathRewriter({
    type: 'ReplacePrefixMatch',
    prefix: p.length > 1 ? p.replace(/\/+$/, '') : p,
    replacement: replacement.replace(/\/+$/, ''),
  });

describe('ReplacePrefixMatch (the table in Gateway API HTTPPathModifier)', () => {
  const rows: [path: string, match: string, replace: string, expected: string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ];
  for (const [path, match, replace, expected] of rows) {
    test(`${path} with prefix ${match} and ${JSON.stringify(replace)} → ${expected}`, () => {
      assert.equal(prefix(match, replace)(path), expected);
    });
  }

  test('the root prefix / puts the replacement in front of the whole path', () => {
    assert.equal(prefix('/', '/v2')('/chat/completions'), '/v2/chat/completions');
    assert.equal(prefix('/', '')('/chat'), '/chat');
    assert.equal(prefix('/', '/v2')('/'), '/v2/');
  });
});

test('ReplaceFullPath replaces the whole path', () => {
  assert.equal(pathRewriter({ type: 'ReplaceFullPath', path: '/v2/chat' })('/anything/at/all'), '/v2/chat');
});

describe('ReplaceRegexMatch', () => {
  test('every match is replaced; groups come in through $n (the compiler turned \\n into $n)', () => {
    const r = pathRewriter({
      type: 'ReplaceRegexMatch',
      pattern: '^/service/([^/]+)(/.*)$',
      substitution: '$2/instance/$1',
    });
    assert.equal(r('/service/foo/v1/api'), '/v1/api/instance/foo');
    const all = pathRewriter({ type: 'ReplaceRegexMatch', pattern: 'o', substitution: '0' });
    assert.equal(all('/foo/boo'), '/f00/b00');
    assert.equal(all('/foo/boo'), '/f00/b00', 'the shared global regex starts over on every path');
  });

  test('a result that does not start with / gets one; no match leaves the path as it was', () => {
    const r = pathRewriter({ type: 'ReplaceRegexMatch', pattern: '^/api/', substitution: '' });
    assert.equal(r('/api/chat'), '/chat');
    assert.equal(r('/other'), '/other');
  });
});
