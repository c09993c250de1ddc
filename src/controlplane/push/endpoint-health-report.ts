/**
 * The part of a proxy's periodic report (POST /v1/report) that lists the endpoints the proxy has
 * taken out of service: failing active health checks (`unhealthy`), ejected by outlier detection
 * (`ejected`), or both. It rides on the counters report so no new timer or request is needed;
 * a controller that predates it ignores the field, and a proxy that predates it sends none
 * (its endpoints' health is then unknown, not assumed good).
 */

export interface DownEndpoint {
  /** `scheme://host:port`, as endpointOrigin() computes it. */
  origin: string;
  unhealthy: boolean;
  ejected: boolean;
}

/** The field name in the report body. */
export const ENDPOINTS_DOWN_FIELD = 'endpointsDown';

export const MAX_DOWN_ENDPOINTS = 10_000;
const MAX_ORIGIN = 300;

/**
 * Reads `endpointsDown` from an untrusted report (parsed JSON): undefined when absent, the list
 * (a fresh copy, unknown fields dropped) when valid, or why it was refused.
 */
export function parseEndpointsDown(report: unknown): DownEndpoint[] | undefined | string {
  if (typeof report !== 'object' || report === null) return undefined;
  const v = (report as Record<string, unknown>)[ENDPOINTS_DOWN_FIELD];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) return `${ENDPOINTS_DOWN_FIELD}: must be an array`;
  if (v.length > MAX_DOWN_ENDPOINTS) {
    return `${ENDPOINTS_DOWN_FIELD}: ${v.length} entries (at most ${MAX_DOWN_ENDPOINTS})`;
  }
  const out: DownEndpoint[] = [];
  for (const [i, e] of v.entries()) {
    const where = `${ENDPOINTS_DOWN_FIELD}[${i}]`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return `${where}: not an object`;
    const { origin, unhealthy, ejected } = e as Record<string, unknown>;
    if (typeof origin !== 'string' || origin.length === 0 || origin.length > MAX_ORIGIN) {
      return `${where}.origin: must be a non-empty string of at most ${MAX_ORIGIN} characters`;
    }
    if (typeof unhealthy !== 'boolean' || typeof ejected !== 'boolean') {
      return `${where}: unhealthy and ejected must be booleans`;
    }
    out.push({ origin, unhealthy, ejected });
  }
  return out;
}
