/**
 * TokenManager lifecycle: acquisition, expiry boundaries, single-flight, refresh with rotation,
 * failures, the background scheduler, revocation, stores and events.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { inspect } from 'node:util';
import { Client, OAuthError, TokenManager, TokenManagerError, TokenStoreError } from '@tessera/core';
import type { TokenSet, TokenStore } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { MemoryTokenStore } from '../src/memory-token-store.js';
import { rejection } from './support/test-helpers.js';
import { expectNoSecrets, onEveryEvent } from './support/events.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

/** Records every event a manager emits, in order. */
function record(manager: TokenManager): Array<{ name: string; payload: Record<string, unknown> }> {
  const seen: Array<{ name: string; payload: Record<string, unknown> }> = [];
  onEveryEvent(manager, (name, payload) => seen.push({ name, payload: payload as Record<string, unknown> }));
  return seen;
}

const T0 = Date.UTC(2030, 0, 1);

/** Lets I/O and timers run until `done()` holds (at most a few thousand turns of the event loop). */
async function until(done: () => boolean): Promise<void> {
  for (let turn = 0; !done(); turn++) {
    if (turn > 5000) throw new Error('condition not reached');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('with a scripted token endpoint', () => {
  let server: FakeServer;
  let script: Handler[] = [];
  let issued = 0;
  const tokenReply =
    (extra: Record<string, unknown> = {}): Handler =>
    (_r, res) => {
      issued += 1;
      json(res, 200, { access_token: `at-${issued}`, token_type: 'Bearer', expires_in: 3600, ...extra });
    };
  let clock = T0;
  const now = () => clock;

  beforeAll(async () => {
    server = await startFakeServer({
      '/token': (req, res) => (script.shift() ?? tokenReply())(req, res),
      '/revoke': (_r, res) => raw(res, 200, ''),
    });
  });
  afterAll(() => server.close());
  beforeEach(() => {
    script = [];
    issued = 0;
    clock = T0;
    server.requests.length = 0;
  });

  // A long timeout: under fake timers, advancing the clock must not time out a request in flight.
  const newClient = () =>
    new Client(
      {
        issuer: server.url,
        token_endpoint: `${server.url}/token`,
        revocation_endpoint: `${server.url}/revoke`,
      },
      { client_id: 'svc', client_secret: 'svc-secret', token_endpoint_auth_method: 'client_secret_post' },
      { retry: { retries: 0 }, timeoutMs: 24 * 3600_000 },
    );
  const tokenRequests = () => server.requestsTo('/token').length;

  describe('machine-to-machine with a grant', () => {
    it('acquires once, then serves from the cache', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const events = record(manager);
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      expect(tokenRequests()).toBe(1);
      expect(events).toEqual([
        {
          name: 'token.acquired',
          payload: { key: 'default', expiresAt: T0 / 1000 + 3600, grantType: 'client_credentials' },
        },
      ]);
      await manager.close();
    });

    it('computes parameters for each acquisition (e.g. a fresh jwt-bearer assertion)', async () => {
      let n = 0;
      const manager = new TokenManager({
        client: newClient(),
        grant: {
          type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
          parameters: async () => ({ assertion: `a-${++n}`, scope: 'api' }),
        },
        now,
      });
      const events = record(manager);
      await manager.getValidAccessToken();
      clock += 3600_000;
      await manager.getValidAccessToken();
      expect(server.requestsTo('/token').map((r) => r.form.get('assertion'))).toEqual(['a-1', 'a-2']);
      expect(events[0]).toMatchObject({
        payload: { scope: 'api', grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer' },
      });
      await manager.close();
    });

    it('1,000 concurrent callers share one request', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const tokens = await Promise.all(Array.from({ length: 1000 }, () => manager.getValidAccessToken()));
      expect(new Set(tokens)).toEqual(new Set(['at-1']));
      expect(tokenRequests()).toBe(1);
      await manager.close();
    });

    it('different keys do not wait for each other', async () => {
      const parked: Array<() => void> = [];
      script = [
        (req, res) => new Promise<void>((resolve) => parked.push(() => (tokenReply()(req, res), resolve()))),
        tokenReply(),
      ];
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const slow = manager.for('slow', { grant: 'client_credentials' }).getValidAccessToken();
      while (tokenRequests() < 1) await new Promise((r) => setImmediate(r));
      await expect(manager.for('fast', { grant: 'client_credentials' }).getValidAccessToken()).resolves.toBe(
        'at-1',
      );
      parked.forEach((release) => release());
      await expect(slow).resolves.toBe('at-2');
      await manager.close();
    });

    it.each([
      ['exactly the skew left: still used', 60, 1],
      ['one second more than the skew: still used', 61, 1],
      ['one second less than the skew: still served, and renewed behind it', 59, 2],
      ['one second left: still served, and renewed behind it', 1, 2],
    ])('%s', async (_name, secondsLeft, requests) => {
      const manager = new TokenManager({
        client: newClient(),
        grant: 'client_credentials',
        now,
        refreshSkewSeconds: 60,
      });
      await manager.getValidAccessToken();
      clock = T0 + (3600 - secondsLeft) * 1000;
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      await until(() => tokenRequests() === requests);
      await manager.close(); // waits for the renewal in flight
      expect(tokenRequests()).toBe(requests);
    });

    it('callers holding a still-valid token never wait for a hung refresh (regression: they waited for it)', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const events = record(manager);
      await manager.getValidAccessToken();
      clock = T0 + 3590_000; // inside the skew, not expired
      let release: (() => void) | undefined;
      script = [(r, res) => new Promise<void>((done) => (release = () => done(void tokenReply()(r, res))))];
      const served = await Promise.all(Array.from({ length: 100 }, () => manager.getValidAccessToken()));
      expect(new Set(served)).toEqual(new Set(['at-1'])); // while the refresh hangs
      await until(() => release !== undefined);
      expect(tokenRequests()).toBe(2); // one renewal behind them all
      release!();
      await until(() => events.filter((e) => e.name === 'token.acquired').length === 2);
      await expect(manager.getValidAccessToken()).resolves.toBe('at-2');
      await manager.close();
    });

    it('an expired token makes callers wait for the renewal', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      await manager.getValidAccessToken();
      clock = T0 + 3600_000;
      await expect(manager.getValidAccessToken()).resolves.toBe('at-2');
      await manager.close();
    });

    it('uses a token without expires_in until it is rejected', async () => {
      script = [(_r, res) => json(res, 200, { access_token: 'forever', token_type: 'Bearer' })];
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      await manager.getValidAccessToken();
      clock += 365 * 24 * 3600_000;
      await expect(manager.getValidAccessToken()).resolves.toBe('forever');
      expect(tokenRequests()).toBe(1);
      await manager.close();
    });

    it('a transient failure serves the still-valid token, backs off, and does not clear', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const events = record(manager);
      await manager.getValidAccessToken();
      clock = T0 + 3590_000; // inside the skew, not expired
      script = [(_r, res) => raw(res, 503, 'maintenance')];
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      await until(() => events.some((e) => e.name === 'refresh.failed'));
      const failed = events.find((e) => e.name === 'refresh.failed')!;
      expect(failed.payload).toMatchObject({ key: 'default', cleared: false });
      expect(failed.payload.retryInMs).toBeGreaterThan(0);
      // within the backoff: served without another request
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      expect(tokenRequests()).toBe(2);
      await expect(manager.getTokens()).resolves.toMatchObject({ accessToken: 'at-1' });
      // forced refresh still reports the failure to its caller
      script = [(_r, res) => raw(res, 502, 'bad gateway')];
      expect(await rejection(manager.refreshTokens())).toMatchObject({ code: 'HTTP_ERROR', status: 502 });
      await manager.close();
    });

    it('an expired token and a transient failure rejects, and reports token.expired', async () => {
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
      const events = record(manager);
      await manager.getValidAccessToken();
      clock = T0 + 3601_000;
      script = [(_r, res) => raw(res, 503, '')];
      expect(await rejection(manager.getValidAccessToken())).toMatchObject({ code: 'HTTP_ERROR' });
      expect(events.map((e) => e.name)).toEqual(['token.acquired', 'token.expired', 'refresh.failed']);
      expect(events[1]!.payload).toEqual({ key: 'default', expiredAt: T0 / 1000 + 3600 });
    });
  });

  describe('user tokens kept alive by their refresh token', () => {
    const stored = {
      access_token: 'user-at',
      token_type: 'bearer',
      expires_in: 600,
      refresh_token: 'rt-1',
      scope: 'openid api',
    };

    it('storeTokens keeps a token set and emits token.stored', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      const events = record(manager);
      const tokens = await manager.storeTokens(stored);
      expect(tokens).toMatchObject({
        accessToken: 'user-at',
        tokenType: 'Bearer',
        refreshToken: 'rt-1',
        expiresAt: T0 / 1000 + 600,
      });
      expect(events).toEqual([
        {
          name: 'token.stored',
          payload: { key: 'default', expiresAt: T0 / 1000 + 600, scope: 'openid api' },
        },
      ]);
      expect(inspect(tokens)).not.toContain('rt-1');
      await manager.close();
    });

    it('a refresh without a new refresh_token keeps the old one; a rotated one replaces it', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      const events = record(manager);
      await manager.storeTokens(stored);
      script = [tokenReply(), tokenReply({ refresh_token: 'rt-2' })];
      clock += 600_000;
      await manager.getValidAccessToken();
      expect(await manager.getTokens()).toMatchObject({
        accessToken: 'at-1',
        refreshToken: 'rt-1',
        scope: 'openid api',
      });
      clock += 3600_000;
      await manager.getValidAccessToken();
      expect(await manager.getTokens()).toMatchObject({ accessToken: 'at-2', refreshToken: 'rt-2' });
      expect(server.requestsTo('/token').map((r) => r.form.get('refresh_token'))).toEqual(['rt-1', 'rt-1']);
      const refreshed = events.filter((e) => e.name === 'token.refreshed').map((e) => e.payload.rotated);
      expect(refreshed).toEqual([false, true]);
      await manager.close();
    });

    it('invalid_grant clears the key, emits token.cleared and rejects with the OAuthError', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      const events = record(manager);
      await manager.storeTokens(stored);
      script = [(_r, res) => json(res, 400, { error: 'invalid_grant' })];
      const error = await rejection(manager.refreshTokens());
      expect(error).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({ error: 'invalid_grant' });
      await expect(manager.getTokens()).resolves.toBeUndefined();
      expect(events.map((e) => e.name)).toEqual(['token.stored', 'token.cleared', 'refresh.failed']);
      expect(events[1]!.payload).toEqual({ key: 'default', reason: 'invalid_grant' });
      expect(events[2]!.payload).toMatchObject({ cleared: true });
      await manager.close();
    });

    it('another error (invalid_client) keeps the tokens', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      await manager.storeTokens(stored);
      script = [(_r, res) => json(res, 401, { error: 'invalid_client' })];
      expect(await rejection(manager.refreshTokens())).toMatchObject({ error: 'invalid_client' });
      await expect(manager.getTokens()).resolves.toMatchObject({ refreshToken: 'rt-1' });
      await manager.close();
    });

    it('without tokens or a grant: TokenManagerError NO_TOKENS, no request', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      expect(await rejection(manager.getValidAccessToken())).toMatchObject({
        name: 'TokenManagerError',
        code: 'NO_TOKENS',
        key: 'default',
      });
      expect(tokenRequests()).toBe(0);
      await manager.close();
    });

    it('revokeTokens revokes the refresh token first, then the access token, and clears', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      const events = record(manager);
      await manager.storeTokens(stored);
      const results = await manager.revokeTokens();
      expect(results).toEqual([
        { tokenTypeHint: 'refresh_token', revoked: true },
        { tokenTypeHint: 'access_token', revoked: true },
      ]);
      expect(
        server.requestsTo('/revoke').map((r) => [r.form.get('token'), r.form.get('token_type_hint')]),
      ).toEqual([
        ['rt-1', 'refresh_token'],
        ['user-at', 'access_token'],
      ]);
      await expect(manager.getTokens()).resolves.toBeUndefined();
      expect(events.slice(1).map((e) => e.name)).toEqual(['token.revoked', 'token.cleared']);
      expectNoSecrets(
        events.map((e) => e.payload),
        ['rt-1', 'user-at', 'svc-secret'],
      );
      await manager.close();
    });

    it('clearTokens forgets the key without a request', async () => {
      const manager = new TokenManager({ client: newClient(), now });
      const events = record(manager);
      await manager.storeTokens(stored);
      await manager.clearTokens();
      await expect(manager.getTokens()).resolves.toBeUndefined();
      expect(events.at(-1)).toEqual({ name: 'token.cleared', payload: { key: 'default', reason: 'manual' } });
      expect(tokenRequests()).toBe(0);
      await manager.close();
    });
  });

  describe('stores', () => {
    it('works with a plain user object that has only get, set and delete', async () => {
      const map = new Map<string, TokenSet>();
      const store: TokenStore = {
        get: async (key) => map.get(key),
        set: async (key, tokens) => void map.set(key, tokens),
        delete: async (key) => void map.delete(key),
      };
      const manager = new TokenManager({
        client: newClient(),
        grant: 'client_credentials',
        store,
        now,
        namespace: '',
      });
      await manager.getValidAccessToken();
      expect(JSON.parse(JSON.stringify(map.get('default')))).toMatchObject({
        accessToken: 'at-1',
        tokenType: 'Bearer',
      });
      // without a change feed the store is read every time: an outside change is seen at once
      map.set('default', { accessToken: 'outside', tokenType: 'Bearer', expiresAt: T0 / 1000 + 3600 });
      await expect(manager.getValidAccessToken()).resolves.toBe('outside');
      await manager.close();
    });

    it('a failing store rejects with TokenStoreError and emits store.failed, never treats the key as empty', async () => {
      const store: TokenStore = {
        get: async () => {
          throw new Error('connection lost');
        },
        set: async () => undefined,
        delete: async () => undefined,
      };
      const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', store, now });
      const events = record(manager);
      const error = await rejection(manager.getValidAccessToken());
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ code: 'STORE_ERROR', operation: 'get' });
      expect(events).toEqual([
        { name: 'store.failed', payload: { key: 'default', operation: 'get', error } },
      ]);
      expect(tokenRequests()).toBe(0);
      await manager.close();
    });

    it('sees a change another manager makes to a shared store (change feed invalidates the near-cache)', async () => {
      const store = new MemoryTokenStore();
      const a = new TokenManager({ client: newClient(), grant: 'client_credentials', store, now });
      const b = new TokenManager({ client: newClient(), grant: 'client_credentials', store, now });
      await expect(a.getValidAccessToken()).resolves.toBe('at-1');
      await expect(b.getValidAccessToken()).resolves.toBe('at-1');
      await b.refreshTokens();
      await new Promise((r) => setImmediate(r));
      await expect(a.getValidAccessToken()).resolves.toBe('at-2');
      expect(tokenRequests()).toBe(2);
      await Promise.all([a.close(), b.close()]);
      await store.close();
    });
  });

  describe('autoRefresh', () => {
    beforeEach(() => {
      jest.useFakeTimers({ now: T0, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    });
    afterEach(() => {
      jest.useRealTimers();
    });

    it('refreshes every key before expiry with one timer, and close() stops it', async () => {
      const manager = new TokenManager({
        client: newClient(),
        grant: 'client_credentials',
        autoRefresh: { aheadSeconds: 120 },
      });
      const events = record(manager);
      await Promise.all(
        ['a', 'b', 'c'].map((key) => manager.for(key, { grant: 'client_credentials' }).getValidAccessToken()),
      );
      // one scheduler timer for every key, plus the process-wide coarse clock of the hot path
      expect(jest.getTimerCount()).toBe(2);
      // at most 10% of 3600 s (capped at 30 s) jitter on top of 120 s ahead
      await jest.advanceTimersByTimeAsync((3600 - 120 - 30) * 1000 - 1);
      expect(events.filter((e) => e.name === 'token.acquired')).toHaveLength(3);
      await jest.advanceTimersByTimeAsync(30_001);
      while (events.filter((e) => e.name === 'token.acquired').length < 6)
        await new Promise((r) => setImmediate(r));
      expect(tokenRequests()).toBe(6);
      expect(jest.getTimerCount()).toBe(2);
      await manager.close();
      expect(jest.getTimerCount()).toBe(0);
    });

    it('retries a transient failure with backoff', async () => {
      const manager = new TokenManager({
        client: newClient(),
        grant: 'client_credentials',
        autoRefresh: true,
        retry: { minDelayMs: 1000, maxDelayMs: 8000 },
      });
      const events = record(manager);
      await manager.getValidAccessToken();
      script = [(_r, res) => raw(res, 503, ''), tokenReply()];
      await jest.advanceTimersByTimeAsync(3600_000 - 60_000);
      while (!events.some((e) => e.name === 'refresh.failed')) await new Promise((r) => setImmediate(r));
      const { retryInMs } = events.find((e) => e.name === 'refresh.failed')!.payload as { retryInMs: number };
      expect(retryInMs).toBeGreaterThanOrEqual(500);
      expect(retryInMs).toBeLessThanOrEqual(1000);
      await jest.advanceTimersByTimeAsync(retryInMs);
      while (!events.some((e) => e.name === 'token.acquired' && e !== events[0]))
        await new Promise((r) => setImmediate(r));
      await expect(manager.getValidAccessToken()).resolves.toBe('at-2');
      await manager.close();
    });
  });

  it('close() makes later calls fail and is idempotent', async () => {
    const manager = new TokenManager({ client: newClient(), grant: 'client_credentials', now });
    await manager.close();
    await manager.close();
    const closed = await rejection(manager.getValidAccessToken());
    expect(closed).toBeInstanceOf(TokenManagerError);
    expect(closed).toMatchObject({ code: 'CLOSED', key: 'default' });
  });
});

