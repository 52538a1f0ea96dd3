/**
 * Managers sharing a real Redis (its own redis-server on an ephemeral port) against the real
 * authorization server with rotating refresh tokens, under faults: a failed write after a rotation,
 * Redis restarted empty, a lock whose holder died, and a burst of 10,000 callers while Redis is down.
 * Each case counts refresh requests, lost grants ("no tokens", `invalid_grant`) and hung callers.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { Client, TokenManager, TokenStoreError } from '@tessera/core';
import type { TesseraError, TokenSet } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisServer, startTestServer } from '@tessera/testing';
import type { RedisServerHandle, TestServer } from '@tessera/testing';

let server: TestServer;
let redis: RedisServerHandle;
let client: Client;
const connections: Redis[] = [];
const managers: TokenManager[] = [];
const stores: RedisTokenStore[] = [];

beforeAll(async () => {
  [server, redis] = await Promise.all([startTestServer(), startRedisServer({ useEnv: false })]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(stores.map((s) => s.close()));
  for (const connection of connections) connection.disconnect();
  await Promise.all([server?.close(), redis?.close()]);
});

/** A store on a connection of its own (as another process would have), under `prefix`. */
function storeFor(prefix: string): RedisTokenStore {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  connection.on('error', () => undefined);
  connections.push(connection);
  const store = new RedisTokenStore({ client: connection, keyPrefix: prefix, commandTimeoutMs: 500 });
  stores.push(store);
  return store;
}

function managerFor(
  store: RedisTokenStore,
  options: Partial<ConstructorParameters<typeof TokenManager>[0]> = {},
): TokenManager {
  const manager = new TokenManager({
    client,
    store,
    namespace: '',
    retry: { minDelayMs: 10, maxDelayMs: 50 },
    ...options,
  });
  managers.push(manager);
  return manager;
}

