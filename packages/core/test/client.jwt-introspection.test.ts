/**
 * JWT introspection responses (RFC 9701 §5) against a local fake
 * introspection endpoint and JWKS. The clock is frozen (only `Date` is faked), so `iat` and the
 * JWKS refetch cooldown are tested at their boundaries.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { inspect } from 'node:util';
import { SignJWT, base64url, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { Client, ResponseError } from '@tessera/core';
import type { ClientMetadata, IntrospectionOptions } from '@tessera/core';
import { freezeDate, rejection } from './support/test-helpers.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

const CLIENT_ID = 'c1';
const CLIENT_SECRET = 's3cr3t-value';
/** The token being introspected. */
const TOKEN = 'at-1ntrospected-access-secret-0123456789';
const JWT_TYPE = 'application/token-introspection+jwt';
/** Frozen "now", a whole second. */
const NOW_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW = NOW_MS / 1000;
/** The Client's default clockToleranceSeconds, and its maximum age of a JWT response. */
const TOLERANCE = 30;
const MAX_AGE = 300;
/** jwks.ts: an unknown `kid` refetches the JWKS at most once per 30 s. */
const COOLDOWN_MS = 30_000;

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let server: FakeServer;
let rsa: KeyPair;
/** A key the server has not published. */
let unpublished: KeyPair;
let publishedKeys: JWK[];
let answer: Handler = (_request, response) => json(response, 500, {});

beforeAll(async () => {
  [rsa, unpublished] = await Promise.all([generateKeyPair('RS256'), generateKeyPair('RS256')]);
  publishedKeys = [{ ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' }];
  server = await startFakeServer({
    '/introspect': (request, response) => answer(request, response),
    '/jwks': (_request, response) => json(response, 200, { keys: publishedKeys }),
  });
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => freezeDate(NOW_MS));

afterEach(() => {
  jest.useRealTimers();
});

/** A fresh client: its JWKS cache starts empty. */
function newClient(metadata: Partial<ClientMetadata> = {}): Client {
  return new Client(
    {
      issuer: server.url,
      token_endpoint: `${server.url}/token`,
      introspection_endpoint: `${server.url}/introspect`,
      jwks_uri: `${server.url}/jwks`,
    },
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
      ...metadata,
    },
  );
}

/** Introspects TOKEN with a server answering `body` as a JWT response (or with `handler`). */
function introspect(
  body: string | Handler,
  options: IntrospectionOptions = { jwtResponse: true },
  client: Client = newClient(),
): ReturnType<Client['tokenIntrospection']> {
  answer =
    typeof body === 'string'
      ? (_request, response) => raw(response, 200, body, { 'content-type': JWT_TYPE })
      : body;
  return client.tokenIntrospection(TOKEN, undefined, options);
}

function lastIntrospectionRequest() {
  return server.requestsTo('/introspect').at(-1)!;
}

function jwksRequests(): number {
  return server.requestsTo('/jwks').length;
}

const ACTIVE = {
  active: true,
  sub: 'user-1',
  scope: 'api:read',
  client_id: 'rs-1',
  token_type: 'Bearer',
  exp: NOW + 300,
};

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: server.url,
    aud: CLIENT_ID,
    iat: NOW,
    token_introspection: ACTIVE,
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

interface Signing {
  alg?: string;
  kid?: string;
  typ?: string;
  key?: KeyPair['privateKey'] | Uint8Array;
}

function sign(
  payload: JWTPayload,
  { alg = 'RS256', kid = 'rsa-1', typ = 'token-introspection+jwt', key = rsa.privateKey }: Signing = {},
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, kid, ...(typ === '' ? {} : { typ }) }).sign(key);
}

function unsigned(header: object, payload: object): string {
  const encode = (value: object): string => base64url.encode(JSON.stringify(value));
  return `${encode(header)}.${encode(payload)}.`;
}

function expectResponseError(error: unknown, field: string | undefined): void {
  expect(error).toBeInstanceOf(ResponseError);
  expect(error).toMatchObject({ code: 'INVALID_RESPONSE', endpoint: 'introspection endpoint', status: 200 });
  if (field !== undefined) expect((error as ResponseError).field).toBe(field);
  expectNoSecrets(error);
}

/** DESIGN.md Errors: no secret in any message, toJSON() or util.inspect() output. */
function expectNoSecrets(error: unknown): void {
  for (const text of [(error as Error).message, JSON.stringify(error), inspect(error, { depth: 5 })]) {
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(CLIENT_SECRET);
  }
}

