/**
 * Answer plans for the hostile server (./hostile-server.ts) and the fast-check arbitraries that
 * generate them: what a server may do wrong, as plain data, so fast-check prints a failing plan
 * readably.
 *
 * What plain JSON cannot say is written as a tagged object: `{ $raw: '1e400' }` (JSON text sent
 * as is), `{ $nested: ... }` (thousands of levels), `{ $object: [[key, value], ...] }` (members in
 * order, duplicates and `__proto__` allowed), `{ $text: [..., { echo: 'client_secret', as:
 * 'percent' }] }` (a string holding what the server received, see {@link Echo}), `{ $jwt: ... }`,
 * `{ $var: 'issuer' }` (a value of the case's server), `{ $now: -600 }` (epoch seconds from now).
 *
 * The n-th request of a case gets `answers[n]` (the last one repeats); the JWKS gets `jwks`, or the
 * server's real key set when the plan has none.
 */
import fc from 'fast-check';

/** The `kid` of the server's signing key. */
export const KID = 'k1';

// --- plans ---------------------------------------------------------------------------------------

/** What the server may copy from a request into its answer. */
export type SecretSource =
  | 'client_secret'
  | 'client_assertion'
  /** The whole `Authorization` header value, e.g. `Basic ...`. */
  | 'authorization'
  /** The base64 part of `Authorization: Basic`. */
  | 'basic_credentials'
  /** `id:secret` after base64 decoding (still form-encoded, RFC 6749 §2.3.1). */
  | 'basic_decoded'
  | 'dpop'
  | 'refresh_token'
  | 'token'
  | 'device_code'
  | 'auth_req_id'
  | 'subject_token'
  /** The whole form body. */
  | 'request_body';

/** How an echo is written. `json-php` and `json-go` are the JSON string escapes of those languages. */
export type EchoEncoding =
  | 'raw'
  | 'form'
  | 'form-lower'
  | 'percent'
  | 'percent-lower'
  | 'upper'
  | 'lower'
  | 'base64'
  | 'base64url'
  | 'json-php'
  | 'json-go';

export const ECHO_ENCODINGS: readonly EchoEncoding[] = [
  'raw',
  'form',
  'form-lower',
  'percent',
  'percent-lower',
  'upper',
  'lower',
  'base64',
  'base64url',
  'json-php',
  'json-go',
];

/** A copy of something the request carried; `keep` truncates the encoded text to a prefix or suffix. */
export interface Echo {
  echo: SecretSource;
  as: EchoEncoding;
  keep?: { prefix: number } | { suffix: number };
}

export type TextPart = string | Echo;

export type VarName =
  | 'issuer'
  | 'client_id'
  | 'token_endpoint'
  | 'introspection_endpoint'
  | 'revocation_endpoint'
  | 'device_authorization_endpoint'
  | 'backchannel_authentication_endpoint'
  | 'jwks_uri'
  /** The server's public signing key as a JWK object. */
  | 'jwk'
  /** A 1024-bit RSA public JWK under the same `kid`. */
  | 'weak_jwk';

/** A JSON value to send. */
export type Json =
  | null
  | boolean
  | number
  | string
  | Json[]
  | { $object: Array<[string, Json]> }
  | { $raw: string }
  | { $nested: { depth: number; shape: 'array' | 'object' } }
  | { $text: TextPart[] }
  | { $long: number }
  | { $var: VarName }
  | { $now: number }
  | { $jwt: JwtPlan };

export type JwtSigning =
  'rs256' | 'rs256-other-key' | 'hs256-client-secret' | 'none' | 'garbage' | 'truncated';
export type JwtShape = 'jws' | 'five-parts' | 'two-parts' | 'not-base64' | 'padded' | 'empty';

export interface JwtPlan {
  header: Json;
  payload: Json;
  sign: JwtSigning;
  shape: JwtShape;
}

export type Body =
  | { json: Json; bom?: boolean; utf16?: boolean; truncate?: number }
  | { text: TextPart[] }
  | { jwt: JwtPlan }
  | { bytes: 'empty' | 'nul' | 'invalid-utf8' | 'whitespace' | 'bom-only' }
  | { huge: { bytes: number; as: 'json-string' | 'text' | 'json-array' } }
  /** A long body in which the echo starts `overlap` bytes before byte 2048. */
  | { straddle: { echo: Echo; overlap: number; wrap: 'text' | 'json' | 'html' } };

export type Framing =
  | 'length'
  | 'chunked'
  /** No length; the connection closes after the body. */
  | 'close'
  | 'length-short'
  | 'length-long'
  | 'reset-after-headers'
  | 'reset-mid-body'
  | 'rst-mid-body'
  | 'hang-after-headers'
  | 'hang-mid-body';

/** An interim response: through the node:http API (`writeContinue` / `writeProcessing` / `writeEarlyHints`) or raw. */
export interface Interim {
  status: 100 | 102 | 103 | 199;
  via: 'api' | 'raw';
}

