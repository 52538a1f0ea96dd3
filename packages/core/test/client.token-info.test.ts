/**
 * Client.tokenInfo: OA4MP's admin token listing (the token-info extension grant), against a local
 * server answering as OA4MP does (its JSON, its `error="..."` line format, duplicates, milliseconds).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { Client, ConfigurationError, OAuthError, ResponseError } from '@tessera/core';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';

const GRANT = 'urn:oa4mp:params:oauth:grant-type:token-info';
const ISSUED_MS = 1_654_791_499_644;

let server: FakeServer;
let client: Client;
beforeAll(async () => {
  server = await startFakeServer();
  client = new Client(
    {
      issuer: server.url,
      token_endpoint: `${server.url}/oauth2/token`,
      grant_types_supported: ['authorization_code', 'refresh_token', 'web', GRANT],
    },
    {
      client_id: 'admin:1',
      client_secret: 'admin secret',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1 } },
  );
});
afterAll(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
});

const wireToken = (jti: string, token: string, isValid = true) => ({
  is_valid: isValid,
  lifetime: 300_000,
  issued_at: ISSUED_MS,
  jti,
  token,
});

const LISTING = {
  user_uid: 'http://cilogon.org/serverT/users/21340363',
  clients: [
    {
      client_id: 'cilogon:/client_id/1',
      transactions: [
        {
          code: 'https://host/oauth2/abc?type=authzGrant',
          tokens: [
            {
              access_token: wireToken('at-1', 'eyJ.access.one'),
              refresh_token: wireToken('rt-1', 'eyJ.refresh.one'),
            },
            { refresh_token: wireToken('rt-2', 'eyJ.refresh.two', false) }, // only a refresh token, invalid
          ],
        },
        // OA4MP may repeat a transaction
        {
          code: 'https://host/oauth2/abc?type=authzGrant',
          tokens: [{ access_token: wireToken('at-1', 'eyJ.access.one') }],
        },
      ],
    },
  ],
};

describe('Client.tokenInfo', () => {
  it('POSTs the grant with exactly one token and Basic admin credentials, and parses the listing', async () => {
    server.on('/oauth2/token', (_request, response) => json(response, 200, LISTING));
    const listing = await client.tokenInfo({ access_token: 'users-token' });
    const [request] = server.requestsTo('/oauth2/token');
    expect(request!.method).toBe('POST');
    expect(Object.fromEntries(request!.form)).toEqual({ grant_type: GRANT, access_token: 'users-token' });
    expect(request!.headers.authorization).toMatch(/^Basic /);
    expect(listing.userUid).toBe(LISTING.user_uid);
    const [only] = listing.clients;
    expect(only!.clientId).toBe('cilogon:/client_id/1');
    expect(only!.transactions).toHaveLength(1); // the repeated transaction merged
    expect(only!.transactions[0]!.tokens).toEqual([
      {
        kind: 'access_token',
        isValid: true,
        issuedAt: 1_654_791_499,
        expiresAt: 1_654_791_799,
        jti: 'at-1',
        token: 'eyJ.access.one',
      },
      {
        kind: 'refresh_token',
        isValid: true,
        issuedAt: 1_654_791_499,
        expiresAt: 1_654_791_799,
        jti: 'rt-1',
        token: 'eyJ.refresh.one',
      },
      {
        kind: 'refresh_token',
        isValid: false,
        issuedAt: 1_654_791_499,
        expiresAt: 1_654_791_799,
        jti: 'rt-2',
        token: 'eyJ.refresh.two',
      },
    ]);
    expect(Object.isFrozen(only!.transactions[0]!.tokens[0])).toBe(true);
  });

  it('sends the parameters in the query with method GET', async () => {
    server.on('/oauth2/token', (_request, response) => json(response, 200, LISTING));
    await client.tokenInfo({ refresh_token: 'users-refresh' }, { method: 'GET' });
    const [request] = server.requestsTo('/oauth2/token');
    expect(request!.method).toBe('GET');
    expect(request!.body).toBe('');
    expect(request!.headers['content-type']).toBeUndefined();
  });

  it.each([
    ['both tokens', { access_token: 'a', refresh_token: 'r' }],
    ['no token', {}],
    ['an empty token', { access_token: '' }],
  ])('refuses %s before sending anything', async (_case, token) => {
    await expect(client.tokenInfo(token as never)).rejects.toBeInstanceOf(ConfigurationError);
    expect(server.requests).toHaveLength(0);
  });

  it('needs client_secret_basic', async () => {
    const post = new Client(
      { issuer: server.url, token_endpoint: `${server.url}/oauth2/token` },
      { client_id: 'x', client_secret: 'y', token_endpoint_auth_method: 'client_secret_post' },
    );
    await expect(post.tokenInfo({ access_token: 't' })).rejects.toThrow(/client_secret_basic/);
  });

  it("turns OA4MP's line-format 500 into an OAuthError with the decoded description, not retried", async () => {
    server.on('/oauth2/token', (_request, response) =>
      raw(response, 500, 'error="server_error"\nerror_description="token%20is%20expired%20or%20invalid"\n'),
    );
    const error = await client.tokenInfo({ access_token: 'users-token' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({
      error: 'server_error',
      error_description: 'token is expired or invalid',
      status: 500,
    });
    expect(server.requestsTo('/oauth2/token')).toHaveLength(1);
  });

  it('turns the 400 line-format unauthorized_client and a JSON invalid_request into OAuthErrors', async () => {
    server.on('/oauth2/token', (_request, response) =>
      raw(response, 400, 'error="unauthorized_client"\nerror_description="unknown%20client"'),
    );
    await expect(client.tokenInfo({ access_token: 't' })).rejects.toMatchObject({
      error: 'unauthorized_client',
      status: 400,
    });
    server.on('/oauth2/token', (_request, response) =>
      json(response, 400, { error: 'invalid_request', error_description: 'too many client identifiers' }),
    );
    await expect(client.tokenInfo({ access_token: 't' })).rejects.toMatchObject({
      error: 'invalid_request',
      error_description: 'too many client identifiers',
    });
  });

  it('names the failing field of a listing of the wrong shape', async () => {
    server.on('/oauth2/token', (_request, response) =>
      json(response, 200, {
        user_uid: 'u',
        clients: [
          {
            client_id: 'c',
            transactions: [
              { code: 'x', tokens: [{ access_token: { ...wireToken('j', 't'), lifetime: '300' } }] },
            ],
          },
        ],
      }),
    );
    const error = await client.tokenInfo({ access_token: 't' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ResponseError);
    expect((error as ResponseError).field).toBe('clients.0.transactions.0.tokens.0.access_token.lifetime');
  });

  it('shows [redacted] for every token in inspect and JSON output, and keeps the presented token out of errors', async () => {
    server.on('/oauth2/token', (_request, response) => json(response, 200, LISTING));
    const listing = await client.tokenInfo({ access_token: 'users-token' });
    for (const text of [inspect(listing, { depth: 10 }), JSON.stringify(listing)]) {
      expect(text).not.toMatch(/eyJ\.(access|refresh)/);
      expect(text).toContain('[redacted]');
      expect(text).toContain('at-1');
    }
    server.on('/oauth2/token', (_request, response) =>
      raw(response, 500, 'error="server_error"\nerror_description="bad%20token%20users-secret-token"'),
    );
    const error = await client
      .tokenInfo({ access_token: 'users-secret-token' }, { method: 'GET' })
      .catch((e: unknown) => e);
    for (const text of [(error as Error).message, JSON.stringify(error), inspect(error)]) {
      expect(text).not.toContain('users-secret-token');
    }
  });

  it('reads a discovery document listing web and the token-info grant', () => {
    expect(client.serverMetadata().grant_types_supported).toContain(GRANT);
  });
});
