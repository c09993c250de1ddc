import assert from 'node:assert/strict';
import { test } from 'node:test';
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  ModelFieldScanner,
  type ModelScan,
  scanModel,
  scanModelBytes,
} from '../../../../src/dataplane/request/model-field.ts';

function scan(text: string | Buffer): ModelScan {
  return scanModelBytes([typeof text === 'string' ? Buffer.from(text) : text]);
}

const found = (model: string): ModelScan => ({ kind: 'found', model });

test('model first, last, alone, with whitespace around', () => {
  assert.deepEqual(scan('{"model":"gpt-4o","messages":[]}'), found('gpt-4o'));
  assert.deepEqual(
    scan('{"messages":[{"role":"user","content":"hi"}],"stream":true,"model":"llama"}'),
    found('llama'),
  );
  assert.deepEqual(scan('{"model":"m"}'), found('m'));
  assert.deepEqual(scan(' \r\n\t{ "model" : "m" , "n" : 1 } \n'), found('m'));
  assert.deepEqual(scan('{\n  "messages": [],\n  "model": "pretty"\n}\n'), found('pretty'));
  assert.deepEqual(scan('{"model":""}'), found(''));
});

test('model after a 2 MB string field', () => {
  const big = 'x'.repeat(2 * 1024 * 1024);
  assert.deepEqual(scan(JSON.stringify({ prompt: big, model: 'after-big' })), found('after-big'));
  // The same with escapes sprinkled through the big string, in 64 KiB chunks.
  const text = JSON.stringify({ messages: [{ content: 'a"b\\c\n\u0001é😀'.repeat(200_000) }], model: 'm2' });
  const buf = Buffer.from(text);
  const scanner = new ModelFieldScanner();
  for (let i = 0; i < buf.length; i += 65536) scanner.push(buf.subarray(i, i + 65536));
  assert.deepEqual(scanner.finish(), found('m2'));
});

test('model after a deeply nested array', () => {
  const depth = 100_000;
  const text = '{"a":' + '['.repeat(depth) + '1' + ']'.repeat(depth) + ',"model":"deep"}';
  assert.deepEqual(scan(text), found('deep'));
  // Nested "model" keys at every level below the top, then the same left unclosed.
  const nested = '{"a":' + '[{"model":"no","k":'.repeat(1000) + '0';
  assert.deepEqual(scan(nested + '}]'.repeat(1000) + '}'), { kind: 'absent' });
  assert.deepEqual(scan(nested + '}]'.repeat(1000)), { kind: 'not-json' });
  const objects =
    '{"a":' + '{"b":'.repeat(5000) + '{"model":"inner"}' + '}'.repeat(5000) + ',"model":"outer"}';
  assert.deepEqual(scan(objects), found('outer'));
});

test('"model" nested anywhere below the top level is ignored', () => {
  assert.deepEqual(scan('{"messages":[{"role":"user","model":"inner"}]}'), { kind: 'absent' });
  assert.deepEqual(scan('{"metadata":{"model":"inner"},"model":"outer"}'), found('outer'));
  assert.deepEqual(scan('{"model":"outer","metadata":{"model":"inner","x":{"model":1}}}'), found('outer'));
  assert.deepEqual(scan('{"a":["model","model"],"b":"model"}'), { kind: 'absent' });
  // A string value that looks like a key is a value.
  assert.deepEqual(scan('{"x":"\\"model\\":\\"fake\\"","model":"real"}'), found('real'));
});

test('escapes in the value are decoded', () => {
  assert.deepEqual(scan('{"model":"a\\"b\\\\c\\/d"}'), found('a"b\\c/d'));
  assert.deepEqual(scan('{"model":"caf\\u00e9"}'), found('café'));
  assert.deepEqual(scan('{"model":"\\ud83d\\ude00"}'), found('😀'));
  assert.deepEqual(scan('{"model":"\\b\\f\\n\\r\\t"}'), found('\b\f\n\r\t'));
  assert.deepEqual(scan('{"model":"raw é 😀"}'), found('raw é 😀'));
  // An unpaired surrogate escape is valid JSON but no string a model can be named.
  assert.deepEqual(scan('{"model":"\\ud83d"}'), { kind: 'not-string' });
  assert.deepEqual(scan('{"model":"\\ude00x"}'), { kind: 'not-string' });
});