export type HeaderPart = string | Echo | { $long: number };

export interface HttpAnswer {
  answer: 'http';
  status: number;
  interim: Interim[];
  contentType: string | null;
  headers: Array<[string, HeaderPart[]]>;
  body: Body;
  framing: Framing;
}

export type Answer =
  | HttpAnswer
  | { answer: 'reset-before-headers'; how: 'destroy' | 'rst' | 'end' }
  | { answer: 'hang'; after: 'nothing' | 'interim' }
  | { answer: 'switching-protocols'; then: 'hang' | 'close' | 'garbage' | 'response' }
  /** A raw, possibly malformed, HTTP response; then the connection closes. */
  | { answer: 'raw'; text: string };

export interface CasePlan {
  answers: Answer[];
  jwks?: Answer;
}

// --- arbitraries ---------------------------------------------------------------------------------

/** What each endpoint's successful answer looks like. */
export type EndpointKind =
  'token' | 'introspection' | 'jwt-introspection' | 'revocation' | 'device' | 'ciba' | 'metadata';

/** `fc.record` of plain objects: null-prototype ones print as `{__proto__:null, ...}`. */
export function record<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

type Member = [string, Json] | undefined;

/** Weights of an optional member: present or absent alike, now and then wrong. */
const OPTIONAL = { good: 8, omit: 8, bad: 1 };
/** Weights of a member that is seldom there. */
const RARE = { good: 1, omit: 12, bad: 1 };

/** Encodings of text; base64 is only what `Authorization: Basic` holds (see {@link echoArb}). */
const TEXT_ENCODINGS = ECHO_ENCODINGS.filter((encoding) => !encoding.startsWith('base64'));

/** An echo of one of `sources` (the secrets the request under test carries), sometimes truncated. */
export function echoArb(sources: readonly SecretSource[]): fc.Arbitrary<Echo> {
  const text = record({ echo: fc.constantFrom(...sources), as: fc.constantFrom(...TEXT_ENCODINGS) });
  // The Basic credentials base64-encoded again: the header's value, as some servers print it.
  const basic = record({
    echo: fc.constant<SecretSource>('basic_decoded'),
    as: fc.constantFrom<EchoEncoding>('base64', 'base64url'),
  });
  const whole = sources.includes('basic_decoded')
    ? fc.oneof({ weight: 8, arbitrary: text }, { weight: 1, arbitrary: basic })
    : text;
  const keep = fc.oneof(
    record({ prefix: fc.integer({ min: 8, max: 64 }) }),
    record({ suffix: fc.integer({ min: 8, max: 64 }) }),
  );
  return fc.oneof(
    { weight: 2, arbitrary: whole },
    { weight: 1, arbitrary: fc.tuple(whole, keep).map(([echo, cut]): Echo => ({ ...echo, keep: cut })) },
  );
}

/** A string holding an echo, as a server would phrase it. */
function echoStringArb(sources: readonly SecretSource[]): fc.Arbitrary<Json> {
  return fc
    .tuple(
      fc.constantFrom('', 'invalid client secret: ', 'token ', 'received '),
      echoArb(sources),
      fc.constantFrom('', ' is invalid', '"'),
    )
    .map(([before, echo, after]) => ({ $text: [before, echo, after].filter((part) => part !== '') }));
}

const numericOddities: Json[] = [
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '-1',
  '1e400',
  '-0',
  '0x1F',
  ' 3600',
  '3600 ',
  '3.6e3',
  '١٢٣',
  '9'.repeat(400),
  '00000000000000000000000000000000001',
  { $raw: '1e400' },
  { $raw: '-1e400' },
  { $raw: '-0' },
  { $raw: '1E2' },
  { $raw: '9'.repeat(400) },
  { $raw: '1e-400' },
  { $raw: '123456789012345678901234567890' },
  -1,
  -0.5,
  Number.MAX_SAFE_INTEGER,
  1e308,
];

/** Wrong values of a numeric member (seconds, epoch times): numbers and numeric strings at the edges. */
const numericOddityArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom<Json>(...numericOddities) },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 10n ** 400n }).map((n) => String(n)) },
  { weight: 1, arbitrary: fc.constantFrom<Json>(null, true, '', [], { $object: [] }) },
);

const nestedArb: fc.Arbitrary<Json> = fc.oneof(
  record({
    $nested: record({
      depth: fc.constantFrom(2_000, 5_000, 10_000, 30_000),
      shape: fc.constant<'array'>('array'),
    }),
  }),
  record({
    $nested: record({ depth: fc.constantFrom(2_000, 5_000, 10_000), shape: fc.constant<'object'>('object') }),
  }),
);

const pollutingArb: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  { $object: [['polluted', 'yes']] },
  { $object: [['prototype', { $object: [['polluted', 'yes']] }]] },
  { $object: [['__proto__', { $object: [['polluted', 'yes']] }]] },
  { $object: [['constructor', { $object: [['prototype', { $object: [['polluted', 'yes']] }]] }]] },
);

