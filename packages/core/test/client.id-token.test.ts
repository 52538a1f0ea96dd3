/**
 * ID Token validation of token endpoint responses (OpenID Connect Core §3.1.3.7),
 * against a local fake token endpoint and JWKS. The clock is frozen (only `Date` is faked), so
 * `exp`, `iat`, `auth_time` and the JWKS refetch cooldown are tested at their exact boundaries.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { CompactEncrypt, SignJWT, base64url, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { Client, IdTokenError } from '@tessera/core';
import type { ClientMetadata, GrantOptions, TokenResponse } from '@tessera/core';
import { freezeDate, rejection } from './support/test-helpers.js';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';

const CLIENT_ID = 'c1';
const CLIENT_SECRET = 's3cr3t-value';
const ACCESS_TOKEN = 'at-1d-t0ken-access-secret-0123456789';
/** Frozen "now", a whole second so that `Date.now() / 1000` and jose's floor agree. */
const NOW_MS = Date.UTC(2030, 0, 1, 12, 0, 0);
const NOW = NOW_MS / 1000;
/** The Client's default clockToleranceSeconds. */
const TOLERANCE = 30;
/** jwks.ts: an unknown `kid` refetches the JWKS at most once per 30 s. */
const COOLDOWN_MS = 30_000;

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>;

let server: FakeServer;
let rsa: KeyPair;
let ec384: KeyPair;
let ed25519: KeyPair;
/** A key the server signs with after a rotation; not published until a test does. */
let rotated: KeyPair;
let publishedKeys: JWK[];
let idToken = '';

beforeAll(async () => {
  [rsa, ec384, ed25519, rotated] = await Promise.all([
    generateKeyPair('RS256'),
    generateKeyPair('ES384'),
    generateKeyPair('Ed25519'),
    generateKeyPair('RS256'),
  ]);
  publishedKeys = [
    { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', use: 'sig' },
    { ...(await exportJWK(ec384.publicKey)), kid: 'ec-1', use: 'sig' },
    { ...(await exportJWK(ed25519.publicKey)), kid: 'ed-1', use: 'sig' },
  ];
  server = await startFakeServer({
    '/token': (_request, response) =>
      json(response, 200, {
        access_token: ACCESS_TOKEN,
        token_type: 'Bearer',
        expires_in: 300,
        ...(idToken === '' ? {} : { id_token: idToken }),
      }),
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

/** A token endpoint response carrying `token` as its id_token (none for ''). */
function grant(token: string, options?: GrantOptions, client: Client = newClient()): Promise<TokenResponse> {
  idToken = token;
  return client.clientCredentialsGrant(undefined, options);
}

function jwksRequests(): number {
  return server.requestsTo('/jwks').length;
}

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: server.url,
    sub: 'user-1',
    aud: CLIENT_ID,
    iat: NOW,
    exp: NOW + 300,
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
  key?: KeyPair['privateKey'] | Uint8Array;
}

function sign(
  payload: JWTPayload,
  { alg = 'RS256', kid = 'rsa-1', key = rsa.privateKey }: Signing = {},
): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ alg, kid, typ: 'JWT' }).sign(key);
}

/** OpenID Connect Core §3.1.3.8: base64url of the left half of the access token's hash. */
function atHash(accessToken: string, hash: 'sha256' | 'sha384' | 'sha512'): string {
  const digest = createHash(hash).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

function unsigned(header: object, payload: object): string {
  const encode = (value: object): string => base64url.encode(JSON.stringify(value));
  return `${encode(header)}.${encode(payload)}.`;
}

/** A validly signed token whose payload was swapped afterwards. */
async function tampered(): Promise<string> {
  const [header, , signature] = (await sign(claims())).split('.');
  const payload = base64url.encode(JSON.stringify(claims({ sub: 'admin' })));
  return `${header}.${payload}.${signature}`;
}

/** The "RSA public key as HMAC secret" confusion attack: HS256 keyed with the PEM of the public key. */
async function hmacWithPublicKey(): Promise<string> {
  const pem = await exportSPKI(rsa.publicKey);
  return sign(claims(), { alg: 'HS256', key: new TextEncoder().encode(pem) });
}

async function encrypted(): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(await sign(claims())))
    .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', cty: 'JWT' })
    .encrypt(new Uint8Array(32).fill(7));
}

