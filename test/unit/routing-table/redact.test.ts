import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REDACTED, redact } from '../../../src/routing-table/redact.ts';

test('sensitive keys and URL credentials are replaced in a deep copy', () => {
  const input = {
    rules: [{ upstream: { clientSecret: 's3cr3t', url: 'https://user:pw@api.example.com/v1' } }],
    apiKeyHashes: ['abc'],
    name: 'chat',
  };
  const out = redact(input);
  assert.deepEqual(out, {
    rules: [{ upstream: { clientSecret: REDACTED, url: `https://${REDACTED}@api.example.com/v1` } }],
    apiKeyHashes: REDACTED,
    name: 'chat',
  });
  assert.equal(input.rules[0]?.upstream.clientSecret, 's3cr3t', 'the input is untouched');
});

test('credential header values set by a transform or matched on are replaced; other headers are kept', () => {
  const out = redact({
    transform: {
      request: {
        headers: {
          remove: ['authorization'],
          set: [
            { name: 'authorization', value: 'Bearer sk-live' },
            { name: 'x-tenant', value: 'acme' },
          ],
          add: [{ name: 'Cookie', value: 'session=1' }],
        },
      },
    },
    headers: [{ name: 'x-api-key', type: 'Exact', value: 'k' }],
  });
  assert.deepEqual(out, {
    transform: {
      request: {
        headers: {
          remove: ['authorization'],
          set: [
            { name: 'authorization', value: REDACTED },
            { name: 'x-tenant', value: 'acme' },
          ],
          add: [{ name: 'Cookie', value: REDACTED }],
        },
      },
    },
    headers: [{ name: 'x-api-key', type: 'Exact', value: REDACTED }],
  });
});
