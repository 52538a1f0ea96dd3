/**
 * No token ever reaches a caller it was not obtained for: managers of different clients or grant
 * parameters sharing one store, a token set under the wrong key, and `for(key)` handles, which
 * never run the manager's grant. Against the real authorization server (oidc-provider).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Client,
  ConfigurationError,
  InternalError,
  MemoryTokenStore,
  TokenManager,
  TokenManagerError,
} from '@tessera/core';
import type { TesseraError } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { onEveryEvent } from './support/events.js';
import { plainStore, rejection } from './support/test-helpers.js';

let server: TestServer;
let basic: Client;
let post: Client;
beforeAll(async () => {
  server = await startTestServer();
  basic = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
  post = await Client.discover(server.issuer, server.clients.post, { retry: { retries: 0 } });
});
afterAll(() => server.close());

const managers: TokenManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
});
function track(manager: TokenManager): TokenManager {
  managers.push(manager);
  return manager;
}

const tokenRequests = (): number => server.stats().token;

describe('managers sharing one store', () => {
  it("of two clients never see each other's tokens (regression: the second got the first one's token set)", async () => {
    const store = plainStore();
    const a = track(new TokenManager({ client: basic, store, grant: 'client_credentials' }));
    const b = track(new TokenManager({ client: post, store, grant: 'client_credentials' }));
    server.resetStats();
    const tokenOfA = await a.getValidAccessToken();
    const tokenOfB = await b.getValidAccessToken();
    expect(tokenOfB).not.toBe(tokenOfA);
    expect(tokenRequests()).toBe(2);
    expect(store.data.size).toBe(2);
    expect((await a.introspectToken(tokenOfB)).client_id).toBe('post-client');
    expect((await b.getTokens())?.clientId).toBe('post-client');
  });

  it("of one client with different scopes never see each other's tokens", async () => {
    const store = new MemoryTokenStore();
    const read = track(
      new TokenManager({
        client: basic,
        store,
        grant: { type: 'client_credentials', parameters: { scope: 'api:read' } },
      }),
    );
    const write = track(
      new TokenManager({
        client: basic,
        store,
        grant: { type: 'client_credentials', parameters: { scope: 'api:write' } },
      }),
    );
    server.resetStats();
    const readToken = await read.getValidAccessToken();
    const writeToken = await write.getValidAccessToken();
    expect(writeToken).not.toBe(readToken);
    expect(tokenRequests()).toBe(2);
    expect((await read.getTokens())?.scope).toBe('api:read');
    expect((await write.getTokens())?.scope).toBe('api:write');
  });

  it("of one client with different resources or audiences never see each other's tokens", async () => {
    const store = plainStore();
    const grant = (audience: string) => ({
      type: 'client_credentials',
      parameters: { scope: 'api:read', audience },
    });
    const one = track(new TokenManager({ client: basic, store, grant: grant('https://one.example') }));
    const two = track(new TokenManager({ client: basic, store, grant: grant('https://two.example') }));
    await one.getValidAccessToken();
    await two.getValidAccessToken();
    expect(store.data.size).toBe(2);
  });

  it('with the same client and grant share their tokens (a fleet of one service: one request)', async () => {
    const store = plainStore();
    const grant = {
      type: 'client_credentials',
      parameters: { scope: 'api:read', audience: ['https://b', 'https://a'] },
    };
    const first = track(new TokenManager({ client: basic, store, grant }));
    // The same grant written differently: parameters in another order, as URLSearchParams.
    const second = track(
      new TokenManager({
        client: basic,
        store,
        grant: {
          type: 'client_credentials',
          parameters: new URLSearchParams([
            ['audience', 'https://a'],
            ['scope', 'api:read'],
            ['audience', 'https://b'],
          ]),
        },
      }),
    );
    const token = await first.getValidAccessToken();
    server.resetStats();
    await expect(second.getValidAccessToken()).resolves.toBe(token);
    expect(tokenRequests()).toBe(0);
    expect([...store.data.keys()]).toEqual([expect.stringMatching(/^[\w-]{12}:default$/)]);
  });

  it("keys are `${namespace}:${key}`, bare with namespace ''", async () => {
    const store = plainStore();
    const named = track(
      new TokenManager({ client: basic, store, grant: 'client_credentials', namespace: 'billing' }),
    );
    const bare = track(
      new TokenManager({ client: post, store, grant: 'client_credentials', namespace: '', key: 'svc' }),
    );
    await named.getValidAccessToken();
    await bare.getValidAccessToken();
    expect([...store.data.keys()].sort()).toEqual(['billing:default', 'svc']);
  });

  it("a token set of another client under the manager's key is refused: never served, never overwritten", async () => {
    const store = plainStore();
    const a = track(
      new TokenManager({ client: basic, store, grant: 'client_credentials', namespace: 'shared' }),
    );
    const b = track(
      new TokenManager({ client: post, store, grant: 'client_credentials', namespace: 'shared' }),
    );
    const tokenOfA = await a.getValidAccessToken();
    server.resetStats();
    const seen: string[] = [];
    onEveryEvent(b, (name) => seen.push(name));

    const refused = await rejection(b.getValidAccessToken());
    expect(refused).toBeInstanceOf(ConfigurationError);
    expect(refused).toMatchObject({ code: 'INVALID_CONFIGURATION' });
    expect(refused.message).toContain('"basic-client"');
    expect(refused.message).toContain('"post-client"');
    expect(refused.message).toContain('namespace');
    expect(refused.message).not.toContain(tokenOfA);
    await expect(b.getTokens()).rejects.toBeInstanceOf(ConfigurationError);
    await expect(b.refreshTokens()).rejects.toBeInstanceOf(ConfigurationError);
    expect(tokenRequests()).toBe(0);
    expect(seen).toEqual([]);
    expect(store.data.get('shared:default')?.accessToken).toBe(tokenOfA);
    await expect(a.getValidAccessToken()).resolves.toBe(tokenOfA);
  });

  it("a token set recording another issuer is refused, and so is an older set whose ID Token is another client's", async () => {
    const store = plainStore();
    const manager = track(new TokenManager({ client: basic, store, namespace: '' }));
    const future = Math.floor(Date.now() / 1000) + 3600;
    store.data.set('default', {
      accessToken: 'at-elsewhere',
      tokenType: 'Bearer',
      expiresAt: future,
      issuer: 'https://other.example',
      clientId: 'basic-client',
    });
    expect((await rejection(manager.getValidAccessToken())).message).toContain('"https://other.example"');

    const user = await server.issueUserTokens('post');
    store.data.set('default', {
      accessToken: 'at-legacy',
      tokenType: 'Bearer',
      expiresAt: future,
      idToken: user.id_token!,
    }); // no issuer, no clientId
    expect(await rejection(manager.getValidAccessToken())).toBeInstanceOf(ConfigurationError);

    const own = await server.issueUserTokens('basic');
    store.data.set('default', {
      accessToken: 'at-legacy-own',
      tokenType: 'Bearer',
      expiresAt: future,
      idToken: own.id_token!,
    });
    await expect(manager.getValidAccessToken()).resolves.toBe('at-legacy-own');
  });
});

describe('manager.for(key)', () => {
  it("without a grant of its own never runs the manager's grant: NO_TOKENS, no request (regression: it got a client-credentials token)", async () => {
    const manager = track(new TokenManager({ client: basic, grant: 'client_credentials' }));
    server.resetStats();
    const bob = manager.for('user:bob');
    const error = await rejection(bob.getValidAccessToken());
    expect(error).toBeInstanceOf(TokenManagerError);
    expect(error).toMatchObject({ code: 'NO_TOKENS', key: 'user:bob' });
    expect(error.message).toContain('manager.for(key, { grant })');
    expect(await rejection(bob.refreshTokens())).toMatchObject({ code: 'NO_TOKENS' });
    expect(await rejection(bob.introspectToken())).toMatchObject({ code: 'NO_TOKENS' });
    expect(
      (await bob.fetch('http://127.0.0.1:9/never').catch((e: unknown) => e)) as TesseraError,
    ).toMatchObject({ code: 'NO_TOKENS' });
    expect(tokenRequests()).toBe(0);

    // Stored user tokens are what such a handle serves.
    const user = await server.issueUserTokens('basic', { accountId: 'bob' });
    await bob.storeTokens(user as never);
    await expect(bob.getValidAccessToken()).resolves.toBe(user.access_token);
  });

  it('with a grant acquires its own tokens (multi-tenant machine tokens), under its own key and events', async () => {
    const store = plainStore();
    const manager = track(new TokenManager({ client: basic, store, grant: 'client_credentials' }));
    const acquired: Array<{ key: string; grantType: string; scope?: string }> = [];
    manager.on('token.acquired', ({ key, grantType, scope }) =>
      acquired.push({ key, grantType, ...(scope === undefined ? {} : { scope }) }),
    );
    const own = await manager.getValidAccessToken();
    const tenant = manager.for('tenant:acme', {
      grant: { type: 'client_credentials', parameters: { scope: 'api:write' } },
    });
    server.resetStats();
    const tenantToken = await tenant.getValidAccessToken();
    expect(tenantToken).not.toBe(own);
    expect(tokenRequests()).toBe(1);
    // A second handle for the same key and grant is the same key: no request.
    await expect(
      manager
        .for('tenant:acme', { grant: { type: 'client_credentials', parameters: { scope: 'api:write' } } })
        .getValidAccessToken(),
    ).resolves.toBe(tenantToken);
    expect(tokenRequests()).toBe(1);
    expect(acquired).toEqual([
      { key: 'default', grantType: 'client_credentials' },
      { key: 'tenant:acme', grantType: 'client_credentials', scope: 'api:write' },
    ]);
    expect(store.data.size).toBe(2);
  });

  it("for the manager's own key is the manager's own key, grant included", async () => {
    const manager = track(new TokenManager({ client: basic, grant: 'client_credentials' }));
    const token = await manager.getValidAccessToken();
    await expect(manager.for('default').getValidAccessToken()).resolves.toBe(token);
    expect(() =>
      manager.for('default', { grant: { type: 'client_credentials', parameters: { scope: 'api:write' } } }),
    ).toThrow(/the manager's own key/);
  });

  it('with an explicit namespace, one key cannot serve two grants', () => {
    const manager = track(new TokenManager({ client: basic, namespace: 'svc' }));
    manager.for('t', { grant: 'client_credentials' });
    expect(() =>
      manager.for('t', { grant: { type: 'client_credentials', parameters: { scope: 'api:read' } } }),
    ).toThrow(ConfigurationError);
    expect(() => manager.for('t')).toThrow(/already used with another grant/);
  });

  it('refuses a grant that cannot work, naming it', () => {
    const manager = track(new TokenManager({ client: basic }));
    expect(() => manager.for('x', { grant: { type: '' } })).toThrow(/TokenManager.for\("x"\) option grant/);
    expect(() => manager.for('x', { grant: 42 as never })).toThrow(ConfigurationError);
  });
});

describe('failure codes', () => {
  it('a grant whose parameters function throws is INTERNAL, with the original as its cause', async () => {
    const bug = new TypeError('cannot read properties of undefined');
    const manager = track(
      new TokenManager({
        client: basic,
        grant: {
          type: 'client_credentials',
          parameters: () => {
            throw bug;
          },
        },
      }),
    );
    const failures: TesseraError[] = [];
    manager.on('refresh.failed', ({ error }) => failures.push(error));
    const error = await rejection(manager.getValidAccessToken());
    expect(error).toBeInstanceOf(InternalError);
    expect(error).toMatchObject({ code: 'INTERNAL', cause: bug });
    expect(failures).toEqual([error]);
  });

  it('a call after close() is CLOSED, on every method of the manager and its handles', async () => {
    const manager = new TokenManager({ client: basic, grant: 'client_credentials' });
    const handle = manager.for('other');
    await manager.close();
    for (const call of [
      () => manager.getValidAccessToken(),
      () => manager.getTokens(),
      () => manager.refreshTokens(),
      () => manager.clearTokens(),
      () => manager.revokeTokens(),
      () => manager.introspectToken(),
      () => handle.getValidAccessToken(),
      () => handle.storeTokens({ access_token: 'x', token_type: 'Bearer' }),
    ]) {
      expect(await rejection(call())).toMatchObject({ name: 'TokenManagerError', code: 'CLOSED' });
    }
  });
});
