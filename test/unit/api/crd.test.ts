/** The TypeBox → CRD schema conversion in src/api/crd.ts. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Type } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { toStructuralSchema, withNestedDefaults } from '../../../src/api/crd.ts';
import { cel, Str } from '../../../src/api/schema-helpers.ts';

describe('toStructuralSchema', () => {
  test('drops additionalProperties: false and TypeBox symbols, keeps validation keywords', () => {
    const schema = Type.Object(
      {
        zeta: Type.Optional(Str(10, { minLength: 1, pattern: '^a', description: 'z', default: 'a' })),
        alpha: Type.Array(Type.Integer({ minimum: 0, maximum: 5 }), { maxItems: 3, minItems: 1 }),
        when: Type.String({ format: 'date-time', maxLength: 64 }),
      },
      {
        additionalProperties: false,
        description: 'd',
        ...cel({ rule: 'self.alpha.size() > 0', message: 'm' }),
        'x-kubernetes-map-type': 'atomic',
      },
    );
    const out = toStructuralSchema(schema);
    assert.deepEqual(out, {
      description: 'd',
      type: 'object',
      required: ['alpha', 'when'],
      'x-kubernetes-map-type': 'atomic',
      'x-kubernetes-validations': [{ rule: 'self.alpha.size() > 0', message: 'm' }],
      properties: {
        zeta: {
          description: 'z',
          type: 'string',
          default: 'a',
          pattern: '^a',
          minLength: 1,
          maxLength: 10,
        },
        alpha: {
          type: 'array',
          minItems: 1,
          maxItems: 3,
          items: { type: 'integer', minimum: 0, maximum: 5 },
        },
        when: { type: 'string', format: 'date-time', maxLength: 64 },
      },
    });
    // Keywords in a fixed order, properties in declaration order.
    assert.deepEqual(Object.keys(out), [
      'description',
      'type',
      'required',
      'x-kubernetes-map-type',
      'x-kubernetes-validations',
      'properties',
    ]);
    assert.deepEqual(Object.keys(out.properties as object), ['zeta', 'alpha', 'when']);
    assert.equal(Object.getOwnPropertySymbols(out.properties as object).length, 0);
  });

  test('does not modify the TypeBox schema', () => {
    const schema = Type.Object({ a: Type.String({ maxLength: 1 }) }, { additionalProperties: false });
    toStructuralSchema(schema);
    assert.equal(schema.additionalProperties, false);
  });

  test('refuses keywords a structural schema cannot carry', () => {
    const cases: [string, unknown, RegExp][] = [
      ['union', Type.Union([Type.String(), Type.Integer()]), /anyOf/],
      ['$ref', { type: 'object', properties: { a: { $ref: '#/x' } } }, /a: keyword \$ref/],
      ['numeric exclusiveMinimum', Type.Number({ exclusiveMinimum: 0 }), /exclusiveMinimum/],
      ['additionalProperties: true', Type.Object({}, { additionalProperties: true }), /additionalProperties/],
      ['tuple items', { type: 'array', items: [{ type: 'string' }] }, /items must be a single schema/],
    ];
    for (const [name, schema, error] of cases) {
      assert.throws(() => toStructuralSchema(schema as never), error, name);
    }
  });

  test('keeps a map schema in additionalProperties', () => {
    const out = toStructuralSchema({
      type: 'object',
      maxProperties: 4,
      additionalProperties: Type.String({ maxLength: 5 }),
    });
    assert.deepEqual(out, {
      type: 'object',
      maxProperties: 4,
      additionalProperties: { type: 'string', maxLength: 5 },
    });
    // TypeBox's Record is patternProperties, which a CRD cannot express.
    assert.throws(() => toStructuralSchema(Type.Record(Type.String(), Type.String())), /patternProperties/);
  });
});

describe('object defaults', () => {
  const Inner = Type.Object(
    {
      algorithm: Type.String({ default: 'LeastRequest', maxLength: 20 }),
      extra: Type.Optional(Type.Integer()),
      list: Type.Array(Type.Object({ n: Type.Integer({ default: 1 }) }), { default: [{}] }),
    },
    { default: {} },
  );
  const Outer = Type.Object({ inner: Inner }, { default: {} });

  test('`default: {}` is written with the defaults of its fields, as the API server would apply them', () => {
    const out = toStructuralSchema(Outer);
    const expected = { algorithm: 'LeastRequest', list: [{ n: 1 }] };
    assert.deepEqual(out.default, { inner: expected });
    assert.deepEqual((out.properties as Record<string, { default: unknown }>).inner?.default, expected);
  });

  test('the written default passes validation where `{}` would not (the API server refuses such CRDs)', () => {
    const ajv = new Ajv({ strict: false });
    const raw = JSON.parse(JSON.stringify(Inner));
    assert.equal(ajv.validate(raw, raw.default), false);
    const out = toStructuralSchema(Inner);
    assert.equal(ajv.validate(out, out.default), true, ajv.errorsText());
  });

  test('explicit values in a default win over field defaults', () => {
    const schema = toStructuralSchema(Inner);
    assert.deepEqual(withNestedDefaults(schema, { algorithm: 'RoundRobin', list: [] }), {
      algorithm: 'RoundRobin',
      list: [],
    });
  });
});
