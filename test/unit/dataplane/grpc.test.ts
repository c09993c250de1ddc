import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeGrpcMessage, retryPushbackMs } from '../../../src/dataplane/grpc.ts';
import { decodeGrpcMessage } from '../../../src/dataplane/kserve/grpc-frame.ts';

test('grpc-message: printable ASCII stays as it is, % and other bytes are percent-encoded', () => {
  assert.equal(
    encodeGrpcMessage('MG_RATE_LIMITED: limit "a" of policy ml/p exceeded; retry in 3 s'),
    'MG_RATE_LIMITED: limit "a" of policy ml/p exceeded; retry in 3 s',
  );
  assert.equal(encodeGrpcMessage('100% done\nnext ✓'), '100%25 done%0Anext %E2%9C%93');
  for (const text of ['plain', '100% done\nnext ✓', 'tab\there']) {
    assert.equal(decodeGrpcMessage(encodeGrpcMessage(text)), text);
  }
});

test('grpc-retry-pushback-ms from Retry-After; -1 for a rate limit nothing would admit', () => {
  assert.equal(retryPushbackMs('1', false), '1000');
  assert.equal(retryPushbackMs('3599', true), '3599000');
  assert.equal(retryPushbackMs(undefined, true), '-1');
  assert.equal(retryPushbackMs(undefined, false), undefined);
  // Not delay-seconds (an HTTP date): no pushback rather than a wrong one.
  assert.equal(retryPushbackMs('Wed, 21 Oct 2015 07:28:00 GMT', true), undefined);
});
