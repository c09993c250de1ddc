/**
 * The field reference in docs/reference/: one Markdown page per kind, rendered from the very schema
 * objects the CRDs are built from (`buildOpenApiSchema`), so the reference cannot say something the
 * API server does not enforce. GatewayConfig is a file, not a CRD: its page comes from its TypeBox
 * schema. `npm run gen:reference` writes the pages; test/unit/api/reference-doc.test.ts fails when
 * they are stale.
 *
 * Layout of a page: the top-level fields, then a section per top-level object (`spec`, `status`),
 * holding one table per object level. Every row names its field by the full path
 * (`spec.rules[].backends[].weight`), so a path from an error message or a manifest greps straight
 * to its row; the CEL rules follow the table of the object they are attached to.
 */
import { GatewayConfigSchema } from '../config/gateway-config.ts';
import {
  buildOpenApiSchema,
  CATEGORIES,
  crdFileName,
  crdName,
  type JsonSchema,
  withNestedDefaults,
} from './crd.ts';
import { API_VERSION, type PrinterColumn, RESOURCES, type ResourceDefinition } from './resources.ts';
import { describeAjvError } from './validate.ts';

// ---------------------------------------------------------------------------------------------
// The model: what the pages say, before it is Markdown.

/** One `x-kubernetes-validations` rule, where it sits and what it reports. */
export interface RuleDoc {
  /** Path of the node the rule is attached to: `self` in the rule. */
  on: string;
  /** Path named in the error: `on` plus the rule's fieldPath, if it has one. */
  reportedAt: string;
  message: string;
  rule: string;
}

export interface FieldDoc {
  /** Full path, `.` into objects, `[]` into list items, `{}` into map values. */
  path: string;
  /** Markdown: `integer`, `list of string, each one of `a`, `b``, ... */
  type: string;
  /** Must be given whenever its parent is; a field with a default never must. */
  required: boolean;
  /** Markdown code span, or undefined. */
  default?: string;
  /** Markdown fragments, one per constraint. */
  constraints: string[];
  /** Markdown, from the schema's descriptions. */
  description: string;
  /** Path of the object documenting this field's own fields, when it has some. */
  details?: string;
}

/** One object level of a schema: its fields and the rules attached to them. */
export interface ObjectDoc {
  /** `` for the root, `spec`, `spec.rules[]`, ... */
  path: string;
  description: string;
  fields: FieldDoc[];
  rules: RuleDoc[];
}

/**
 * The schema keywords this renderer documents. Anything else makes it throw: a keyword added to a
 * schema must not silently vanish from the reference.
 */
const DOCUMENTED = new Set([
  'description',
  'type',
  'format',
  'enum',
  'const',
  'default',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minItems',
  'maxItems',
  'minProperties',
  'maxProperties',
  'nullable',
  'required',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-validations',
  'items',
  'properties',
  'additionalProperties',
]);

function checkKeywords(node: JsonSchema, path: string): void {
  for (const key of Object.keys(node)) {
    if (!DOCUMENTED.has(key)) throw new Error(`${path || '<root>'}: the reference cannot document ${key}`);
  }
}

function propertiesOf(node: JsonSchema): [string, JsonSchema][] {
  return Object.entries((node.properties ?? {}) as Record<string, JsonSchema>);
}

/** An object with named fields gets a table of its own; anything else is one row. */
function hasFields(node: JsonSchema): boolean {
  return propertiesOf(node).length > 0;
}

/** The schema of a list's items or a map's values, with the path suffix that reaches it. */
function elementOf(node: JsonSchema): { schema: JsonSchema; suffix: '[]' | '{}'; word: string } | undefined {
  if (node.type === 'array' && typeof node.items === 'object' && node.items !== null) {
    return { schema: node.items as JsonSchema, suffix: '[]', word: 'item' };
  }
  const ap = node.additionalProperties;
  if (typeof ap === 'object' && ap !== null && !hasFields(node)) {
    return { schema: ap as JsonSchema, suffix: '{}', word: 'value' };
  }
  return undefined;
}

function joinPath(parent: string, name: string): string {
  return parent ? `${parent}.${name}` : name;
}

/** Every object level of a schema, parents before children, fields in schema order. */
export function collectObjects(schema: JsonSchema, path = ''): ObjectDoc[] {
  const out: ObjectDoc[] = [];
  visitObject(schema, path, '', out);
  return out;
}

