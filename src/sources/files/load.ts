/**
 * The files source: reads files and folders of manifests the way `kubectl apply -f` (with `-R`)
 * would, and turns them into a ClusterState. It only parses and sorts: custom resources are kept
 * as written because the compiler admits them; built-in kinds get the few shape checks the
 * compiler relies on (it trusts their TypeScript types).
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  type DocumentOptions,
  isMap,
  isSeq,
  LineCounter,
  type Node,
  type ParseOptions,
  parseAllDocuments,
  type SchemaOptions,
  type Tags,
} from 'yaml';
import {
  type ClusterState,
  DEFAULT_NAMESPACE,
  emptyClusterState,
  objectKey,
} from '../../api/cluster-state.ts';
import type { EndpointSlice, Secret, Service } from '../../api/kubernetes-types.ts';
import {
  API_VERSION,
  type CanaryRollout,
  type ModelRoute,
  type RateLimitPolicy,
} from '../../api/resources.ts';

export interface SourceProblem {
  file: string;
  /** 1-based. */
  line?: number;
  /** `Kind/namespace/name` when the problem is about one object. */
  key?: string;
  message: string;
}

/** Where an object was read from: the file and the 1-based line its document (or List item) starts. */
export interface Origin {
  file: string;
  line: number;
}

export interface LoadResult {
  state: ClusterState;
  problems: SourceProblem[];
  /** Keyed by `objectKey(kind, namespace, name)`, in key order. */
  origins: Map<string, Origin>;
}

/** A manifest file's text, before parsing. */
export interface ManifestText {
  file: string;
  text: string;
}

/** What a walk over the input paths found: the manifest files and the folders they live in. */
export interface ManifestTree {
  /** Manifest files in load order: inputs in the order given, each folder walked in sorted order. */
  files: string[];
  /** Every folder walked (the input folders and their non-hidden subfolders). */
  dirs: string[];
  /** Files reached through a symbolic link, with the real path the link points to. */
  links: Map<string, string>;
  problems: SourceProblem[];
}

/** The kinds ModelGate reads, with the one apiVersion each must carry. */
export const ACCEPTED_KINDS: Readonly<Record<string, string>> = {
  ModelRoute: API_VERSION,
  RateLimitPolicy: API_VERSION,
  CanaryRollout: API_VERSION,
  Service: 'v1',
  EndpointSlice: 'discovery.k8s.io/v1',
  Secret: 'v1',
};

const CUSTOM_KINDS = new Set(['ModelRoute', 'RateLimitPolicy', 'CanaryRollout']);
const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);
const ADDRESS_TYPES = new Set(['IPv4', 'IPv6', 'FQDN']);
/** kubectl flattens nested Lists too; this only stops a pathological file from recursing forever. */
const MAX_LIST_DEPTH = 16;

/** Reads every manifest under `paths` and builds the ClusterState. Never throws for bad input. */
export async function loadFiles(paths: string[]): Promise<LoadResult> {
  return (await loadFilesWithDigest(paths)).result;
}

/**
 * `loadFiles` plus a digest of everything read (which files, their bytes, which inputs were
 * missing). The result is a pure function of that, so equal digests mean equal results: the
 * watcher uses this to skip reloads that changed nothing.
 */
export async function loadFilesWithDigest(paths: string[]): Promise<{ result: LoadResult; digest: string }> {
  const tree = await walkManifests(paths);
  const hash = createHash('sha256');
  const texts: ManifestText[] = [];
  const problems = [...tree.problems];
  for (const p of problems) hash.update(`problem\0${p.file}\0${p.message}\0`);
  for (const file of tree.files) {
    try {
      const bytes = await readFile(file);
      hash.update(`file\0${file}\0${bytes.length}\0`).update(bytes);
      texts.push({ file, text: bytes.toString('utf8') });
    } catch (err) {
      // Raced with a delete, or unreadable: report it and load the rest.
      const message = `cannot read file: ${errorMessage(err)}`;
      hash.update(`problem\0${file}\0${message}\0`);
      problems.push({ file, message });
    }
  }
  const result = loadManifests(texts);
  result.problems.unshift(...problems);
  return { result, digest: hash.digest('hex') };
}

