/**
 * Failures degrade gracefully: a store that goes down costs callers holding a valid token nothing
 * (they are served at once, the store is probed with backoff), and a refresh refused without an
 * OAuth error is retried once per backoff window, never on every call, and never clears a thing.
 * The clock is injected: "10 s" below are clock steps, not waits.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, ResponseError, TokenManager, TokenStoreError } from '@tessera/core';
import type { TesseraError, TokenSet, TokenStore } from '@tessera/core';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer } from './support/fake-server.js';
import { rejection } from './support/test-helpers.js';

const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);
let nowMs = T0;
const now = (): number => nowMs;

let tokenServer: FakeServer;
let client: Client;
beforeAll(async () => {
  tokenServer = await startFakeServer();
  client = new Client(
    { issuer: tokenServer.url, token_endpoint: `${tokenServer.url}/token` },
    { client_id: 'svc', client_secret: 'svc-secret' },
    { retry: { retries: 0 } },
  );
});
afterAll(() => tokenServer.close());

const managers: TokenManager[] = [];
afterEach(async () => {
  await Promise.all(managers.splice(0).map((m) => m.close()));
  nowMs = T0;
});
function track(manager: TokenManager): TokenManager {
  managers.push(manager);
  return manager;
}

/** Whether `promise` settles within the current turn of the event loop (nothing waited on I/O or a timer). */
async function settlesAtOnce(promise: Promise<unknown>): Promise<boolean> {
  return Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => setImmediate(() => resolve(false))),
  ]);
}

/** A plain store (no lock, no feed: every call reads it) that can be taken down, counting its calls. */
function switchableStore(mode: {
  down: false | 'refusing' | 'hanging';
}): TokenStore & { gets: number; sets: number; data: Map<string, TokenSet> } {
  const data = new Map<string, TokenSet>();
  const store = {
    data,
    gets: 0,
    sets: 0,
    async get(key: string) {
      store.gets += 1;
      if (mode.down === 'refusing') throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      if (mode.down === 'hanging') return new Promise<never>(() => undefined);
      return data.get(key);
    },
    async set(key: string, tokens: TokenSet) {
      store.sets += 1;
      if (mode.down !== false) throw new Error('connect ECONNREFUSED 127.0.0.1:6379');
      data.set(key, JSON.parse(JSON.stringify(tokens)) as TokenSet);
    },
    async delete(key: string) {
      data.delete(key);
    },
  };
  return store;
}

