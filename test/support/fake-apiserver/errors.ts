/**
 * Failures as the real API server reports them: a `meta/v1 Status` body whose `reason` and `code`
 * clients branch on (client-go's `IsConflict`, `IsAlreadyExists`, client-node's `code === 410`).
 */
import { groupResource, type ResourceType } from './resources.ts';

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message: string; field?: string }[];
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: StatusDetails;
  code: number;
}

/** The reason the real server gives for each code when nothing more specific applies. */
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  406: 'NotAcceptable',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function reasonFor(code: number): string {
  return REASONS[code] ?? 'Unknown';
}

export class ApiError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details: StatusDetails | undefined;

  constructor(code: number, reason: string, message: string, details?: StatusDetails) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }

  toStatus(): Status {
    return statusBody(this.code, this.reason, this.message, this.details);
  }
}

export function statusBody(code: number, reason: string, message: string, details?: StatusDetails): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  };
}

const detailsOf = (r: ResourceType, name: string): StatusDetails => ({
  name,
  group: r.group,
  kind: r.plural,
});

export const notFound = (r: ResourceType, name: string) =>
  new ApiError(404, 'NotFound', `${groupResource(r)} "${name}" not found`, detailsOf(r, name));

export const alreadyExists = (r: ResourceType, name: string) =>
  new ApiError(409, 'AlreadyExists', `${groupResource(r)} "${name}" already exists`, detailsOf(r, name));

/** The exact wording client-go users grep logs for. */
export const conflict = (r: ResourceType, name: string) =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${groupResource(r)} "${name}": the object has been modified; ` +
      'please apply your changes to the latest version and try again',
    detailsOf(r, name),
  );

export const invalid = (r: ResourceType, name: string, field: string, message: string) =>
  new ApiError(422, 'Invalid', `${r.kind} "${name}" is invalid: ${field}: ${message}`, {
    ...detailsOf(r, name),
    kind: r.kind,
    causes: [{ reason: 'FieldValueInvalid', message, field }],
  });

export const expired = (message: string) => new ApiError(410, 'Expired', message);

export const badRequest = (message: string) => new ApiError(400, 'BadRequest', message);

export const pathNotFound = () =>
  new ApiError(404, 'NotFound', 'the server could not find the requested resource');
