/**
 * bench/jwt: CPU per JWT verification with the real verifier (src/dataplane/auth/jwt-verifier.ts)
 * and a static key source whose key is already imported. Prints JSON; no thresholds. The filter
 * budget (src/dataplane/filters/filter.ts) is "JWT with a cached key ≤ 15 µs".
 *
 *   miss  every token is new to the verifier (the verified-token cache is empty): header parse,
 *         key lookup (cached CryptoKey), jose compactVerify (WebCrypto), claim checks, identity,
 *         cache insert. Tokens are awaited one at a time.
 *   hit   tokens already verified: the verified-token cache answers synchronously.
 *
 * CPU is process.cpuUsage (all threads: WebCrypto runs verifications on libuv's pool) divided by
 * the verifications done; wall is elapsed time per verification. Each figure is the median of 3
 * runs; a run stops at its count or its time bound, whichever comes first.
 *
 *   node bench/jwt.ts            2,000 tokens per algorithm, 200,000 cache hits per run
 *   node bench/jwt.ts --quick    ≤ 3 s in all (what CI runs)
 */
import { parseArgs } from 'node:util';
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { staticJwks } from '../src/dataplane/auth/jwks-cache.ts';
import { createJwtVerifier } from '../src/dataplane/auth/jwt-verifier.ts';
import type { CompiledJwtProvider } from '../src/routing-table/types.ts';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false } } });
const QUICK = values.quick;
const TOKENS = QUICK ? 150 : 2_000;
const HITS = QUICK ? 50_000 : 200_000;
const RUNS = 3;
/** Per run and phase. */
const TIME_BOUND_MS = QUICK ? 120 : 3_000;
const MINT_BOUND_MS = QUICK ? 350 : 10_000;
const ALGS = ['RS256', 'ES256', 'EdDSA'] as const;
const ISSUER = 'https://idp.example';

function provider(): CompiledJwtProvider {
  return {
    name: 'bench',
    source: { header: 'authorization', bearer: true },
    issuer: ISSUER,
    audiences: ['api'],
    algorithms: [...ALGS],
    clockSkewMs: 30_000,
    requiredClaims: [],
    consumerClaim: 'sub',
    groupsClaim: 'groups',
    scopesClaim: 'scope',
    forwardClaims: [],
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const round = (x: number) => Math.round(x * 100) / 100;
const cpuMicros = (since: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(since);
  return c.user + c.system;
};

async function mintTokens(alg: (typeof ALGS)[number], key: CryptoKey): Promise<string[]> {
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  const deadline = performance.now() + MINT_BOUND_MS;
  for (let i = 0; i < TOKENS && (i < 10 || performance.now() < deadline); i++) {
    tokens.push(
      await new SignJWT({
        sub: `user-${i}`,
        aud: 'api',
        scope: 'chat completions embeddings',
        groups: ['team-a', 'beta'],
        tenant: 'acme',
      })
        .setProtectedHeader({ alg, kid: `${alg}-key` })
        .setIssuer(ISSUER)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .setJti(`${alg}-${i}-${Math.random().toString(36).slice(2)}`)
        .sign(key),
    );
  }
  return tokens;
}

const results: Record<string, unknown> = {};
const started = performance.now();
for (const alg of ALGS) {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  const jwks = staticJwks(JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: `${alg}-key` }] }));
  await jwks.getKey({ alg, kid: `${alg}-key` }); // import the key: "cached key"
  const tokens = await mintTokens(alg, privateKey);

  const miss = { cpu: [] as number[], wall: [] as number[], n: [] as number[] };
  const hit = { cpu: [] as number[], wall: [] as number[], n: [] as number[] };
  for (let run = 0; run < RUNS; run++) {
    const verifier = createJwtVerifier(provider(), jwks, { cacheSize: TOKENS });
    // A few untimed verifications to warm the code paths.
    if (run === 0) for (const t of tokens.slice(0, 5)) await verifier.verify(t);
    const fresh = run === 0 ? tokens.slice(5) : tokens;
    let n = 0;
    const deadline = performance.now() + TIME_BOUND_MS;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    for (const t of fresh) {
      const r = await verifier.verify(t);
      if (!r.ok) throw new Error(`${alg}: ${r.reason}: ${r.message}`);
      n++;
      if ((n & 15) === 0 && performance.now() > deadline) break;
    }
    miss.wall.push(((performance.now() - w0) * 1000) / n);
    miss.cpu.push(cpuMicros(c0) / n);
    miss.n.push(n);

    // Hits: the tokens just verified, round-robin, synchronously.
    const cached = fresh.slice(0, n);
    let h = 0;
    const hitDeadline = performance.now() + TIME_BOUND_MS;
    const c1 = process.cpuUsage();
    const w1 = performance.now();
    while (h < HITS) {
      for (let i = 0; i < 1000 && h < HITS; i++, h++) {
        const r = verifier.verify(cached[h % cached.length]!);
        if (r instanceof Promise || !r.ok)
          throw new Error(`${alg}: a cached token was not a synchronous hit`);
      }
      if (performance.now() > hitDeadline) break;
    }
    hit.wall.push(((performance.now() - w1) * 1000) / h);
    hit.cpu.push(cpuMicros(c1) / h);
    hit.n.push(h);
  }
  results[alg] = {
    missCpuUs: round(median(miss.cpu)),
    missWallUs: round(median(miss.wall)),
    missVerifications: median(miss.n),
    hitCpuUs: round(median(hit.cpu)),
    hitWallUs: round(median(hit.wall)),
    hitVerifications: median(hit.n),
  };
}

console.log(
  JSON.stringify(
    {
      bench: 'jwt',
      node: process.version,
      quick: QUICK,
      runs: RUNS,
      budgetUs: 15,
      results,
      totalMs: Math.round(performance.now() - started),
    },
    null,
    2,
  ),
);
