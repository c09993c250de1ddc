/**
 * The matches of one host (or wildcard, or any host), indexed by path so that a lookup touches only
 * matches whose path can apply: exact paths in a map, prefixes in a map walked from the request's
 * longest segment prefix down to `/`, regular expressions last. Each list is kept in table
 * precedence order, and the walk visits lists in precedence order, so the first full match wins.
 */
import type { PathMatchType } from '../../routing-table/types.ts';
import type { RuntimeMatch } from './conditions.ts';

export class HostBucket<Rule> {
  readonly exact = new Map<string, RuntimeMatch<Rule>[]>();
  readonly prefix = new Map<string, RuntimeMatch<Rule>[]>();
  readonly regex: RuntimeMatch<Rule>[] = [];

  add(type: PathMatchType, value: string, m: RuntimeMatch<Rule>): void {
    if (type === 'RegularExpression') {
      this.regex.push(m);
      return;
    }
    const map = type === 'Exact' ? this.exact : this.prefix;
    const list = map.get(value);
    if (list) list.push(m);
    else map.set(value, [m]);
  }

  /**
   * Calls `visit` on candidate matches in precedence order until it returns a result. Allocates
   * only the prefix substrings it looks up.
   */
  find<T>(path: string, visit: (m: RuntimeMatch<Rule>) => T | undefined): T | undefined {
    const exact = this.exact.get(path);
    if (exact) {
      for (let i = 0; i < exact.length; i++) {
        const r = visit(exact[i]!);
        if (r !== undefined) return r;
      }
    }
    if (this.prefix.size > 0) {
      // Segment prefixes of the path, longest first: /a/b/c, /a/b, /a, /. A trailing slash
      // belongs to the last segment (prefixes are stored without one).
      let end = path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.length - 1 : path.length;
      for (;;) {
        const list = this.prefix.get(end === path.length ? path : end === 0 ? '/' : path.slice(0, end));
        if (list) {
          for (let i = 0; i < list.length; i++) {
            const r = visit(list[i]!);
            if (r !== undefined) return r;
          }
        }
        if (end <= 1) break; // that was `/`
        end = path.lastIndexOf('/', end - 1);
      }
    }
    for (let i = 0; i < this.regex.length; i++) {
      const m = this.regex[i]!;
      if (!m.pathRegex!.test(path)) continue;
      const r = visit(m);
      if (r !== undefined) return r;
    }
    return undefined;
  }
}
