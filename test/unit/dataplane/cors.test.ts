/**
 * CORS per route: origin matching (exact, `*`, `scheme://*.suffix` patterns), preflight answers
 * and refusals, and the headers added to actual cross-origin responses.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, test } from 'node:test';
import { compileCors } from '../../../src/compiler/route-security.ts';
import { CorsPolicy, isPreflight } from '../../../src/dataplane/cors.ts';
import type { CompiledCors } from '../../../src/routing-table/types.ts';

/** A compiled policy: lower-case origins and headers, as the compiler emits them. */
function cors(over: Partial<CompiledCors> = {}): CompiledCors {
  return {
    allowOrigins: ['https://app.example.com'],
    allowMethods: ['GET', 'POST'],
    allowHeaders: ['authorization', 'content-type'],
    exposeHeaders: [],
    allowCredentials: false,
    maxAgeS: 600,
    ...over,
  };
}

function preflightHeaders(origin: string, method = 'POST', headers?: string): IncomingHttpHeaders {
  const h: IncomingHttpHeaders = { origin, 'access-control-request-method': method };
  if (headers !== undefined) h['access-control-request-headers'] = headers;
  return h;
}

describe('isPreflight', () => {
  test('OPTIONS with origin and access-control-request-method', () => {
    assert.equal(isPreflight('OPTIONS', preflightHeaders('https://app.example.com')), true);
  });

  test('another method is not a preflight', () => {
    assert.equal(isPreflight('POST', preflightHeaders('https://app.example.com')), false);
    assert.equal(isPreflight(undefined, preflightHeaders('https://app.example.com')), false);
  });

  test('OPTIONS without origin or without the requested method is not a preflight', () => {
    assert.equal(isPreflight('OPTIONS', { 'access-control-request-method': 'POST' }), false);
    assert.equal(isPreflight('OPTIONS', { origin: 'https://app.example.com' }), false);
    assert.equal(isPreflight('OPTIONS', {}), false);
  });
});

describe('CorsPolicy.allows: exact origins', () => {
  const p = new CorsPolicy(cors({ allowOrigins: ['https://app.example.com', 'http://localhost:3000'] }));

  test('an exact origin matches, case-insensitively', () => {
    assert.equal(p.allows('https://app.example.com'), true);
    assert.equal(p.allows('HTTPS://App.Example.COM'), true);
    assert.equal(p.allows('http://localhost:3000'), true);
  });

  test('anything else does not', () => {
    assert.equal(p.allows('https://other.example.com'), false);
    assert.equal(p.allows('http://app.example.com'), false); // scheme
    assert.equal(p.allows('https://app.example.com:8443'), false); // port
    assert.equal(p.allows('http://localhost:3001'), false);
    assert.equal(p.allows('https://app.example.com.evil.test'), false);
    assert.equal(p.allows('null'), false);
    assert.equal(p.allows(''), false);
  });

  test('mixed-case origins in the spec match once compiled', () => {
    const compiled = compileCors({
      allowOrigins: ['https://App.Example.com'],
      allowMethods: ['GET'],
      allowHeaders: ['X-Custom'],
      exposeHeaders: ['X-Request-Id'],
      allowCredentials: false,
      maxAge: '10m',
    });
    const q = new CorsPolicy(compiled);
    assert.equal(q.allows('https://app.example.com'), true);
    assert.equal(q.allows('https://APP.example.com'), true);
    assert.equal(compiled.maxAgeS, 600);
    const answer = q.preflight(preflightHeaders('https://app.example.com', 'GET', 'x-custom'));
    assert.equal(answer.ok, true);
  });
});

describe('CorsPolicy: any origin (*)', () => {
  test('every origin is allowed', () => {
    const p = new CorsPolicy(cors({ allowOrigins: ['*'] }));
    assert.equal(p.allows('https://anything.test'), true);
    assert.equal(p.allows('null'), true);
  });

  test('without credentials the origin is answered as *', () => {
    const p = new CorsPolicy(cors({ allowOrigins: ['*'] }));
    assert.equal(p.actual('https://anything.test')?.['access-control-allow-origin'], '*');
    const pre = p.preflight(preflightHeaders('https://anything.test'));
    assert.ok(pre.ok);
    assert.equal(pre.headers['access-control-allow-origin'], '*');
  });

  test('with credentials the origin itself is echoed (a browser refuses * with credentials)', () => {
    const p = new CorsPolicy(cors({ allowOrigins: ['*'], allowCredentials: true }));
    const actual = p.actual('https://Anything.test');
    assert.equal(actual?.['access-control-allow-origin'], 'https://Anything.test');
    assert.equal(actual?.['access-control-allow-credentials'], 'true');
    const pre = p.preflight(preflightHeaders('https://anything.test'));
    assert.ok(pre.ok);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://anything.test');
    assert.equal(pre.headers['access-control-allow-credentials'], 'true');
  });

  test('an exact origin list echoes the origin, never *', () => {
    const p = new CorsPolicy(cors());
    assert.equal(
      p.actual('https://app.example.com')?.['access-control-allow-origin'],
      'https://app.example.com',
    );
  });
});

