import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { Client, ConfigurationError } from '@tessera/core';
import type { ClientMetadata, ClientOptions, ServerMetadata } from '@tessera/core';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';

let server: FakeServer;
let metadata: ServerMetadata;

beforeAll(async () => {
  server = await startFakeServer({
    '/token': (_req, res) => json(res, 200, { access_token: 'at-1', token_type: 'Bearer', expires_in: 60 }),
  });
  metadata = { issuer: server.url, token_endpoint: `${server.url}/token` };
});
afterAll(() => server.close());

async function lastTokenRequest(client: Client) {
  await client.clientCredentialsGrant();
  return server.requests.at(-1)!;
}

function basicCredentials(header: string | undefined): string {
  expect(header).toMatch(/^Basic /);
  return Buffer.from(header!.slice('Basic '.length), 'base64').toString('utf8');
}

describe('client_secret_basic (RFC 6749 §2.3.1)', () => {
  it('matches a verified RFC 6749 §2.3.1 test vector', async () => {
    const client = new Client(metadata, {
      client_id: '1PpG/Q 1',
      client_secret: 'z/tZ9VwFZqApmIQ+ZH1I5pLk/uB4ud:X2/8bL+wfFTt1rFw=',
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const request = await lastTokenRequest(client);
    expect(request.headers.authorization).toBe(
      'Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndmRlR0MXJGdyUzRA==',
    );
    expect(request.form.has('client_secret')).toBe(false);
  });

  it('form-encodes a secret with reserved and non-ASCII characters before base64', async () => {
    const secret = 'p@ss+w/rd:%~ é';
    const client = new Client(metadata, { client_id: 'svc:a b', client_secret: secret });
    const credentials = basicCredentials((await lastTokenRequest(client)).headers.authorization);
    expect(credentials).toBe('svc%3Aa+b:p%40ss%2Bw%2Frd%3A%25%7E+%C3%A9');
    // What a conforming server does: split at the first ':' and form-decode each side.
    const [id, pass] = credentials.split(':').map((part) => new URLSearchParams(`v=${part}`).get('v'));
    expect([id, pass]).toEqual(['svc:a b', secret]);
  });

  it('sends plain base64(id:secret) in raw mode', async () => {
    const client = new Client(
      metadata,
      { client_id: 'a b', client_secret: 'x+y/z', token_endpoint_auth_method: 'client_secret_basic' },
      { basicAuthEncoding: 'raw' },
    );
    expect(basicCredentials((await lastTokenRequest(client)).headers.authorization)).toBe('a b:x+y/z');
  });
});

describe('client_secret_post', () => {
  it('puts both values in the body, never in the URL or a header', async () => {
    const client = new Client(metadata, {
      client_id: 'c1',
      client_secret: 'p@ss+w/rd',
      token_endpoint_auth_method: 'client_secret_post',
    });
    const request = await lastTokenRequest(client);
    expect(request.headers.authorization).toBeUndefined();
    expect(request.form.get('client_id')).toBe('c1');
    expect(request.form.get('client_secret')).toBe('p@ss+w/rd');
    expect(request.path).toBe('/token');
    expect(request.headers['content-type']).toMatch(/^application\/x-www-form-urlencoded/);
    expect(request.headers.accept).toBe('application/json');
  });
});

describe('none (public clients)', () => {
  it('sends only client_id', async () => {
    const client = new Client(metadata, { client_id: 'public-1', token_endpoint_auth_method: 'none' });
    const request = await lastTokenRequest(client);
    expect(request.headers.authorization).toBeUndefined();
    expect([...request.form.keys()].sort()).toEqual(['client_id', 'grant_type']);
  });
});

describe('JWT client assertions (RFC 7523 §2.2, OpenID Connect Core §9)', () => {
  const assertionOf = (form: URLSearchParams) => {
    expect(form.get('client_assertion_type')).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    return form.get('client_assertion')!;
  };

  it('client_secret_jwt: HS256 keyed with the secret, aud the issuer as one string, fresh jti each time', async () => {
    const secret = 'a-long-shared-secret-of-32-bytes!!';
    const client = new Client(metadata, {
      client_id: 'c-jwt',
      client_secret: secret,
      token_endpoint_auth_method: 'client_secret_jwt',
    });
    const first = assertionOf((await lastTokenRequest(client)).form);
    const second = assertionOf((await lastTokenRequest(client)).form);
    const { payload, protectedHeader } = await jwtVerify(first, new TextEncoder().encode(secret), {
      issuer: 'c-jwt',
      subject: 'c-jwt',
    });
    expect(protectedHeader.alg).toBe('HS256');
    expect(payload.aud).toBe(server.url);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
    const secondPayload = (await jwtVerify(second, new TextEncoder().encode(secret))).payload;
    expect(secondPayload.jti).not.toBe(payload.jti);
  });

  it('private_key_jwt: signed with the private JWK, kid in the header', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk: JWK = { ...(await exportJWK(privateKey)), kid: 'key-1' };
    const client = new Client(
      metadata,
      { client_id: 'c-pk', token_endpoint_auth_method: 'private_key_jwt' },
      { privateKey: jwk },
    );
    const request = await lastTokenRequest(client);
    const assertion = assertionOf(request.form);
    expect(decodeProtectedHeader(assertion)).toMatchObject({ alg: 'ES256', kid: 'key-1' });
    const { payload } = await jwtVerify(assertion, publicKey, {
      issuer: 'c-pk',
      subject: 'c-pk',
      audience: server.url,
    });
    expect(typeof payload.jti).toBe('string');
    expect(request.form.get('client_id')).toBe('c-pk');
  });

  it('private_key_jwt: a CryptoKey works and the endpoint audience can be chosen', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const client = new Client(
      metadata,
      { client_id: 'c-pk2', token_endpoint_auth_method: 'private_key_jwt' },
      { privateKey, clientAssertionAudience: 'endpoint' },
    );
    const assertion = assertionOf((await lastTokenRequest(client)).form);
    const { payload, protectedHeader } = await jwtVerify(assertion, publicKey);
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload.aud).toBe(`${server.url}/token`);
  });
});