describe('against the real authorization server', () => {
  let server: TestServer;
  let client: Client;

  beforeAll(async () => {
    server = await startTestServer({ accessTokenTtlSeconds: 300 });
    client = await Client.discover(server.issuer, server.clients.basic);
  });
  afterAll(() => server.close());

  it('acquires, introspects and revokes with events that carry no token values', async () => {
    const manager = new TokenManager({
      client,
      grant: { type: 'client_credentials', parameters: { scope: 'api:read' } },
    });
    const events = record(manager);
    const token = await manager.getValidAccessToken();
    await expect(manager.introspectToken()).resolves.toMatchObject({ active: true, scope: 'api:read' });
    const results = await manager.revokeTokens();
    expect(results).toEqual([{ tokenTypeHint: 'access_token', revoked: true }]);
    await expect(manager.introspectToken(token)).resolves.toEqual({ active: false });
    expect(events.map((e) => e.name)).toEqual([
      'token.acquired',
      'token.introspected',
      'token.revoked',
      'token.cleared',
      'token.introspected',
    ]);
    expectNoSecrets(
      events.map((e) => e.payload),
      [token, server.clients.basic.client_secret!],
    );
    await manager.close();
  });

  it('refreshes a stored user token with rotation', async () => {
    const manager = new TokenManager({ client, refreshSkewSeconds: 600 }); // every token is "expiring"
    const events = record(manager);
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    await manager.storeTokens(issued as never);
    // Still valid: served at once, and refreshed behind it.
    await expect(manager.getValidAccessToken()).resolves.toBe(issued.access_token);
    await until(() => events.some((e) => e.name === 'token.refreshed'));
    const token = await manager.getValidAccessToken();
    expect(token).not.toBe(issued.access_token);
    const refreshed = events.find((e) => e.name === 'token.refreshed')!;
    expect(refreshed.payload).toMatchObject({ key: 'default', rotated: true });
    expect(typeof refreshed.payload.durationMs).toBe('number');
    expectNoSecrets(
      events.map((e) => e.payload),
      [issued.access_token, issued.refresh_token!, token],
    );
    await manager.close();
  });

  it('two managers sharing a locking store refresh a rotating token exactly once', async () => {
    const store = new MemoryTokenStore();
    const options = { client, store };
    const managers = [new TokenManager(options), new TokenManager(options)];
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    // 30 s left: inside the 60 s skew, so every caller wants a refresh
    await managers[0]!.storeTokens({ ...issued, expires_in: 30 } as never);
    server.resetStats();
    const failures: unknown[] = [];
    for (const m of managers) m.on('refresh.failed', (e) => failures.push(e.error));
    const refreshed: unknown[] = [];
    for (const m of managers) m.on('token.refreshed', (e) => refreshed.push(e));
    // Still valid: every caller is served at once, and the refresh runs behind them, once.
    const served = await Promise.all(
      managers.flatMap((m) => Array.from({ length: 50 }, () => m.getValidAccessToken())),
    );
    expect(new Set(served)).toEqual(new Set([issued.access_token]));
    await until(() => refreshed.length === 1);
    const tokens = await Promise.all(
      managers.flatMap((m) => Array.from({ length: 50 }, () => m.getValidAccessToken())),
    );
    await Promise.all(managers.map((m) => m.close()));
    expect(server.stats().token).toBe(1);
    expect(failures).toEqual([]);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(issued.access_token);
    await store.close();
  });
});
