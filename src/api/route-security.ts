/**
 * The security sections of a ModelRoute: who may call it (`auth`, `rules[].authorization`), from
 * which browser origins (`cors`), over which TLS certificate (`tls`), and the credentials the
 * gateway adds towards an external backend (`backends[].credentials`). Part of the ModelRoute
 * schema (model-route.ts); split out because it is a concern of its own.
 */
import { Type } from '@sinclair/typebox';
import { cel, Duration, HeaderName, List, ObjectName, Str, StringEnum } from './schema-helpers.ts';

const SecretRef = (description: string) =>
  Type.Object(
    { name: ObjectName("Secret name, in the route's namespace.") },
    { additionalProperties: false, description },
  );

const SecretKeyRef = (description: string) =>
  Type.Object(
    {
      name: ObjectName("Secret name, in the route's namespace."),
      key: Str(253, {
        minLength: 1,
        pattern: '^[-._a-zA-Z0-9]+$',
        description: 'Key in the Secret.',
      }),
    },
    { additionalProperties: false, description },
  );

const LabelSelector = Type.Object(
  {
    matchLabels: Type.Unsafe<Record<string, string>>({
      type: 'object',
      additionalProperties: { type: 'string', maxLength: 63 },
      maxProperties: 16,
      description: 'Every label must be present with this value.',
    }),
  },
  { additionalProperties: false, description: "Secrets in the route's namespace with these labels." },
);

const CredentialHeader = (what: string) => ({
  ...HeaderName(
    `Request header carrying the ${what}. \`authorization\` expects the Bearer scheme; any other header carries the bare value. Default authorization.`,
  ),
  default: 'authorization',
});

const ClaimName = (description: string, def?: string) =>
  Str(256, { minLength: 1, description, ...(def !== undefined ? { default: def } : {}) });

export const JwtSigningAlgorithm = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

export const ApiKeysSchema = Type.Object(
  {
    header: CredentialHeader('API key'),
    secretRefs: Type.Optional(
      List(SecretRef('A Secret holding keys of one consumer.'), 64, {
        description: "Secrets by name, in the route's namespace.",
        'x-kubernetes-list-type': 'atomic',
      }),
    ),
    secretSelector: Type.Optional(LabelSelector),
  },
  {
    additionalProperties: false,
    description:
      'API keys from Secrets, one Secret per consumer: every value in the Secret is a valid key (two during a rotation). The consumer is the annotation modelgate.dev/consumer (default: the Secret name); groups come from modelgate.dev/groups (comma-separated). Only SHA-256 digests reach the proxies.',
    ...cel({
      rule: 'has(self.secretRefs) || has(self.secretSelector)',
      message: 'set secretRefs or secretSelector',
    }),
  },
);