function visitObject(node: JsonSchema, path: string, fallback: string, out: ObjectDoc[]): void {
  checkKeywords(node, path);
  const doc: ObjectDoc = {
    path,
    description: prose(typeof node.description === 'string' ? node.description : fallback),
    fields: [],
    rules: rulesOf(node, path),
  };
  out.push(doc);
  const required = new Set((node.required ?? []) as string[]);
  const nested: { schema: JsonSchema; path: string; fallback: string }[] = [];
  for (const [name, child] of propertiesOf(node)) {
    const field = describeField(child, joinPath(path, name), required.has(name));
    doc.fields.push(field.doc);
    doc.rules.push(...field.rules);
    if (field.object) nested.push(field.object);
  }
  // Depth first, so each object's table is followed by those of its own objects.
  for (const n of nested) visitObject(n.schema, n.path, n.fallback, out);
}

/**
 * One row. Lists and maps of scalars are folded into the row (their item constraints and rules
 * included): `spec.hostnames` reads better as "list of string, each at most 253 characters" than
 * as a second row `spec.hostnames[]`. A list or map of objects links to the object's own table.
 */
function describeField(
  node: JsonSchema,
  path: string,
  requiredInParent: boolean,
): {
  doc: FieldDoc;
  rules: RuleDoc[];
  object?: { schema: JsonSchema; path: string; fallback: string };
} {
  checkKeywords(node, path);
  const own = typeof node.description === 'string' ? node.description : '';
  const constraints = constraintsOf(node);
  // An object with fields lists its own rules under its own table.
  const rules = hasFields(node) ? [] : rulesOf(node, path);
  let description = prose(own);
  let inner = node;
  let innerPath = path;
  let object: { schema: JsonSchema; path: string; fallback: string } | undefined;
  for (let el = elementOf(inner); el; el = elementOf(inner)) {
    inner = el.schema;
    innerPath += el.suffix;
    checkKeywords(inner, innerPath);
    if (hasFields(inner)) {
      object = { schema: inner, path: innerPath, fallback: own };
      break;
    }
    const c = constraintsOf(inner);
    if (c.length > 0) constraints.push(`each ${el.word}: ${c.join(', ')}`);
    rules.push(...rulesOf(inner, innerPath));
    if (typeof inner.description === 'string') {
      description = joinSentences(description, `Each ${el.word}: ${prose(inner.description)}`);
    }
  }
  if (!object && hasFields(node)) object = { schema: node, path, fallback: '' };
  const values = valuesOf(inner);
  let type = typeText(node);
  if (values.length === 1) type += `, ${inner === node ? 'always' : 'each always'} ${values[0]}`;
  else if (values.length > 1) type += `, ${inner === node ? 'one of' : 'each one of'} ${values.join(', ')}`;
  const doc: FieldDoc = {
    path,
    type,
    required: requiredInParent && node.default === undefined,
    constraints,
    description,
  };
  // As applied: Ajv (GatewayConfig) and the API server fill a default's own fields' defaults too.
  // The CRD schemas carry them filled already; GatewayConfig's TypeBox schema does not.
  if (node.default !== undefined) doc.default = codeSpan(formatValue(withNestedDefaults(node, node.default)));
  if (object) doc.details = object.path;
  return { doc, rules, ...(object ? { object } : {}) };
}

function joinSentences(a: string, b: string): string {
  return a ? `${a} ${b}` : b;
}

function typeText(node: JsonSchema): string {
  if (node['x-kubernetes-int-or-string'] === true) return 'integer or string';
  const el = elementOf(node);
  if (node.type === 'array') return el ? `list of ${typeText(el.schema)}` : 'list';
  if (el) return `map of string to ${typeText(el.schema)}`;
  const free = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (node.type === 'object' || hasFields(node))
    return free && !hasFields(node) ? 'object (any fields)' : 'object';
  if (node.type === undefined) return free ? 'any JSON value' : 'any';
  return typeof node.format === 'string' ? `${String(node.type)} (${node.format})` : String(node.type);
}

/** Allowed values (`enum`, or TypeBox's `const` for literals) as code spans. */
function valuesOf(node: JsonSchema): string[] {
  const values = Array.isArray(node.enum) ? node.enum : node.const !== undefined ? [node.const] : [];
  return values.map((v) => codeSpan(formatValue(v)));
}