describe('CorsPolicy.allows: wildcard subdomains', () => {
  const p = new CorsPolicy(cors({ allowOrigins: ['https://*.example.com'] }));

  test('one subdomain label matches', () => {
    assert.equal(p.allows('https://a.example.com'), true);
    assert.equal(p.allows('https://App-1.Example.com'), true);
  });

  test('several labels match too', () => {
    assert.equal(p.allows('https://a.b.example.com'), true);
    assert.equal(p.allows('https://x.y.z.example.com'), true);
  });

  test('the apex domain does not match', () => {
    assert.equal(p.allows('https://example.com'), false);
    assert.equal(p.allows('https://.example.com'), false);
  });

  test('a look-alike domain does not match', () => {
    assert.equal(p.allows('https://evil-example.com'), false);
    assert.equal(p.allows('https://evilexample.com'), false);
    assert.equal(p.allows('https://a.evil-example.com'), false);
  });

  test('another scheme does not match', () => {
    assert.equal(p.allows('http://a.example.com'), false);
    assert.equal(p.allows('wss://a.example.com'), false);
  });

  test('the suffix followed by more labels or a port does not match', () => {
    assert.equal(p.allows('https://a.example.com.evil.test'), false);
    assert.equal(p.allows('https://a.example.com:8443'), false);
  });

  test('a leading empty label, a path or a port inside the label does not match', () => {
    assert.equal(p.allows('https://..example.com'), false);
    assert.equal(p.allows('https://evil.test/.example.com'), false);
    assert.equal(p.allows('https://evil.test:1.example.com'), false);
  });

  test('the part the * stands for must be host labels, none empty', () => {
    // The code's comment says "one or more labels, none of them empty", but `a.` (from
    // a..example.com) and `*` are accepted. Browsers never send such origins, so low severity.
    assert.equal(p.allows('https://a..example.com'), false);
    assert.equal(p.allows('https://*.example.com'), false);
  });

  test('the pattern does not allow origins of other domains', () => {
    assert.equal(p.allows('https://app.example.org'), false);
    assert.equal(p.allows('https://example.com.a'), false);
  });

  test('a pattern with a port only matches that port', () => {
    const q = new CorsPolicy(cors({ allowOrigins: ['https://*.example.com:8443'] }));
    assert.equal(q.allows('https://a.example.com:8443'), true);
    assert.equal(q.allows('https://a.example.com'), false);
    assert.equal(q.allows('https://a.example.com:9443'), false);
  });

  test('wildcards and exact origins combine', () => {
    const q = new CorsPolicy(cors({ allowOrigins: ['http://*.dev.test', 'https://example.com'] }));
    assert.equal(q.allows('https://example.com'), true);
    assert.equal(q.allows('http://a.dev.test'), true);
    assert.equal(q.allows('https://a.dev.test'), false);
    assert.equal(q.allows('https://a.example.com'), false);
  });
});