test('escaped spellings of the key count', () => {
  assert.deepEqual(scan('{"mod\\u0065l":"m"}'), found('m'));
  assert.deepEqual(scan('{"\\u006d\\u006f\\u0064\\u0065\\u006c":"m"}'), found('m'));
  assert.deepEqual(scan('{"\\u006D\\u006F\\u0064\\u0065\\u006C":"m"}'), found('m'));
  assert.deepEqual(scan('{"Model":"m","models":"m","mode":"m","model ":"m"}'), { kind: 'absent' });
  assert.deepEqual(scan('{"mod\\u0065l\\u0020":"m"}'), { kind: 'absent' });
  assert.deepEqual(scan(`{"${'k'.repeat(100)}":"v","model":"m"}`), found('m'));
});

test('a model that is not a string', () => {
  for (const v of ['1', '-2.5e3', 'null', 'true', 'false', '{"name":"x"}', '["x"]', '[]', '{}']) {
    assert.deepEqual(scan(`{"model":${v},"n":1}`), { kind: 'not-string' }, v);
  }
});

test('absent', () => {
  assert.deepEqual(scan('{}'), { kind: 'absent' });
  assert.deepEqual(scan('{"messages":[]}'), { kind: 'absent' });
});

test('duplicate top-level model keys are ambiguous', () => {
  assert.deepEqual(scan('{"model":"a","model":"b"}'), { kind: 'ambiguous' });
  assert.deepEqual(scan('{"model":"a","x":1,"model":"a"}'), { kind: 'ambiguous' });
  assert.deepEqual(scan('{"model":"a","mod\\u0065l":"b"}'), { kind: 'ambiguous' });
  assert.deepEqual(scan('{"model":1,"model":"b"}'), { kind: 'ambiguous' });
  // ...but invalid JSON wins.
  assert.deepEqual(scan('{"model":"a","model":"b"'), { kind: 'not-json' });
});

test('a UTF-8 BOM is skipped at the start, and only there', () => {
  assert.deepEqual(scan(Buffer.from('\ufeff{"model":"b"}')), found('b'));
  assert.deepEqual(scan(Buffer.from('\ufeff \n{"model":"b"}')), found('b'));
  assert.deepEqual(scan(Buffer.from(' \ufeff{"model":"b"}')), { kind: 'not-json' });
  assert.deepEqual(scan(Buffer.from('\ufeff\ufeff{}')), { kind: 'not-json' });
  assert.deepEqual(scan(Buffer.from([0xef, 0xbb, 0x7b, 0x7d])), { kind: 'not-json' });
});

test('invalid or non-object bodies are not-json', () => {
  const bodies = [
    '',
    ' ',
    '[]',
    '[{"model":"x"}]',
    '"model"',
    '1',
    'null',
    '{',
    '{"model"',
    '{"model":',
    '{"model":"x"',
    '{"model":"x",}',
    '{"model":"x"}}',
    '{"model":"x"} {}',
    '{"model":"x"}x',
    '{"a":1,,"model":"x"}',
    '{"a" 1,"model":"x"}',
    '{"a":1 "model":"x"}',
    '{model:"x"}',
    "{'model':'x'}",
    '{"model":"x" /* c */}',
    '{"a":[1,]}',
    '{"a":[,1]}',
    '{"a":01}',
    '{"a":-}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":1e}',
    '{"a":1e+}',
    '{"a":+1}',
    '{"a":NaN}',
    '{"a":Infinity}',
    '{"a":tru}',
    '{"a":nul}',
    '{"a":truex}',
    '{"a":"\\x"}',
    '{"a":"\\u12"}',
    '{"a":"\\u12g4"}',
    '{"a":"raw\ttab"}',
    '{"a":"raw\nnewline"}',
    '{"a":"unterminated}',
    '{"a":[}',
    '{"a":{]}',
    '{"a":{"b"}}',
    '{"a" : {"b":1]}',
    '{"model":"\\"}',
  ];
  for (const body of bodies) {
    assert.deepEqual(scan(body), { kind: 'not-json' }, JSON.stringify(body));
    assert.throws(() => {
      const v: unknown = JSON.parse(body);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    }, JSON.stringify(body));
  }
});

