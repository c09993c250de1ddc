/**
 * Shared by the chart tests: `helm template` of charts/modelgate into plain objects, and the
 * checks of one rendered object against the Kubernetes schemas.
 *
 * Two sources check a built-in object, because neither is complete alone: kubernetes-models
 * (the OpenAPI schemas compiled to validators: types, required fields, enums, formats) does not
 * refuse unknown fields, which the API server drops or (kubectl's strict validation) refuses; the
 * `attributeTypeMap` of @kubernetes/client-node's generated model classes lists every field of
 * every type, so a walk over it finds a misspelt or misplaced key.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { helm } from '../../../scripts/helm.ts';
import { CHART_DIR } from '../../../scripts/render-deploy.ts';

export { CHART_DIR, helm };
export const ALL_OPTIONS = join(CHART_DIR, 'ci', 'all-options-values.yaml');
export const RELEASE = 'modelgate';
export const NAMESPACE = 'modelgate';

/** `helm template` of the chart (release and namespace `modelgate`), with more helm arguments. */
export function renderText(args: readonly string[] = []): string {
  return helm(['template', RELEASE, CHART_DIR, '--namespace', NAMESPACE, ...args]);
}

/** The rendered objects. */
export function render(args: readonly string[] = []): K8sObject[] {
  return parseStream(renderText(args));
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // Loose on purpose: each test narrows what it reads.
  [key: string]: unknown;
}

/** Every document of a YAML stream, as objects; empty documents (comments only) are left out. */
export function parseStream(text: string): K8sObject[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new Error('not a YAML stream');
  const out: K8sObject[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new Error(String(d.errors[0]));
    const o = d.toJS() as K8sObject | null;
    if (o !== null) out.push(o);
  }
  return out;
}

/** `kind/namespace/name`, for messages. */
export const idOf = (o: K8sObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function byKind<T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name)) as T[];
}

export function one<T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T {
  const found = byKind<T>(objects, kind, name);
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

// --- built-in objects against the Kubernetes schemas ----------------------------------------------

type ModelClass = new (data: unknown) => { validate(): void };

/** The kubernetes-models class of an apiVersion and kind (`apps/v1` Deployment). */
async function modelClass(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  try {
    // `kubernetes-models/apps/v1/Deployment`; the core group is `kubernetes-models/v1/Service`.
    const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, ModelClass>;
    return mod[kind];
  } catch {
    return undefined;
  }
}

interface Attribute {
  baseName: string;
  type: string;
}
const models = k8s as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>;

/** The client-node model class name of a kind: `V1Deployment`, `V2HorizontalPodAutoscaler`. */
function clientModelName(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').at(-1)!;
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

/** Paths of fields that `type` does not declare, at any depth. */
function unknownFields(type: string, value: unknown, path: string): string[] {
  if (value === null || value === undefined || typeof value !== 'object') return [];
  const list = /^Array<(.+)>$/.exec(type);
  if (list) {
    return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(list[1]!, v, `${path}[${i}]`)) : [];
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    return Object.entries(value).flatMap(([k, v]) => unknownFields(map[1]!, v, `${path}.${k}`));
  }
  const attributes = models[type]?.attributeTypeMap;
  if (!attributes) return []; // string, number, IntOrString, any...
  const declared = new Map(attributes.map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const t = declared.get(k);
    return t === undefined ? [`${path}.${k}`] : unknownFields(t, v, `${path}.${k}`);
  });
}

/**
 * Problems of one built-in object: the kubernetes-models validator's message, and every field the
 * schema does not declare. Throws for a kind neither library knows (a test must handle it).
 */
export async function kubernetesProblems(o: K8sObject): Promise<string[]> {
  const Model = await modelClass(o.apiVersion, o.kind);
  const modelName = clientModelName(o.apiVersion, o.kind);
  if (!Model || !models[modelName]?.attributeTypeMap)
    throw new Error(`no Kubernetes schema for ${o.apiVersion} ${o.kind}`);
  const problems: string[] = [];
  try {
    new Model(structuredClone(o)).validate();
  } catch (e) {
    problems.push((e as Error).message);
  }
  for (const p of unknownFields(modelName, o, ''))
    problems.push(`${p.slice(1)}: not in the ${o.kind} schema`);
  return problems;
}

// --- pods --------------------------------------------------------------------------------------------

export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

export interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  initContainers?: Container[];
  volumes?: {
    name: string;
    secret?: { secretName: string; optional?: boolean; items?: { key: string; path: string }[] };
    configMap?: { name: string };
    emptyDir?: { sizeLimit?: string };
  }[];
}

export interface Deployment extends K8sObject {
  spec: {
    replicas?: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
  };
}

/** The container of a component's Deployment (`controller`, `proxy`). */
export function containerOf(
  objects: K8sObject[],
  component: string,
): { deployment: Deployment; c: Container } {
  const deployment = byKind<Deployment>(objects, 'Deployment').find(
    (d) => d.metadata.labels?.['app.kubernetes.io/component'] === component,
  );
  if (!deployment) throw new Error(`no ${component} Deployment`);
  const c = deployment.spec.template.spec.containers.find((x) => x.name === component);
  if (!c) throw new Error(`no ${component} container`);
  return { deployment, c };
}

/** The value following `flag` in args (the last one when repeated); undefined when absent. */
export function flag(args: readonly string[], name: string): string | undefined {
  const i = args.lastIndexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Every value of a repeatable flag, in order. */
export function flags(args: readonly string[], name: string): string[] {
  return args.flatMap((a, i) => (a === name && args[i + 1] !== undefined ? [args[i + 1]!] : []));
}

// --- NOTES.txt ---------------------------------------------------------------------------------------

/**
 * The chart's NOTES.txt as `helm install` prints it. `helm template` leaves NOTES out, so a copy of
 * the chart holds it as a named template that a ConfigMap includes.
 */
export function renderNotes(args: readonly string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), 'modelgate-notes-'));
  try {
    const chart = join(dir, 'modelgate');
    cpSync(CHART_DIR, chart, { recursive: true });
    const notes = readFileSync(join(chart, 'templates', 'NOTES.txt'), 'utf8');
    rmSync(join(chart, 'templates', 'NOTES.txt'));
    writeFileSync(
      join(chart, 'templates', '_notes.tpl'),
      `{{- define "test.notes" -}}\n${notes}{{- end -}}\n`,
    );
    writeFileSync(
      join(chart, 'templates', 'notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "test.notes" . | quote }}\n',
    );
    const text = helm([
      'template',
      RELEASE,
      chart,
      '--namespace',
      NAMESPACE,
      '--show-only',
      'templates/notes.yaml',
      ...args,
    ]);
    return (parseStream(text)[0] as K8sObject & { data: { notes: string } }).data.notes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
