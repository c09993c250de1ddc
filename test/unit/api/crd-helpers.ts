/** Shared by the CRD tests: the generated files on disk and a walk over their schemas. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { type Crd, crdFileName, type JsonSchema } from '../../../src/api/crd.ts';
import { RESOURCES, type ResourceDefinition } from '../../../src/api/resources.ts';

export const CRD_DIR = join(import.meta.dirname, '..', '..', '..', 'crds');

export interface GeneratedCrd {
  def: ResourceDefinition;
  file: string;
  /** The file as written, or undefined when it is missing. */
  text: string | undefined;
}

export function generatedCrds(): GeneratedCrd[] {
  return RESOURCES.map((def) => {
    const file = join(CRD_DIR, crdFileName(def));
    return { def, file, text: existsSync(file) ? readFileSync(file, 'utf8') : undefined };
  });
}

/** Parses a CRD file the way kubectl does: YAML 1.1, where a bare `on` is a boolean. */
export function parseCrd(text: string): Crd {
  return parse(text, { version: '1.1' }) as Crd;
}

export interface SchemaNode {
  /** `spec.rules[].backends[].name`; `` for the root. */
  path: string;
  schema: JsonSchema;
  /** Set when the node is the value of an object property. */
  propertyName?: string;
  parent?: SchemaNode;
}

/** Every node of a schema, parents before children. */
export function walkSchema(root: JsonSchema): SchemaNode[] {
  const out: SchemaNode[] = [];
  const visit = (node: SchemaNode) => {
    out.push(node);
    const { schema, path } = node;
    const props = schema.properties as Record<string, JsonSchema> | undefined;
    for (const [name, child] of Object.entries(props ?? {})) {
      visit({ path: path ? `${path}.${name}` : name, schema: child, propertyName: name, parent: node });
    }
    if (schema.items && typeof schema.items === 'object') {
      visit({ path: `${path}[]`, schema: schema.items as JsonSchema, parent: node });
    }
    if (schema.additionalProperties && typeof schema.additionalProperties === 'object') {
      visit({ path: `${path}{}`, schema: schema.additionalProperties as JsonSchema, parent: node });
    }
    for (const key of ['allOf', 'anyOf', 'oneOf'] as const) {
      const list = schema[key];
      if (Array.isArray(list)) {
        list.forEach((s: JsonSchema, i) => {
          visit({ path: `${path}<${key}${i}>`, schema: s, parent: node });
        });
      }
    }
    if (schema.not && typeof schema.not === 'object') {
      visit({ path: `${path}<not>`, schema: schema.not as JsonSchema, parent: node });
    }
  };
  visit({ path: '', schema: root });
  return out;
}

export function openApiSchema(crd: Crd): JsonSchema {
  const version = crd.spec.versions[0];
  if (!version) throw new Error(`${crd.metadata.name} has no versions`);
  return version.schema.openAPIV3Schema;
}