function expectIdTokenError(error: unknown, check: string): void {
  expect(error).toBeInstanceOf(IdTokenError);
  expect(error).toMatchObject({ code: 'INVALID_ID_TOKEN', check });
  expectNoSecrets(error);
}

/** DESIGN.md Errors: no secret in any message, toJSON() or util.inspect() output. */
function expectNoSecrets(error: unknown): void {
  for (const text of [(error as Error).message, JSON.stringify(error), inspect(error, { depth: 5 })]) {
    expect(text).not.toContain(ACCESS_TOKEN);
    expect(text).not.toContain(CLIENT_SECRET);
  }
}

interface Case {
  name: string;
  token: () => Promise<string>;
  options?: GrantOptions;
  metadata?: Partial<ClientMetadata>;
}

describe('valid ID Tokens (§3.1.3.7)', () => {
  it('accepts a valid RS256 token and exposes its claims through claims()', async () => {
    const payload = claims({ auth_time: NOW - 60, acr: 'urn:mace:incommon:iap:silver', amr: ['pwd'] });
    const tokens = await grant(await sign(payload));
    expect(tokens.access_token).toBe(ACCESS_TOKEN);
    expect(tokens.claims()).toEqual(payload);
    expect(Object.isFrozen(tokens.claims())).toBe(true);
  });

  it('leaves claims() undefined when the response has no id_token', async () => {
    const tokens = await grant('');
    expect(tokens.claims()).toBeUndefined();
  });

  it.each<Case>([
    {
      name: 'aud array with the client id and azp = client id',
      token: () => sign(claims({ aud: [CLIENT_ID, 'api'], azp: CLIENT_ID })),
    },
    { name: 'aud array holding only the client id, no azp', token: () => sign(claims({ aud: [CLIENT_ID] })) },
    { name: 'azp equal to the client id', token: () => sign(claims({ azp: CLIENT_ID })) },
    {
      name: 'HS256 keyed with the client_secret when HS256 is registered (§10.1)',
      token: () => sign(claims(), { alg: 'HS256', key: new TextEncoder().encode(CLIENT_SECRET) }),
      metadata: { id_token_signed_response_alg: 'HS256' },
    },
    {
      name: `exp ${TOLERANCE - 1} s ago, within the clock tolerance`,
      token: () => sign(claims({ exp: NOW - TOLERANCE + 1 })),
    },
    { name: 'fractional exp', token: () => sign(claims({ exp: NOW + 0.5 })) },
    {
      name: `iat ${TOLERANCE} s ahead, within the clock tolerance`,
      token: () => sign(claims({ iat: NOW + TOLERANCE })),
    },
    {
      name: 'nonce sent and echoed',
      token: () => sign(claims({ nonce: 'n-0S6_WzA2Mj' })),
      options: { nonce: 'n-0S6_WzA2Mj' },
    },
    { name: 'nonce returned but none sent (ignored)', token: () => sign(claims({ nonce: 'n-unrequested' })) },
    {
      name: 'max_age 300 and auth_time exactly at max_age + tolerance',
      token: () => sign(claims({ auth_time: NOW - 300 - TOLERANCE })),
      options: { maxAgeSeconds: 300 },
    },
    {
      name: 'correct at_hash, RS256 (SHA-256)',
      token: () => sign(claims({ at_hash: atHash(ACCESS_TOKEN, 'sha256') })),
    },
    {
      name: 'correct at_hash, ES384 (SHA-384)',
      token: () =>
        sign(claims({ at_hash: atHash(ACCESS_TOKEN, 'sha384') }), {
          alg: 'ES384',
          kid: 'ec-1',
          key: ec384.privateKey,
        }),
      metadata: { id_token_signed_response_alg: 'ES384' },
    },
  ])('accepts $name', async ({ token, options, metadata }) => {
    const payload = await token();
    const tokens = await grant(payload, options, newClient(metadata));
    expect(tokens.claims()).toMatchObject({ iss: server.url, sub: 'user-1' });
  });
});