/**
 * A value of the wrong type (or the right type with a wrong value) for any member. Echoes are not
 * among them: they go only where a server puts what it received (error members, `token_type`,
 * provider envelopes, headers, raw bodies), see the arbitraries of those.
 */
const wrongArb: fc.Arbitrary<Json> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom<Json>(null, true, false, 0, 1, [], { $object: [] }, ...numericOddities),
  },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  {
    weight: 1,
    arbitrary: fc.array(fc.oneof(fc.string({ maxLength: 6 }), fc.integer(), fc.constant(null)), {
      maxLength: 3,
    }),
  },
  { weight: 1, arbitrary: nestedArb },
  { weight: 1, arbitrary: record({ $long: fc.integer({ min: 2_000, max: 60_000 }) }) },
  { weight: 1, arbitrary: pollutingArb },
);

/** Wrong values of a numeric member: mostly numeric oddities, else anything. */
const numericWrongArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 3, arbitrary: numericOddityArb },
  { weight: 1, arbitrary: wrongArb },
);

/**
 * One member: mostly valid, so that most bodies break one or two members and the rest of the
 * response gets to be checked too (a body broken everywhere only ever exercises the first check).
 */
function member(
  name: string,
  valid: fc.Arbitrary<Json>,
  wrong: fc.Arbitrary<Json>,
  weights = { good: 24, omit: 1, bad: 3 },
): fc.Arbitrary<Member> {
  return fc.oneof(
    { weight: weights.good, arbitrary: valid.map((value): Member => [name, value]) },
    { weight: weights.omit, arbitrary: fc.constant<Member>(undefined) },
    { weight: weights.bad, arbitrary: wrong.map((value): Member => [name, value]) },
  );
}

/** Members after the known ones: prototype keys, names of the result's helpers, duplicates. */
const extrasArb: fc.Arbitrary<Array<[string, Json]>> = (() => {
  const key = fc.oneof(
    fc.constantFrom(
      '__proto__',
      'constructor',
      'prototype',
      'claims',
      'expiresIn',
      'toJSON',
      'then',
      'hasOwnProperty',
      'access_token',
      'token_type',
      'error',
      '$data',
      '',
    ),
    fc.string({ maxLength: 10 }),
  );
  return fc.oneof(
    { weight: 5, arbitrary: fc.constant<Array<[string, Json]>>([]) },
    {
      weight: 3,
      arbitrary: fc.array(fc.tuple(key, fc.oneof(pollutingArb, wrongArb)), { minLength: 1, maxLength: 3 }),
    },
  );
})();

function objectArb(members: Array<fc.Arbitrary<Member>>): fc.Arbitrary<Json> {
  return fc.tuple(fc.tuple(...members), extrasArb).map(([known, extra]) => ({
    $object: [...known.filter((m): m is [string, Json] => m !== undefined), ...extra],
  }));
}

/**
 * Words of the SDK's own error texts and codes: a server may issue a token that reads like one,
 * and whatever keeps the tokens of a refused answer out of an error must not rewrite the SDK's text.
 */
const SDK_WORDS = [
  'INVALID_RESPONSE',
  'OAUTH_ERROR',
  'token endpoint response',
  'token_type',
  'is not supported',
  'redacted',
];

const tokenValueArb = (prefix: string): fc.Arbitrary<Json> =>
  fc.oneof(
    {
      weight: 20,
      arbitrary: fc.stringMatching(/^[A-Za-z0-9._~+/-]{16,40}$/).map((value) => `${prefix}-${value}`),
    },
    { weight: 1, arbitrary: fc.constantFrom(...SDK_WORDS) },
  );

function jwtPlanArb(header: fc.Arbitrary<Json>, payload: fc.Arbitrary<Json>): fc.Arbitrary<JwtPlan> {
  return record({
    header,
    payload,
    sign: fc.oneof(
      { weight: 6, arbitrary: fc.constant<JwtSigning>('rs256') },
      {
        weight: 3,
        arbitrary: fc.constantFrom<JwtSigning>(
          'rs256-other-key',
          'hs256-client-secret',
          'none',
          'garbage',
          'truncated',
        ),
      },
    ),
    shape: fc.oneof(
      { weight: 8, arbitrary: fc.constant<JwtShape>('jws') },
      {
        weight: 2,
        arbitrary: fc.constantFrom<JwtShape>('five-parts', 'two-parts', 'not-base64', 'padded', 'empty'),
      },
    ),
  });
}

function jwtHeaderArb(typ: string | undefined): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  return objectArb([
    member(
      'alg',
      fc.constant('RS256'),
      fc.oneof(
        fc.constantFrom<Json>('HS256', 'none', 'ES256', 'PS256', 'RS512', 'EdDSA', 'ML-DSA-44'),
        wrong,
      ),
    ),
    member('kid', fc.constant(KID), fc.oneof(fc.constantFrom<Json>('unknown-kid', ''), wrong)),
    typ === undefined
      ? member('typ', fc.constant('JWT'), wrong, OPTIONAL)
      : member(
          'typ',
          fc.constant(typ),
          fc.oneof(fc.constantFrom<Json>('JWT', 'jwt', `application/${typ}`), wrong),
        ),
    member('crit', fc.constant(['exp']), wrong, RARE),
  ]);
}