describe('requesting a JWT response (RFC 9701 §4)', () => {
  it.each<[string, Partial<ClientMetadata>, IntrospectionOptions]>([
    ['jwtResponse: true', {}, { jwtResponse: true }],
    ['a registered introspection_signed_response_alg', { introspection_signed_response_alg: 'RS256' }, {}],
  ])('sends Accept: application/token-introspection+jwt for %s', async (_name, metadata, options) => {
    await introspect(await sign(claims()), options, newClient(metadata));
    const request = lastIntrospectionRequest();
    expect(request.method).toBe('POST');
    expect(request.headers.accept).toBe(JWT_TYPE);
    expect(request.form.get('token')).toBe(TOKEN);
  });

  it('asks for plain JSON otherwise', async () => {
    await introspect((_request, response) => json(response, 200, { active: false }), {});
    expect(lastIntrospectionRequest().headers.accept).toBe('application/json');
  });
});

describe('valid JWT responses (RFC 9701 §5)', () => {
  it('returns the token_introspection contents, frozen', async () => {
    const result = await introspect(await sign(claims()));
    expect(result).toEqual(ACTIVE);
    expect(Object.isFrozen(result)).toBe(true);
  });

  it.each<[string, () => JWTPayload, Signing]>([
    ['typ with the application/ prefix', () => claims(), { typ: JWT_TYPE }],
    ['typ in upper case', () => claims(), { typ: 'TOKEN-INTROSPECTION+JWT' }],
    ['aud array holding the client id', () => claims({ aud: ['other-rs', CLIENT_ID] }), {}],
    [
      `iat ${MAX_AGE + TOLERANCE} s old (max age + tolerance)`,
      () => claims({ iat: NOW - MAX_AGE - TOLERANCE }),
      {},
    ],
    [`iat ${TOLERANCE} s ahead (tolerance)`, () => claims({ iat: NOW + TOLERANCE }), {}],
  ])('accepts %s', async (_name, payload, signing) => {
    await expect(introspect(await sign(payload(), signing))).resolves.toEqual(ACTIVE);
  });

  it('ignores top-level sub, scope and exp, and exposes token_introspection.sub', async () => {
    const payload = claims({ sub: 'attacker', scope: 'admin', exp: NOW + 86_400, client_id: 'evil' });
    const result = await introspect(await sign(payload));
    expect(result).toMatchObject({ sub: 'user-1', scope: 'api:read', client_id: 'rs-1', exp: NOW + 300 });

    const { sub: _sub, ...withoutSub } = ACTIVE;
    const anonymous = await introspect(
      await sign(claims({ sub: 'attacker', token_introspection: withoutSub })),
    );
    expect(anonymous.sub).toBeUndefined();
  });

  it.each<[string, unknown]>([
    ['{"active":false}', { active: false }],
    ['an inactive response that reveals more', { active: false, sub: 'user-1', scope: 'api:read' }],
  ])('returns exactly { active: false } for %s', async (_name, tokenIntrospection) => {
    const result = await introspect(await sign(claims({ token_introspection: tokenIntrospection })));
    expect(result).toStrictEqual({ active: false });
  });
});