describe('rejected ID Tokens (§3.1.3.7)', () => {
  it.each<Case & { check: string }>([
    // 1. signature
    { name: 'a tampered payload', token: tampered, check: 'signature' },
    {
      name: 'HS256 keyed with the RSA public key when HS256 is registered',
      token: hmacWithPublicKey,
      metadata: { id_token_signed_response_alg: 'HS256' },
      check: 'signature',
    },
    {
      name: 'HS256 keyed with another secret',
      token: () => sign(claims(), { alg: 'HS256', key: new TextEncoder().encode('not-the-client-secret') }),
      metadata: { id_token_signed_response_alg: 'HS256' },
      check: 'signature',
    },
    // 2. iss
    { name: 'iss with a trailing slash', token: () => sign(claims({ iss: `${server.url}/` })), check: 'iss' },
    {
      name: 'iss of another issuer',
      token: () => sign(claims({ iss: 'https://other.example.com' })),
      check: 'iss',
    },
    { name: 'no iss', token: () => sign(claims({ iss: undefined })), check: 'iss' },
    // 3. aud
    { name: 'aud of another client', token: () => sign(claims({ aud: 'c2' })), check: 'aud' },
    {
      name: 'aud array without the client id',
      token: () => sign(claims({ aud: ['c2', 'api'] })),
      check: 'aud',
    },
    {
      name: 'an extra audience and no azp',
      token: () => sign(claims({ aud: [CLIENT_ID, 'api'] })),
      check: 'aud',
    },
    // 4. azp
    { name: 'azp of another client', token: () => sign(claims({ azp: 'c2' })), check: 'azp' },
    {
      name: 'an extra audience and azp of another client',
      token: () => sign(claims({ aud: [CLIENT_ID, 'c2'], azp: 'c2' })),
      check: 'azp',
    },
    // 5. alg
    { name: 'alg none', token: async () => unsigned({ alg: 'none', typ: 'JWT' }, claims()), check: 'alg' },
    { name: 'HS256 keyed with the RSA public key (RS256 expected)', token: hmacWithPublicKey, check: 'alg' },
    {
      name: 'RS256 when HS256 is registered',
      token: () => sign(claims()),
      metadata: { id_token_signed_response_alg: 'HS256' },
      check: 'alg',
    },
    {
      name: 'ES384 when RS256 is expected',
      token: () => sign(claims(), { alg: 'ES384', kid: 'ec-1', key: ec384.privateKey }),
      check: 'alg',
    },
    // 7. exp / iat
    {
      name: `exp exactly ${TOLERANCE} s ago (the tolerance)`,
      token: () => sign(claims({ exp: NOW - TOLERANCE })),
      check: 'exp',
    },
    { name: 'exp an hour ago', token: () => sign(claims({ exp: NOW - 3600 })), check: 'exp' },
    {
      name: `iat ${TOLERANCE + 1} s ahead`,
      token: () => sign(claims({ iat: NOW + TOLERANCE + 1 })),
      check: 'iat',
    },
    { name: 'no sub', token: () => sign(claims({ sub: undefined })), check: 'sub' },
    // 8. nonce
    {
      name: 'nonce sent, none returned',
      token: () => sign(claims()),
      options: { nonce: 'n-0S6_WzA2Mj' },
      check: 'nonce',
    },
    {
      name: 'nonce sent, another returned',
      token: () => sign(claims({ nonce: 'n-other' })),
      options: { nonce: 'n-0S6_WzA2Mj' },
      check: 'nonce',
    },
    {
      name: 'nonce sent, returned in another case',
      token: () => sign(claims({ nonce: 'N-0S6_WZA2MJ' })),
      options: { nonce: 'n-0S6_WzA2Mj' },
      check: 'nonce',
    },
    // 9. auth_time
    {
      name: 'max_age requested, no auth_time',
      token: () => sign(claims()),
      options: { maxAgeSeconds: 300 },
      check: 'auth_time',
    },
    {
      name: 'max_age requested, auth_time one second too old',
      token: () => sign(claims({ auth_time: NOW - 300 - TOLERANCE - 1 })),
      options: { maxAgeSeconds: 300 },
      check: 'auth_time',
    },
    // 10. at_hash
    {
      name: 'at_hash of another access token',
      token: () => sign(claims({ at_hash: atHash('another-token', 'sha256') })),
      check: 'at_hash',
    },
    {
      name: 'ES384 with an at_hash computed with SHA-256',
      token: () =>
        sign(claims({ at_hash: atHash(ACCESS_TOKEN, 'sha256') }), {
          alg: 'ES384',
          kid: 'ec-1',
          key: ec384.privateKey,
        }),
      metadata: { id_token_signed_response_alg: 'ES384' },
      check: 'at_hash',
    },
    // 14. JWE without decryption configured
    { name: 'a JWE (5 parts)', token: encrypted, check: 'decrypt' },
    { name: 'not a JWT at all', token: async () => 'not-a-jwt', check: 'format' },
  ])('rejects $name → check $check', async ({ token, options, metadata, check }) => {
    const error = await rejection(grant(await token(), options, newClient(metadata)));
    expectIdTokenError(error, check);
  });
});

