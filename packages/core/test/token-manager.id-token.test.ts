/**
 * OpenID Connect Core §12.2 in the TokenManager: an ID Token in a refresh response must keep the
 * original's iss, sub and aud.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { Client, IdTokenError, TokenManager } from '@tessera/core';
import { rejection } from './support/test-helpers.js';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';

let server: FakeServer;
let privateKey: CryptoKey;
let nextSub = 'alice';

async function idToken(sub: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setIssuer(server.url)
    .setSubject(sub)
    .setAudience('app')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
}

beforeAll(async () => {
  const keys = await generateKeyPair('RS256');
  privateKey = keys.privateKey;
  const jwk = { ...(await exportJWK(keys.publicKey)), kid: 'k1' };
  server = await startFakeServer({
    '/jwks': (_r, res) => json(res, 200, { keys: [jwk] }),
    '/token': async (_r, res) =>
      json(res, 200, {
        access_token: `at-${nextSub}`,
        token_type: 'Bearer',
        expires_in: 300,
        refresh_token: 'rt-2',
        id_token: await idToken(nextSub),
      }),
  });
});
afterAll(() => server.close());

const client = () =>
  new Client(
    { issuer: server.url, token_endpoint: `${server.url}/token`, jwks_uri: `${server.url}/jwks` },
    { client_id: 'app', client_secret: 'secret', token_endpoint_auth_method: 'client_secret_post' },
  );

describe('ID Tokens in refresh responses', () => {
  it('the same subject: the new ID Token is stored', async () => {
    const manager = new TokenManager({ client: client() });
    await manager.storeTokens({
      access_token: 'at-0',
      token_type: 'Bearer',
      expires_in: 300,
      refresh_token: 'rt-1',
      id_token: await idToken('alice'),
    });
    nextSub = 'alice';
    const refreshed = await manager.refreshTokens();
    expect(refreshed).toMatchObject({ accessToken: 'at-alice', refreshToken: 'rt-2' });
    await manager.close();
  });

  it('another subject: IdTokenError, refresh.failed, and the stored tokens are kept', async () => {
    const manager = new TokenManager({ client: client() });
    const failures: unknown[] = [];
    manager.on('refresh.failed', (event) => failures.push(event));
    const original = await idToken('alice');
    await manager.storeTokens({
      access_token: 'at-0',
      token_type: 'Bearer',
      expires_in: 300,
      refresh_token: 'rt-1',
      id_token: original,
    });
    nextSub = 'mallory';
    const error = await rejection(manager.refreshTokens());
    expect(error).toBeInstanceOf(IdTokenError);
    expect(error).toMatchObject({ check: 'sub' });
    expect(failures).toEqual([expect.objectContaining({ key: 'default', cleared: false })]);
    await expect(manager.getTokens()).resolves.toMatchObject({
      accessToken: 'at-0',
      refreshToken: 'rt-1',
      idToken: original,
    });
    await manager.close();
  });
});
