/**
 * The Client against a real authorization server (oidc-provider through @tessera/testing).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt } from 'jose';
import { Client, IdTokenError, OAuthError } from '@tessera/core';
import type { ClientOptions } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestClient, TestServer } from '@tessera/testing';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ accessTokenTtlSeconds: 60 });
});
afterAll(() => server.close());

function optionsFor(client: TestClient): ClientOptions {
  return client.privateJwk === undefined
    ? {}
    : { privateKey: client.privateJwk as ClientOptions['privateKey'] };
}

const confidential = ['basic', 'post', 'secretJwt', 'privateKeyJwt'] as const;

describe.each(confidential)('client authentication %s', (name) => {
  let client: Client;
  beforeAll(async () => {
    const registered = server.clients[name];
    client = await Client.discover(server.issuer, registered, optionsFor(registered));
    expect(client.authMethod).toBe(registered.token_endpoint_auth_method);
  });

  it('gets a client credentials token, introspects it active, revokes it, then it is inactive', async () => {
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    expect(tokens).toMatchObject({ token_type: 'Bearer', scope: 'api:read' });
    expect(tokens.expiresIn()).toBeGreaterThan(50);

    const active = await client.tokenIntrospection(tokens.access_token, { token_type_hint: 'access_token' });
    expect(active).toMatchObject({
      active: true,
      client_id: server.clients[name].client_id,
      scope: 'api:read',
    });

    await client.tokenRevocation(tokens.access_token, { token_type_hint: 'access_token' });
    await expect(client.tokenIntrospection(tokens.access_token)).resolves.toStrictEqual({ active: false });
  });
});

describe('discovery', () => {
  it('finds the metadata and the capabilities', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    for (const capability of [
      'introspection',
      'revocation',
      'device_authorization',
      'backchannel_authentication',
      'dpop',
      'jwt_introspection',
      'client_credentials',
      'refresh_token',
    ] as const) {
      expect([capability, client.supports(capability)]).toEqual([capability, true]);
    }
  });

  it('rejects the issuer with a trailing slash added', async () => {
    await expect(Client.discover(`${server.issuer}/`, server.clients.basic)).rejects.toMatchObject({
      code: 'INVALID_RESPONSE',
      field: 'issuer',
    });
  });
});

describe('user tokens: refresh with rotation and ID Tokens', () => {
  let client: Client;
  beforeAll(async () => {
    client = await Client.discover(server.issuer, server.clients.basic);
  });

  it('refreshes, validates the new id_token, rotates the refresh token, and refuses the old one', async () => {
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    expect(issued.refresh_token).toBeDefined();

    const refreshed = await client.refreshTokenGrant(issued.refresh_token!);
    expect(refreshed.refresh_token).toBeDefined();
    expect(refreshed.refresh_token).not.toBe(issued.refresh_token);
    const claims = refreshed.claims();
    expect(claims).toMatchObject({ iss: server.issuer, aud: server.clients.basic.client_id, sub: 'alice' });

    const reuse = await client.refreshTokenGrant(issued.refresh_token!).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(OAuthError);
    expect(reuse).toMatchObject({ error: 'invalid_grant', status: 400 });
  });

  it('narrows the scope on refresh (RFC 6749 §6)', async () => {
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    const refreshed = await client.refreshTokenGrant(issued.refresh_token!, { scope: 'openid' });
    expect(refreshed.scope).toBe('openid');
  });

  it('introspects and revokes a refresh token', async () => {
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    await expect(
      client.tokenIntrospection(issued.refresh_token!, { token_type_hint: 'refresh_token' }),
    ).resolves.toMatchObject({
      active: true,
      sub: 'alice',
    });
    await client.tokenRevocation(issued.refresh_token!, { token_type_hint: 'refresh_token' });
    await expect(client.tokenIntrospection(issued.refresh_token!)).resolves.toStrictEqual({ active: false });
    await expect(client.refreshTokenGrant(issued.refresh_token!)).rejects.toMatchObject({
      error: 'invalid_grant',
    });
  });

  it('rejects an id_token whose signature the client is not configured for', async () => {
    const strict = await Client.discover(server.issuer, {
      ...server.clients.basic,
      id_token_signed_response_alg: 'ES384',
    });
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    const error = await strict.refreshTokenGrant(issued.refresh_token!).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdTokenError);
    expect(error).toMatchObject({ check: 'alg' });
  });
});

describe('introspection responses as signed JWTs (RFC 9701)', () => {
  it('verifies the server-signed response', async () => {
    const client = await Client.discover(server.issuer, server.clients.jwtIntrospection);
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    const result = await client.tokenIntrospection(tokens.access_token);
    expect(result).toMatchObject({
      active: true,
      client_id: server.clients.jwtIntrospection.client_id,
      scope: 'api:read',
    });
    await client.tokenRevocation(tokens.access_token);
    await expect(client.tokenIntrospection(tokens.access_token)).resolves.toStrictEqual({ active: false });
  });
});

describe('errors from the real server', () => {
  it('a wrong secret is invalid_client', async () => {
    const client = await Client.discover(server.issuer, { ...server.clients.basic, client_secret: 'wrong' });
    await expect(client.clientCredentialsGrant()).rejects.toMatchObject({
      code: 'OAUTH_ERROR',
      error: 'invalid_client',
      status: 401,
    });
  });

  it('an unknown client is invalid_client', async () => {
    const client = await Client.discover(server.issuer, {
      client_id: 'nobody',
      client_secret: 'x',
      token_endpoint_auth_method: 'client_secret_post',
    });
    await expect(client.clientCredentialsGrant()).rejects.toMatchObject({
      error: 'invalid_client',
      status: 401,
    });
  });

  it('an unsupported extension grant is an OAuthError', async () => {
    const client = await Client.discover(server.issuer, server.clients.post);
    await expect(
      client.genericGrantRequest('urn:ietf:params:oauth:grant-type:jwt-bearer', { assertion: 'a.b.c' }),
    ).rejects.toBeInstanceOf(OAuthError);
  });
});

describe('JWT access tokens (RFC 9068)', () => {
  let jwtServer: TestServer;
  beforeAll(async () => {
    jwtServer = await startTestServer({ accessTokenFormat: 'jwt' });
  });
  afterAll(() => jwtServer.close());

  it('issues a JWT for the API resource', async () => {
    const client = await Client.discover(jwtServer.issuer, jwtServer.clients.basic);
    const tokens = await client.clientCredentialsGrant({
      scope: 'api:read',
      resource: jwtServer.apiResource,
    });
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      iss: jwtServer.issuer,
      aud: jwtServer.apiResource,
    });
  });
});