test('a model value that is not UTF-8 makes the body not-json', () => {
  const body = Buffer.concat([Buffer.from('{"model":"a'), Buffer.from([0xff]), Buffer.from('"}')]);
  assert.deepEqual(scan(body), { kind: 'not-json' });
});

// Every split point, so that each state (mid-key, mid-escape, mid-\u, mid-number, mid-literal,
// mid-BOM, mid-surrogate-pair, mid-UTF-8 sequence) meets a chunk boundary.
const SPLIT_BODIES: [string, ModelScan][] = [
  [
    '\ufeff {"messages":[{"role":"user","model":"x","content":"a\\"b\\u00e9c"}],"n":-1.5e+3,"t":true,' +
      '"f":false,"z":null,"mod\\u0065l" : "g\\"p\\u0074-\\ud83d\\ude00-é","e":[]}',
    found('g"pt-😀-é'),
  ],
  ['{"model":"a","x":[0,{"y":"\\\\"}],"model":"b"}', { kind: 'ambiguous' }],
  ['{"model":123.5e-2,"x":"\\u0041"}', { kind: 'not-string' }],
  ['{"x":"\\\\","y":[true,false,null]}', { kind: 'absent' }],
  ['{"x":"\\\\","y":[true,fals]}', { kind: 'not-json' }],
];

test('every split into two chunks gives the same answer', () => {
  for (const [text, expected] of SPLIT_BODIES) {
    const buf = Buffer.from(text);
    assert.deepEqual(scan(buf), expected, text);
    for (let cut = 0; cut <= buf.length; cut++) {
      const scanner = new ModelFieldScanner();
      scanner.push(buf.subarray(0, cut));
      scanner.push(buf.subarray(cut));
      assert.deepEqual(scanner.finish(), expected, `${text} cut at ${cut}`);
    }
  }
});

test('every split into three chunks, and one byte at a time, give the same answer', () => {
  const [text, expected] = SPLIT_BODIES[0]!;
  const buf = Buffer.from(text);
  for (let a = 0; a <= buf.length; a++) {
    for (let b = a; b <= buf.length; b++) {
      const scanner = new ModelFieldScanner();
      scanner.push(buf.subarray(0, a));
      scanner.push(buf.subarray(a, b));
      scanner.push(buf.subarray(b));
      assert.deepEqual(scanner.finish(), expected, `cuts ${a} ${b}`);
    }
  }
  const scanner = new ModelFieldScanner();
  for (let i = 0; i < buf.length; i++) scanner.push(buf.subarray(i, i + 1));
  assert.deepEqual(scanner.finish(), expected);
});

test('chunks of any size at any offset of their ArrayBuffer, empty ones included', () => {
  // A chunk too short for a whole aligned word, near the end of its buffer, must not make the
  // scanner build a word view that starts past the end.
  const body = Buffer.from('{"model":"ab"}');
  for (let shift = 0; shift < 4; shift++) {
    const back = Buffer.alloc(body.length + shift);
    body.copy(back, shift);
    const b = back.subarray(shift);
    for (let cut = 0; cut <= b.length; cut++) {
      const scanner = new ModelFieldScanner();
      scanner.push(b.subarray(0, cut));
      scanner.push(b.subarray(cut, cut));
      scanner.push(b.subarray(cut));
      scanner.push(b.subarray(b.length));
      assert.deepEqual(scanner.finish(), found('ab'), `shift ${shift} cut ${cut}`);
    }
  }
});

test('the model value survives the caller reusing chunk memory', () => {
  const chunk = Buffer.from('{"model":"abc');
  const scanner = new ModelFieldScanner();
  scanner.push(chunk);
  chunk.fill(0x7a);
  scanner.push(Buffer.from('def"}'));
  assert.deepEqual(scanner.finish(), found('abcdef'));
});

/** `bytes` copied to offset `shift` of a fresh buffer, so the chunk starts at any alignment. */
function shifted(bytes: Buffer, shift: number): Buffer {
  const backing = Buffer.alloc(bytes.length + 8);
  bytes.copy(backing, shift);
  return backing.subarray(shift, shift + bytes.length);
}