const nowArb = (valid: [number, number], wrong: number[]): fc.Arbitrary<Json> =>
  fc.oneof(
    {
      weight: 5,
      arbitrary: fc.integer({ min: valid[0], max: valid[1] }).map((offset) => ({ $now: offset })),
    },
    { weight: 1, arbitrary: fc.constantFrom(...wrong).map((offset) => ({ $now: offset })) },
  );

function idTokenArb(): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  const claims = objectArb([
    member(
      'iss',
      fc.constant<Json>({ $var: 'issuer' }),
      fc.oneof(fc.constantFrom<Json>('https://other.example', { $var: 'token_endpoint' }), wrong),
    ),
    member('sub', fc.constant('user-1'), wrong),
    member(
      'aud',
      fc.constantFrom<Json>({ $var: 'client_id' }, [{ $var: 'client_id' }]),
      fc.oneof(fc.constantFrom<Json>('other', [{ $var: 'client_id' }, 'other']), wrong),
    ),
    member('exp', nowArb([300, 3600], [-3600, -31]), numericWrongArb),
    member('iat', nowArb([-10, 0], [3600, -86400 * 365]), numericWrongArb),
    member(
      'azp',
      fc.constant<Json>({ $var: 'client_id' }),
      fc.oneof(fc.constant<Json>('other'), wrong),
      RARE,
    ),
    member('nonce', fc.constant('n-0S6_WzA2Mj'), wrong, RARE),
    member('at_hash', fc.constant('wrong-at-hash'), wrong, RARE),
    member('auth_time', nowArb([-60, 0], [3600]), numericWrongArb, RARE),
  ]);
  return fc.oneof(
    { weight: 6, arbitrary: jwtPlanArb(jwtHeaderArb(undefined), claims).map((plan) => ({ $jwt: plan })) },
    { weight: 1, arbitrary: fc.constantFrom<Json>('not-a-jwt', 'a.b.c', 'a.b.c.d.e', '...', 'eyJ.eyJ.', '') },
    {
      weight: 1,
      arbitrary: nestedArb.map((deep) => ({
        $jwt: { header: deep, payload: { $object: [] }, sign: 'rs256', shape: 'jws' } as JwtPlan,
      })),
    },
  );
}

function tokenBodyArb(sources: readonly SecretSource[]): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  return objectArb([
    member('access_token', tokenValueArb('at'), wrong),
    member(
      'token_type',
      fc.constantFrom('Bearer', 'bearer', 'BEARER', 'DPoP', 'dpop', 'N_A'),
      fc.oneof(
        fc.constantFrom<Json>(
          'mac',
          'Basic',
          'Bearer ',
          'constructor',
          '__proto__',
          'toString',
          'hasOwnProperty',
        ),
        echoStringArb(sources),
        wrong,
      ),
    ),
    member(
      'expires_in',
      fc.constantFrom<Json>(3600, '3600', 0, 1, 59, 86_400, 3599.5, '120'),
      numericWrongArb,
    ),
    member('refresh_token', tokenValueArb('rt'), wrong, OPTIONAL),
    member('scope', fc.constantFrom('openid', 'api:read api:write', ''), wrong, OPTIONAL),
    member('id_token', idTokenArb(), wrong, OPTIONAL),
    member('issued_token_type', fc.constant('urn:ietf:params:oauth:token-type:access_token'), wrong, RARE),
  ]);
}

function introspectionClaims(): Array<fc.Arbitrary<Member>> {
  const wrong = wrongArb;
  return [
    member('active', fc.boolean(), fc.oneof(fc.constantFrom<Json>('true', 'false', 1, 0), wrong)),
    member('scope', fc.constantFrom<Json>('api:read', ['api:read', 'api:write']), wrong, OPTIONAL),
    member('client_id', fc.constant<Json>({ $var: 'client_id' }), wrong, OPTIONAL),
    member('token_type', fc.constantFrom('Bearer', 'DPoP'), wrong, OPTIONAL),
    member('exp', nowArb([60, 3600], [-60]), numericWrongArb, OPTIONAL),
    member('iat', nowArb([-60, 0], [3600]), numericWrongArb, OPTIONAL),
    member('sub', fc.constant('user-1'), wrong, OPTIONAL),
    member('aud', fc.constantFrom<Json>('api', ['api', 'other']), wrong, OPTIONAL),
    member('cnf', fc.constant<Json>({ $object: [['jkt', 'abc']] }), wrong, RARE),
  ];
}

function introspectionBodyArb(): fc.Arbitrary<Json> {
  return objectArb(introspectionClaims());
}