describe('at_hash with EdDSA (§3.1.3.8: Ed25519 → SHA-512)', () => {
  // Regression: the hash was picked by the last three characters of `alg`, so `Ed25519` asked
  // node:crypto for "sha519" and a raw Error escaped instead of a result or an IdTokenError.
  it.each(['EdDSA', 'Ed25519'])('checks at_hash of an %s token with SHA-512', async (alg) => {
    const client = (): Client => newClient({ id_token_signed_response_alg: alg });
    const signing = { alg, kid: 'ed-1', key: ed25519.privateKey };
    const good = await sign(claims({ at_hash: atHash(ACCESS_TOKEN, 'sha512') }), signing);
    await expect(grant(good, {}, client())).resolves.toMatchObject({ access_token: ACCESS_TOKEN });
    const bad = await sign(claims({ at_hash: atHash(ACCESS_TOKEN, 'sha256') }), signing);
    expectIdTokenError(await rejection(grant(bad, {}, client())), 'at_hash');
  });
});

describe('JWKS refetch on an unknown kid (§10.1.1)', () => {
  async function signedWithRotatedKey(iat: number): Promise<string> {
    return sign(claims({ iat, exp: iat + 300 }), { kid: 'rotated-1', key: rotated.privateKey });
  }

  it('refetches exactly once after the cooldown, then fails; no refetch again within the cooldown', async () => {
    const client = newClient();
    const before = jwksRequests();
    await grant(await sign(claims()), {}, client);
    expect(jwksRequests() - before).toBe(1);

    jest.setSystemTime(NOW_MS + COOLDOWN_MS + 1_000);
    expectIdTokenError(await rejection(grant(await signedWithRotatedKey(NOW + 31), {}, client)), 'signature');
    expect(jwksRequests() - before).toBe(2);

    jest.setSystemTime(NOW_MS + COOLDOWN_MS + 10_000);
    expectIdTokenError(await rejection(grant(await signedWithRotatedKey(NOW + 40), {}, client)), 'signature');
    expect(jwksRequests() - before).toBe(2);
  });

  it('fails without a second fetch when the first fetch of a new client lacks the kid', async () => {
    const client = newClient();
    const before = jwksRequests();
    expectIdTokenError(await rejection(grant(await signedWithRotatedKey(NOW), {}, client)), 'signature');
    expectIdTokenError(await rejection(grant(await signedWithRotatedKey(NOW), {}, client)), 'signature');
    expect(jwksRequests() - before).toBe(1);
  });

  it('picks up a rotated key with the one refetch', async () => {
    const client = newClient();
    const before = jwksRequests();
    await grant(await sign(claims()), {}, client);
    const previous = publishedKeys;
    publishedKeys = [...previous, { ...(await exportJWK(rotated.publicKey)), kid: 'rotated-1', use: 'sig' }];
    try {
      jest.setSystemTime(NOW_MS + COOLDOWN_MS + 1_000);
      const tokens = await grant(await signedWithRotatedKey(NOW + 31), {}, client);
      expect(tokens.claims()).toMatchObject({ sub: 'user-1' });
      expect(jwksRequests() - before).toBe(2);
    } finally {
      publishedKeys = previous;
    }
  });
});
