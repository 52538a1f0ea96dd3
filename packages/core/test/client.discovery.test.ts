import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, ConfigurationError, ResponseError, wellKnownUrls } from '@tessera/core';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';
import { rejection } from './support/test-helpers.js';

describe('wellKnownUrls (RFC 8414 §3.1, OpenID Connect Discovery §4)', () => {
  it.each([
    [
      'https://as.example.com',
      [
        'https://as.example.com/.well-known/oauth-authorization-server',
        'https://as.example.com/.well-known/openid-configuration',
      ],
    ],
    [
      'https://as.example.com/',
      [
        'https://as.example.com/.well-known/oauth-authorization-server',
        'https://as.example.com/.well-known/openid-configuration',
      ],
    ],
    [
      'https://as.example.com/tenant1',
      [
        'https://as.example.com/.well-known/oauth-authorization-server/tenant1',
        'https://as.example.com/.well-known/openid-configuration/tenant1',
        'https://as.example.com/tenant1/.well-known/openid-configuration',
        'https://as.example.com/tenant1/.well-known/openid-configuration/',
      ],
    ],
    [
      'https://as.example.com/a/b/',
      [
        'https://as.example.com/.well-known/oauth-authorization-server/a/b',
        'https://as.example.com/.well-known/openid-configuration/a/b',
        'https://as.example.com/a/b/.well-known/openid-configuration',
        'https://as.example.com/a/b/.well-known/openid-configuration/',
      ],
    ],
  ])('%s', (issuer, expected) => {
    expect(wellKnownUrls(issuer)).toEqual(expected);
  });

  it.each([['https://as.example.com?x=1'], ['https://as.example.com#f'], ['not a url']])(
    'refuses %s',
    (issuer) => {
      expect(() => wellKnownUrls(issuer)).toThrow(ConfigurationError);
    },
  );
});

describe('Client.discover', () => {
  let server: FakeServer;
  const client = { client_id: 'c1', client_secret: 's1' };

  beforeAll(async () => {
    server = await startFakeServer();
  });
  afterAll(() => server.close());

  const document = (issuer: string, extra: Record<string, unknown> = {}) => ({
    issuer,
    token_endpoint: `${server.url}/token`,
    introspection_endpoint: `${server.url}/introspect`,
    grant_types_supported: ['web', 'client_credentials', 'refresh_token'],
    vendor_extension: { nested: true },
    ...extra,
  });

  it('uses RFC 8414 for an issuer without a path and keeps unknown members', async () => {
    server.on('/.well-known/oauth-authorization-server', (_r, res) => json(res, 200, document(server.url)));
    const discovered = await Client.discover(server.url, client);
    expect(discovered.serverMetadata()).toMatchObject({
      issuer: server.url,
      vendor_extension: { nested: true },
    });
    expect(discovered.supports('client_credentials')).toBe(true);
    expect(discovered.supports('introspection')).toBe(true);
    expect(discovered.supports('revocation')).toBe(false);
    expect(discovered.supports('device_authorization')).toBe(false);
    expect(discovered.authMethod).toBe('client_secret_basic'); // no list published → RFC 8414 §2 default
    expect(Object.isFrozen(discovered.serverMetadata())).toBe(true);
  });

  it('falls back in order for a path issuer: 404, 404, then OpenID Connect Discovery', async () => {
    const issuer = `${server.url}/realms/r1`;
    server.on('/realms/r1/.well-known/openid-configuration', (_r, res) => json(res, 200, document(issuer)));
    const before = server.requests.length;
    const discovered = await Client.discover(issuer, client);
    expect(discovered.serverMetadata().issuer).toBe(issuer);
    expect(server.requests.slice(before).map((r) => r.path)).toEqual([
      '/.well-known/oauth-authorization-server/realms/r1',
      '/.well-known/openid-configuration/realms/r1',
      '/realms/r1/.well-known/openid-configuration',
    ]);
  });

  it('uses the trailing-slash location documented by Edlink when the derived one is missing', async () => {
    const issuer = `${server.url}/api/authentication/oidc`;
    server.on('/api/authentication/oidc/.well-known/openid-configuration/', (_r, res) =>
      json(res, 200, document(issuer)),
    );
    await expect(Client.discover(issuer, client)).resolves.toBeInstanceOf(Client);
  });

  it('rejects an issuer that differs by a trailing slash', async () => {
    const issuer = `${server.url}/t2`;
    server.on('/.well-known/oauth-authorization-server/t2', (_r, res) =>
      json(res, 200, document(`${issuer}/`)),
    );
    const error = await Client.discover(issuer, client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResponseError);
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', field: 'issuer' });
  });

  it('rejects an issuer with a {tenantid} placeholder', async () => {
    const issuer = `${server.url}/common`;
    server.on('/.well-known/oauth-authorization-server/common', (_r, res) =>
      json(res, 200, document(`${server.url}/{tenantid}`)),
    );
    await expect(Client.discover(issuer, client)).rejects.toMatchObject({ field: 'issuer' });
  });

  it('a body that is not a JSON object is INVALID_RESPONSE', async () => {
    const issuer = `${server.url}/html`;
    server.on('/.well-known/oauth-authorization-server/html', (_r, res) =>
      raw(res, 200, '<html></html>', { 'content-type': 'text/html' }),
    );
    server.on('/.well-known/openid-configuration/html', (_r, res) => json(res, 200, ['not', 'an', 'object']));
    await expect(Client.discover(issuer, client)).rejects.toMatchObject({ code: 'INVALID_RESPONSE' });
  });

  it('a malformed member names the field', async () => {
    const issuer = `${server.url}/bad`;
    server.on('/.well-known/oauth-authorization-server/bad', (_r, res) =>
      json(res, 200, document(issuer, { token_endpoint_auth_methods_supported: 'client_secret_basic' })),
    );
    await expect(Client.discover(issuer, client)).rejects.toMatchObject({
      code: 'INVALID_RESPONSE',
      field: 'token_endpoint_auth_methods_supported',
    });
  });

  it('no location answering is HTTP_ERROR with the last status', async () => {
    await expect(Client.discover(`${server.url}/nowhere`, client)).rejects.toMatchObject({
      code: 'HTTP_ERROR',
      status: 404,
    });
  });

  it('refuses an http:// endpoint to a non-loopback host', async () => {
    const issuer = `${server.url}/insecure`;
    server.on('/.well-known/oauth-authorization-server/insecure', (_r, res) =>
      json(res, 200, document(issuer, { revocation_endpoint: 'http://as.example.com/revoke' })),
    );
    await expect(Client.discover(issuer, client)).rejects.toBeInstanceOf(ConfigurationError);
  });
});

