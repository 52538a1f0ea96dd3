/**
 * Client.tokenInfo end to end: the test server (oidc-provider) answers OA4MP's token-info grant for
 * its admin client, listing the tokens it holds for a user across clients.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, OAuthError } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';

let server: TestServer;
let admin: Client;
beforeAll(async () => {
  server = await startTestServer();
  admin = await Client.discover(server.issuer, server.clients.admin);
});
afterAll(() => server.close());

describe('tokenInfo against the test server', () => {
  it("lists a user's tokens across clients, from any of the user's tokens", async () => {
    const viaBasic = await server.issueUserTokens('basic', { accountId: 'carol' });
    const viaPost = await server.issueUserTokens('post', { accountId: 'carol' });
    await server.issueUserTokens('basic', { accountId: 'dave' }); // someone else
    {
      const listing = await admin.tokenInfo({ access_token: viaBasic.access_token });
      expect(listing.userUid).toBe('carol');
      const byClient = new Map(listing.clients.map((c) => [c.clientId, c]));
      expect([...byClient.keys()].sort()).toEqual(
        [server.clients.basic.client_id, server.clients.post.client_id].sort(),
      );
      const tokens = byClient.get(server.clients.basic.client_id)!.transactions.flatMap((t) => t.tokens);
      expect(tokens.map((t) => [t.kind, t.token]).sort()).toEqual(
        [
          ['access_token', viaBasic.access_token],
          ['refresh_token', viaBasic.refresh_token],
        ].sort(),
      );
      for (const token of tokens) {
        expect(token.isValid).toBe(true);
        expect(token.expiresAt).toBeGreaterThan(token.issuedAt);
        expect(token.expiresAt).toBeLessThan(Date.now() / 1000 + 100_000); // seconds, not milliseconds
      }
      const other = byClient.get(server.clients.post.client_id)!.transactions.flatMap((t) => t.tokens);
      expect(other.map((t) => t.token)).toContain(viaPost.refresh_token);
    }
    const fromRefresh = await admin.tokenInfo({ refresh_token: viaPost.refresh_token! });
    expect(fromRefresh.userUid).toBe('carol');
  });

  it('lists the same with GET, the parameters in the query, as OA4MP also takes them', async () => {
    const { access_token } = await server.issueUserTokens('basic', { accountId: 'fay' });
    const before = server.stats().token;
    const viaGet = await admin.tokenInfo({ access_token }, { method: 'GET' });
    const viaPost = await admin.tokenInfo({ access_token });
    expect(server.stats().token).toBe(before + 2);
    expect(viaGet.userUid).toBe('fay');
    expect(JSON.stringify(structuredClone(viaGet))).toBe(JSON.stringify(structuredClone(viaPost)));
  });

  it('answers a revoked token with a 500 in the line format, and refuses a client that is no admin', async () => {
    const { access_token } = await server.issueUserTokens('basic', { accountId: 'erin' });
    const basic = await Client.discover(server.issuer, server.clients.basic);
    await expect(basic.tokenInfo({ access_token })).rejects.toBeInstanceOf(OAuthError); // the grant is not allowed for it
    await basic.tokenRevocation(access_token, { token_type_hint: 'access_token' });
    const error = await admin.tokenInfo({ access_token }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({
      error: 'server_error',
      status: 500,
      error_description: 'the token is invalid or expired',
    });
  });

  it('advertises the grant in its metadata', () => {
    expect(admin.serverMetadata().grant_types_supported).toContain(
      'urn:oa4mp:params:oauth:grant-type:token-info',
    );
  });
});
