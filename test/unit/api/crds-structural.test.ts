/**
 * The generated CRDs must be accepted by the API server: structural schemas
 * (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema),
 * CEL rules whose cost the server can bound (every string and list in spec and status is bounded,
 * so no rule can touch an unbounded one), and descriptions on every property, since the schemas
 * are the reference documentation (`kubectl explain`).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { compileRule, evaluateRules } from '../../../src/api/cel.ts';
import type { Crd, JsonSchema } from '../../../src/api/crd.ts';
import { API_VERSION, GROUP, VERSION } from '../../../src/api/resources.ts';
import { generatedCrds, openApiSchema, parseCrd, type SchemaNode, walkSchema } from './crd-helpers.ts';

const SCALAR_TYPES = new Set(['string', 'integer', 'number', 'boolean']);
const TYPES = new Set([...SCALAR_TYPES, 'object', 'array']);

const ajv = new Ajv({ strict: false, allErrors: true });
ajv.addFormat('date-time', true);

const typeOf = (s: JsonSchema) => s.type as string | undefined;
const isEscapeHatch = (s: JsonSchema) =>
  s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true;
/** Nodes of spec and status: user and controller data, where every rule and bound matters. */
const inSpecOrStatus = (n: SchemaNode) => /^(spec|status)([.[{<]|$)/.test(n.path);
const at = (n: SchemaNode) => n.path || '<root>';

interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: string;
}

/** Resolves a CEL `fieldPath` (`.a.b`) from the node the rule is attached to. */
function resolveFieldPath(schema: JsonSchema, fieldPath: string): JsonSchema | undefined {
  let cur: JsonSchema | undefined = schema;
  for (const part of fieldPath.split('.').slice(1)) {
    cur = (cur?.properties as Record<string, JsonSchema> | undefined)?.[part];
  }
  return cur;
}

/** Walks a printer column jsonPath (`.status.conditions[?(@.type=="X")].status`) through the schema. */
function resolveColumn(root: JsonSchema, jsonPath: string): JsonSchema | 'metadata' | undefined {
  const parts = jsonPath
    .replace(/\[[^\]]*\]/g, '')
    .split('.')
    .slice(1);
  if (parts[0] === 'metadata') return 'metadata';
  let cur: JsonSchema | undefined = root;
  for (const part of parts) {
    while (cur?.type === 'array') cur = cur.items as JsonSchema;
    cur = (cur?.properties as Record<string, JsonSchema> | undefined)?.[part];
  }
  return cur;
}

function check(nodes: SchemaNode[], problem: (n: SchemaNode) => string | undefined): string[] {
  return nodes.flatMap((n) => {
    const p = problem(n);
    return p ? [`${at(n)}: ${p}`] : [];
  });
}