/** An RFC 9701 JWT introspection response body. */
function jwtIntrospectionArb(): fc.Arbitrary<Body> {
  const wrong = wrongArb;
  const payload = objectArb([
    member(
      'iss',
      fc.constant<Json>({ $var: 'issuer' }),
      fc.oneof(fc.constant<Json>('https://other.example'), wrong),
    ),
    member(
      'aud',
      fc.constantFrom<Json>({ $var: 'client_id' }, [{ $var: 'client_id' }]),
      fc.oneof(fc.constant<Json>('other'), wrong),
    ),
    member('iat', nowArb([-10, 0], [-3600, 3600]), numericWrongArb),
    member('exp', nowArb([60, 600], [-600]), numericWrongArb, RARE),
    member('token_introspection', introspectionBodyArb(), wrong),
  ]);
  return jwtPlanArb(jwtHeaderArb('token-introspection+jwt'), payload).map((jwt) => ({ jwt }));
}

function deviceBodyArb(): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  return objectArb([
    member('device_code', tokenValueArb('dc'), wrong),
    member('user_code', fc.constant('WDJB-MJHT'), wrong),
    member('verification_uri', fc.constant('https://as.example/device'), wrong),
    member('verification_url', fc.constant('https://as.example/device'), wrong, RARE),
    member(
      'verification_uri_complete',
      fc.constant('https://as.example/device?user_code=WDJB-MJHT'),
      wrong,
      RARE,
    ),
    member('expires_in', fc.constantFrom<Json>(600, '600', 1), numericWrongArb),
    member('interval', fc.constantFrom<Json>(5, '5', 0), numericWrongArb, OPTIONAL),
  ]);
}

function cibaBodyArb(): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  return objectArb([
    member('auth_req_id', tokenValueArb('ar'), wrong),
    member('expires_in', fc.constantFrom<Json>(120, '120', 1), numericWrongArb),
    member('interval', fc.constantFrom<Json>(2, '2', 0), numericWrongArb, OPTIONAL),
  ]);
}

function metadataBodyArb(): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  const endpoint = (name: VarName): fc.Arbitrary<Member> =>
    member(
      name,
      fc.constant<Json>({ $var: name }),
      fc.oneof(fc.constantFrom<Json>('http://evil.example/x', 'not a url', 'https://as.example/x'), wrong),
      {
        good: 8,
        omit: 2,
        bad: 1,
      },
    );
  return objectArb([
    member(
      'issuer',
      fc.constant<Json>({ $var: 'issuer' }),
      fc.oneof(fc.constantFrom<Json>('https://other.example', { $var: 'token_endpoint' }), wrong),
      {
        good: 10,
        omit: 1,
        bad: 2,
      },
    ),
    endpoint('token_endpoint'),
    endpoint('jwks_uri'),
    endpoint('introspection_endpoint'),
    endpoint('revocation_endpoint'),
    member(
      'token_endpoint_auth_methods_supported',
      fc.constant(['client_secret_basic', 'client_secret_post']),
      wrong,
      OPTIONAL,
    ),
    member('grant_types_supported', fc.constant(['client_credentials', 'refresh_token']), wrong, OPTIONAL),
    member(
      'mtls_endpoint_aliases',
      fc.constant<Json>({ $object: [['token_endpoint', 'http://evil.example/mtls']] }),
      wrong,
      RARE,
    ),
    member('dpop_signing_alg_values_supported', fc.constant(['ES256']), wrong, OPTIONAL),
  ]);
}

const oauthErrorCodes = [
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
  'authorization_pending',
  'slow_down',
  'access_denied',
  'expired_token',
  'temporarily_unavailable',
  'server_error',
  'use_dpop_nonce',
  'invalid_dpop_proof',
  'invalid_token',
  'unsupported_token_type',
];

/** RFC 6749 §5.2 error bodies, with what the server received in any member. */
function oauthErrorBodyArb(sources: readonly SecretSource[]): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  const echo = echoStringArb(sources);
  return objectArb([
    fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...oauthErrorCodes).map((code): Member => ['error', code]) },
      { weight: 3, arbitrary: echo.map((value): Member => ['error', value]) },
      { weight: 1, arbitrary: wrong.map((value): Member => ['error', value]) },
    ),
    member(
      'error_description',
      fc.oneof(echo, fc.constantFrom('The client could not be authenticated', '')),
      wrong,
      { good: 6, omit: 2, bad: 1 },
    ),
    member('error_uri', fc.oneof(echo, fc.constant('https://as.example/errors/1')), wrong, {
      good: 4,
      omit: 3,
      bad: 1,
    }),
  ]);
}

