/**
 * The one configured Ajv instance: all errors at once, schema defaults applied (as the API server
 * applies CRD defaults), and the Kubernetes extension keywords known so strict mode stays on.
 * `x-kubernetes-list-type` is enforced as the API server does: a `set` holds no duplicates and a
 * `map` list no two items with the same keys.
 */
import { Ajv, type SchemaValidateFunction } from 'ajv';

export const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTypes: false });
for (const keyword of [
  'x-kubernetes-validations',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
]) {
  ajv.addKeyword(keyword);
}
ajv.addFormat('date-time', true);

function firstDuplicate(data: unknown[], identity: (item: unknown) => string): number {
  const seen = new Set<string>();
  for (let i = 0; i < data.length; i++) {
    const id = identity(data[i]);
    if (seen.has(id)) return i;
    seen.add(id);
  }
  return -1;
}

const validateListType: SchemaValidateFunction = (listType: string, data: unknown[], parentSchema) => {
  let dup = -1;
  if (listType === 'set') dup = firstDuplicate(data, (item) => JSON.stringify(item));
  if (listType === 'map') {
    const keys = (parentSchema?.['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
    dup = firstDuplicate(data, (item) =>
      JSON.stringify(keys.map((k) => (item as Record<string, unknown>)?.[k])),
    );
  }
  if (dup < 0) return true;
  validateListType.errors = [
    {
      keyword: 'x-kubernetes-list-type',
      message: listType === 'set' ? 'duplicate value' : 'duplicate key',
      params: { index: dup },
    },
  ];
  return false;
};

ajv.addKeyword({
  keyword: 'x-kubernetes-list-type',
  type: 'array',
  schemaType: 'string',
  errors: true,
  validate: validateListType,
});
