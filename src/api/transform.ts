/**
 * The transformation and validation sections of a ModelRoute rule (`rules[].transform`,
 * `rules[].validation`). Part of the ModelRoute schema (model-route.ts); split out because it is
 * a concern of its own.
 *
 * The shapes follow Gateway API's HTTPRoute filters where they overlap, so its users recognise
 * them: header modifiers are RequestHeaderModifier/ResponseHeaderModifier (`set`, `add`,
 * `remove`), `urlRewrite` is URLRewrite (`hostname`, `path` with `ReplaceFullPath` or
 * `ReplacePrefixMatch`), and `ReplaceRegexMatch` is Envoy Gateway's extension of it. JSON body
 * operations are written like JSON Patch (RFC 6902): an `op` and RFC 6901 JSON Pointers, so keys
 * with dots or slashes are addressable and the paths read like the ones validation errors name.
 */
import { type Static, Type } from '@sinclair/typebox';
import { ByteSize, cel, HeaderName, List, Str, StringEnum } from './schema-helpers.ts';

/**
 * Header names a modifier may not touch: hop-by-hop ones (RFC 9110 §7.6.1) describe one
 * connection, `content-length` belongs to the gateway's framing, and the request's Host header is
 * set by `urlRewrite.hostname` (one place, so the proxy's own Host handling cannot silently win).
 */
export const HOP_BY_HOP_HEADERS = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
] as const;

export const RESERVED_REQUEST_HEADERS = [...HOP_BY_HOP_HEADERS, 'content-length', 'host'] as const;
export const RESERVED_RESPONSE_HEADERS = [...HOP_BY_HOP_HEADERS, 'content-length'] as const;

const HeaderValue = Type.Object(
  {
    name: HeaderName('Header name, case-insensitive.'),
    value: Str(4096, {
      pattern: '^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$',
      description: 'Header value; no control characters.',
    }),
  },
  { additionalProperties: false, description: 'A header name and value.' },
);

const headerList = (what: string) =>
  List(HeaderValue, 16, {
    description: what,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['name'],
  });

/** Messages differ by direction: each CEL rule location has its own (the fixtures name rules by message). */
const headerModifier = (direction: 'request' | 'response') => {
  const reserved = direction === 'request' ? RESERVED_REQUEST_HEADERS : RESERVED_RESPONSE_HEADERS;
  const list = `[${reserved.map((h) => `'${h}'`).join(', ')}]`;
  return Type.Object(
    {
      set: Type.Optional(headerList('Headers set to this value, replacing any the message has.')),
      add: Type.Optional(headerList('Headers added, after any values the message already has.')),
      remove: Type.Optional(
        List(HeaderName('A header name, case-insensitive.'), 16, {
          description: 'Headers removed.',
          'x-kubernetes-list-type': 'set',
        }),
      ),
    },
    {
      additionalProperties: false,
      description: `Header changes, applied in this order: remove, then set, then add. Not allowed: ${reserved.join(', ')}.`,
      ...cel({
        rule: `(!has(self.set) || !self.set.exists(h, h.name.lowerAscii() in ${list})) && (!has(self.add) || !self.add.exists(h, h.name.lowerAscii() in ${list})) && (!has(self.remove) || !self.remove.exists(n, n.lowerAscii() in ${list}))`,
        message:
          direction === 'request'
            ? 'request headers: hop-by-hop headers, content-length and host cannot be modified (the Host header is set by urlRewrite.hostname)'
            : 'response headers: hop-by-hop headers and content-length cannot be modified',
      }),
    },
  );
};

export const RequestHeaderModifierSchema = headerModifier('request');
export const ResponseHeaderModifierSchema = headerModifier('response');

/** An RFC 6901 JSON Pointer: empty (the whole body) or `/`-separated tokens, `~0` for `~`, `~1` for `/`. */
const JsonPointer = (description: string) => Str(1024, { pattern: '^(/([^~]|~[01])*)*$', description });

