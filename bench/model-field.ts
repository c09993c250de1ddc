/**
 * bench/model-field: throughput of the top-level "model" scanner on large chat bodies, against
 * JSON.parse of the same bytes in the same run (bytes -> string -> object, which is what a
 * parse-the-body proxy pays). No thresholds.
 *
 *   node bench/model-field.ts [--mb 5] [--runs 7]
 *
 * Bodies (each a `messages` field of about --mb MB, then "model"):
 *   prose     English paragraphs, a newline every ~1 KB: few escapes
 *   chat      conversational text: code, newlines, quotes, tabs, non-ASCII: an escape
 *             every ~12 bytes, as JSON.stringify writes it
 *   ascii-esc the same text with every non-ASCII character \u-escaped (Python's ensure_ascii)
 *   tokens    `prompt` as an array of integer token ids: the scanner's slowest (structural) path
 * The scanner is fed 64 KiB chunks, as a socket would deliver them; `gzip` adds scanModel on the
 * gzipped chat body (zlib decompression included).
 */
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { ModelFieldScanner, scanModel } from '../src/dataplane/request/model-field.ts';

const { values } = parseArgs({
  options: { mb: { type: 'string', default: '5' }, runs: { type: 'string', default: '7' } },
});
const TARGET_BYTES = Number(values.mb) * 1024 * 1024;
const RUNS = Number(values.runs);
const CHUNK = 64 * 1024;

const SENTENCES = [
  'Here is the function you asked for:\n\n```ts\nconst x = "quoted";\nreturn x;\n```\n',
  'The café on the corner serves crème brûlée — try it! ',
  'Summarise the following text in three bullet points.\n',
  'He said "no", then left.\tTabs\tand\\backslashes\\too. ',
  '日本語のテキストも含まれています。😀 ',
];

function chatBody(): Buffer {
  const messages: { role: string; content: string }[] = [];
  let size = 0;
  for (let i = 0; size < TARGET_BYTES; i++) {
    let content = '';
    for (let s = 0; s < 40; s++) content += SENTENCES[(i + s) % SENTENCES.length];
    messages.push({ role: i % 2 === 0 ? 'user' : 'assistant', content });
    size += Buffer.byteLength(content) + 32;
  }
  return Buffer.from(
    JSON.stringify({ messages, temperature: 0.2, model: 'meta-llama/Llama-3.1-8B-Instruct' }),
  );
}

function proseBody(): Buffer {
  const paragraph =
    'The quick brown fox jumps over the lazy dog while the committee reviews the quarterly ' +
    'figures, which show steady growth in every region except the north, where weather delayed ' +
    'two shipments and a supplier changed its terms. Analysts expect the gap to close next year. ';
  const messages: { role: string; content: string }[] = [];
  for (let size = 0; size < TARGET_BYTES; size += paragraph.length * 20) {
    messages.push({ role: 'user', content: `${paragraph.repeat(4)}\n\n`.repeat(5) });
  }
  return Buffer.from(JSON.stringify({ messages, model: 'prose-model' }));
}

function asciiEscaped(body: Buffer): Buffer {
  const text = body
    .toString()
    .replace(/[\u0080-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  return Buffer.from(text);
}

function tokensBody(): Buffer {
  const ids: number[] = [];
  let size = 0;
  for (let i = 0; size < TARGET_BYTES; i++) {
    const id = (i * 7919) % 128000;
    ids.push(id);
    size += String(id).length + 1;
  }
  return Buffer.from(JSON.stringify({ prompt: ids, max_tokens: 16, model: 'tokens-model' }));
}

function chunks(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += CHUNK) out.push(buf.subarray(i, i + CHUNK));
  return out;
}

/** Best-of-RUNS seconds for fn. */
function best(fn: () => unknown): number {
  fn();
  let min = Number.POSITIVE_INFINITY;
  for (let r = 0; r < RUNS; r++) {
    const start = process.hrtime.bigint();
    fn();
    min = Math.min(min, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return min;
}

const mbps = (bytes: number, seconds: number) => bytes / 1e6 / seconds;

console.log(`node ${process.version}, best of ${RUNS} runs, ${CHUNK / 1024} KiB chunks`);
console.log('body        MB     scan MB/s  JSON.parse MB/s  scan/parse  result');
const chat = chatBody();
for (const [name, body] of [
  ['prose', proseBody()],
  ['chat', chat],
  ['ascii-esc', asciiEscaped(chat)],
  ['tokens', tokensBody()],
] as const) {
  const parts = chunks(body);
  let result = '';
  const scanSeconds = best(() => {
    const scanner = new ModelFieldScanner();
    for (const part of parts) scanner.push(part);
    const r = scanner.finish();
    result = r.kind === 'found' ? r.model : r.kind;
  });
  const parseSeconds = best(() => (JSON.parse(body.toString()) as { model: string }).model);
  const scanRate = mbps(body.length, scanSeconds);
  const parseRate = mbps(body.length, parseSeconds);
  console.log(
    `${name.padEnd(10)}  ${(body.length / 1e6).toFixed(1).padStart(4)}  ${scanRate.toFixed(0).padStart(10)}  ` +
      `${parseRate.toFixed(0).padStart(15)}  ${(scanRate / parseRate).toFixed(2).padStart(9)}x  ${result}`,
  );
}

const gz = gzipSync(chat);
const gzSeconds = best(() => scanModel([gz], 'gzip', 64 * 1024 * 1024));
console.log(
  `gzip chat: ${(gz.length / 1e6).toFixed(2)} MB compressed, ${mbps(chat.length, gzSeconds).toFixed(0)} MB/s ` +
    `of decoded body (gunzip + scan)`,
);
