/** JSON text in and out: UTF-8 and BOM handling, exact big integers, JSON media types. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  isJsonType,
  jsonText,
  parseForRewrite,
  serialize,
} from '../../../../src/dataplane/transform/json-text.ts';

test('UTF-8 only; a byte order mark is dropped', () => {
  assert.equal(jsonText(Buffer.from('{"a":"é"}')), '{"a":"é"}');
  assert.equal(jsonText(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d])), '{}');
  assert.equal(jsonText(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d])), undefined);
});

test('integers beyond 2^53 survive a rewrite as written; other numbers keep their value', () => {
  const text =
    '{"seed":12345678901234567890,"neg":-98765432109876543210,"f":1.5,"small":42,"id":"1234567890123456789"}';
  assert.equal(
    serialize(parseForRewrite(text)).toString(),
    '{"seed":12345678901234567890,"neg":-98765432109876543210,"f":1.5,"small":42,"id":"1234567890123456789"}',
  );
  // Without a 16-digit run the plain parse is exact: 1.0 is 1.
  assert.equal(serialize(parseForRewrite('{"x":1.0,"y":1e2}')).toString(), '{"x":1,"y":100}');
  assert.throws(() => parseForRewrite('{"a":}'), SyntaxError);
});

test('JSON media types', () => {
  for (const t of [
    'application/json',
    'application/json; charset=utf-8',
    'Application/JSON',
    'application/problem+json',
  ]) {
    assert.equal(isJsonType(t), true, t);
  }
  for (const t of [
    undefined,
    'text/plain',
    'text/event-stream',
    'application/jsonl',
    'application/x-ndjson',
  ]) {
    assert.equal(isJsonType(t), false, String(t));
  }
});