/**
 * A `pattern`, with the words `modelgate validate` uses for the well-known ones ("a duration such
 * as 500ms, ..."): the same phrase in the reference and in the error, and a reader need not decode
 * the regular expression that appears on dozens of rows.
 */
function patternConstraint(pattern: string): string {
  const { message } = describeAjvError('', {
    keyword: 'pattern',
    instancePath: '',
    schemaPath: '',
    params: { pattern },
  });
  const words = message.startsWith('must be ') ? `${message.slice('must be '.length)}: ` : '';
  return `${words}pattern ${codeSpan(pattern)}`;
}

function range(min: unknown, max: unknown, exclusiveMin: unknown, exclusiveMax: unknown): string[] {
  if (min !== undefined && max !== undefined) return [`${min} to ${max}`];
  const out: string[] = [];
  if (min !== undefined) out.push(`at least ${min}`);
  if (exclusiveMin !== undefined) out.push(`greater than ${exclusiveMin}`);
  if (max !== undefined) out.push(`at most ${max}`);
  if (exclusiveMax !== undefined) out.push(`less than ${exclusiveMax}`);
  return out;
}

function counted(min: unknown, max: unknown, noun: string, nouns: string): string[] {
  const plural = (n: unknown) => (n === 1 ? noun : nouns);
  if (min !== undefined && max !== undefined) {
    return [min === max ? `exactly ${min} ${plural(min)}` : `${min} to ${max} ${plural(max)}`];
  }
  if (max !== undefined) return [`at most ${max} ${plural(max)}`];
  if (min !== undefined) return [`at least ${min} ${plural(min)}`];
  return [];
}

/** The constraints of one node (not of its items or fields), as Markdown fragments. */
export function constraintsOf(node: JsonSchema): string[] {
  const out = [
    ...counted(node.minLength, node.maxLength, 'character', 'characters'),
    ...(typeof node.pattern === 'string' ? [patternConstraint(node.pattern)] : []),
    ...range(node.minimum, node.maximum, node.exclusiveMinimum, node.exclusiveMaximum),
    ...(node.multipleOf !== undefined ? [`multiple of ${node.multipleOf}`] : []),
    ...counted(node.minItems, node.maxItems, 'item', 'items'),
    ...counted(node.minProperties, node.maxProperties, 'entry', 'entries'),
  ];
  const listType = node['x-kubernetes-list-type'];
  if (listType === 'set') out.push('no duplicates');
  if (listType === 'map') {
    const keys = (node['x-kubernetes-list-map-keys'] ?? []) as string[];
    out.push(`no two items with the same ${keys.map(codeSpan).join(' and ')}`);
  }
  if (node.nullable === true) out.push('may be null');
  if (node['x-kubernetes-embedded-resource'] === true) out.push('a Kubernetes object');
  return out;
}

function rulesOf(node: JsonSchema, path: string): RuleDoc[] {
  const rules = (node['x-kubernetes-validations'] ?? []) as {
    rule: string;
    message?: string;
    fieldPath?: string;
  }[];
  return rules.map((r) => ({
    on: path,
    reportedAt: r.fieldPath ? `${path}${r.fieldPath}` : path,
    message: r.message ?? `failed rule: ${r.rule}`,
    rule: r.rule,
  }));
}

// ---------------------------------------------------------------------------------------------
// Markdown.

/** YAML 1.1 reads these bare words as booleans or null, so a default equal to one is quoted. */
const YAML_WORDS = /^(true|false|yes|no|y|n|on|off|null|~)$/i;