for (const { def, file, text } of generatedCrds()) {
  describe(`${def.kind} CRD (${file})`, () => {
    const load = (): { crd: Crd; nodes: SchemaNode[]; root: JsonSchema } => {
      assert.ok(text !== undefined, `${file} is missing; run \`npm run gen:crds\``);
      const crd = parseCrd(text);
      const root = openApiSchema(crd);
      return { crd, nodes: walkSchema(root), root };
    };

    test('is a namespaced apiextensions.k8s.io/v1 CRD with one served, stored version', () => {
      const { crd } = load();
      assert.equal(crd.apiVersion, 'apiextensions.k8s.io/v1');
      assert.equal(crd.kind, 'CustomResourceDefinition');
      assert.equal(crd.metadata.name, `${def.plural}.${GROUP}`);
      assert.equal(crd.spec.group, GROUP);
      assert.equal(crd.spec.scope, 'Namespaced');
      assert.deepEqual(crd.spec.names, {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: def.shortNames,
        categories: ['modelgate'],
      });
      assert.equal(API_VERSION, `${crd.spec.group}/${VERSION}`);
      assert.equal(crd.spec.versions.length, 1);
      const [v] = crd.spec.versions;
      assert.equal(v?.name, VERSION);
      assert.equal(v?.served, true);
      assert.equal(v?.storage, true);
      assert.deepEqual(v?.subresources, { status: {} });
      assert.deepEqual(v?.additionalPrinterColumns, def.printerColumns);
    });

    test('the root declares apiVersion, kind, metadata (type only), spec and status, and requires spec', () => {
      const { root } = load();
      assert.equal(root.type, 'object');
      assert.deepEqual(root.required, ['spec']);
      const props = root.properties as Record<string, JsonSchema>;
      assert.deepEqual(Object.keys(props), ['apiVersion', 'kind', 'metadata', 'spec', 'status']);
      assert.equal(props.apiVersion?.type, 'string');
      assert.equal(props.kind?.type, 'string');
      // The API server allows at most name and generateName restrictions on metadata.
      const { description: _d, ...metadata } = props.metadata ?? {};
      assert.deepEqual(metadata, { type: 'object' });
      assert.equal(props.spec?.type, 'object');
      assert.equal(props.status?.type, 'object');
    });

    test('every node has a valid type', () => {
      const { nodes } = load();
      const problems = check(nodes, (n) => {
        const t = typeOf(n.schema);
        if (t === undefined) return isEscapeHatch(n.schema) ? undefined : 'no type';
        return TYPES.has(t) ? undefined : `unknown type ${t}`;
      });
      assert.deepEqual(problems, []);
    });

    test('no additionalProperties: false, $ref or type-carrying combinators', () => {
      const { nodes } = load();
      const problems = check(nodes, ({ schema: s, path }) => {
        if (s.additionalProperties === false) return 'additionalProperties: false is forbidden in CRDs';
        if (s.additionalProperties !== undefined && s.properties !== undefined)
          return 'additionalProperties and properties are mutually exclusive';
        if ('$ref' in s) return '$ref is not allowed';
        if (s.uniqueItems === true) return 'uniqueItems: true is forbidden; use x-kubernetes-list-type: set';
        if (/<(allOf|anyOf|oneOf|not)/.test(path)) {
          for (const key of ['type', 'default', 'description', 'nullable', 'additionalProperties']) {
            if (key in s) return `${key} inside a combinator`;
          }
        }
        return undefined;
      });
      assert.deepEqual(problems, []);
    });

    test('every string and list in spec and status is bounded (CEL cost estimation)', () => {
      const { nodes } = load();
      const problems = check(nodes.filter(inSpecOrStatus), ({ schema: s }) => {
        if (s.type === 'string' && typeof s.maxLength !== 'number' && !Array.isArray(s.enum))
          return 'string without maxLength or enum';
        if (s.type === 'array' && typeof s.maxItems !== 'number') return 'list without maxItems';
        if (s.type === 'object' && s.additionalProperties && typeof s.maxProperties !== 'number')
          return 'map without maxProperties';
        return undefined;
      });
      assert.deepEqual(problems, []);
    });

    test('every property, and every list item or map value that is an object, has a description', () => {
      const { nodes } = load();
      const isObjectElement = (n: SchemaNode) => /[\]}]$/.test(n.path) && n.schema.properties !== undefined;
      const problems = check(
        nodes.filter((n) => n.propertyName !== undefined || isObjectElement(n)),
        ({ schema: s }) =>
          typeof s.description === 'string' && s.description.trim() !== '' ? undefined : 'no description',
      );
      assert.deepEqual(problems, []);
    });

    test('list types are consistent: map keys required scalars, set items scalar', () => {
      const { nodes } = load();
      const problems = check(nodes, ({ schema: s }) => {
        const listType = s['x-kubernetes-list-type'];
        const keys = s['x-kubernetes-list-map-keys'] as string[] | undefined;
        if (listType === undefined) return keys ? 'list-map-keys without list-type map' : undefined;
        if (s.type !== 'array') return 'x-kubernetes-list-type on a non-array';
        if (!['atomic', 'set', 'map'].includes(String(listType))) return `unknown list type ${listType}`;
        const items = s.items as JsonSchema;
        if (listType === 'set' && !SCALAR_TYPES.has(String(items.type))) return 'set of non-scalar items';
        if (listType !== 'map') return keys ? 'list-map-keys on a non-map list' : undefined;
        if (items.type !== 'object') return 'map list of non-objects';
        if (!keys || keys.length === 0) return 'map list without x-kubernetes-list-map-keys';
        const required = (items.required as string[] | undefined) ?? [];
        const props = (items.properties ?? {}) as Record<string, JsonSchema>;
        for (const key of keys) {
          const ks = props[key];
          if (!ks) return `map key ${key} is not a property`;
          if (!SCALAR_TYPES.has(String(ks.type))) return `map key ${key} is not a scalar`;
          if (!required.includes(key) && ks.default === undefined)
            return `map key ${key} is neither required nor defaulted`;
        }
        return undefined;
      });
      assert.deepEqual(problems, []);
    });

    test('every CEL rule compiles, has a message and a fieldPath that exists', () => {
      const { nodes } = load();
      let count = 0;
      const problems = nodes.flatMap((n) => {
        const rules = (n.schema['x-kubernetes-validations'] as CelRule[] | undefined) ?? [];
        return rules.flatMap((r) => {
          count++;
          const out: string[] = [];
          try {
            compileRule(r.rule);
          } catch (e) {
            out.push(`${at(n)}: rule ${r.rule} does not compile: ${(e as Error).message}`);
          }
          if (!r.message && !r.messageExpression) out.push(`${at(n)}: rule ${r.rule} has no message`);
          if (r.fieldPath !== undefined && !resolveFieldPath(n.schema, r.fieldPath))
            out.push(`${at(n)}: fieldPath ${r.fieldPath} does not name a property`);
          if (
            r.reason !== undefined &&
            ![
              'FieldValueInvalid',
              'FieldValueForbidden',
              'FieldValueRequired',
              'FieldValueDuplicate',
            ].includes(r.reason)
          )
            out.push(`${at(n)}: unknown reason ${r.reason}`);
          return out;
        });
      });
      assert.deepEqual(problems, []);
      assert.ok(count > 0, 'expected CEL rules in the schema');
    });

    // The API server validates every default as written (no nested defaulting), CEL rules included,
    // and refuses the whole CRD when one fails.
    test('enums match their type and defaults pass their schema and CEL rules', () => {
      const { nodes } = load();
      const problems = check(nodes, ({ schema: s, path }) => {
        const t = typeOf(s);
        if (Array.isArray(s.enum)) {
          for (const v of s.enum) {
            const ok = t === 'integer' ? Number.isInteger(v) : typeof v === t;
            if (!ok) return `enum value ${JSON.stringify(v)} is not a ${t}`;
          }
        }
        if (s.default !== undefined) {
          const validate = ajv.compile(s);
          if (!validate(structuredClone(s.default)))
            return `default ${JSON.stringify(s.default)} is invalid: ${ajv.errorsText(validate.errors)}`;
          const celErrors = evaluateRules(s as TSchema, s.default, `${path}.default`);
          if (celErrors.length > 0)
            return `default ${JSON.stringify(s.default)} breaks CEL rules: ${JSON.stringify(celErrors)}`;
        }
        return undefined;
      });
      assert.deepEqual(problems, []);
    });

    test('patterns are valid and RE2-compatible (no lookaround, no backreferences)', () => {
      const { nodes } = load();
      const problems = check(nodes, ({ schema: s }) => {
        if (s.pattern === undefined) return undefined;
        if (s.type !== 'string') return 'pattern on a non-string';
        const pattern = String(s.pattern);
        try {
          new RegExp(pattern, 'u');
        } catch (e) {
          return `pattern does not compile: ${(e as Error).message}`;
        }
        if (/\(\?<?[=!]|\\[1-9]|\\k</.test(pattern)) return `pattern ${pattern} is not RE2 syntax`;
        return undefined;
      });
      assert.deepEqual(problems, []);
    });

    test('printer columns point at existing fields of a matching type', () => {
      const { crd, root } = load();
      const columns = crd.spec.versions[0]?.additionalPrinterColumns ?? [];
      const problems = columns.flatMap((c) => {
        const target = resolveColumn(root, c.jsonPath);
        if (target === 'metadata') {
          return c.jsonPath === '.metadata.creationTimestamp' && c.type !== 'date'
            ? [`${c.name}: creationTimestamp is a date`]
            : [];
        }
        if (!target) return [`${c.name}: ${c.jsonPath} does not exist in the schema`];
        if (c.type === 'integer' && target.type !== 'integer') return [`${c.name}: not an integer field`];
        if (c.type === 'date' && target.format !== 'date-time') return [`${c.name}: not a date-time field`];
        return [];
      });
      assert.deepEqual(problems, []);
    });
  });
}