export const JwtProviderSchema = Type.Object(
  {
    name: Str(63, {
      minLength: 1,
      pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
      description: 'Provider name, unique in the route; used in metrics and logs.',
    }),
    header: CredentialHeader('token'),
    issuer: Str(2048, { minLength: 1, description: 'Required `iss` value.' }),
    audiences: Type.Optional(
      List(Str(2048, { minLength: 1 }), 16, {
        description: 'The token `aud` must contain one of these. Unset: `aud` is not checked.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    algorithms: List(StringEnum(JwtSigningAlgorithm), 10, {
      minItems: 1,
      default: ['RS256', 'ES256'],
      description: 'Accepted signature algorithms. Default RS256 and ES256. `none` and HMAC never are.',
      'x-kubernetes-list-type': 'set',
    }),
    clockSkew: Duration('Tolerance for exp, nbf and iat. Default 30s.', { default: '30s' }),
    jwksUri: Type.Optional(
      Str(2048, {
        pattern: '^https?://',
        description:
          'JWKS URL; keys are cached and refetched (rate-bounded) when a token names an unknown kid.',
      }),
    ),
    jwksSecretRef: Type.Optional(SecretKeyRef('A Secret key holding a JWKS document (JSON).')),
    requiredClaims: List(ClaimName('Claim name.'), 16, {
      default: [],
      description: 'Claims that must be present.',
      'x-kubernetes-list-type': 'set',
    }),
    consumerClaim: ClaimName(
      'Claim naming the caller (identity for limits, hashing and logs). Default sub.',
      'sub',
    ),
    groupsClaim: Type.Optional(
      ClaimName('Claim holding the caller groups (a list or a space-separated string).'),
    ),
    scopesClaim: ClaimName(
      'Claim holding the scopes (space-separated string or list). Default scope.',
      'scope',
    ),
    forwardClaims: List(
      Type.Object(
        { claim: ClaimName('Claim name.'), header: HeaderName('Upstream header set to its value.') },
        {
          additionalProperties: false,
          description:
            "A claim of the verified JWT sent to the backend as a header; the client's own value of that header is always removed.",
        },
      ),
      16,
      { default: [], description: 'Claims sent to the backend as headers (client values are replaced).' },
    ),
  },
  {
    additionalProperties: false,
    description: 'JWTs signed by one issuer.',
    ...cel({
      rule: 'has(self.jwksUri) != has(self.jwksSecretRef)',
      message: 'exactly one of jwksUri or jwksSecretRef must be set',
    }),
  },
);

export const IntrospectionSchema = Type.Object(
  {
    header: CredentialHeader('token'),
    endpoint: Str(2048, { pattern: '^https?://', description: 'RFC 7662 introspection endpoint.' }),
    clientSecretRef: SecretRef(
      'Secret with `client-id` and `client-secret`: the gateway authenticates to the endpoint with them (HTTP Basic).',
    ),
    cacheTTL: Duration('Longest time an active answer is reused (never past the token exp). Default 60s.', {
      default: '60s',
    }),
    negativeCacheTTL: Duration('Time an inactive answer is reused. Default 10s.', { default: '10s' }),
    timeout: Duration('Time the endpoint has to answer. Default 2s.', { default: '2s' }),
    consumerClaim: ClaimName('Field naming the caller. Default sub.', 'sub'),
    groupsClaim: Type.Optional(ClaimName('Field holding the caller groups.')),
  },
  { additionalProperties: false, description: 'OAuth 2.0 token introspection (RFC 7662) for opaque tokens.' },
);

export const AuthSchema = Type.Object(
  {
    apiKeys: Type.Optional(ApiKeysSchema),
    jwt: Type.Optional(
      List(JwtProviderSchema, 8, {
        minItems: 1,
        description: 'JWT providers.',
        ...cel({
          rule: 'self.all(p, self.exists_one(q, q.name == p.name))',
          message: 'provider names must be unique',
        }),
      }),
    ),
    introspection: Type.Optional(IntrospectionSchema),
    anonymous: Type.Boolean({
      default: false,
      description:
        'Let requests that carry no credential through (as the consumer `anonymous`); invalid credentials are still refused. Default false.',
    }),
    forwardCredentials: Type.Boolean({
      default: false,
      description: 'Keep the credential header on the upstream request. Default false: it is removed.',
    }),
  },
  {
    additionalProperties: false,
    description:
      'Authentication for every rule of the route. Methods are tried in the order apiKeys, jwt, introspection; the first that accepts the request decides (any-of).',
    ...cel({
      rule: 'has(self.apiKeys) || has(self.jwt) || has(self.introspection) || self.anonymous',
      message: 'set at least one of apiKeys, jwt or introspection (or anonymous)',
    }),
  },
);

export const AuthorizationSchema = Type.Object(
  {
    scopes: Type.Optional(
      List(Str(256, { minLength: 1 }), 16, {
        description: 'Every scope is required.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    groups: Type.Optional(
      List(Str(256, { minLength: 1 }), 32, {
        description: 'The caller must be in one of these groups.',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    claims: Type.Optional(
      List(
        Type.Object(
          {
            name: ClaimName('Claim name.'),
            values: List(Str(1024), 32, {
              minItems: 1,
              description: 'Allowed values; a list claim passes when any element is allowed.',
            }),
          },
          {
            additionalProperties: false,
            description:
              "A claim the caller's token (or introspection answer) must carry, and the values it may take.",
          },
        ),
        16,
        { description: 'Every claim must hold an allowed value.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Who may use this rule, once authenticated (403 otherwise). Requires spec.auth. All given conditions must hold.',
  },
);

export const CorsSchema = Type.Object(
  {
    allowOrigins: List(
      Str(2048, {
        minLength: 1,
        pattern: '^(\\*|https?://(\\*\\.)?[^/*?#\\s]+)$',
        description: '`*`, an origin such as https://app.example.com, or https://*.example.com.',
      }),
      64,
      { minItems: 1, description: 'Origins allowed to call the route.', 'x-kubernetes-list-type': 'set' },
    ),
    allowMethods: List(Str(32, { pattern: '^[A-Z]+$' }), 16, {
      default: ['GET', 'POST'],
      description:
        'Methods a preflight may ask for (upper case; others are refused with 403 MG_CORS_REJECTED), sent back in Access-Control-Allow-Methods. Default GET and POST.',
      'x-kubernetes-list-type': 'set',
    }),
    allowHeaders: List(HeaderName('Header name.'), 64, {
      default: ['authorization', 'content-type'],
      description: 'Request headers a page may send. Default authorization and content-type.',
      'x-kubernetes-list-type': 'set',
    }),
    exposeHeaders: List(HeaderName('Header name.'), 64, {
      default: [],
      description: 'Response headers a page may read.',
      'x-kubernetes-list-type': 'set',
    }),
    allowCredentials: Type.Boolean({
      default: false,
      description: 'Allow cookies and credentials. Default false.',
    }),
    maxAge: Duration('How long browsers cache a preflight answer. Default 10m.', { default: '10m' }),
  },
  {
    additionalProperties: false,
    description: 'Cross-origin requests from browsers; preflights are answered at the gateway.',
    ...cel({
      rule: "!self.allowCredentials || !self.allowOrigins.exists(o, o == '*')",
      message: 'allowCredentials cannot be combined with the origin *',
    }),
  },
);

export const RouteTlsSchema = Type.Object(
  {
    certificateRef: SecretRef(
      "A kubernetes.io/tls Secret (tls.crt, tls.key) served by HTTPS listeners for the route's hostnames (by SNI); a route without hostnames provides the default certificate.",
    ),
    clientValidation: Type.Optional(
      Type.Object(
        {
          caSecretRef: SecretRef('Secret whose `ca.crt` holds the CAs that sign client certificates.'),
        },
        {
          additionalProperties: false,
          description:
            'Mutual TLS: clients of these hostnames must present a certificate signed by these CAs.',
        },
      ),
    ),
    httpsRedirect: Type.Boolean({
      default: false,
      description: 'Answer plaintext HTTP requests with a 308 redirect to https. Default false.',
    }),
    redirectPort: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 65535,
        description: 'Port in the redirect; default none (443).',
      }),
    ),
  },
  { additionalProperties: false, description: 'TLS termination for this route.' },
);

export const BackendCredentialsSchema = Type.Object(
  {
    header: {
      ...HeaderName('Header set on every upstream request. Default authorization.'),
      default: 'authorization',
    },
    secretKeyRef: SecretKeyRef('Where the value comes from.'),
    prefix: Str(64, { default: '', description: 'Text put before the value, e.g. `Bearer `. Default none.' }),
  },
  {
    additionalProperties: false,
    description:
      "A credential the gateway adds for this backend (a hosted model API); the client's own credential header is removed.",
  },
);