/** A value as a user writes it in YAML flow style: `LeastRequest`, `[connect-failure, reset]`, `{}`. */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') {
    const bare = /^[A-Za-z0-9./][-A-Za-z0-9._/:]*$/.test(value);
    return bare && !YAML_WORDS.test(value) && Number.isNaN(Number(value)) ? value : JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(formatValue).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${formatValue(v)}`)
      .join(', ')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A code span that survives any content: a fence longer than any backtick run inside (the HTTP
 * token pattern contains one), padded when the content starts or ends with a backtick or space.
 * A `\|` cannot be written inside a table cell's code span portably (renderers disagree on
 * `\\|`), so such text becomes an HTML <code> with the pipe as an entity.
 */
export function codeSpan(text: string): string {
  if (text.includes('\\|')) {
    const html = text
      .replace(/&/g, '&amp;')
      .replace(/</g, '&lt;')
      .replace(/>/g, '&gt;')
      .replace(/\|/g, '&#124;');
    return `<code>${html}</code>`;
  }
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = longest > 0 || /^ | $/.test(text) ? ' ' : '';
  return `${fence}${pad}${text}${pad}${fence}`;
}

/**
 * Schema prose as Markdown: the descriptions are written with Markdown code spans, but a `<` outside
 * them (`<endpoint>/v1/traces`) would start an HTML tag and vanish, and a line break would end a
 * table row.
 */
export function prose(text: string): string {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const run = /^`+/.exec(text.slice(i));
    if (run) {
      const close = findClosingFence(text, i + run[0].length, run[0].length);
      const end = close < 0 ? i + run[0].length : close + run[0].length;
      out.push(text.slice(i, end)); // a code span, or a lone backtick run: verbatim
      i = end;
      continue;
    }
    const next = text.indexOf('`', i);
    const plain = text.slice(i, next < 0 ? text.length : next);
    out.push(
      plain
        .replace(/&(?=[#A-Za-z0-9]+;)/g, '&amp;')
        .replace(/</g, '&lt;')
        .replace(/>/g, '&gt;'),
    );
    i = next < 0 ? text.length : next;
  }
  return out.join('').replace(/\s*\n\s*/g, ' ');
}

/** Index of the backtick run of exactly `length` that closes a code span, or -1. */
function findClosingFence(text: string, from: number, length: number): number {
  const re = /`+/g;
  re.lastIndex = from;
  for (let m = re.exec(text); m; m = re.exec(text)) if (m[0].length === length) return m.index;
  return -1;
}

/** A table cell: a `|` would end the cell, even inside a code span, unless escaped. */
export function cell(markdown: string): string {
  return markdown.replace(/\|/g, '\\|');
}

/** GitHub's heading anchors: lowercase, punctuation dropped, spaces to `-`, repeats numbered. */
export class Slugger {
  private readonly seen = new Map<string, number>();

  slug(headingText: string): string {
    const base = headingText
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\-_ ]/gu, '')
      .replace(/ /g, '-');
    const n = this.seen.get(base);
    this.seen.set(base, (n ?? 0) + 1);
    return n === undefined ? base : `${base}-${n}`;
  }
}

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function fieldTable(fields: FieldDoc[], anchors: Map<string, string>): string {
  const rows = fields.map((f) => {
    const anchor = f.details !== undefined ? anchors.get(f.details) : undefined;
    return [
      codeSpan(f.path),
      anchor ? `[${f.type}](#${anchor})` : f.type,
      f.required ? 'yes' : 'no',
      f.default ?? '',
      f.description,
      f.constraints.join('<br>'),
    ];
  });
  return table(['Field', 'Type', 'Required', 'Default', 'Description', 'Constraints'], rows);
}

function ruleList(rules: RuleDoc[]): string {
  const items = rules.map((r) => {
    const where =
      r.reportedAt === r.on
        ? `on ${codeSpan(r.on)}`
        : `on ${codeSpan(r.on)}, reported at ${codeSpan(r.reportedAt)}`;
    return `- **${prose(r.message).replace(/\*/g, '\\*')}** (${where}): ${codeSpan(r.rule)}`;
  });
  return ['Validation rules (CEL):', '', ...items].join('\n');
}

function objectBody(o: ObjectDoc, anchors: Map<string, string>): string {
  const parts = [o.description, fieldTable(o.fields, anchors)];
  if (o.rules.length > 0) parts.push(ruleList(o.rules));
  return parts.filter((p) => p !== '').join('\n\n');
}

function isWithin(path: string, root: string): boolean {
  return (
    path === root || path.startsWith(`${root}.`) || path.startsWith(`${root}[`) || path.startsWith(`${root}{`)
  );
}

function printerColumnTable(plural: string, columns: readonly PrinterColumn[]): string {
  const described = columns.some((c) => c.description !== undefined);
  const rows = columns.map((c) => [
    (c.priority ?? 0) > 0 ? `${c.name} (wide)` : c.name,
    c.type,
    codeSpan(c.jsonPath),
    ...(described ? [prose(c.description ?? '')] : []),
  ]);
  return [
    `${codeSpan(`kubectl get ${plural}`)} shows these columns${columns.some((c) => (c.priority ?? 0) > 0) ? '; those marked wide only with `-o wide`' : ''}:`,
    '',
    table(['Column', 'Type', 'JSONPath', ...(described ? ['Description'] : [])], rows),
  ].join('\n');
}