test('string content is scanned word-at-a-time without missing any stop byte', () => {
  // Every byte value, at every position within a 4-byte word, at every chunk alignment: the
  // word test must flag exactly `"`, `\` and control characters (a miss would misplace the end
  // of a string).
  for (let byte = 0; byte < 256; byte++) {
    const stop = byte === 0x22 || byte === 0x5c || byte < 0x20;
    for (let pos = 0; pos < 8; pos++) {
      const content = Buffer.alloc(24, 'x');
      content[pos + 8] = byte;
      const body = Buffer.concat([Buffer.from('{"a":"'), content, Buffer.from('","model":"m"}')]);
      for (let shift = 0; shift < 4; shift++) {
        const expected = stop ? { kind: 'not-json' } : found('m');
        assert.deepEqual(scan(shifted(body, shift)), expected, `byte ${byte} at ${pos}, shift ${shift}`);
      }
    }
  }
});

test('agrees with JSON.parse on string content made of awkward bytes', () => {
  // Bytes next to the stop values and high bytes, where SWAR borrows could hide a match.
  const awkward = fc.constantFrom(
    0x00,
    0x01,
    0x1f,
    0x20,
    0x21,
    0x22,
    0x23,
    0x5b,
    0x5c,
    0x5d,
    0x6e,
    0x75,
    0x7f,
    0x80,
    0xa2,
    0xdc,
    0xdd,
    0xfe,
    0xff,
    0x78,
  );
  fc.assert(
    fc.property(fc.array(fc.oneof(awkward, fc.nat(255)), { maxLength: 60 }), fc.nat(3), (bytes, shift) => {
      const body = Buffer.concat([Buffer.from('{"a":"'), Buffer.from(bytes), Buffer.from('","model":"m"}')]);
      assert.deepEqual(scan(shifted(body, shift)), oracle(body.toString()), body.toString('hex'));
    }),
    { numRuns: 5000 },
  );
});

// Differential checks against JSON.parse on generated documents.
function oracle(text: string): ModelScan {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'not-json' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'not-json' };
  if (!Object.hasOwn(value, 'model')) return { kind: 'absent' };
  const model = (value as { model: unknown }).model;
  if (typeof model !== 'string' || !model.isWellFormed()) return { kind: 'not-string' };
  return found(model);
}

const document = fc.record(
  {
    messages: fc.jsonValue({ maxDepth: 4 }),
    model: fc.oneof(fc.string({ unit: 'grapheme' }), fc.string(), fc.jsonValue({ maxDepth: 1 })),
    metadata: fc.dictionary(fc.constantFrom('model', 'a', 'b'), fc.jsonValue({ maxDepth: 2 })),
  },
  { requiredKeys: [] },
);

test('agrees with JSON.parse on generated documents (no duplicate keys)', () => {
  fc.assert(
    fc.property(document, fc.boolean(), fc.nat(), (doc, pretty, cut) => {
      const text = JSON.stringify(doc, null, pretty ? 2 : undefined);
      const buf = Buffer.from(text);
      const scanner = new ModelFieldScanner();
      const at = cut % (buf.length + 1);
      scanner.push(buf.subarray(0, at));
      scanner.push(buf.subarray(at));
      // Lone surrogates in generated strings become U+FFFD in UTF-8, so compare with what the
      // bytes say, not with the original object.
      assert.deepEqual(scanner.finish(), oracle(buf.toString()));
    }),
    { numRuns: 3000 },
  );
});

