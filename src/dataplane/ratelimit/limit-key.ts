/**
 * Who a limit counts: the key of a request under one limit, from the parts the policy names
 * (consumer, client IP, a JWT claim, a header, the model, the route). Parts are joined with a
 * separator that cannot occur in them, so `a|b` + `c` never collides with `a` + `b|c`.
 *
 * A part the request does not have (no identity on the route, no such header) is the empty value:
 * such requests share one bucket, which is the safe reading: a client cannot escape a per-header
 * limit by leaving the header out.
 */
import type { CompiledRateLimitPolicy } from '../../routing-table/types.ts';
import type { FilterContext } from '../filters/filter.ts';

type KeyPart = CompiledRateLimitPolicy['limits'][number]['key'][number];

/** Unit separator: never in header values (control character) or in the other parts. */
const SEP = '\u001f';

function claimText(v: unknown): string {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function part(p: KeyPart, ctx: FilterContext): string {
  switch (p.type) {
    case 'Consumer':
      return ctx.identity?.consumer ?? '';
    case 'ClientIP':
      return ctx.clientIp;
    case 'Claim':
      return claimText(ctx.identity?.claims[p.name ?? '']);
    case 'Header': {
      const v = ctx.req.headers[p.name ?? ''];
      return Array.isArray(v) ? v.join(',') : (v ?? '');
    }
    case 'Model':
      return ctx.model ?? '';
    case 'Route':
      return ctx.rule.route;
    default:
      return '';
  }
}

/** A function computing the key of one limit, built once per table. */
export function keyBuilder(parts: readonly KeyPart[]): (ctx: FilterContext) => string {
  if (parts.length === 1) {
    const only = parts[0]!;
    return (ctx) => part(only, ctx);
  }
  return (ctx) => {
    let key = part(parts[0]!, ctx);
    for (let i = 1; i < parts.length; i++) key += SEP + part(parts[i]!, ctx);
    return key;
  };
}