export const BodyOp = ['Remove', 'Rename', 'Set', 'Wrap', 'Unwrap'] as const;

const bodyOp = (direction: 'request' | 'response') =>
  Type.Object(
    {
      op: StringEnum(BodyOp, {
        description:
          'Remove: delete `path`. Rename: move the value at `from` to `path`. Set: put `value` at `path`, creating missing parent objects. Wrap: replace the value at `path` with {<under>: value}. Unwrap: replace the object or array holding `path` with the value at `path`. A path that is not there makes Remove, Rename, Wrap and Unwrap do nothing.',
      }),
      path: JsonPointer(
        'RFC 6901 JSON Pointer (`/messages/0/content`; `~1` escapes `/`, `~0` escapes `~`; "" is the whole body, allowed for Set and Wrap). On an array, a token is an index; `-` (Set, Rename) appends.',
      ),
      from: Type.Optional(JsonPointer('Rename only: where the value is taken from.')),
      value: Type.Optional(
        Type.Unsafe<unknown>({
          'x-kubernetes-preserve-unknown-fields': true,
          description: 'Set only: any JSON value.',
        }),
      ),
      under: Type.Optional(
        Str(256, { minLength: 1, description: 'Wrap only: the member name the value is put under.' }),
      ),
    },
    {
      additionalProperties: false,
      description: 'One change to a JSON body.',
      ...cel(
        {
          rule: "(self.op == 'Rename') == has(self.from)",
          message: `${direction} body: from is required with op Rename and allowed only with it`,
          fieldPath: '.from',
        },
        {
          rule: "(self.op == 'Set') == has(self.value)",
          message: `${direction} body: value is required with op Set and allowed only with it`,
          fieldPath: '.value',
        },
        {
          rule: "(self.op == 'Wrap') == has(self.under)",
          message: `${direction} body: under is required with op Wrap and allowed only with it`,
          fieldPath: '.under',
        },
        {
          rule: "self.op == 'Set' || self.op == 'Wrap' || self.path != ''",
          message: `${direction} body: path "" (the whole body) is allowed only with op Set or Wrap`,
          fieldPath: '.path',
        },
        {
          rule: "!has(self.from) || (self.from != '' && self.from != self.path && !self.path.startsWith(self.from + '/'))",
          message: `${direction} body: from must not be the whole body, nor path, nor a parent of path`,
          fieldPath: '.from',
        },
      ),
    },
  );

export const BodyOpSchema = bodyOp('request');

const bodyOps = (direction: 'request' | 'response', what: string) =>
  List(bodyOp(direction), 16, {
    description: `${what} Applied in order, only to JSON bodies that are not streamed (see README); a body no operation changes is forwarded byte for byte.`,
    'x-kubernetes-list-type': 'atomic',
  });

const PathValue = "(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})";

export const PathRewriteType = ['ReplaceFullPath', 'ReplacePrefixMatch', 'ReplaceRegexMatch'] as const;