export interface PageInput {
  /** The page title, the kind. */
  title: string;
  /** The source the page is generated from, named in the DO NOT EDIT header. */
  source: string;
  /** Markdown paragraphs and lists between the title and the fields. */
  intro: string[];
  schema: JsonSchema;
  printerColumns?: { plural: string; columns: readonly PrinterColumn[] };
}

export const GENERATED_HEADER = (source: string) =>
  `<!-- Code generated by \`npm run gen:reference\` (scripts/gen-reference.ts) from ${source}. DO NOT EDIT. -->`;

/**
 * One page: top-level fields, then a section per top-level field that has fields of its own, each
 * object level under it as a subsection, then the printer columns.
 */
export function renderSchemaPage(input: PageInput): { text: string; objects: ObjectDoc[] } {
  const objects = collectObjects(input.schema);
  const root = objects[0]!;
  const sections = root.fields.filter((f) => f.details !== undefined).map((f) => f.details!);
  // Anchors first, in page order, so a row can link to a table further down.
  const slugger = new Slugger();
  slugger.slug(input.title);
  const anchors = new Map<string, string>([['', slugger.slug('Top-level fields')]]);
  for (const section of sections) {
    for (const o of objects) if (isWithin(o.path, section)) anchors.set(o.path, slugger.slug(o.path));
  }
  const printerAnchor = input.printerColumns ? slugger.slug('Printer columns') : undefined;

  const depth = (o: ObjectDoc) => objects.filter((p) => p !== o && p.path && isWithin(o.path, p.path)).length;
  const contents = [
    `- [Top-level fields](#${anchors.get('')})`,
    ...objects
      .filter((o) => o.path !== '')
      .map((o) => {
        const indent = '  '.repeat(depth(o));
        return `${indent}- [${codeSpan(o.path)}](#${anchors.get(o.path)})`;
      }),
    ...(printerAnchor ? [`- [Printer columns](#${printerAnchor})`] : []),
  ];

  const out = [GENERATED_HEADER(input.source), `# ${input.title}`, ...input.intro, contents.join('\n')];
  out.push('## Top-level fields', fieldTable(root.fields, anchors));
  if (root.rules.length > 0) out.push(ruleList(root.rules));
  for (const section of sections) {
    for (const o of objects.filter((x) => isWithin(x.path, section))) {
      out.push(`${o.path === section ? '##' : '###'} ${codeSpan(o.path)}`, objectBody(o, anchors));
    }
  }
  if (input.printerColumns) {
    out.push(
      '## Printer columns',
      printerColumnTable(input.printerColumns.plural, input.printerColumns.columns),
    );
  }
  return { text: `${out.join('\n\n')}\n`, objects };
}

// ---------------------------------------------------------------------------------------------
// The pages of ModelGate's kinds.

export interface ReferencePage {
  /** File name under docs/reference/. */
  file: string;
  kind: string;
  apiVersion: string;
  /** One sentence for the index. */
  summary: string;
  /** Rows documented on the page. */
  fieldCount: number;
  text: string;
}

const READING = 'See [Reading the tables](README.md#reading-the-tables) for what each column means.';

function firstSentence(text: string): string {
  return /^.*?\.(?=\s|$)/.exec(text)?.[0] ?? text;
}

export function crdReferencePage(def: ResourceDefinition): ReferencePage {
  const schema = buildOpenApiSchema(def);
  const description = String(schema.description ?? '');
  const names = [
    `plural ${codeSpan(def.plural)}`,
    `singular ${codeSpan(def.singular)}`,
    ...(def.shortNames.length > 0 ? [`short names ${def.shortNames.map(codeSpan).join(', ')}`] : []),
    `categories ${CATEGORIES.map(codeSpan).join(', ')}`,
  ];
  const { text, objects } = renderSchemaPage({
    title: def.kind,
    source: 'the schemas in src/api/',
    intro: [
      prose(description),
      [
        `- API version: ${codeSpan(API_VERSION)}, kind ${codeSpan(def.kind)}, namespaced`,
        `- Names: ${names.join(', ')}`,
        `- CRD: ${codeSpan(crdName(def))}, in [crds/${crdFileName(def)}](../../crds/${crdFileName(def)})`,
        '- `status` is a subresource, written by ModelGate',
      ].join('\n'),
      READING,
    ],
    schema,
    printerColumns: { plural: def.plural, columns: def.printerColumns },
  });
  return {
    file: `${def.singular}.md`,
    kind: def.kind,
    apiVersion: API_VERSION,
    summary: prose(firstSentence(description)),
    fieldCount: objects.reduce((n, o) => n + o.fields.length, 0),
    text,
  };
}