describe('a store that goes down', () => {
  it('for 10 s under a load of 1,000 calls: every call served at once, the store probed with backoff, normal again after', async () => {
    const mode: { down: false | 'refusing' | 'hanging' } = { down: false };
    const store = switchableStore(mode);
    const manager = track(new TokenManager({ client, store, now, namespace: '' }));
    const failures: Array<{ key: string; operation: string; error: TesseraError }> = [];
    manager.on('store.failed', (event) => failures.push(event));
    await manager.storeTokens({
      access_token: 'at-valid',
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: 'rt-1',
    });
    await manager.for('user:expired').storeTokens({
      access_token: 'at-expired',
      token_type: 'Bearer',
      expires_in: 1,
      refresh_token: 'rt-2',
    });

    mode.down = 'refusing';
    const getsBefore = store.gets;
    // The first call finds the store down (it waits for the refusal; with a store that hangs, for
    // storeTimeoutMs, see below). Calls made at the same moment each ask the store too.
    await expect(manager.getValidAccessToken()).resolves.toBe('at-valid');
    let served = 1;
    let servedAtOnce = 0;
    for (let step = 0; step < 100; step++) {
      nowMs += 100;
      // 10 calls every 100 ms of the clock, for 10 s
      const calls = Array.from({ length: step === 0 ? 9 : 10 }, () => manager.getValidAccessToken());
      if (await settlesAtOnce(Promise.all(calls))) servedAtOnce += calls.length;
      served += (await Promise.all(calls)).filter((token) => token === 'at-valid').length;
    }
    expect(served).toBe(1000);
    // Every later call was answered from memory at once, a probe of the store running behind some.
    expect(servedAtOnce).toBe(999);
    // Probes: the first failure, then one per backoff window (0.5-1 s, 1-2 s, 2-4 s, 4-8 s), not one per call.
    const probes = store.gets - getsBefore;
    expect(probes).toBeGreaterThanOrEqual(4);
    expect(probes).toBeLessThanOrEqual(6);
    expect(failures).toHaveLength(probes);
    expect(
      failures.every(
        (f) => f.key === 'default' && f.operation === 'get' && f.error instanceof TokenStoreError,
      ),
    ).toBe(true);

    // A key without a valid token cannot be served from memory: it fails at once, typed, no store call.
    const gets = store.gets;
    nowMs += 10;
    const expired = await rejection(manager.for('user:expired').getValidAccessToken());
    expect(expired).toBeInstanceOf(TokenStoreError);
    expect(expired.message).toMatch(/token store unavailable/);
    expect(store.gets).toBe(gets);
    expect(tokenServer.requestsTo('/token')).toHaveLength(0); // no refresh without the store

    // Back up: the next probe (behind a served call) ends the outage, and calls read the store again.
    mode.down = false;
    nowMs += 60_000;
    await expect(manager.getValidAccessToken()).resolves.toBe('at-valid');
    await new Promise((resolve) => setImmediate(resolve));
    const afterRecovery = store.gets;
    await expect(manager.getValidAccessToken()).resolves.toBe('at-valid');
    expect(store.gets).toBe(afterRecovery + 1);
    expect(failures).toHaveLength(probes);
  });

  it('by hanging: the first call waits for storeTimeoutMs, the ones after it do not', async () => {
    const mode: { down: false | 'refusing' | 'hanging' } = { down: false };
    const store = switchableStore(mode);
    const manager = track(new TokenManager({ client, store, now, namespace: '', storeTimeoutMs: 50 }));
    await manager.storeTokens({ access_token: 'at-valid', token_type: 'Bearer', expires_in: 3600 });
    mode.down = 'hanging';
    const first = manager.getValidAccessToken();
    expect(await settlesAtOnce(first)).toBe(false);
    await expect(first).resolves.toBe('at-valid'); // after the 50 ms bound: the last known token
    const gets = store.gets;
    const later = Promise.all(Array.from({ length: 1000 }, () => manager.getValidAccessToken()));
    expect(await settlesAtOnce(later)).toBe(true);
    expect(store.gets).toBe(gets);
  });

  it('calls that fail together start one outage of the first backoff step, not the longest', async () => {
    const mode: { down: false | 'refusing' | 'hanging' } = { down: false };
    const store = switchableStore(mode);
    const manager = track(
      new TokenManager({
        client,
        store,
        now,
        namespace: '',
        storeTimeoutMs: 50,
        retry: { minDelayMs: 1000, maxDelayMs: 60_000 },
      }),
    );
    const keys = Array.from({ length: 50 }, (_, i) => manager.for(`user:${i}`));
    for (const key of keys)
      await key.storeTokens({ access_token: `at-${key.key}`, token_type: 'Bearer', expires_in: 3600 });
    mode.down = 'hanging';
    await Promise.all(keys.map((key) => key.getValidAccessToken())); // 50 gets time out together
    mode.down = false;
    nowMs += 1001; // past the first window (at most 1 s)
    const gets = store.gets;
    await keys[0]!.getValidAccessToken();
    expect(store.gets).toBe(gets + 1); // the probe: the outage did not grow to 60 s
  });

  it('invalid_grant while the store cannot delete: the OAuthError all the same, the key forgotten here', async () => {
    tokenServer.on('/token', (_request, response) => json(response, 400, { error: 'invalid_grant' }));
    const mode: { down: false | 'refusing' | 'hanging' } = { down: false };
    const store = switchableStore(mode);
    store.delete = async () => {
      throw new Error('READONLY You cannot write against a read only replica');
    };
    const manager = track(new TokenManager({ client, store, now, namespace: '' }));
    const failed: Array<{ cleared: boolean; code: string }> = [];
    manager.on('refresh.failed', ({ cleared, error }) => failed.push({ cleared, code: error.code }));
    await manager.storeTokens({
      access_token: 'at-1',
      token_type: 'Bearer',
      expires_in: 1,
      refresh_token: 'rt-spent',
    });
    nowMs += 2000;
    const error = await rejection(manager.getValidAccessToken());
    expect(error).toMatchObject({ code: 'OAUTH_ERROR', error: 'invalid_grant' });
    expect(failed).toEqual([{ cleared: false, code: 'OAUTH_ERROR' }]);
  });

  it('once the window is over, the probe runs behind a served call: no caller waits for a hanging store again', async () => {
    const mode: { down: false | 'refusing' | 'hanging' } = { down: false };
    const store = switchableStore(mode);
    const manager = track(new TokenManager({ client, store, now, namespace: '', storeTimeoutMs: 50 }));
    let failures = 0;
    manager.on('store.failed', () => (failures += 1));
    await manager.storeTokens({ access_token: 'at-valid', token_type: 'Bearer', expires_in: 3600 });
    mode.down = 'hanging';
    await manager.getValidAccessToken(); // the first failure, after 50 ms
    nowMs += 5_000; // past the window
    const gets = store.gets;
    expect(await settlesAtOnce(manager.getValidAccessToken())).toBe(true);
    expect(store.gets).toBe(gets + 1); // the probe, behind it
    expect(await settlesAtOnce(manager.getValidAccessToken())).toBe(true); // while the probe hangs
    expect(store.gets).toBe(gets + 1);
    while (failures < 2) await new Promise((resolve) => setTimeout(resolve, 10));
  });
});

