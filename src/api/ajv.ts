/**
 * The one configured Ajv instance: all errors at once, schema defaults applied (as the API server
 * applies CRD defaults), and the Kubernetes extension keywords known so strict mode stays on.
 */
import { Ajv } from 'ajv';

export const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, strictTypes: false });
for (const keyword of [
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
]) {
  ajv.addKeyword(keyword);
}
ajv.addFormat('date-time', true);
