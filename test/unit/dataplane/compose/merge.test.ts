/** A fan-out's merged answer under each onPartialFailure policy (compose/merge.ts). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type BranchOutcome, mergeBranches } from '../../../../src/dataplane/compose/merge.ts';
import { Errors } from '../../../../src/dataplane/errors.ts';

const names = ['a', 'b', 'c'];
const ok = (json: string): BranchOutcome => ({ ok: true, json });
const failed = (upstreamStatus?: number): BranchOutcome => ({
  ok: false,
  error: Errors.FanOutFailed,
  message: 'fan-out branch b answered 500',
  ...(upstreamStatus !== undefined && { upstreamStatus }),
});
const text = (r: ReturnType<typeof mergeBranches>) => (r.ok ? r.body.toString('utf8') : r);

describe('mergeBranches', () => {
  test('every branch answered: their texts under their names, in declared order, whatever the policy', () => {
    const outcomes = [ok('{"x":1}'), ok('[1, 2]'), ok('12345678901234567890')];
    for (const policy of ['Fail', 'Omit', 'SetNull'] as const) {
      assert.equal(
        text(mergeBranches(names, outcomes, policy)),
        '{"a":{"x":1},"b":[1, 2],"c":12345678901234567890}',
      );
    }
  });

  test('Fail: the first failure in declared order is the answer', () => {
    assert.deepEqual(mergeBranches(names, [ok('1'), failed(500), failed()], 'Fail'), {
      ok: false,
      branch: 1,
      all: false,
    });
  });

  test('Omit: the member is left out; failures listed under _errors', () => {
    const r = text(mergeBranches(names, [ok('1'), failed(500), ok('3')], 'Omit'));
    assert.deepEqual(JSON.parse(r as string), {
      a: 1,
      c: 3,
      _errors: {
        b: { code: 'MG_FANOUT_FAILED', message: 'fan-out branch b answered 500', upstreamStatus: 500 },
      },
    });
  });

  test('SetNull: the member is null, in its place; failures listed under _errors', () => {
    const r = text(mergeBranches(names, [ok('1'), failed(), ok('3')], 'SetNull')) as string;
    assert.equal(
      r,
      '{"a":1,"b":null,"c":3,"_errors":{"b":{"code":"MG_FANOUT_FAILED","message":"fan-out branch b answered 500"}}}',
    );
  });

  test('every branch failed: no answer, whatever the policy', () => {
    for (const policy of ['Fail', 'Omit', 'SetNull'] as const) {
      assert.deepEqual(mergeBranches(names, [failed(), failed(), failed()], policy), {
        ok: false,
        branch: 0,
        all: true,
      });
    }
  });

  test('branch names are JSON-escaped keys', () => {
    assert.equal(text(mergeBranches(['a"b'], [ok('1')], 'Fail')), '{"a\\"b":1}');
  });
});