export function gatewayConfigReferencePage(): ReferencePage {
  // A JSON round trip drops TypeBox's symbol keys, as toStructuralSchema does for the CRDs.
  const schema = JSON.parse(JSON.stringify(GatewayConfigSchema)) as JsonSchema;
  const summary =
    'The configuration file of `modelgate proxy` and `modelgate standalone`: listeners, TLS files, trusted proxies, tracing, the response cache budget, the state directory.';
  const { text, objects } = renderSchemaPage({
    title: 'GatewayConfig',
    source: 'GatewayConfigSchema in src/config/gateway-config.ts',
    intro: [
      typeof schema.description === 'string' ? prose(schema.description) : summary,
      [
        `- Given with ${codeSpan('--config FILE')} (YAML or JSON); command-line flags win over it`,
        '- Not a Kubernetes resource: no CRD, no `metadata`, no `status`',
        '- Besides this schema, `parseGatewayConfig` in [src/config/gateway-config.ts](../../src/config/gateway-config.ts) checks what a schema cannot express, such as unique listener names and valid CIDRs',
      ].join('\n'),
      READING,
    ],
    schema,
  });
  return {
    file: 'gatewayconfig.md',
    kind: 'GatewayConfig',
    apiVersion: String((schema.properties as Record<string, JsonSchema>).apiVersion?.const ?? API_VERSION),
    summary,
    fieldCount: objects.reduce((n, o) => n + o.fields.length, 0),
    text,
  };
}

export function renderReferenceIndex(pages: readonly ReferencePage[]): string {
  const rows = pages.map((p) => [
    `[${p.kind}](${p.file})`,
    codeSpan(p.apiVersion),
    String(p.fieldCount),
    p.summary,
  ]);
  return `${[
    GENERATED_HEADER('the schemas in src/api/ and src/config/gateway-config.ts'),
    '# Resource reference',
    "Every field of ModelGate's custom resources and of the proxy's GatewayConfig file, generated from the schemas the CRDs in [crds/](../../crds/) are built from. Run `npm run gen:reference` (or `npm run gen:crds`, which runs it too) after changing a schema.",
    table(['Kind', 'API version', 'Fields', 'What it is'], rows),
    '## Reading the tables',
    [
      '- **Field**: the full path, as written in YAML. `.` goes into an object, `[]` into every item of a list, `{}` into every value of a map: `spec.rules[].backends[].weight` is the `weight` of each backend of each rule. A field whose type links somewhere has a table of its own fields.',
      '- **Type**: `string`, `integer`, `number`, `boolean`, `object`, `list of ...`, `map of string to ...`; `integer or string` accepts either; `any JSON value` and `object (any fields)` are kept as written. Allowed values follow ("one of"), and a format in parentheses (`string (date-time)`).',
      '- **Required**: `yes` when the field must be given whenever the object holding it is. A field with a default is never required: the API server (or, for GatewayConfig, the proxy) fills the default in.',
      '- **Default**: the value used when the field is left out, in YAML flow style. The default of an object shows the defaults of its fields, as they are applied.',
      '- **Constraints**: lengths in characters, numeric ranges (inclusive), list and map sizes, regular expressions the whole value must match, and whether list items must be unique.',
      '- **Validation rules (CEL)**: listed after the table of the object they belong to. The message is the error the API server (and `modelgate validate`) reports; "reported at" is the field the error names when it is not the object itself.',
    ].join('\n'),
  ].join('\n\n')}\n`;
}

/** One page per kind: the custom resources in registry order, then GatewayConfig. */
export function referencePages(): ReferencePage[] {
  return [...RESOURCES.map(crdReferencePage), gatewayConfigReferencePage()];
}

/** Every file of docs/reference/: the pages, then README.md, the index. */
export function referenceFiles(): { file: string; text: string }[] {
  const pages = referencePages();
  return [
    ...pages.map(({ file, text }) => ({ file, text })),
    { file: 'README.md', text: renderReferenceIndex(pages) },
  ];
}