describe('a refresh refused without an OAuth error (as some servers answer for a revoked refresh token)', () => {
  it.each([
    ['a 400 with an empty body', 400, '', {}],
    [
      'a 401 with an HTML page',
      401,
      '<html><body>Unauthorized</body></html>',
      { 'content-type': 'text/html' },
    ],
    [
      'a 400 with JSON that is not an OAuth error',
      400,
      '{"message":"bad refresh"}',
      { 'content-type': 'application/json' },
    ],
  ])(
    '%s: one request per backoff window, tokens kept, then a clear error once expired',
    async (_name, status, body, headers) => {
      tokenServer.requests.length = 0;
      tokenServer.on('/token', (_request, response) => raw(response, status, body, headers));
      const manager = track(new TokenManager({ client, now, retry: { minDelayMs: 1000, maxDelayMs: 1000 } }));
      const failed: Array<{ error: TesseraError; cleared: boolean; retryInMs?: number }> = [];
      manager.on('refresh.failed', ({ error, cleared, retryInMs }) =>
        failed.push({ error, cleared, ...(retryInMs === undefined ? {} : { retryInMs }) }),
      );
      let cleared = 0;
      manager.on('token.cleared', () => (cleared += 1));
      await manager.storeTokens({
        access_token: 'at-1',
        token_type: 'Bearer',
        expires_in: 30,
        refresh_token: 'rt-1',
      }); // inside the 60 s skew
      const requests = (): number => tokenServer.requestsTo('/token').length;

      // Still valid: served; the renewal behind it fails once, and is not retried on every call.
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      while (failed.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(failed[0]).toMatchObject({ cleared: false, retryInMs: expect.any(Number) });
      expect(failed[0]!.retryInMs).toBeLessThanOrEqual(1000);
      expect(failed[0]!.error).toBeInstanceOf(ResponseError);
      expect(failed[0]!.error.message).toContain('the refresh token is probably no longer valid');
      for (let i = 0; i < 100; i++) await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      expect(requests()).toBe(1);

      // The window is over: one more attempt, behind a served call.
      nowMs += 1001;
      await expect(manager.getValidAccessToken()).resolves.toBe('at-1');
      while (failed.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));
      expect(requests()).toBe(2);

      // Expired: callers get the server's status and what it probably means, without a request each.
      nowMs += 30_000;
      const errors = await Promise.all(
        Array.from({ length: 50 }, () => rejection(manager.getValidAccessToken())),
      );
      expect(new Set(errors.map((e) => (e as ResponseError).status))).toEqual(new Set([status]));
      expect(errors[0]!.message).toContain('the refresh token is probably no longer valid');
      expect(requests()).toBe(3);
      for (let i = 0; i < 50; i++) await rejection(manager.getValidAccessToken());
      expect(requests()).toBe(3);

      // Nothing was cleared on a guess; refreshTokens() forces a request, and a working server heals it.
      expect(cleared).toBe(0);
      await expect(manager.getTokens()).resolves.toMatchObject({ refreshToken: 'rt-1' });
      tokenServer.on('/token', (_request, response) =>
        json(response, 200, { access_token: 'at-2', token_type: 'Bearer', expires_in: 3600 }),
      );
      await expect(manager.refreshTokens()).resolves.toMatchObject({
        accessToken: 'at-2',
        refreshToken: 'rt-1',
      });
      await expect(manager.getValidAccessToken()).resolves.toBe('at-2');
      expect(requests()).toBe(4);
    },
  );

  it('storeTokens() after such a failure starts afresh: the new tokens are used, and renewed, at once', async () => {
    tokenServer.requests.length = 0;
    tokenServer.on('/token', (_request, response) => raw(response, 400, ''));
    const manager = track(
      new TokenManager({ client, now, retry: { minDelayMs: 60_000, maxDelayMs: 60_000 } }),
    );
    await manager.storeTokens({
      access_token: 'at-1',
      token_type: 'Bearer',
      expires_in: 1,
      refresh_token: 'rt-1',
    });
    nowMs += 2000;
    await rejection(manager.getValidAccessToken()); // refused; backing off for a minute
    await manager.storeTokens({
      access_token: 'at-2',
      token_type: 'Bearer',
      expires_in: 1,
      refresh_token: 'rt-2',
    }); // the user signed in again
    nowMs += 2000;
    tokenServer.on('/token', (_request, response) =>
      json(response, 200, { access_token: 'at-3', token_type: 'Bearer', expires_in: 3600 }),
    );
    await expect(manager.getValidAccessToken()).resolves.toBe('at-3');
    expect(tokenServer.requestsTo('/token').map((r) => r.form.get('refresh_token'))).toEqual([
      'rt-1',
      'rt-2',
    ]);
  });

  it("fetch() answered 401 during the backoff: the renewal's error, not one more refresh per call", async () => {
    tokenServer.requests.length = 0;
    tokenServer.on('/token', (_request, response) =>
      raw(response, 401, '<html>Unauthorized</html>', { 'content-type': 'text/html' }),
    );
    tokenServer.on('/api', (_request, response) =>
      json(response, 401, { error: 'invalid_token' }, { 'www-authenticate': 'Bearer error="invalid_token"' }),
    );
    const manager = track(
      new TokenManager({ client, now, retry: { minDelayMs: 60_000, maxDelayMs: 60_000 } }),
    );
    await manager.storeTokens({
      access_token: 'at-revoked',
      token_type: 'Bearer',
      expires_in: 3600,
      refresh_token: 'rt-1',
    });
    for (let i = 0; i < 5; i++) {
      const error = await rejection(manager.fetch(`${tokenServer.url}/api`));
      expect(error).toMatchObject({ code: 'HTTP_ERROR', status: 401 });
    }
    expect(tokenServer.requestsTo('/token')).toHaveLength(1);
    expect(tokenServer.requestsTo('/api')).toHaveLength(5);
  });

  it('a failing client-credentials grant is not retried on every call either', async () => {
    tokenServer.requests.length = 0;
    tokenServer.on('/token', (_request, response) => raw(response, 400, ''));
    const manager = track(
      new TokenManager({
        client,
        now,
        grant: 'client_credentials',
        retry: { minDelayMs: 1000, maxDelayMs: 1000 },
      }),
    );
    const errors = await Promise.all(
      Array.from({ length: 20 }, () => rejection(manager.getValidAccessToken())),
    );
    for (let i = 0; i < 20; i++) errors.push(await rejection(manager.getValidAccessToken()));
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['HTTP_ERROR']));
    expect(tokenServer.requestsTo('/token')).toHaveLength(1);
    nowMs += 1001;
    await rejection(manager.getValidAccessToken());
    expect(tokenServer.requestsTo('/token')).toHaveLength(2);
  });
});