/** What went wrong across managers. */
function watch(list: TokenManager[]): { refreshFailures: TesseraError[]; cleared: number } {
  const seen = { refreshFailures: [] as TesseraError[], cleared: 0 };
  for (const m of list) {
    m.on('refresh.failed', ({ error }) => seen.refreshFailures.push(error));
    m.on('token.cleared', () => (seen.cleared += 1));
  }
  return seen;
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${what}: not reached`);
}

async function userTokens(): Promise<Record<string, unknown>> {
  return (await server.issueUserTokens('basic', { scope: 'openid offline_access' })) as unknown as Record<
    string,
    unknown
  >;
}

describe('RedisTokenStore under faults', () => {
  it('a conditional write that fails once after a rotating refresh loses nothing (regression: the grant was lost)', async () => {
    const store = storeFor(`w-${randomUUID()}:`);
    let failures = 0;
    const setIfVersion = store.setIfVersion.bind(store);
    store.setIfVersion = async (key: string, tokens: TokenSet, version: number) => {
      if (failures > 0) {
        failures -= 1;
        throw new TokenStoreError('set', 'redis token store: OOM command not allowed');
      }
      return setIfVersion(key, tokens, version);
    };
    const manager = managerFor(store);
    const seen = watch([manager]);
    await manager.storeTokens((await userTokens()) as never);
    server.resetStats();
    failures = 1;
    const first = await manager.refreshTokens();
    const second = await manager.refreshTokens();
    expect(second.refreshToken).not.toBe(first.refreshToken);
    expect(server.stats().token).toBe(2);
    expect(seen).toEqual({ refreshFailures: [], cleared: 0 });
    await eventually(
      async () => (await store.get('default'))?.refreshToken === second.refreshToken,
      'store holds the newest set',
    );
  });

  it('Redis restarted empty: every manager keeps serving, one writes the set back, the next refresh is one request (regression: 1,320 "no tokens")', async () => {
    const prefix = `r-${randomUUID()}:`;
    const fleet = Array.from({ length: 4 }, () => managerFor(storeFor(prefix)));
    const seen = watch(fleet);
    const issued = await userTokens();
    await fleet[0]!.storeTokens(issued as never);
    await Promise.all(fleet.map((m) => m.getValidAccessToken())); // every manager has seen the set
    await new Promise((resolve) => setTimeout(resolve, 100)); // change feeds subscribed

    await redis.stop();
    await redis.start(); // empty: persistence is off

    let noTokens = 0;
    let served = 0;
    await eventually(async () => {
      const results = await Promise.allSettled(
        fleet.flatMap((m) => Array.from({ length: 50 }, () => m.getValidAccessToken())),
      );
      for (const result of results) {
        if (result.status === 'fulfilled') served += 1;
        else if ((result.reason as TesseraError).code !== 'STORE_ERROR') {
          noTokens += 1; // still reconnecting is fine
          if (noTokens === 1)
            console.log((result.reason as Error).message, (result.reason as TesseraError).code);
        }
      }
      const stored = await fleet[1]!.getTokens().catch(() => undefined);
      return stored?.refreshToken === issued.refresh_token && results.every((r) => r.status === 'fulfilled');
    }, 'written back');
    expect(noTokens).toBe(0);
    expect(served).toBeGreaterThan(0);

    // The grant still works: a forced refresh from one manager is one request, and the others follow.
    server.resetStats();
    const renewed = await fleet[2]!.refreshTokens();
    expect(server.stats().token).toBe(1);
    await eventually(
      async () => (await fleet[3]!.getValidAccessToken()) === renewed.accessToken,
      'others see the renewal',
    );
    expect(seen).toEqual({ refreshFailures: [], cleared: 0 });
  }, 30_000);

  it("a lock whose holder died does not make callers with a still-valid token wait (regression: they waited for the lock's TTL)", async () => {
    const prefix = `l-${randomUUID()}:`;
    const store = storeFor(prefix);
    const manager = managerFor(store, { lock: { ttlMs: 60_000, waitMs: 300 } });
    const issued = await userTokens();
    await manager.storeTokens({ ...issued, expires_in: 30 } as never); // inside the 60 s skew
    // A process took the lock and was SIGKILLed mid-refresh: the lock stays for its TTL.
    const raw = connections[connections.length - 1]!;
    await raw.set(`${prefix}{default}:lock`, 'dead-holder', 'PX', 60_000);
    const lockFailures: number[] = [];
    manager.on('store.failed', ({ operation }) => operation === 'lock' && lockFailures.push(1));

    const served = await Promise.all(Array.from({ length: 200 }, () => manager.getValidAccessToken()));
    expect(new Set(served)).toEqual(new Set([issued.access_token]));
    expect(lockFailures).toEqual([]); // all served before the renewal behind them gave up on the lock
    await eventually(async () => lockFailures.length === 1, 'the renewal behind gives up after waitMs');
    await raw.del(`${prefix}{default}:lock`);
  });

  it('a waiter for a busy lock waits through Redis going away and coming back (regression: the first failure ended its wait)', async () => {
    const prefix = `c-${randomUUID()}:`;
    const holder = storeFor(prefix);
    const waiter = storeFor(prefix);
    await holder.lock('k', { ttlMs: 1000, waitMs: 0 });
    const waiting = waiter.lock('k', { ttlMs: 60_000, waitMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 100)); // busy: the waiter sleeps for the TTL
    await redis.kill(); // a crash, as a failover starts; the lock is gone with the data
    // The waiter wakes at the holder's TTL, and its attempts fail while Redis is away.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await redis.start();
    const lock = await waiting;
    await lock.release();
    // Redis away at the first attempt: no wait, a typed error at once.
    await redis.stop();
    try {
      const error = await waiter.lock('k', { ttlMs: 60_000, waitMs: 20_000 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ operation: 'lock' });
      expect((error as Error).message).not.toContain('was not acquired within');
    } finally {
      await redis.start();
    }
  }, 30_000);

  it('a release that failed while Redis was away can be tried again (regression: the failure was kept for good)', async () => {
    const store = storeFor(`u-${randomUUID()}:`);
    const lock = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
    await redis.stop();
    try {
      await expect(lock.release()).rejects.toBeInstanceOf(TokenStoreError);
    } finally {
      await redis.start();
    }
    await eventually(
      () =>
        lock.release().then(
          () => true,
          () => false,
        ),
      'released once Redis is back',
    );
  });

  it('10,000 callers while Redis is down: the still-valid token is served to all, none hangs; an expired key fails fast and typed', async () => {
    const prefix = `b-${randomUUID()}:`;
    const manager = managerFor(storeFor(prefix), { storeTimeoutMs: 1000 });
    const issued = await userTokens();
    await manager.storeTokens(issued as never);
    await manager
      .for('expired')
      .storeTokens({ ...issued, access_token: 'expired-at', expires_in: 0 } as never);
    server.resetStats();
    await redis.stop();
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 10_000 }, () => manager.getValidAccessToken()),
      );
      expect(results.filter((r) => r.status === 'fulfilled' && r.value === issued.access_token)).toHaveLength(
        10_000,
      );
      const expired = await Promise.allSettled(
        Array.from({ length: 1000 }, () => manager.for('expired').getValidAccessToken()),
      );
      expect(
        expired.every((r) => r.status === 'rejected' && (r.reason as TesseraError).code === 'STORE_ERROR'),
      ).toBe(true);
      expect(server.stats().token).toBe(0); // no refresh without the fleet's lock
    } finally {
      await redis.start();
    }
  }, 30_000);
});
