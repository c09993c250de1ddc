/**
 * Path rewrites (Gateway API URLRewrite, and Envoy Gateway's ReplaceRegexMatch), built once per
 * table: the regular expression is compiled here, never per request. They act on the normalised
 * path; the query string is kept as the client sent it.
 *
 * ReplacePrefixMatch follows Gateway API's table: the prefix is matched segment-wise (the router
 * already guaranteed it), trailing slashes of the prefix and the replacement are ignored, and an
 * empty result is `/`: `/foo/bar` with prefix `/foo` becomes `/xyz/bar` for `/xyz` or `/xyz/`,
 * `/bar` for ``; `/foo/` becomes `/xyz/`; `/foo` becomes `/xyz`, or `/` for ``.
 */
import { routeRegExp } from '../../routing-table/route-regex.ts';
import type { CompiledPathRewrite } from '../../routing-table/types.ts';

export type PathRewriter = (path: string) => string;

function rooted(path: string): string {
  return path.charCodeAt(0) === 47 ? path : `/${path}`;
}

export function pathRewriter(r: CompiledPathRewrite): PathRewriter {
  switch (r.type) {
    case 'ReplaceFullPath': {
      const path = r.path;
      return () => path;
    }
    case 'ReplacePrefixMatch': {
      const { prefix, replacement } = r;
      const cut = prefix === '/' ? 0 : prefix.length;
      return (path) => (path.startsWith(prefix) ? rooted(replacement + path.slice(cut)) : path);
    }
    case 'ReplaceRegexMatch': {
      const re = routeRegExp(r.pattern, 'g');
      const substitution = r.substitution;
      return (path) => rooted(path.replace(re, substitution));
    }
  }
}
