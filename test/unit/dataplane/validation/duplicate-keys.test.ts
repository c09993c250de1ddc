/** Duplicate keys in JSON objects, found by counting colons outside strings against parsed members. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  colonsOutsideStrings,
  hasDuplicateKeys,
  memberCount,
} from '../../../../src/dataplane/validation/duplicate-keys.ts';

const dup = (text: string) => hasDuplicateKeys(text, JSON.parse(text));

test('duplicates at any depth are found; equal keys in different objects are not duplicates', () => {
  assert.equal(dup('{"role":"user","role":"system"}'), true);
  assert.equal(dup('{"messages":[{"a":1},{"b":2,"b":3}]}'), true);
  assert.equal(dup('{"m\\u006fdel":"a","model":"b"}'), true, 'keys compare after unescaping');
  assert.equal(dup('{"__proto__":1,"__proto__":2}'), true);
  assert.equal(dup('{"a":{"a":{"a":1}},"b":[{"a":1},{"a":2}]}'), false);
  assert.equal(dup('[1,"a:b",{"x":":"}]'), false);
  assert.equal(dup('"just a string: with a colon"'), false);
});

test('colons inside strings, escaped quotes and backslashes do not count', () => {
  assert.equal(colonsOutsideStrings('{"a:b":"c:d","e\\":":"\\\\","f":1}'), 3);
  assert.equal(colonsOutsideStrings('{"a":"\\\\\\"x:y"}'), 1);
  assert.equal(colonsOutsideStrings('{ "k" : { "j" : [ ":" , { "i" : 1 } ] } }'), 3);
});

test('member counts walk arrays and nested objects without recursion', () => {
  let deep: unknown = { leaf: 1 };
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.equal(memberCount(deep), 1);
});

test('property: any JSON value has exactly as many colons as members, and a repeated key is found', () => {
  const json = fc.jsonValue({ maxDepth: 4 });
  fc.assert(
    fc.property(json, (v) => {
      const text = JSON.stringify(v);
      assert.equal(colonsOutsideStrings(text), memberCount(JSON.parse(text)));
      assert.equal(hasDuplicateKeys(text, JSON.parse(text)), false);
    }),
  );
  fc.assert(
    fc.property(json, fc.string(), json, (v, key, w) => {
      // The same key twice in one object, around any values (which may hold objects themselves).
      const text = `{${JSON.stringify(key)}:${JSON.stringify(v)},"other":1,${JSON.stringify(key)}:${JSON.stringify(w)}}`;
      assert.equal(hasDuplicateKeys(text, JSON.parse(text)), true);
    }),
  );
});