describe('CorsPolicy.preflight', () => {
  test('an allowed preflight gets methods, headers, max-age, vary and the origin', () => {
    const p = new CorsPolicy(cors({ maxAgeS: 3600 }));
    const answer = p.preflight(preflightHeaders('https://app.example.com', 'POST', 'content-type'));
    assert.deepEqual(answer, {
      ok: true,
      headers: {
        'access-control-allow-origin': 'https://app.example.com',
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': '3600',
        vary: 'origin, access-control-request-method, access-control-request-headers',
      },
    });
  });

  test('no allow-credentials header unless credentials are allowed', () => {
    const without = new CorsPolicy(cors()).preflight(preflightHeaders('https://app.example.com'));
    assert.ok(without.ok);
    assert.equal('access-control-allow-credentials' in without.headers, false);
    const withCreds = new CorsPolicy(cors({ allowCredentials: true })).preflight(
      preflightHeaders('https://app.example.com'),
    );
    assert.ok(withCreds.ok);
    assert.equal(withCreds.headers['access-control-allow-credentials'], 'true');
  });

  test('no allow-headers header when no request header is allowed', () => {
    const p = new CorsPolicy(cors({ allowHeaders: [] }));
    const answer = p.preflight(preflightHeaders('https://app.example.com'));
    assert.ok(answer.ok);
    assert.equal('access-control-allow-headers' in answer.headers, false);
  });

  test('max-age 0 is sent as 0', () => {
    const answer = new CorsPolicy(cors({ maxAgeS: 0 })).preflight(
      preflightHeaders('https://app.example.com'),
    );
    assert.ok(answer.ok);
    assert.equal(answer.headers['access-control-max-age'], '0');
  });

  test('a disallowed origin is refused', () => {
    const answer = new CorsPolicy(cors()).preflight(preflightHeaders('https://evil.test'));
    assert.deepEqual(answer, { ok: false, message: 'origin https://evil.test is not allowed' });
  });

  test('a disallowed method is refused', () => {
    const answer = new CorsPolicy(cors()).preflight(preflightHeaders('https://app.example.com', 'DELETE'));
    assert.deepEqual(answer, { ok: false, message: 'method DELETE is not allowed' });
  });

  test('methods are compared exactly (browsers upper-case the standard ones)', () => {
    const answer = new CorsPolicy(cors()).preflight(preflightHeaders('https://app.example.com', 'post'));
    assert.equal(answer.ok, false);
  });

  test('requested headers are matched case-insensitively, in a comma list with spaces', () => {
    const p = new CorsPolicy(cors());
    for (const asked of [
      'Content-Type',
      'authorization,content-type',
      'Authorization, Content-Type',
      '  AUTHORIZATION ,   content-type  ',
      'content-type,,',
      '',
    ]) {
      const answer = p.preflight(preflightHeaders('https://app.example.com', 'POST', asked));
      assert.equal(answer.ok, true, `asked ${JSON.stringify(asked)}`);
    }
  });

  test('a requested header that is not allowed is refused, by its lower-case name', () => {
    const p = new CorsPolicy(cors());
    const answer = p.preflight(preflightHeaders('https://app.example.com', 'POST', 'content-type, X-Secret'));
    assert.deepEqual(answer, { ok: false, message: 'header x-secret is not allowed' });
  });

  test('the origin check comes before the method and header checks', () => {
    const answer = new CorsPolicy(cors()).preflight(
      preflightHeaders('https://evil.test', 'DELETE', 'x-secret'),
    );
    assert.deepEqual(answer, { ok: false, message: 'origin https://evil.test is not allowed' });
  });

  test('a wildcard origin is echoed in the preflight answer', () => {
    const p = new CorsPolicy(cors({ allowOrigins: ['https://*.example.com'] }));
    const answer = p.preflight(preflightHeaders('https://a.b.example.com'));
    assert.ok(answer.ok);
    assert.equal(answer.headers['access-control-allow-origin'], 'https://a.b.example.com');
  });
});

describe('CorsPolicy.actual', () => {
  test('an allowed origin gets allow-origin and vary: origin', () => {
    const p = new CorsPolicy(cors());
    assert.deepEqual(p.actual('https://app.example.com'), {
      'access-control-allow-origin': 'https://app.example.com',
      vary: 'origin',
    });
  });

  test('expose headers and credentials are added when configured', () => {
    const p = new CorsPolicy(
      cors({ exposeHeaders: ['x-request-id', 'x-ratelimit-remaining'], allowCredentials: true }),
    );
    assert.deepEqual(p.actual('https://app.example.com'), {
      'access-control-allow-origin': 'https://app.example.com',
      'access-control-expose-headers': 'x-request-id, x-ratelimit-remaining',
      'access-control-allow-credentials': 'true',
      vary: 'origin',
    });
    assert.equal(p.credentials, true);
  });

  test('preflight-only headers are not on actual responses', () => {
    const actual = new CorsPolicy(cors()).actual('https://app.example.com');
    assert.ok(actual);
    assert.equal('access-control-allow-methods' in actual, false);
    assert.equal('access-control-max-age' in actual, false);
    assert.equal('access-control-allow-headers' in actual, false);
  });

  test('a disallowed origin gets nothing', () => {
    assert.equal(new CorsPolicy(cors()).actual('https://evil.test'), undefined);
  });

  test('every call returns a fresh object', () => {
    const p = new CorsPolicy(cors());
    const a = p.actual('https://app.example.com');
    assert.ok(a);
    a.vary = 'changed';
    assert.equal(p.actual('https://app.example.com')?.vary, 'origin');
  });
});
