/**
 * TokenVerifier against a real authorization server (oidc-provider): RFC 9068 JWT access tokens
 * verified with the server's JWKS, opaque tokens introspected, DPoP-bound tokens with real proofs.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, TokenVerificationError, TokenVerifier, randomDPoPKeyPair } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';

const URL_ = 'https://api.tessera.test/orders';

describe('JWT access tokens (RFC 9068)', () => {
  let server: TestServer;
  let client: Client;
  beforeAll(async () => {
    server = await startTestServer({ accessTokenFormat: 'jwt' });
    client = await Client.discover(server.issuer, server.clients.basic);
  });
  afterAll(() => server.close());

  it('verifies a client credentials JWT locally: one JWKS fetch, no introspection, then cached', async () => {
    const verifier = new TokenVerifier({ client, audience: server.apiResource });
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    server.resetStats();
    const result = await verifier.verify(tokens.access_token);
    expect(result).toMatchObject({
      kind: 'jwt',
      scheme: 'Bearer',
      issuer: server.issuer,
      clientId: server.clients.basic.client_id,
      scopes: ['api:read'],
    });
    expect(result.expiresAt).toBe(result.claims.exp);
    for (let i = 0; i < 5; i++) await verifier.verify(tokens.access_token);
    expect(server.stats()).toMatchObject({ jwks: 1, introspection: 0 });
  });

  it('refuses a token for another audience, and needs requiredScopes', async () => {
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    const other = new TokenVerifier({ client, audience: 'https://other.example' });
    await expect(other.verify(tokens.access_token)).rejects.toMatchObject({
      reason: 'audience',
      status: 401,
      error: 'invalid_token',
    });
    const strict = new TokenVerifier({ client, audience: server.apiResource, requiredScopes: ['api:write'] });
    const error = await strict.verify(tokens.access_token).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenVerificationError);
    expect(error).toMatchObject({ reason: 'scope', status: 403, error: 'insufficient_scope' });
    expect((error as TokenVerificationError).wwwAuthenticate).toContain('scope="api:write"');
  });

  it('verifies a DPoP-bound JWT with a real proof, and refuses it as Bearer or with a replayed proof', async () => {
    const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: dpop });
    expect(tokens.token_type).toBe('DPoP');
    const verifier = new TokenVerifier({ client, audience: server.apiResource });
    const proof = await dpop.proof('GET', URL_, { accessToken: tokens.access_token });
    const result = await verifier.verify(tokens.access_token, { method: 'GET', url: URL_, dpopProof: proof });
    expect(result.scheme).toBe('DPoP');
    expect(result.cnf?.jkt).toEqual(expect.any(String));
    await expect(
      verifier.verify(tokens.access_token, { method: 'GET', url: URL_, dpopProof: proof }),
    ).rejects.toMatchObject({
      reason: 'dpop_proof',
      error: 'invalid_dpop_proof',
    });
    await expect(verifier.verify(tokens.access_token)).rejects.toMatchObject({
      reason: 'dpop_binding',
      error: 'invalid_token',
    });
  });

  it('refuses an ID Token of the same issuer and key (typ)', async () => {
    const { id_token } = await server.issueUserTokens('basic');
    const verifier = new TokenVerifier({ client, audience: server.clients.basic.client_id });
    await expect(verifier.verify(id_token!)).rejects.toMatchObject({ reason: 'malformed' });
  });
});

describe('opaque access tokens (introspection)', () => {
  let server: TestServer;
  let client: Client;
  beforeAll(async () => {
    server = await startTestServer();
    client = await Client.discover(server.issuer, server.clients.basic);
  });
  afterAll(() => server.close());

  it('introspects once per token, however many verify it at once, and answers from the cache after', async () => {
    const verifier = new TokenVerifier({ client, accept: ['introspection'] });
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    server.resetStats();
    const results = await Promise.all(
      Array.from({ length: 1000 }, () => verifier.verify(tokens.access_token)),
    );
    expect(new Set(results.map((r) => r.kind))).toEqual(new Set(['introspection']));
    expect(results[0]).toMatchObject({ scopes: ['api:read'], clientId: server.clients.basic.client_id });
    await verifier.verify(tokens.access_token);
    expect(server.stats().introspection).toBe(1);
  });

  it('forgets an evicted token at once: revoked at the server, refused on the next call', async () => {
    const verifier = new TokenVerifier({ client, accept: ['introspection'] });
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    await verifier.verify(tokens.access_token);
    await client.tokenRevocation(tokens.access_token);
    await expect(verifier.verify(tokens.access_token)).resolves.toMatchObject({ kind: 'introspection' }); // cached
    await verifier.evict(tokens.access_token);
    await expect(verifier.verify(tokens.access_token)).rejects.toMatchObject({
      reason: 'inactive',
      status: 401,
    });
  });
});