describe('rejected JWT responses (RFC 9701 §5 validation steps)', () => {
  it.each<[string, string, () => Promise<string>]>([
    // 10. typ
    ['typ JWT', 'typ', () => sign(claims(), { typ: 'JWT' })],
    ['typ at+jwt', 'typ', () => sign(claims(), { typ: 'at+jwt' })],
    ['no typ', 'typ', () => sign(claims(), { typ: '' })],
    // 11. iss, aud
    ['iss of another issuer', 'iss', () => sign(claims({ iss: 'https://other.example.com' }))],
    ['iss with a trailing slash', 'iss', () => sign(claims({ iss: `${server.url}/` }))],
    ['no iss', 'iss', () => sign(claims({ iss: undefined }))],
    ['aud of another client', 'aud', () => sign(claims({ aud: 'other-rs' }))],
    ['aud array without the client id', 'aud', () => sign(claims({ aud: ['other-rs', 'api'] }))],
    ['no aud', 'aud', () => sign(claims({ aud: undefined }))],
    // 13. alg
    ['alg none', 'alg', async () => unsigned({ alg: 'none', typ: 'token-introspection+jwt' }, claims())],
    [
      'HS256 keyed with the RSA public key',
      'alg',
      async () =>
        sign(claims(), { alg: 'HS256', key: new TextEncoder().encode(await exportSPKI(rsa.publicKey)) }),
    ],
    [
      'HS256 keyed with the client_secret',
      'alg',
      () => sign(claims(), { alg: 'HS256', key: new TextEncoder().encode(CLIENT_SECRET) }),
    ],
    // signature
    [
      'a tampered payload',
      'signature',
      async () => {
        const [header, , signature] = (await sign(claims({ token_introspection: { active: false } }))).split(
          '.',
        );
        return `${header}.${base64url.encode(JSON.stringify(claims()))}.${signature}`;
      },
    ],
    // iat (step 7)
    ['iat an hour old', 'iat', () => sign(claims({ iat: NOW - 3600 }))],
    ['iat one second older than max age + tolerance', 'iat', () => sign(claims({ iat: NOW - 331 }))],
    ['iat one second beyond the tolerance ahead', 'iat', () => sign(claims({ iat: NOW + TOLERANCE + 1 }))],
    ['no iat', 'iat', () => sign(claims({ iat: undefined }))],
    // token_introspection (step 8)
    ['no token_introspection', 'token_introspection', () => sign(claims({ token_introspection: undefined }))],
    [
      'token_introspection not an object',
      'token_introspection',
      () => sign(claims({ token_introspection: 'active' })),
    ],
    [
      'token_introspection without active',
      'token_introspection.active',
      () => sign(claims({ token_introspection: { sub: 'user-1' } })),
    ],
    ['not a JWT', 'format', async () => 'not-a-jwt'],
  ])('rejects %s → field %s', async (_name, field, body) => {
    expectResponseError(await rejection(introspect(await body())), field);
  });

  it.each<[string, () => Promise<string>, string]>([
    [
      'aud',
      () => sign(claims({ aud: 'other-rs' })),
      `aud "other-rs" does not contain this client's client_id "${CLIENT_ID}"`,
    ],
    [
      'aud',
      () => sign(claims({ aud: ['other-rs', 'api'] })),
      `aud ["other-rs","api"] does not contain this client's client_id "${CLIENT_ID}"`,
    ],
    [
      'iss',
      () => sign(claims({ iss: 'https://other.example.com' })),
      'iss "https://other.example.com" is not "',
    ],
  ])(
    'a mismatched %s names the expected and the received value (RFC 9701 §5)',
    async (field, body, message) => {
      const error = await rejection(introspect(await body()));
      expectResponseError(error, field);
      expect(error.message).toContain(message);
      if (field === 'iss') expect(error.message).toContain(`"${server.url}"`);
    },
  );

  it.each<[string, Partial<ClientMetadata>, IntrospectionOptions]>([
    ['jwtResponse: true', {}, { jwtResponse: true }],
    ['a registered introspection_signed_response_alg', { introspection_signed_response_alg: 'RS256' }, {}],
  ])('refuses a plain JSON answer when a JWT was required by %s', async (_name, metadata, options) => {
    const plain: Handler = (_request, response) => json(response, 200, { active: true, sub: 'user-1' });
    expectResponseError(await rejection(introspect(plain, options, newClient(metadata))), 'content-type');
  });

  it('parses a plain JSON answer when jwtResponse is false despite a registered alg (lenient)', async () => {
    const plain: Handler = (_request, response) => json(response, 200, { active: true, sub: 'user-1' });
    const client = newClient({ introspection_signed_response_alg: 'RS256' });
    await expect(introspect(plain, { jwtResponse: false }, client)).resolves.toEqual({
      active: true,
      sub: 'user-1',
    });
  });
});

describe('JWKS refetch on an unknown kid (RFC 9701 §5, RFC 7517 §4.5)', () => {
  function signedWithUnpublishedKey(iat: number): Promise<string> {
    return sign(claims({ iat }), { kid: 'rotated-1', key: unpublished.privateKey });
  }

  it('refetches exactly once after the cooldown, then rejects; no refetch again within the cooldown', async () => {
    const client = newClient();
    const before = jwksRequests();
    await introspect(await sign(claims()), { jwtResponse: true }, client);
    expect(jwksRequests() - before).toBe(1);

    jest.setSystemTime(NOW_MS + COOLDOWN_MS + 1_000);
    const first = await rejection(
      introspect(await signedWithUnpublishedKey(NOW + 31), { jwtResponse: true }, client),
    );
    expectResponseError(first, 'signature');
    expect(jwksRequests() - before).toBe(2);

    jest.setSystemTime(NOW_MS + COOLDOWN_MS + 10_000);
    const second = await rejection(
      introspect(await signedWithUnpublishedKey(NOW + 40), { jwtResponse: true }, client),
    );
    expectResponseError(second, 'signature');
    expect(jwksRequests() - before).toBe(2);
  });
});
