import { compareText } from './precedence.ts';

interface Ordered {
  key: string;
  created: string | undefined;
}

/**
 * Which of two competing resources wins: the older one when both have a creation time (files do
 * not), then namespace/name. The Gateway API rule for policy and route conflicts.
 */
export function compareAge(a: Ordered, b: Ordered): number {
  if (a.created !== undefined && b.created !== undefined) {
    const d = Date.parse(a.created) - Date.parse(b.created);
    if (d !== 0 && !Number.isNaN(d)) return d;
  }
  return compareText(a.key, b.key);
}