/**
 * Expands the input paths as `kubectl apply -R -f` does: a file is read whatever its extension; a
 * folder is walked recursively in sorted order for `.yaml`, `.yml` and `.json` files. Hidden
 * entries are skipped (editor swap files, and the `..data` links of mounted ConfigMaps, whose
 * files are also visible as plain links). Symbolic links to files are followed, links to folders
 * are not (kubectl's walk does not follow them either, and it rules out cycles). A file reached
 * twice is read once, so overlapping inputs do not report every object as a duplicate.
 */
export async function walkManifests(paths: string[]): Promise<ManifestTree> {
  const tree: ManifestTree = { files: [], dirs: [], links: new Map(), problems: [] };
  const seen = new Set<string>();
  const addFile = (file: string) => {
    const abs = path.resolve(file);
    if (seen.has(abs)) return;
    seen.add(abs);
    tree.files.push(file);
  };

  const walk = async (dir: string): Promise<void> => {
    tree.dirs.push(dir);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      tree.problems.push({ file: dir, message: `cannot read directory: ${errorMessage(err)}` });
      return;
    }
    // Code-unit order, not locale order: the same on every machine.
    entries.sort((a, b) => compareStrings(a.name, b.name));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(full);
      } else if (MANIFEST_EXTENSIONS.has(path.extname(entry.name))) {
        if (entry.isFile()) {
          addFile(full);
        } else if (entry.isSymbolicLink()) {
          const target = await resolveFileLink(full);
          if (target !== undefined) {
            tree.links.set(full, target);
            addFile(full);
          }
        }
      }
    }
  };

  for (const input of paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(input)).isDirectory();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      tree.problems.push({
        file: input,
        message: code === 'ENOENT' ? 'no such file or directory' : `cannot read: ${errorMessage(err)}`,
      });
      continue;
    }
    if (isDir) {
      await walk(input);
    } else {
      const target = await realpath(input).catch(() => undefined);
      if (target !== undefined && target !== path.resolve(input)) tree.links.set(input, target);
      addFile(input);
    }
  }
  return tree;
}

/** The real path of a link that ends at a regular file; undefined for dangling links and folders. */
async function resolveFileLink(link: string): Promise<string | undefined> {
  try {
    if (!(await stat(link)).isFile()) return undefined;
    return await realpath(link);
  } catch {
    return undefined;
  }
}

interface Candidate {
  kind: string;
  key: string;
  object: Record<string, unknown>;
  origin: Origin;
}

/** Parses manifest texts (in the order given) into a ClusterState. Pure and synchronous. */
export function loadManifests(texts: ManifestText[]): LoadResult {
  const problems: SourceProblem[] = [];
  const accepted = new Map<string, Candidate>();
  for (const { file, text } of texts) {
    for (const candidate of parseManifest(file, text, problems)) {
      const first = accepted.get(candidate.key);
      if (first) {
        problems.push({
          file,
          line: candidate.origin.line,
          key: candidate.key,
          message: `defined twice: also at ${first.origin.file}:${first.origin.line}, which is the one used`,
        });
        continue;
      }
      accepted.set(candidate.key, candidate);
    }
  }

  // Sorted by key so that what the compiler sees does not depend on file names or order.
  const sorted = [...accepted.values()].sort((a, b) => compareStrings(a.key, b.key));
  const state = emptyClusterState();
  const origins = new Map<string, Origin>();
  for (const c of sorted) {
    origins.set(c.key, c.origin);
    addToState(state, c);
  }
  return { state, problems, origins };
}

function addToState(state: ClusterState, c: Candidate): void {
  // The shape checks in `normalize` make these casts honest for the built-in kinds; custom
  // resources are typed optimistically and admitted by the compiler.
  const obj = c.object as unknown;
  switch (c.kind) {
    case 'ModelRoute':
      state.modelRoutes.push(obj as ModelRoute);
      break;
    case 'RateLimitPolicy':
      state.rateLimitPolicies.push(obj as RateLimitPolicy);
      break;
    case 'CanaryRollout':
      state.canaryRollouts.push(obj as CanaryRollout);
      break;
    case 'Service':
      state.services.push(obj as Service);
      break;
    case 'EndpointSlice':
      state.endpointSlices.push(obj as EndpointSlice);
      break;
    case 'Secret':
      state.secrets.push(obj as Secret);
      break;
  }
}