test('agrees with JSON.parse on whether mutated documents are JSON objects', () => {
  const alphabet = fc.constantFrom(
    '{',
    '}',
    '[',
    ']',
    ',',
    ':',
    '"',
    '\\',
    ' ',
    '0',
    '-',
    '.',
    'e',
    't',
    'u',
    'x',
  );
  fc.assert(
    fc.property(
      document,
      fc.array(fc.tuple(fc.nat(), fc.nat(3), alphabet), { maxLength: 3 }),
      (doc, edits) => {
        let text = JSON.stringify(doc);
        for (const [pos, op, ch] of edits) {
          const p = pos % (text.length + 1);
          if (op === 0) text = text.slice(0, p) + text.slice(p + 1);
          else if (op === 1) text = text.slice(0, p) + ch + text.slice(p);
          else text = text.slice(0, p) + ch + text.slice(p + 1);
        }
        // Edits can split a surrogate pair; compare on what the UTF-8 bytes say.
        const buf = Buffer.from(text);
        const got = scan(buf);
        const want = oracle(buf.toString());
        // Duplicate keys are the one place the scanner is stricter than JSON.parse.
        if (got.kind === 'ambiguous') assert.notEqual(want.kind, 'not-json', text);
        else assert.deepEqual(got, want, text);
      },
    ),
    { numRuns: 5000 },
  );
});

// Content-Encoding.
const BODY = Buffer.from(
  JSON.stringify({ messages: [{ role: 'user', content: 'hi '.repeat(1000) }], model: 'zm' }),
);
const LIMIT = 1024 * 1024;

test('identity and absent encodings scan the chunks as they are', () => {
  assert.deepEqual(scanModel([BODY], undefined, LIMIT), found('zm'));
  assert.deepEqual(scanModel([BODY], 'identity', LIMIT), found('zm'));
  assert.deepEqual(scanModel([BODY.subarray(0, 10), BODY.subarray(10)], '', LIMIT), found('zm'));
  assert.deepEqual(scanModel([BODY], undefined, BODY.length - 1), { kind: 'too-large' });
  assert.deepEqual(scanModel([BODY], undefined, BODY.length), found('zm'));
});

test('gzip, x-gzip, deflate (zlib and raw) and br bodies are decoded', () => {
  const gz = gzipSync(BODY);
  assert.deepEqual(scanModel([gz], 'gzip', LIMIT), found('zm'));
  assert.deepEqual(scanModel([gz.subarray(0, 7), gz.subarray(7)], ' GZIP ', LIMIT), found('zm'));
  assert.deepEqual(scanModel([gz], 'x-gzip', LIMIT), found('zm'));
  assert.deepEqual(scanModel([deflateSync(BODY)], 'deflate', LIMIT), found('zm'));
  assert.deepEqual(scanModel([deflateRawSync(BODY)], 'deflate', LIMIT), found('zm'));
  assert.deepEqual(scanModel([brotliCompressSync(BODY)], 'br', LIMIT), found('zm'));
  assert.deepEqual(scanModel([gzipSync('{"model":"a","model":"b"}')], 'gzip', LIMIT), { kind: 'ambiguous' });
  assert.deepEqual(scanModel([gzipSync('not json')], 'gzip', LIMIT), { kind: 'not-json' });
});

test('compression bombs stop at the limit', () => {
  const zeros = Buffer.alloc(64 * 1024 * 1024, 0x20);
  const gz = gzipSync(zeros, { level: 9 });
  assert.ok(gz.length < 100 * 1024, `bomb is ${gz.length} bytes`);
  assert.deepEqual(scanModel([gz], 'gzip', LIMIT), { kind: 'too-large' });
  assert.deepEqual(scanModel([deflateSync(zeros)], 'deflate', LIMIT), { kind: 'too-large' });
  assert.deepEqual(scanModel([brotliCompressSync(zeros)], 'br', LIMIT), { kind: 'too-large' });
  // Exactly at the limit is fine; one byte over is not.
  assert.deepEqual(scanModel([gzipSync(BODY)], 'gzip', BODY.length), found('zm'));
  assert.deepEqual(scanModel([gzipSync(BODY)], 'gzip', BODY.length - 1), { kind: 'too-large' });
});

test('unknown, stacked or undecodable encodings are bad-encoding', () => {
  assert.deepEqual(scanModel([BODY], 'compress', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([BODY], 'zstd', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([gzipSync(gzipSync(BODY))], 'gzip, gzip', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([BODY], 'gzip', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([gzipSync(BODY).subarray(0, 50)], 'gzip', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([BODY], 'br', LIMIT), { kind: 'bad-encoding' });
  assert.deepEqual(scanModel([BODY], 'deflate', LIMIT), { kind: 'bad-encoding' });
});