describe('choosing a method from token_endpoint_auth_methods_supported', () => {
  it.each<[string, string[] | undefined, ClientMetadata, ClientOptions, string]>([
    [
      'absent list means client_secret_basic (RFC 8414 §2)',
      undefined,
      { client_id: 'c', client_secret: 's' },
      {},
      'client_secret_basic',
    ],
    [
      'only post supported',
      ['client_secret_post'],
      { client_id: 'c', client_secret: 's' },
      {},
      'client_secret_post',
    ],
    ['public client', ['none', 'client_secret_basic'], { client_id: 'c' }, {}, 'none'],
    [
      'private key preferred over the secret',
      ['client_secret_basic', 'private_key_jwt'],
      { client_id: 'c', client_secret: 's' },
      { privateKey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'd' } },
      'private_key_jwt',
    ],
  ])('%s', (_name, supported, client, options, expected) => {
    const server = {
      ...metadata,
      ...(supported ? { token_endpoint_auth_methods_supported: supported } : {}),
    };
    expect(new Client(server, client, options).authMethod).toBe(expected);
  });

  it.each<[string, string[], ClientMetadata, ClientOptions]>([
    ['no shared method', ['private_key_jwt'], { client_id: 'c', client_secret: 's' }, {}],
    [
      'registered method without its credential',
      ['client_secret_basic'],
      { client_id: 'c', token_endpoint_auth_method: 'client_secret_basic' },
      {},
    ],
    [
      'tls_client_auth without a certificate',
      ['tls_client_auth'],
      { client_id: 'c', token_endpoint_auth_method: 'tls_client_auth' },
      {},
    ],
  ])('%s is a ConfigurationError', (_name, supported, client, options) => {
    const construct = () =>
      new Client({ ...metadata, token_endpoint_auth_methods_supported: supported }, client, options);
    expect(construct).toThrow(ConfigurationError);
    try {
      construct();
    } catch (error) {
      expect((error as ConfigurationError).code).toBe('INVALID_CONFIGURATION');
      expect((error as Error).message).not.toContain("'s'");
    }
  });
});