/**
 * kubectl converts YAML with a YAML 1.1 parser (go-yaml v2 via sigs.k8s.io/yaml), so `yes`, `on`
 * and `NO` are booleans and `0777` is octal there; parsing as YAML 1.2 would accept manifests the
 * cluster reads differently. go-yaml v2 keeps timestamps and base-60 numbers (`1:20`) as strings
 * when decoding into untyped values, so those two 1.1 tags are dropped.
 */
const YAML_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  merge: true,
  prettyErrors: false,
  customTags: (tags: Tags): Tags =>
    tags.filter(
      (t) => typeof t === 'string' || (t.tag !== 'tag:yaml.org,2002:timestamp' && t.format !== 'TIME'),
    ),
};

/** kubectl decodes input that starts with `{` as JSON; YAML 1.2 is a superset of JSON, 1.1 is not quite. */
const JSON_OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.2',
  schema: 'core',
  prettyErrors: false,
};

function parseManifest(file: string, text: string, problems: SourceProblem[]): Candidate[] {
  const lineCounter = new LineCounter();
  const isJson = /^\uFEFF?\s*\{/.test(text);
  const docs = parseAllDocuments(text, { ...(isJson ? JSON_OPTIONS : YAML_OPTIONS), lineCounter });
  const lineOf = (offset: number) => lineCounter.linePos(offset).line;
  const out: Candidate[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      // A broken document is skipped whole; its neighbours still load.
      for (const err of doc.errors) {
        problems.push({ file, line: lineOf(err.pos[0]), message: `YAML syntax error: ${err.message}` });
      }
      continue;
    }
    const contents = doc.contents as Node | null;
    if (contents === null) continue;
    const line = lineOf(contents.range?.[0] ?? 0);
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push({ file, line, message: `cannot read document: ${errorMessage(err)}` });
      continue;
    }
    if (value === null || value === undefined) continue; // a document holding only `~`
    collect(value, contents, { file, line }, 0, lineOf, problems, out);
  }
  return out;
}

/** Sorts one decoded value into candidates, flattening Lists (and typed lists such as ServiceList). */
function collect(
  value: unknown,
  node: Node | undefined,
  origin: Origin,
  depth: number,
  lineOf: (offset: number) => number,
  problems: SourceProblem[],
  out: Candidate[],
): void {
  const { file, line } = origin;
  if (!isPlainObject(value)) {
    problems.push({
      file,
      line,
      message: `expected a Kubernetes object (a mapping with apiVersion, kind and metadata), got ${describe(value)}`,
    });
    return;
  }
  const kind = value.kind;
  if (typeof kind !== 'string' || kind === '') {
    problems.push({ file, line, message: 'object has no kind' });
    return;
  }

  // kubectl treats any object with `items` as a list (unstructured decoding does).
  if (kind === 'List' || (kind.endsWith('List') && Array.isArray(value.items))) {
    const items = value.items ?? [];
    if (!Array.isArray(items)) {
      problems.push({ file, line, message: `${kind}: items must be a list` });
      return;
    }
    if (depth >= MAX_LIST_DEPTH) {
      problems.push({ file, line, message: `${kind}: Lists nested deeper than ${MAX_LIST_DEPTH} levels` });
      return;
    }
    const itemsNode = isMap(node) ? node.get('items', true) : undefined;
    items.forEach((item, i) => {
      const itemNode = isSeq(itemsNode) ? (itemsNode.items[i] as Node | undefined) : undefined;
      const itemLine = itemNode?.range ? lineOf(itemNode.range[0]) : line;
      // The API server leaves kind and apiVersion off the items of typed lists; kubectl restores them.
      if (isPlainObject(item) && kind !== 'List') {
        item.kind ??= kind.slice(0, -'List'.length);
        item.apiVersion ??= value.apiVersion;
      }
      collect(item, itemNode, { file, line: itemLine }, depth + 1, lineOf, problems, out);
    });
    return;
  }

  const meta = value.metadata;
  const name = isPlainObject(meta) ? meta.name : undefined;
  const rawNamespace = isPlainObject(meta) ? meta.namespace : undefined;
  if (typeof name !== 'string' || name === '') {
    problems.push({ file, line, message: `${kind} has no metadata.name` });
    return;
  }
  if (rawNamespace !== undefined && rawNamespace !== null && typeof rawNamespace !== 'string') {
    problems.push({ file, line, message: `${kind} ${name}: metadata.namespace must be a string` });
    return;
  }
  // kubectl fills in the default namespace for an absent or empty one.
  const namespace = rawNamespace || DEFAULT_NAMESPACE;
  const key = objectKey(kind, namespace, name);

  const expected = ACCEPTED_KINDS[kind];
  if (expected === undefined) {
    problems.push({
      file,
      line,
      key,
      message: `unsupported kind ${kind} (apiVersion ${String(value.apiVersion)}); ModelGate reads ${Object.keys(ACCEPTED_KINDS).join(', ')}`,
    });
    return;
  }
  if (value.apiVersion !== expected) {
    problems.push({
      file,
      line,
      key,
      message: `apiVersion must be ${expected} for ${kind}, not ${String(value.apiVersion)}`,
    });
    return;
  }

  const error = normalize(kind, value, meta as Record<string, unknown>, namespace);
  if (error !== undefined) {
    problems.push({ file, line, key, message: error });
    return;
  }
  out.push({ kind, key, object: value, origin });
}