/** Edlink-style bodies: `$error`, `$request` with `$errors`, `$data`. */
function providerBodyArb(sources: readonly SecretSource[], success: fc.Arbitrary<Json>): fc.Arbitrary<Json> {
  const wrong = wrongArb;
  const text = fc.oneof(echoStringArb(sources), fc.constantFrom<Json>('Invalid client credentials.', ''));
  const requestId = member('$request', fc.oneof(echoStringArb(sources), fc.uuid()), wrong, {
    good: 6,
    omit: 2,
    bad: 1,
  });
  const errorItem = objectArb([member('code', text, wrong), member('message', text, wrong)]);
  return fc.oneof(
    objectArb([member('$error', text, wrong, { good: 8, omit: 0, bad: 2 }), requestId]),
    objectArb([
      requestId,
      member('$errors', fc.array(errorItem, { minLength: 1, maxLength: 3 }), wrong, {
        good: 8,
        omit: 0,
        bad: 2,
      }),
    ]),
    objectArb([member('$data', success, wrong, { good: 8, omit: 0, bad: 1 }), requestId]),
  );
}

function successBodyArb(kind: EndpointKind, sources: readonly SecretSource[]): fc.Arbitrary<Body> {
  const json = (arb: fc.Arbitrary<Json>): fc.Arbitrary<Body> => arb.map((value) => ({ json: value }));
  switch (kind) {
    case 'token':
      return json(tokenBodyArb(sources));
    case 'introspection':
      return json(introspectionBodyArb());
    case 'jwt-introspection':
      return fc.oneof(
        { weight: 4, arbitrary: jwtIntrospectionArb() },
        { weight: 1, arbitrary: json(introspectionBodyArb()) },
      );
    case 'revocation':
      return fc.constantFrom<Body>({ bytes: 'empty' }, { json: { $object: [] } }, { text: ['ok'] });
    case 'device':
      return json(deviceBodyArb());
    case 'ciba':
      return json(cibaBodyArb());
    case 'metadata':
      return json(metadataBodyArb());
  }
}

function successJsonArb(kind: EndpointKind, sources: readonly SecretSource[]): fc.Arbitrary<Json> {
  switch (kind) {
    case 'token':
      return tokenBodyArb(sources);
    case 'introspection':
    case 'jwt-introspection':
      return introspectionBodyArb();
    case 'device':
      return deviceBodyArb();
    case 'ciba':
      return cibaBodyArb();
    case 'metadata':
      return metadataBodyArb();
    case 'revocation':
      return fc.constant({ $object: [] });
  }
}

/** Bodies that are not what anyone expects. */
function junkBodyArb(sources: readonly SecretSource[]): fc.Arbitrary<Body> {
  return fc.oneof(
    fc.constantFrom<Body>(
      { bytes: 'empty' },
      { bytes: 'nul' },
      { bytes: 'invalid-utf8' },
      { bytes: 'whitespace' },
      { bytes: 'bom-only' },
      { text: ['{'] },
      { text: ['null'] },
      { text: ['[]'] },
      { text: ['"a string"'] },
      { text: ['123'] },
      { text: ['true'] },
      { text: ['<html><body>502 Bad Gateway</body></html>'] },
      { text: ['<?xml version="1.0"?><error>denied</error>'] },
      { text: ['access_token=at-form-0123456789&token_type=bearer'] },
    ),
    record({
      text: fc
        .tuple(fc.constantFrom('Unauthorized: ', '<p>', 'error='), echoArb(sources))
        .map(([a, b]): TextPart[] => [a, b]),
    }),
    record({ json: nestedArb }),
    record({ json: fc.constantFrom<Json>(null, [], 'text', 0, true) }),
    record({
      huge: record({
        bytes: fc.integer({ min: 140_000, max: 400_000 }),
        as: fc.constantFrom<'json-string' | 'text' | 'json-array'>('json-string', 'text', 'json-array'),
      }),
    }),
    record({
      straddle: record({
        echo: echoArb(sources),
        overlap: fc.integer({ min: 1, max: 48 }),
        wrap: fc.constantFrom<'text' | 'json' | 'html'>('text', 'json', 'html'),
      }),
    }),
  );
}

/** A JSON body as sent, now and then with a BOM, as UTF-16, or cut short. */
function jsonBodyArb(json: fc.Arbitrary<Json>): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 12, arbitrary: record({ json }) },
    { weight: 1, arbitrary: record({ json, bom: fc.constant(true) }) },
    { weight: 1, arbitrary: record({ json, utf16: fc.constant(true) }) },
    { weight: 1, arbitrary: record({ json, truncate: fc.double({ min: 0, max: 0.99, noNaN: true }) }) },
  );
}

