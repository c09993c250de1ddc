/**
 * The resource types the fake API server serves. ModelGate's own kinds come from the registry in
 * `src/api/resources.ts`, so discovery (kinds, short names) cannot drift from the CRDs.
 */
import { GROUP, RESOURCES, VERSION } from '../../../src/api/resources.ts';

export interface ResourceType {
  /** '' for the core group. */
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  /** Has a `/status` subresource: writes to the main resource leave `status` as it was. */
  readonly statusSubresource: boolean;
  /** `metadata.generation` is kept (1 on create, +1 when anything but metadata/status changes). */
  readonly generation: boolean;
  /**
   * A custom resource. The real server treats these differently from built-ins in ways clients
   * notice: PUT requires `metadata.resourceVersion`, and list items keep `apiVersion`/`kind`.
   */
  readonly custom: boolean;
  /** Field selector paths the real server accepts besides metadata.name/namespace. */
  readonly extraFields: readonly string[];
}

export const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] as const;

const builtin = (
  r: Pick<ResourceType, 'group' | 'version' | 'plural' | 'singular' | 'kind' | 'namespaced'> &
    Partial<ResourceType>,
): ResourceType => ({
  shortNames: [],
  statusSubresource: false,
  generation: false,
  custom: false,
  extraFields: [],
  ...r,
});

export const RESOURCE_TYPES: readonly ResourceType[] = [
  builtin({
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    statusSubresource: true,
    extraFields: ['status.phase'],
  }),
  builtin({
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    statusSubresource: true,
  }),
  builtin({
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
    extraFields: ['type'],
  }),
  builtin({
    group: '',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    extraFields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  }),
  // EndpointSlices do carry a generation (the real strategy bumps it on every change).
  builtin({
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    namespaced: true,
    generation: true,
  }),
  builtin({
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    singular: 'lease',
    kind: 'Lease',
    namespaced: true,
  }),
  ...RESOURCES.map(
    (r): ResourceType => ({
      group: GROUP,
      version: VERSION,
      plural: r.plural,
      singular: r.singular,
      kind: r.kind,
      namespaced: true,
      shortNames: r.shortNames,
      statusSubresource: true,
      generation: true,
      custom: true,
      extraFields: [],
    }),
  ),
];

export function apiVersionOf(r: ResourceType): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** `modelroutes.modelgate.dev`, `services`: how the real server names a resource in messages. */
export function groupResource(r: ResourceType): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

export function findByPath(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((r) => r.group === group && r.version === version && r.plural === plural);
}

/** By kind (`ModelRoute`), plural (`modelroutes`) or short name (`mr`), as tests find it handy. */
export function findByName(name: string): ResourceType | undefined {
  const lower = name.toLowerCase();
  return RESOURCE_TYPES.find(
    (r) => r.kind.toLowerCase() === lower || r.plural === lower || r.shortNames.includes(lower),
  );
}

export function findByApiVersionKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((r) => apiVersionOf(r) === apiVersion && r.kind === kind);
}

/** The group/versions served, in the order discovery lists them (core first). */
export function groupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of RESOURCE_TYPES) seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
}