/**
 * Fills in what the API server would and files cannot say; returns a message when a built-in
 * object's shape is one the API server would reject and the compiler cannot read.
 */
function normalize(
  kind: string,
  obj: Record<string, unknown>,
  meta: Record<string, unknown>,
  namespace: string,
): string | undefined {
  meta.namespace = namespace;
  // Files have no creation time; a stale one copied from `kubectl get -o yaml` must not decide
  // which of two conflicting objects wins.
  delete meta.creationTimestamp;
  if (CUSTOM_KINDS.has(kind)) {
    // As if just created, so `observedGeneration` in the statuses the compiler writes means something.
    meta.generation ??= 1;
    return undefined;
  }
  switch (kind) {
    case 'Service':
      if (!isPlainObject(obj.spec)) return 'spec must be a mapping';
      if (obj.spec.ports !== undefined && obj.spec.ports !== null && !Array.isArray(obj.spec.ports)) {
        return 'spec.ports must be a list';
      }
      return undefined;
    case 'EndpointSlice':
      return checkEndpointSlice(obj);
    case 'Secret':
      return foldSecret(obj);
  }
  return undefined;
}

function checkEndpointSlice(obj: Record<string, unknown>): string | undefined {
  // The address type is kept as written, FQDN included: choosing what to dial is the compiler's job.
  if (typeof obj.addressType !== 'string' || !ADDRESS_TYPES.has(obj.addressType)) {
    return 'addressType must be IPv4, IPv6 or FQDN';
  }
  for (const field of ['endpoints', 'ports'] as const) {
    const list = obj[field];
    if (list !== undefined && list !== null && !Array.isArray(list)) return `${field} must be a list`;
  }
  const endpoints = (obj.endpoints ?? []) as unknown[];
  for (const [i, ep] of endpoints.entries()) {
    if (
      !isPlainObject(ep) ||
      !Array.isArray(ep.addresses) ||
      ep.addresses.some((a) => typeof a !== 'string')
    ) {
      return `endpoints[${i}].addresses must be a list of strings`;
    }
  }
  return undefined;
}

/** Standard base64 with padding, as Go's decoder for `[]byte` fields wants it (it skips newlines). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Folds `stringData` into `data` the way the API server does on write: stringData wins. */
function foldSecret(obj: Record<string, unknown>): string | undefined {
  const data: Record<string, string> = {};
  if (obj.data !== undefined && obj.data !== null) {
    if (!isPlainObject(obj.data)) return 'data must be a mapping';
    for (const [k, v] of Object.entries(obj.data)) {
      if (typeof v !== 'string') return `data.${k} must be a base64 string`;
      if (!BASE64.test(v.replace(/[\r\n]/g, ''))) return `data.${k} is not valid base64`;
      data[k] = v;
    }
  }
  if (obj.stringData !== undefined && obj.stringData !== null) {
    if (!isPlainObject(obj.stringData)) return 'stringData must be a mapping';
    for (const [k, v] of Object.entries(obj.stringData)) {
      if (typeof v !== 'string') return `stringData.${k} must be a string`;
      data[k] = Buffer.from(v, 'utf8').toString('base64');
    }
  }
  delete obj.stringData;
  if (obj.data !== undefined || Object.keys(data).length > 0) obj.data = data;
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  return `a ${typeof v}`;
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