function headersArb(sources: readonly SecretSource[]): fc.Arbitrary<Array<[string, HeaderPart[]]>> {
  const echo = echoArb(sources);
  const header = fc.oneof(
    fc.tuple(
      fc.constant('www-authenticate'),
      fc.oneof(
        fc.constantFrom<HeaderPart[]>(
          ['Bearer realm="api", error="invalid_token"'],
          ['DPoP error="use_dpop_nonce"'],
          ['Basic realm="as"'],
          ['garbage ,, ="'],
        ),
        echo.map((e): HeaderPart[] => ['Bearer error="invalid_token", error_description="', e, '"']),
        echo.map((e): HeaderPart[] => ['Basic realm="', e, '"']),
      ),
    ),
    fc.tuple(
      fc.constant('retry-after'),
      fc.constantFrom<HeaderPart[]>(
        ['0'],
        ['1'],
        ['-1'],
        ['abc'],
        ['99999999999999999999'],
        ['Wed, 21 Oct 2015 07:28:00 GMT'],
        ['Fri, 01 Jan 2100 00:00:00 GMT'],
        ['1.5'],
        [''],
      ),
    ),
    fc.tuple(
      fc.constant('dpop-nonce'),
      fc.oneof(
        fc.constant<HeaderPart[]>(['n-fuzz-0123456789']),
        echo.map((e): HeaderPart[] => [e]),
      ),
    ),
    fc.tuple(
      fc.constantFrom('x-request-id', 'location', 'x-error'),
      echo.map((e): HeaderPart[] => [e]),
    ),
    fc.tuple(
      fc.constantFrom('set-cookie', 'cache-control', 'link'),
      fc.constantFrom<HeaderPart[]>(['a=b; HttpOnly'], ['no-store'], ['</x>; rel=next']),
    ),
    fc.tuple(
      fc.constantFrom('content-type', 'content-length', 'transfer-encoding'),
      fc.constantFrom<HeaderPart[]>(['text/html'], ['abc'], ['-1'], ['0'], ['chunked'], ['gzip']),
    ),
    fc.tuple(
      fc.constant('x-huge'),
      fc.integer({ min: 1_000, max: 20_000 }).map((n): HeaderPart[] => [{ $long: n }]),
    ),
  );
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant<Array<[string, HeaderPart[]]>>([]) },
    { weight: 2, arbitrary: fc.array<[string, HeaderPart[]]>(header, { minLength: 1, maxLength: 4 }) },
  );
}

const contentTypes = [
  'text/html',
  'text/plain',
  'application/jwt',
  'application/token-introspection+jwt',
  'application/x-www-form-urlencoded',
  'application/problem+json',
  'APPLICATION/JSON',
  'application/json; charset=utf-16',
  'application/json;;;',
  '',
];

const framingArb: fc.Arbitrary<Framing> = fc.oneof(
  { weight: 40, arbitrary: fc.constant<Framing>('length') },
  { weight: 8, arbitrary: fc.constant<Framing>('chunked') },
  { weight: 4, arbitrary: fc.constant<Framing>('close') },
  {
    weight: 6,
    arbitrary: fc.constantFrom<Framing>(
      'length-short',
      'reset-after-headers',
      'reset-mid-body',
      'rst-mid-body',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom<Framing>('length-long', 'hang-after-headers', 'hang-mid-body') },
);

const interimArb: fc.Arbitrary<Interim[]> = fc.oneof(
  { weight: 10, arbitrary: fc.constant<Interim[]>([]) },
  {
    weight: 1,
    arbitrary: fc.array(
      fc.oneof(
        record({
          status: fc.constantFrom<100 | 102 | 103>(100, 102, 103),
          via: fc.constantFrom<'api' | 'raw'>('api', 'raw'),
        }),
        fc.constant<Interim>({ status: 199, via: 'raw' }),
      ),
      { minLength: 1, maxLength: 3 },
    ),
  },
);

const errorStatuses = [400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 503, 504];
const otherStatuses = [
  200, 201, 202, 204, 206, 299, 300, 301, 302, 303, 304, 307, 308, 400, 401, 404, 418, 431, 451, 500, 501,
  507, 599, 600, 999,
];

/** A status and body that belong together (a success, an error) or do not (anything). */
function scenarioArb(
  kind: EndpointKind,
  sources: readonly SecretSource[],
): fc.Arbitrary<{ status: number; body: Body; contentType: string | null }> {
  const json = kind === 'jwt-introspection' ? 'application/token-introspection+jwt' : 'application/json';
  const contentType = (usual: string | null): fc.Arbitrary<string | null> =>
    fc.oneof(
      { weight: 8, arbitrary: fc.constant(usual) },
      { weight: 2, arbitrary: fc.constantFrom<string | null>(null, ...contentTypes) },
    );
  const success = record({
    status: fc.oneof(
      { weight: 9, arbitrary: fc.constant(200) },
      { weight: 1, arbitrary: fc.constantFrom(201, 203, 206, 299) },
    ),
    body:
      kind === 'jwt-introspection' || kind === 'revocation'
        ? successBodyArb(kind, sources)
        : jsonBodyArb(successJsonArb(kind, sources)),
    contentType: contentType(json),
  });
  const oauthError = record({
    status: fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...errorStatuses) },
      { weight: 1, arbitrary: fc.constant(200) },
    ),
    body: jsonBodyArb(oauthErrorBodyArb(sources)),
    contentType: contentType('application/json'),
  });
  const provider = record({
    status: fc.constantFrom(200, 400, 401, 403, 404, 500, 503),
    body: jsonBodyArb(providerBodyArb(sources, successJsonArb(kind, sources))),
    contentType: contentType('application/json'),
  });
  const junk = record({
    status: fc.oneof(
      { weight: 48, arbitrary: fc.constantFrom(...otherStatuses) },
      // A 1xx as the final status: the client must keep waiting, and time out.
      { weight: 1, arbitrary: fc.constantFrom(100, 102, 150, 199) },
    ),
    body: junkBodyArb(sources),
    contentType: contentType('text/html'),
  });
  return fc.oneof(
    { weight: 5, arbitrary: success },
    { weight: 4, arbitrary: oauthError },
    { weight: 2, arbitrary: provider },
    { weight: 3, arbitrary: junk },
  );
}