export const PathRewriteSchema = Type.Object(
  {
    type: StringEnum(PathRewriteType, {
      description:
        "ReplaceFullPath: the whole path. ReplacePrefixMatch: the rule's PathPrefix, segment-wise as Gateway API defines it (/foo/bar with prefix /foo and /xyz becomes /xyz/bar). ReplaceRegexMatch: every match of a regular expression. The query string is kept.",
    }),
    replaceFullPath: Type.Optional(
      Str(1024, { pattern: `^/${PathValue}*$`, description: 'ReplaceFullPath only: the new path.' }),
    ),
    replacePrefixMatch: Type.Optional(
      Str(1024, {
        pattern: `^(/${PathValue}*)?$`,
        description:
          'ReplacePrefixMatch only: what replaces the matched prefix; a trailing / is ignored, and "" removes the prefix. Needs the rule\'s single match to be a PathPrefix (or no match).',
      }),
    ),
    replaceRegexMatch: Type.Optional(
      Type.Object(
        {
          pattern: Str(1024, {
            minLength: 1,
            description: 'A regular expression (JavaScript syntax) searched in the normalised path.',
          }),
          substitution: Str(1024, {
            description:
              'What replaces each match; \\1…\\9 insert capture groups and \\0 the whole match (as in Envoy). A result not starting with / gets one.',
          }),
        },
        { additionalProperties: false, description: 'ReplaceRegexMatch only.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'Rewrites the path sent upstream.',
    ...cel(
      {
        rule: "(self.type == 'ReplaceFullPath') == has(self.replaceFullPath)",
        message: 'replaceFullPath is required with type ReplaceFullPath and allowed only with it',
        fieldPath: '.replaceFullPath',
      },
      {
        rule: "(self.type == 'ReplacePrefixMatch') == has(self.replacePrefixMatch)",
        message: 'replacePrefixMatch is required with type ReplacePrefixMatch and allowed only with it',
        fieldPath: '.replacePrefixMatch',
      },
      {
        rule: "(self.type == 'ReplaceRegexMatch') == has(self.replaceRegexMatch)",
        message: 'replaceRegexMatch is required with type ReplaceRegexMatch and allowed only with it',
        fieldPath: '.replaceRegexMatch',
      },
    ),
  },
);

export const UrlRewriteSchema = Type.Object(
  {
    hostname: Type.Optional(
      Str(253, {
        minLength: 1,
        pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
        description:
          "The Host header sent upstream, instead of the client's (or a URL backend's own host). TLS server names are not affected (see backends[].tls.serverName).",
      }),
    ),
    path: Type.Optional(PathRewriteSchema),
  },
  { additionalProperties: false, description: 'Host and path rewrites (Gateway API URLRewrite).' },
);

export const RequestTransformSchema = Type.Object(
  {
    headers: Type.Optional(RequestHeaderModifierSchema),
    urlRewrite: Type.Optional(UrlRewriteSchema),
    body: Type.Optional(bodyOps('request', 'Changes to the JSON request body.')),
  },
  { additionalProperties: false, description: 'Changes to the request before it goes upstream.' },
);

export const ResponseTransformSchema = Type.Object(
  {
    headers: Type.Optional(ResponseHeaderModifierSchema),
    body: Type.Optional(bodyOps('response', 'Changes to JSON response bodies of 2xx answers.')),
    maxBodySize: ByteSize(
      'Largest response body held in memory to apply `body` (at most 64Mi); a larger answer is passed through unchanged and counted in modelgate_transform_skipped_total. Default 1Mi.',
      { default: '1Mi' },
    ),
  },
  { additionalProperties: false, description: 'Changes to upstream answers before they reach the client.' },
);

export const TransformSchema = Type.Object(
  {
    request: Type.Optional(RequestTransformSchema),
    response: Type.Optional(ResponseTransformSchema),
  },
  {
    additionalProperties: false,
    description:
      'Request and response transformation. Runs after authentication, validation and rate limiting; validation sees the body as the client sent it.',
  },
);

export const ValidationSchema = Type.Object(
  {
    jsonSchema: Type.Unsafe<Record<string, unknown>>({
      type: 'object',
      'x-kubernetes-preserve-unknown-fields': true,
      description:
        'A JSON Schema the request body must satisfy (draft-07 unless `$schema` names 2019-09 or 2020-12; formats such as email and date-time are checked; remote $refs are not fetched). A body that fails gets 400 MG_REQUEST_INVALID naming the failing JSON path; a body that is not JSON, 400 MG_REQUEST_NOT_JSON. At most 64 KiB and 32 levels deep.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Request body validation, after authentication and before rate limiting. The body is forwarded unchanged.',
  },
);

export type HeaderModifier = Static<typeof RequestHeaderModifierSchema>;
export type BodyOpSpec = Static<typeof BodyOpSchema>;
export type PathRewrite = Static<typeof PathRewriteSchema>;
export type Transform = Static<typeof TransformSchema>;
export type Validation = Static<typeof ValidationSchema>;
