import { compareCreated, compareText } from './precedence.ts';

interface Ordered {
  key: string;
  created: string | undefined;
}

/**
 * Which of two competing resources wins: the older one (files have no creation time, see
 * compareCreated), then namespace/name. The Gateway API rule for policy and route conflicts.
 */
export function compareAge(a: Ordered, b: Ordered): number {
  return compareCreated(a.created, b.created) || compareText(a.key, b.key);
}