const rawResponses = [
  'HTTP/1.1 200 OK\r\n\r\n',
  'HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n{}',
  'garbage\r\n\r\n',
  'HTTP/1.1 abc OK\r\n\r\n',
  'HTTP/2 200\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
  'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"access_token":"at-raw-0123456789","token_type":"Bearer"}',
  'HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 1000 Big\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.1 200 OK\r\nBad Header\r\n\r\n',
  'HTTP/1.1 200 OK\r\nX: a\nb\r\n\r\n',
  'HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n',
  '\r\n\r\n',
  'HTTP/1.1 200 OK\r\n',
];

/** One answer to one request of an endpoint of `kind`; `sources` are what the request carries. */
export function answerArb(kind: EndpointKind, sources: readonly SecretSource[]): fc.Arbitrary<Answer> {
  const httpAnswer = fc
    .record({
      scenario: scenarioArb(kind, sources),
      interim: interimArb,
      headers: headersArb(sources),
      framing: framingArb,
    })
    .map(({ scenario, interim, headers, framing }): Answer => ({
      answer: 'http',
      status: scenario.status,
      interim,
      contentType: scenario.contentType,
      headers,
      body: scenario.body,
      framing,
    }));
  return fc.oneof(
    { weight: 80, arbitrary: httpAnswer },
    {
      weight: 3,
      arbitrary: record({
        answer: fc.constant<'reset-before-headers'>('reset-before-headers'),
        how: fc.constantFrom<'destroy' | 'rst' | 'end'>('destroy', 'rst', 'end'),
      }),
    },
    {
      weight: 1,
      arbitrary: record({
        answer: fc.constant<'hang'>('hang'),
        after: fc.constantFrom<'nothing' | 'interim'>('nothing', 'interim'),
      }),
    },
    {
      weight: 2,
      arbitrary: record({
        answer: fc.constant<'switching-protocols'>('switching-protocols'),
        then: fc.constantFrom<'hang' | 'close' | 'garbage' | 'response'>(
          'hang',
          'close',
          'garbage',
          'response',
        ),
      }),
    },
    {
      weight: 3,
      arbitrary: record({ answer: fc.constant<'raw'>('raw'), text: fc.constantFrom(...rawResponses) }),
    },
  );
}

/** JWKS answers: mostly the real key set, else a broken one. */
function jwksAnswerArb(sources: readonly SecretSource[]): fc.Arbitrary<Answer> {
  const broken = fc.constantFrom<Json>(
    { $object: [['keys', [{ $var: 'weak_jwk' }]]] },
    { $object: [['keys', []]] },
    { $object: [['keys', 'x']] },
    {
      $object: [
        [
          'keys',
          [
            {
              $object: [
                ['kty', 'RSA'],
                ['kid', KID],
              ],
            },
          ],
        ],
      ],
    },
    {
      $object: [
        [
          'keys',
          [
            {
              $object: [
                ['kty', 'oct'],
                ['k', 'AAAA'],
                ['kid', KID],
              ],
            },
          ],
        ],
      ],
    },
    { $object: [['keys', { $nested: { depth: 10_000, shape: 'array' } }]] },
    {
      $object: [
        ['__proto__', { $object: [['polluted', 'yes']] }],
        ['keys', [{ $var: 'jwk' }]],
      ],
    },
  );
  return fc.oneof(
    broken.map((json): Answer => ({
      answer: 'http',
      status: 200,
      interim: [],
      contentType: 'application/json',
      headers: [],
      body: { json },
      framing: 'length',
    })),
    answerArb('revocation', sources),
  );
}

/** The plan of one case: up to `maxAnswers` answers in order, and sometimes a broken JWKS. */
export function casePlanArb(
  kind: EndpointKind,
  sources: readonly SecretSource[],
  maxAnswers = 3,
): fc.Arbitrary<CasePlan> {
  const answers = fc.array(answerArb(kind, sources), { minLength: 1, maxLength: maxAnswers });
  return fc.oneof(
    { weight: 5, arbitrary: record({ answers }) },
    { weight: 1, arbitrary: record({ answers, jwks: jwksAnswerArb(sources) }) },
  );
}
