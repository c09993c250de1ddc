/** Requests the HTTP parser refuses never reach a route or an upstream. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { sendRaw } from '../../support/client.ts';
import { route, startGateway, type TestGateway } from '../../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../../support/upstream.ts';

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream('up');
  gw = await startGateway(route('all', `{rules: [{backends: [{name: b, urls: ["${up.url}"]}]}]}`));
});
after(async () => {
  await gw.close();
  await up.close();
});

const cases: [string, string, number][] = [
  [
    'Content-Length with Transfer-Encoding (smuggling)',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n',
    400,
  ],
  ['a non-numeric Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n', 400],
  [
    'two different Content-Lengths',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    400,
  ],
  [
    'a bad chunk size',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    400,
  ],
  ['an obsolete line folding', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 400],
  ['headers over 32 KiB', `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`, 431],
];

for (const [name, raw, status] of cases) {
  test(`${name} → ${status}, zero upstream hits`, async () => {
    const before = up.received.length;
    const reply = await sendRaw(gw.url, raw);
    assert.match(reply, new RegExp(`^HTTP/1.1 ${status} `));
    const body = reply.slice(reply.indexOf('\r\n\r\n') + 4);
    const code = (JSON.parse(body.split('HTTP/1.1')[0]!) as { error: { code: string } }).error.code;
    assert.equal(code, status === 431 ? 'MG_HEADERS_TOO_LARGE' : 'MG_BAD_REQUEST');
    assert.equal(up.received.length, before);
  });
}
