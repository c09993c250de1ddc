import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { UsageMeter } from '../../../../../src/dataplane/ratelimit/usage/usage-meter.ts';

/**
 * Random streams of events (content chunks, usage-only chunks, usage-and-choices chunks, comments,
 * `[DONE]`), each line ended by LF, CRLF or CR, cut into random chunks: what is forwarded is the
 * stream minus exactly the usage-only events (when stripping), the stream itself otherwise.
 */
const eol = fc.constantFrom('\n', '\r\n', '\r');
const usage = (c: number) => ({ prompt_tokens: 3, completion_tokens: c, total_tokens: 3 + c });
const event = fc.oneof(
  fc.record({ kind: fc.constant('content'), text: fc.string({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('usageOnly'), n: fc.nat(50) }),
  fc.record({ kind: fc.constant('usageAndChoices'), n: fc.nat(50) }),
  fc.record({ kind: fc.constant('comment'), text: fc.stringMatching(/^[a-z ]{0,6}$/) }),
  fc.record({ kind: fc.constant('done') }),
);

interface Ev {
  kind: string;
  text?: string;
  n?: number;
}

function render(e: Ev, lineEnds: string[]): string {
  // A CR then an LF would be one CRLF, not a line end and a blank line.
  const ends = lineEnds.map((x, i) => (x === '\n' && lineEnds[i - 1] === '\r' ? '\r\n' : x));
  const [a = '\n', b = '\n', c = '\n'] = ends;
  switch (e.kind) {
    case 'content':
      return `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: e.text } }], usage: null })}${a}${b}`;
    case 'usageOnly':
      return `id: 1${a}data: ${JSON.stringify({ choices: [], usage: usage(e.n!) })}${b}${c}`;
    case 'usageAndChoices':
      return `data: ${JSON.stringify({ choices: [{ index: 0, delta: {} }], usage: usage(e.n!) })}${a}${b}`;
    case 'comment':
      return `:${e.text}${a}${b}`;
    default:
      return `data: [DONE]${a}${b}`;
  }
}

test('SSE property: random streams and cuts forward all bytes but the usage-only events', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(event, fc.array(eol, { minLength: 3, maxLength: 3 })), { maxLength: 12 }),
      fc.array(fc.nat(2000), { maxLength: 8 }),
      fc.boolean(),
      (events, cuts, strip) => {
        const rendered = events.map(([e, ends]) => ({ e, text: render(e, ends) }));
        const all = Buffer.from(rendered.map((r) => r.text).join(''));
        const expected = Buffer.from(
          rendered
            .filter((r) => !strip || r.e.kind !== 'usageOnly')
            .map((r) => r.text)
            .join(''),
        );
        const points = [...new Set(cuts.map((c) => c % (all.length + 1)))].sort((x, y) => x - y);
        const meter = new UsageMeter({ streaming: true, stripUsageChunk: strip });
        const out: Buffer[] = [];
        let from = 0;
        for (const p of [...points, all.length]) {
          const o = meter.data(all.subarray(from, p));
          if (o) out.push(o);
          from = p;
        }
        const rest = meter.end();
        if (rest) out.push(rest);
        assert.deepEqual(Buffer.concat(out), expected);

        const r = meter.result();
        const last = events
          .map(([e]) => e)
          .findLast((e) => e.kind === 'usageOnly' || e.kind === 'usageAndChoices');
        const generated = events.filter(([e]) => e.kind === 'content').length;
        assert.equal(r.generatedChunks, generated);
        if (last) assert.deepEqual(r, { exact: true, ...usageCounts(last.n!), generatedChunks: generated });
        else assert.equal(r.exact, false);
      },
    ),
    { numRuns: 500 },
  );
});

const usageCounts = (c: number) => ({ promptTokens: 3, completionTokens: c, totalTokens: 3 + c });