describe('mtls_endpoint_aliases (RFC 8705 §5)', () => {
  const server = {
    issuer: 'https://as.example.com',
    token_endpoint: 'https://as.example.com/token',
    mtls_endpoint_aliases: { token_endpoint: 'https://mtls.as.example.com/token' },
  };

  it('are ignored by clients that do not use mutual TLS', async () => {
    const client = new Client(
      server,
      { client_id: 'c', token_endpoint_auth_method: 'none' },
      { timeoutMs: 50, retry: { retries: 0 } },
    );
    await expect(client.clientCredentialsGrant()).rejects.toMatchObject({ endpoint: 'token endpoint' });
    expect(client.supports('mtls')).toBe(true);
  });
});

describe('hostile nesting', () => {
  const deep = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;

  it('a discovery document nested 6,000 deep is INVALID_RESPONSE, not a raw RangeError (regression)', async () => {
    const fake = await startFakeServer();
    fake.on('/.well-known/oauth-authorization-server', (_r, res) =>
      raw(res, 200, `{"issuer":"${fake.url}","x":${deep(6000)}}`, { 'content-type': 'application/json' }),
    );
    fake.on('/.well-known/openid-configuration', (_r, res) => raw(res, 404, ''));
    const error = await rejection(
      Client.discover(
        fake.url,
        { client_id: 'c', token_endpoint_auth_method: 'none' },
        { retry: { retries: 0 } },
      ),
    );
    expect(error).toBeInstanceOf(ResponseError);
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE' });
    expect(error.message).toContain('nests deeper than 64 levels');
    await fake.close();
  });

  it('metadata handed to the constructor nested 20,000 deep is a ConfigurationError', () => {
    const metadata = { issuer: 'https://as.example', x: JSON.parse(deep(20_000)) as unknown };
    expect(
      () => new Client(metadata as never, { client_id: 'c', token_endpoint_auth_method: 'none' }),
    ).toThrow(ConfigurationError);
  });

  it('64 levels are still read', async () => {
    const fake = await startFakeServer();
    fake.on('/.well-known/oauth-authorization-server', (_r, res) =>
      raw(res, 200, `{"issuer":"${fake.url}","x":${deep(63)}}`, { 'content-type': 'application/json' }),
    );
    await expect(
      Client.discover(fake.url, { client_id: 'c', token_endpoint_auth_method: 'none' }),
    ).resolves.toBeInstanceOf(Client);
    await fake.close();
  });
});
