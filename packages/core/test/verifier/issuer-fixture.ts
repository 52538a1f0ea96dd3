/**
 * A local issuer for the verifier's edge cases: a node:http server publishing a JWKS (which a test
 * can change, break or slow down) and answering introspection as told, plus helpers that sign RFC
 * 9068 access tokens with its keys. Real servers (oidc-provider) are used where they can produce the
 * case; this is for what they do not (wrong typ, alg none, unknown kid, an endpoint that is down).
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK, JWTPayload } from 'jose';
import { expect } from '@jest/globals';
import { Client, TokenVerificationError, TokenVerifier, accessTokenHash } from '@tessera/core';
import type { ClientOptions, TokenVerifierOptions } from '@tessera/core';
import { json, startFakeServer } from '../support/fake-server.js';
import type { FakeServer, RecordedRequest } from '../support/fake-server.js';

export const AUDIENCE = 'https://rs.example.com/';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function signingKey(
  alg: 'RS256' | 'ES256' | 'PS256' = 'RS256',
  kid: string = randomUUID(),
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

export interface Issuer {
  server: FakeServer;
  issuer: string;
  client: Client;
  keys: SigningKey[];
  /** What the JWKS endpoint answers: the public keys by default. */
  jwks: (request: RecordedRequest, response: http.ServerResponse) => void;
  /** What introspection answers. */
  introspect: (request: RecordedRequest, response: http.ServerResponse) => void;
  jwksRequests(): number;
  introspectionRequests(): number;
  /** Forgets the recorded requests and puts the default JWKS and introspection answers back. */
  reset(): void;
  /** An RFC 9068 access token signed with `key` (default the first), with claims overridable. */
  sign(claims?: Partial<JWTPayload> & Record<string, unknown>, options?: SignOptions): Promise<string>;
  close(): Promise<void>;
}

export interface SignOptions {
  key?: SigningKey;
  header?: Record<string, unknown>;
  /** Claims to leave out. */
  omit?: string[];
  nowSeconds?: number;
}

export async function startIssuer(
  options: { clientOptions?: ClientOptions; keys?: SigningKey[] } = {},
): Promise<Issuer> {
  const keys = options.keys ?? [await signingKey()];
  const state = {} as Issuer;
  const server = await startFakeServer({
    '/jwks': (request, response) => state.jwks(request, response),
    '/introspect': (request, response) => state.introspect(request, response),
  });
  const issuer = `${server.url}/`;
  const client = new Client(
    {
      issuer,
      jwks_uri: `${server.url}/jwks`,
      introspection_endpoint: `${server.url}/introspect`,
      token_endpoint: `${server.url}/token`,
    },
    { client_id: 'rs', client_secret: 'rs-secret', token_endpoint_auth_method: 'client_secret_basic' },
    { retry: { retries: 0 }, timeoutMs: 2000, ...options.clientOptions },
  );
  const defaultJwks = (_request: RecordedRequest, response: http.ServerResponse) =>
    json(response, 200, { keys: state.keys.map((key) => key.publicJwk) });
  const defaultIntrospect = (_request: RecordedRequest, response: http.ServerResponse) =>
    json(response, 200, { active: false });
  Object.assign(state, {
    server,
    issuer,
    client,
    keys,
    jwks: defaultJwks,
    introspect: defaultIntrospect,
    reset() {
      server.requests.length = 0;
      state.jwks = defaultJwks;
      state.introspect = defaultIntrospect;
    },
    jwksRequests: () => server.requestsTo('/jwks').length,
    introspectionRequests: () => server.requestsTo('/introspect').length,
    async sign(claims: Record<string, unknown> = {}, signOptions: SignOptions = {}) {
      const key = signOptions.key ?? state.keys[0]!;
      const now = signOptions.nowSeconds ?? Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer,
        sub: '5ba552d67',
        aud: AUDIENCE,
        exp: now + 300,
        iat: now,
        jti: randomUUID(),
        client_id: 's6BhdRkqt3',
        scope: 'openid profile reademail',
        ...claims,
      };
      for (const name of signOptions.omit ?? []) delete payload[name];
      return new SignJWT(payload as JWTPayload)
        .setProtectedHeader({ typ: 'at+jwt', alg: key.alg, kid: key.kid, ...signOptions.header } as never)
        .sign(key.privateKey);
    },
    close: () => server.close(),
  });
  return state;
}

/** A JWT with any header and payload and the given signature segment (for alg none and the like). */
export function unsignedJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  signature = '',
): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(payload)}.${signature}`;
}

/** A verifier of `issuer`'s tokens for {@link AUDIENCE}, on the test's clock. */
export function verifierOf(
  issuer: Issuer,
  now: () => number,
  options: Partial<TokenVerifierOptions> = {},
): TokenVerifier {
  return new TokenVerifier({ client: issuer.client, audience: AUDIENCE, now, ...options });
}

/** The TokenVerificationError a promise rejects with (fails the test if it resolves or rejects otherwise). */
export async function refusal(promise: Promise<unknown>): Promise<TokenVerificationError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenVerificationError);
  return error as TokenVerificationError;
}

/** A client's DPoP key: its public JWK, its RFC 7638 thumbprint (a token's `cnf.jkt`), and proofs. */
export interface DPoPKey {
  jwk: JWK;
  jkt: string;
  /** A proof for GET `htu` presenting `token`, made at `iat` (epoch seconds, default now). */
  proof(token: string, htu: string, iat?: number): Promise<string>;
}

export async function dpopKey(): Promise<DPoPKey> {
  const keys = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(keys.publicKey);
  const jwk = { kty, crv, x, y } as JWK;
  return {
    jwk,
    jkt: await calculateJwkThumbprint(jwk),
    proof: (token, htu, iat = Math.floor(Date.now() / 1000)) =>
      new SignJWT({ htm: 'GET', htu, iat, jti: randomUUID(), ath: accessTokenHash(token) })
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk })
        .sign(keys.privateKey),
  };
}
