/**
 * The TokenManager under faults, against the real authorization server (oidc-provider, rotating
 * refresh tokens: a spent one presented again is `invalid_grant` and revokes the whole grant):
 * stores that fail a write, lose their data, hang or hand back garbage; refresh answers lost after
 * the server rotated; listeners that throw. Each case counts refresh requests, lost grants and hung
 * callers.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Client,
  ConfigurationError,
  MemoryTokenStore,
  OAuthError,
  TokenManager,
  TokenStoreError,
  TransportError,
} from '@tessera/core';
import type { TesseraError, TokenSet, TokenStore } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { onEveryEvent } from './support/events.js';
import { plainStore, rejection } from './support/test-helpers.js';

let server: TestServer;
let client: Client;
beforeAll(async () => {
  server = await startTestServer();
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
});
afterAll(() => server.close());

/** Lets I/O and timers run until `done()` holds. */
async function until(done: () => boolean, what = 'condition'): Promise<void> {
  for (let turn = 0; !done(); turn++) {
    if (turn > 20_000) throw new Error(`${what} not reached`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Every event a manager emits, by name. */
function record(manager: TokenManager): Array<{ name: string; payload: Record<string, unknown> }> {
  const seen: Array<{ name: string; payload: Record<string, unknown> }> = [];
  onEveryEvent(manager, (name, payload) => seen.push({ name, payload: payload as Record<string, unknown> }));
  return seen;
}

/** A store that fails the next `set` calls on demand, delegating everything else. */
function failingWrites<S extends TokenStore>(store: S): TokenStore & { failNextSets(n: number): void } {
  let failures = 0;
  const wrapped: TokenStore & { failNextSets(n: number): void } = {
    failNextSets: (n) => (failures = n),
    get: (key) => store.get(key),
    delete: (key) => store.delete(key),
    set: async (key, tokens) => {
      if (failures > 0) {
        failures -= 1;
        throw new Error(`disk full while writing ${JSON.stringify(tokens)}`); // a driver that quotes the value
      }
      return store.set(key, tokens);
    },
  };
  if (store.lock !== undefined) wrapped.lock = (key, options) => store.lock!(key, options);
  if (store.subscribe !== undefined)
    wrapped.subscribe = (listener, options) => store.subscribe!(listener, options);
  return wrapped;
}

async function userTokens(): Promise<Record<string, unknown>> {
  return (await server.issueUserTokens('basic', { scope: 'openid offline_access' })) as unknown as Record<
    string,
    unknown
  >;
}

describe('a store write that fails once after a rotating refresh loses nothing (regression: the grant was lost)', () => {
  it.each<[string, () => TokenStore]>([
    ['a plain object store', plainStore],
    ['MemoryTokenStore', () => new MemoryTokenStore()],
  ])('%s', async (_kind, makeStore) => {
    const store = failingWrites(makeStore());
    const manager = new TokenManager({
      client,
      namespace: '',
      store,
      retry: { minDelayMs: 10, maxDelayMs: 20 },
    });
    const events = record(manager);
    await manager.storeTokens((await userTokens()) as never);
    server.resetStats();

    store.failNextSets(1);
    const first = await manager.refreshTokens(); // rotated; the write of the new set fails
    expect(events.filter((e) => e.name === 'store.failed')).toHaveLength(1);
    // The next renewal uses the newest refresh token, not the spent one the store still had.
    const second = await manager.refreshTokens();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    const third = await manager.refreshTokens();
    expect(server.stats().token).toBe(3); // one request per renewal
    expect(events.filter((e) => e.name === 'token.cleared')).toEqual([]);
    expect(events.filter((e) => e.name === 'refresh.failed')).toEqual([]);
    // And the store catches up: it holds the newest set.
    expect((await store.get('default'))?.refreshToken).toBe(third.refreshToken);
    // No token in the store's failure report, though the driver quoted the value.
    const failure = events.find((e) => e.name === 'store.failed')!.payload.error as TesseraError;
    expect(JSON.stringify(failure) + failure.message + String(failure.cause)).not.toContain(
      first.refreshToken!,
    );
    await manager.close();
  });

  it('the failed write is retried in the background until the store has the newest set', async () => {
    const inner = plainStore();
    const store = failingWrites(inner);
    const manager = new TokenManager({
      client,
      namespace: '',
      store,
      retry: { minDelayMs: 5, maxDelayMs: 10 },
    });
    await manager.storeTokens((await userTokens()) as never);
    store.failNextSets(3);
    const renewed = await manager.refreshTokens();
    await until(() => inner.data.get('default')?.refreshToken === renewed.refreshToken, 'write-back');
    await manager.close();
  });

  it('a failed storeTokens() rejects, yet the tokens are served and written back', async () => {
    const inner = plainStore();
    const store = failingWrites(inner);
    const manager = new TokenManager({
      client,
      namespace: '',
      store,
      retry: { minDelayMs: 5, maxDelayMs: 10 },
    });
    const issued = await userTokens();
    store.failNextSets(1);
    expect(await rejection(manager.storeTokens(issued as never))).toBeInstanceOf(TokenStoreError);
    await expect(manager.getValidAccessToken()).resolves.toBe(issued.access_token);
    await until(() => inner.data.get('default')?.accessToken === issued.access_token, 'write-back');
    await manager.close();
  });
});

describe('a store that lost its data', () => {
  it('after a store outage, an empty store gets the newest set written back (regression: "no tokens")', async () => {
    const store = plainStore();
    let down = false;
    const flaky: TokenStore = {
      get: async (key) => {
        if (down) throw new Error('ECONNREFUSED');
        return store.get(key);
      },
      set: (key, tokens) => store.set(key, tokens),
      delete: (key) => store.delete(key),
    };
    const manager = new TokenManager({
      client,
      namespace: '',
      store: flaky,
      retry: { minDelayMs: 5, maxDelayMs: 10 },
    });
    const issued = await userTokens();
    await manager.storeTokens(issued as never);
    down = true;
    await expect(manager.getValidAccessToken()).resolves.toBe(issued.access_token); // last known, still valid
    store.data.clear(); // restarted empty
    down = false;
    await expect(manager.getValidAccessToken()).resolves.toBe(issued.access_token);
    await until(() => store.data.get('default')?.refreshToken === issued.refresh_token, 'write-back');
    await manager.close();
  });

  it('a key another manager deleted through the change feed stays deleted', async () => {
    const store = new MemoryTokenStore();
    const a = new TokenManager({ client, namespace: '', store });
    const b = new TokenManager({ client, namespace: '', store });
    await a.storeTokens((await userTokens()) as never);
    await expect(b.getTokens()).resolves.toBeDefined();
    await a.clearTokens();
    await until(() => true);
    await expect(b.getTokens()).resolves.toBeUndefined();
    expect(await rejection(b.getValidAccessToken())).toMatchObject({ code: 'NO_TOKENS' });
    await Promise.all([a.close(), b.close()]);
    await store.close();
  });

  it('a stored set older than one this process has seen is never used to refresh', async () => {
    const store = plainStore();
    const manager = new TokenManager({ client, namespace: '', store });
    await manager.storeTokens((await userTokens()) as never);
    const stale = store.data.get('default')!;
    const renewed = await manager.refreshTokens();
    store.data.set('default', stale); // e.g. a replica that lagged, or a restore from a backup
    server.resetStats();
    const next = await manager.refreshTokens();
    expect(next.refreshToken).not.toBe(renewed.refreshToken);
    expect(server.stats().token).toBe(1);
    await until(() => store.data.get('default')?.refreshToken === next.refreshToken, 'write-back');
    await manager.close();
  });

  it('a newer set another process stored wins over the one this process has', async () => {
    const store = plainStore();
    const manager = new TokenManager({ client, namespace: '', store });
    await manager.storeTokens((await userTokens()) as never);
    const other = await userTokens(); // the user signed in again elsewhere
    store.data.set('default', {
      accessToken: other.access_token as string,
      tokenType: 'Bearer',
      refreshToken: other.refresh_token as string,
      expiresAt: Math.floor(Date.now() / 1000) + 300,
    });
    await expect(manager.getValidAccessToken()).resolves.toBe(other.access_token);
    await manager.close();
  });
});

describe('what a store hands back is checked', () => {
  const storeReturning = (value: unknown): TokenStore => ({
    get: async () => value as TokenSet,
    set: async () => undefined,
    delete: async () => undefined,
  });

  it('null is a missing key (regression: a raw TypeError)', async () => {
    const manager = new TokenManager({
      client,
      namespace: '',
      store: storeReturning(null),
      grant: 'client_credentials',
    });
    await expect(manager.getValidAccessToken()).resolves.toEqual(expect.any(String));
    await manager.close();
  });

  it.each([
    ['a string', 'eyJhbGciOi'],
    ['an empty object', {}],
    ['accessToken 5', { accessToken: 5, tokenType: 'Bearer' }],
    ['expiresAt NaN', { accessToken: 'a', tokenType: 'Bearer', expiresAt: Number.NaN }],
    ['an array', []],
  ])(
    '%s is a TokenStoreError, never a token (regression: { accessToken: 5 } was handed out)',
    async (_case, value) => {
      const manager = new TokenManager({
        client,
        namespace: '',
        store: storeReturning(value),
        grant: 'client_credentials',
      });
      const failures: string[] = [];
      manager.on('store.failed', ({ operation }) => failures.push(operation));
      const error = await rejection(manager.getValidAccessToken());
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error.message).toContain('not a token set');
      expect(failures).toEqual(['get']);
      await manager.close();
    },
  );
});

describe('a store that never answers cannot hang a caller (regression: pending forever)', () => {
  const hanging: TokenStore = {
    get: () => new Promise<never>(() => undefined),
    set: () => new Promise<never>(() => undefined),
    delete: () => new Promise<never>(() => undefined),
  };

  it('get rejects with TokenStoreError after storeTimeoutMs', async () => {
    const manager = new TokenManager({ client, namespace: '', store: hanging, storeTimeoutMs: 50 });
    const error = await rejection(manager.getValidAccessToken());
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(error).toMatchObject({ operation: 'get' });
    await manager.close();
  });

  it('a lock granted after the bound is released at once', async () => {
    let release = 0;
    let grant: (() => void) | undefined;
    const store = Object.assign(new MemoryTokenStore(), {
      lock: () =>
        new Promise<{ release(): Promise<void> }>((resolve) => {
          grant = () => resolve({ release: async () => void (release += 1) });
        }),
    });
    const manager = new TokenManager({
      client,
      store,
      grant: 'client_credentials',
      lock: { ttlMs: 1000, waitMs: 10 },
      storeTimeoutMs: 10,
    });
    expect(await rejection(manager.getValidAccessToken())).toMatchObject({
      code: 'STORE_ERROR',
      operation: 'lock',
    });
    grant!();
    await until(() => release === 1, 'late release');
    await manager.close();
    await store.close();
  });
});

describe('a lock the store refuses (busy past waitMs, no replica to vouch for it, store away)', () => {
  /** A memory store whose `lock()` runs `meanwhile` (another process at work), then refuses. */
  function refusingLocks(meanwhile: (store: MemoryTokenStore) => Promise<void>): MemoryTokenStore {
    const store = new MemoryTokenStore();
    store.lock = async () => {
      await meanwhile(store);
      throw new TokenStoreError('lock', 'the lock was refused');
    };
    return store;
  }
  const expired = { accessToken: 'at-expired-000000001', tokenType: 'Bearer', expiresAt: 1 } as TokenSet;

  it('uses the token set the lock holder wrote meanwhile: no refresh, no error', async () => {
    const fresh = {
      accessToken: 'at-written-by-the-holder',
      tokenType: 'Bearer',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
    } as TokenSet;
    const store = refusingLocks((s) => s.set('default', fresh));
    await store.set('default', expired);
    const manager = new TokenManager({ client, store, namespace: '', grant: 'client_credentials' });
    const seen = record(manager);
    server.resetStats();
    await expect(manager.getValidAccessToken()).resolves.toBe(fresh.accessToken);
    expect(server.stats().token).toBe(0);
    expect(seen.filter((e) => e.name === 'store.failed').map((e) => e.payload.operation)).toEqual(['lock']);
    await manager.close();
    await store.close();
  });

  it('with nothing newer in the store, the caller gets the lock error and no refresh runs', async () => {
    const store = refusingLocks(async () => undefined);
    await store.set('default', expired);
    const manager = new TokenManager({ client, store, namespace: '', grant: 'client_credentials' });
    server.resetStats();
    expect(await rejection(manager.getValidAccessToken())).toMatchObject({
      code: 'STORE_ERROR',
      operation: 'lock',
    });
    expect(server.stats().token).toBe(0);
    expect(await store.get('default')).toEqual(expired);
    await manager.close();
    await store.close();
  });
});

describe('storeTokens() input', () => {
  it('a numeric string expires_in is a number of seconds (regression: "1" made a token fresh for centuries)', async () => {
    const now = Date.UTC(2030, 0, 1);
    const manager = new TokenManager({ client, now: () => now });
    const stored = await manager.storeTokens({
      access_token: 'a',
      token_type: 'Bearer',
      expires_in: '1' as unknown as number,
    });
    expect(stored.expiresAt).toBe(now / 1000 + 1);
    await manager.close();
  });

  it.each([['abc'], [Number.NaN], [-1], ['1e400'], [{}], [Number.POSITIVE_INFINITY]])(
    'expires_in %p is a ConfigurationError naming it',
    async (value) => {
      const manager = new TokenManager({ client });
      const error = await rejection(
        manager.storeTokens({ access_token: 'a', token_type: 'Bearer', expires_in: value as number }),
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toContain('expires_in');
      await manager.close();
    },
  );

  it.each([
    [null],
    ['a string'],
    [{ token_type: 'Bearer' }],
    [{ access_token: 'a', token_type: 5 }],
    [{ access_token: 'a', token_type: 'Bearer', refresh_token: 7 }],
  ])('%p is a ConfigurationError', async (value) => {
    const manager = new TokenManager({ client });
    expect(await rejection(manager.storeTokens(value as never))).toBeInstanceOf(ConfigurationError);
    await manager.close();
  });
});

describe('listeners cannot hurt the manager or each other', () => {
  it('a throwing listener does not hide the event from the listeners after it (regression)', async () => {
    const manager = new TokenManager({ client, grant: 'client_credentials' });
    const seen: string[] = [];
    manager.on('token.acquired', () => {
      throw new Error('listener bug');
    });
    manager.on('token.acquired', ({ key }) => seen.push(key));
    await manager.getValidAccessToken();
    expect(seen).toEqual(['default']);
    await manager.close();
  });

  it('an async listener that rejects is not an unhandled rejection (regression)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const manager = new TokenManager({ client, grant: 'client_credentials' });
      manager.on('token.acquired', async () => {
        throw new Error('async listener bug');
      });
      await manager.getValidAccessToken();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(unhandled).toEqual([]);
      await manager.close();
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('off(), once() and listeners() still see the functions that were added', async () => {
    const manager = new TokenManager({ client, grant: 'client_credentials' });
    const calls: string[] = [];
    const listener = () => calls.push('on');
    manager.on('token.acquired', listener);
    manager.once('token.acquired', () => calls.push('once'));
    expect(manager.listeners('token.acquired')).toContain(listener);
    await manager.getValidAccessToken();
    manager.off('token.acquired', listener);
    await manager.refreshTokens();
    expect(calls).toEqual(['on', 'once']);
    expect(manager.listenerCount('token.acquired')).toBe(0);
    await manager.close();
  });
});

describe('a refresh whose answer is lost after the server rotated', () => {
  let proxy: http.Server;
  let lose = false;
  let proxyUrl = '';
  beforeAll(async () => {
    const target = new URL(server.issuer);
    proxy = http.createServer((req, res) => {
      const upstream = http.request(
        {
          hostname: target.hostname,
          port: target.port,
          path: req.url,
          method: req.method,
          headers: req.headers,
        },
        (answer) => {
          if (lose) {
            answer.resume();
            answer.on('end', () => res.socket?.destroy()); // the server rotated; the answer never arrives
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });
  afterAll(
    () =>
      new Promise<void>((resolve) => {
        proxy.closeAllConnections();
        proxy.close(() => resolve());
      }),
  );

  it('is reported as outcomeUnknown, and the invalid_grant that follows says why', async () => {
    const tokenPath = new URL(client.serverMetadata().token_endpoint!).pathname;
    const proxied = new Client(
      { ...client.serverMetadata(), token_endpoint: `${proxyUrl}${tokenPath}` },
      server.clients.basic,
      { retry: { retries: 0 } },
    );
    const manager = new TokenManager({ client: proxied, retry: { minDelayMs: 1, maxDelayMs: 2 } });
    const events = record(manager);
    await manager.storeTokens((await userTokens()) as never);

    lose = true;
    const lost = await rejection(manager.refreshTokens());
    lose = false;
    expect(lost).toBeInstanceOf(TransportError);
    expect(lost).toMatchObject({ code: 'NETWORK_ERROR', outcomeUnknown: true });
    expect(lost.message).toMatch(/refresh outcome is unknown/);
    expect(events.find((e) => e.name === 'refresh.failed')!.payload).toMatchObject({
      cleared: false,
      outcomeUnknown: true,
    });
    // The store still has the refresh token the server rotated away: the next refresh replays it.
    await until(() => true);
    const spent = await rejection(manager.refreshTokens());
    expect(spent).toBeInstanceOf(OAuthError);
    expect((spent as OAuthError).error).toBe('invalid_grant');
    expect((spent as OAuthError).hint).toMatch(/answer to the previous refresh .* was lost/);
    expect(events.filter((e) => e.name === 'token.cleared')).toHaveLength(1);
    await manager.close();
  });

  it('a refused connection is not an unknown outcome (nothing was sent)', async () => {
    const refused = new Client(
      { ...client.serverMetadata(), token_endpoint: 'http://127.0.0.1:1/token' },
      server.clients.basic,
      { retry: { retries: 0 } },
    );
    const manager = new TokenManager({ client: refused });
    await manager.storeTokens((await userTokens()) as never);
    const error = await rejection(manager.refreshTokens());
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', systemCode: 'ECONNREFUSED' });
    expect((error as TransportError).outcomeUnknown).toBeUndefined();
    await manager.close();
  });
});

describe('close()', () => {
  it('does not wait for a renewal that is still waiting for the store lock', async () => {
    const store = new MemoryTokenStore();
    const held = await store.lock('default', { ttlMs: 120_000, waitMs: 0 }); // another process holds it
    const manager = new TokenManager({
      client,
      store,
      grant: 'client_credentials',
      lock: { ttlMs: 1000, waitMs: 60_000 },
    });
    const waiting = rejection(manager.getValidAccessToken());
    await until(() => true);
    await manager.close(); // would take 60 s if it waited for the lock
    expect(await waiting).toMatchObject({ code: 'STORE_ERROR', operation: 'lock' });
    await held.release();
    await store.close();
  });

  it('tries once more to write back a token set the store does not have', async () => {
    const inner = plainStore();
    const store = failingWrites(inner);
    const manager = new TokenManager({
      client,
      namespace: '',
      store,
      retry: { minDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    await manager.storeTokens((await userTokens()) as never);
    store.failNextSets(1);
    const renewed = await manager.refreshTokens(); // the write fails; the next try would be a minute away
    await manager.close();
    expect(inner.data.get('default')?.refreshToken).toBe(renewed.refreshToken);
  });
});
