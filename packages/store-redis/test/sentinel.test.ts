/**
 * RedisTokenStore on Redis Sentinel (a real primary, replica and three sentinels from
 * `startRedisSentinel()`), against the real authorization server with rotating refresh tokens:
 * a planned failover and a SIGKILLed primary. A rotated token set written with `waitForReplicas`
 * survives the primary's death; without a replica to acknowledge it, the write says so.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Client, TokenManager, TokenStoreError } from '@tessera/core';
import type { TesseraError, TokenSet } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisSentinel, startTestServer } from '@tessera/testing';
import type { RedisSentinelHandle, TestServer } from '@tessera/testing';

let server: TestServer;
let redis: RedisSentinelHandle;
let client: Client;
const managers: TokenManager[] = [];
const stores: RedisTokenStore[] = [];

beforeAll(async () => {
  [server, redis] = await Promise.all([startTestServer(), startRedisSentinel()]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(stores.map((s) => s.close()));
  await Promise.all([server?.close(), redis?.close()]);
});

/** A store with a Sentinel client of its own, as another process would have. */
function storeFor(prefix: string, options: { waitForReplicas?: false } = {}): RedisTokenStore {
  const store = new RedisTokenStore({
    sentinels: redis.sentinels,
    name: redis.name,
    keyPrefix: prefix,
    commandTimeoutMs: 1000,
    ...options,
  });
  stores.push(store);
  return store;
}

function managerFor(store: RedisTokenStore): TokenManager {
  const manager = new TokenManager({
    client,
    store,
    namespace: '',
    retry: { minDelayMs: 20, maxDelayMs: 200 },
  });
  managers.push(manager);
  return manager;
}

function watch(manager: TokenManager): {
  refreshFailures: TesseraError[];
  cleared: number;
  storeFailures: TesseraError[];
} {
  const seen = { refreshFailures: [] as TesseraError[], cleared: 0, storeFailures: [] as TesseraError[] };
  manager.on('refresh.failed', ({ error }) => seen.refreshFailures.push(error));
  manager.on('token.cleared', () => (seen.cleared += 1));
  manager.on('store.failed', ({ error }) => seen.storeFailures.push(error));
  return seen;
}

async function eventually(check: () => Promise<boolean>, what: string, attempts = 400): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check().catch(() => false)) return;
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

/**
 * SIGSTOPs the replica: it receives nothing more, and acknowledges nothing, while the sentinels
 * still count it (for now). Resolves with its pid, to SIGCONT it.
 */
async function frozenReplica(): Promise<number> {
  const primary = await redis.primary();
  const replica = redis.nodes.find((node) => node.port !== primary.port)!;
  const { Redis } = await import('ioredis');
  const direct = new Redis({ host: replica.host, port: replica.port });
  const pid = Number(/process_id:(\d+)/.exec(await direct.info('server'))![1]);
  direct.disconnect();
  process.kill(pid, 'SIGSTOP');
  return pid;
}

/** Runs `call`, and says whether it settled (either way) within `ms` plus a margin. */
async function settlesWithin<T>(ms: number, call: () => Promise<T>): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.allSettled([call()]).then(([result]) => result!), hung]);
  } finally {
    clearTimeout(timer);
  }
}

describe('RedisTokenStore on Redis Sentinel', () => {
  it('waits for the replica on Sentinel by default: with the replica frozen, a write says it is on the primary only', async () => {
    const prefix = `d-${randomUUID()}:`;
    const waiting = new RedisTokenStore({
      sentinels: redis.sentinels,
      name: redis.name,
      keyPrefix: prefix,
      waitForReplicas: { replicas: 1, timeoutMs: 300 },
    });
    const notWaiting = storeFor(prefix, { waitForReplicas: false });
    const byDefault = storeFor(prefix);
    stores.push(waiting);
    const tokens = { accessToken: 'at-durable-0123456789', tokenType: 'Bearer' } as TokenSet;
    await waiting.set('k', tokens); // the replica acknowledges
    await byDefault.set('k', tokens);

    const pid = await frozenReplica();
    try {
      const error = await waiting
        .set('k', { ...tokens, accessToken: 'at-unreplicated-0001' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TokenStoreError);
      expect((error as Error).message).toContain(
        'reached 0 of the 1 replicas waited for within 300 ms (WAIT)',
      );
      const unacknowledged = await byDefault.set('k', tokens).catch((e: unknown) => e);
      expect((unacknowledged as Error).message).toContain('0 of the 1 replicas waited for within 1000 ms');
      await expect(
        notWaiting.set('k', { ...tokens, accessToken: 'at-unreplicated-0002' }),
      ).resolves.toBeUndefined();
      // The write was made on the primary all the same.
      expect((await notWaiting.get('k'))?.accessToken).toBe('at-unreplicated-0002');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  });

  it('a lock no replica acknowledged is refused and given back: after a failover, no two processes hold it (regression: the promoted replica never saw it)', async () => {
    const prefix = `l-${randomUUID()}:`;
    const holder = new RedisTokenStore({
      sentinels: redis.sentinels,
      name: redis.name,
      keyPrefix: prefix,
      waitForReplicas: { replicas: 1, timeoutMs: 300 },
    });
    stores.push(holder);
    const other = storeFor(prefix);
    const primary = await redis.primary();
    const { Redis } = await import('ioredis');
    const direct = new Redis({ host: primary.host, port: primary.port });
    const pid = await frozenReplica();
    let refused: unknown;
    try {
      refused = await holder.lock('k', { ttlMs: 30_000, waitMs: 0 }).catch((e: unknown) => e);
      // Given back on the primary at once, not left to block the fleet for its TTL.
      expect(await direct.get(`${prefix}{k}:lock`)).toBeNull();
    } finally {
      process.kill(pid, 'SIGCONT');
      direct.disconnect();
    }
    expect(refused).toBeInstanceOf(TokenStoreError);
    expect(refused).toMatchObject({ operation: 'lock' });
    expect((refused as Error).message).toContain(
      'the lock of "k" reached 0 of the 1 replicas waited for within 300 ms (WAIT); it was given back',
    );
    await redis.killPrimary();
    try {
      await redis.revive(); // a replica again, to acknowledge the next lock
      // Nobody holds it on the promoted replica: the other process takes it at once, the only holder.
      const lock = await other.lock('k', { ttlMs: 30_000, waitMs: 0 });
      await lock.release();
    } finally {
      await redis.revive();
    }
  }, 60_000);

  it('a lock the replica acknowledged survives the SIGKILL of the primary: nobody else takes it until it is released', async () => {
    const prefix = `s-${randomUUID()}:`;
    const holder = storeFor(prefix);
    const other = storeFor(prefix);
    const lock = await holder.lock('k', { ttlMs: 30_000, waitMs: 0 });
    await redis.killPrimary();
    try {
      const meanwhile = await other.lock('k', { ttlMs: 30_000, waitMs: 300 }).catch((e: unknown) => e);
      expect(meanwhile).toBeInstanceOf(TokenStoreError);
      expect((meanwhile as Error).message).toContain('was not acquired within 300 ms');
      await redis.revive(); // a replica again, so that the next lock can be acknowledged
      await eventually(async () => await lock.release().then(() => true), 'released on the new primary');
      const next = await other.lock('k', { ttlMs: 30_000, waitMs: 5000 });
      await next.release();
    } finally {
      await redis.revive();
    }
  }, 60_000);

  it('a planned failover: calls during the switch settle in time and typed, the store works after it, the feed resets', async () => {
    const prefix = `f-${randomUUID()}:`;
    const store = storeFor(prefix);
    const resets: number[] = [];
    const unsubscribe = store.subscribe(() => undefined, { onReset: () => resets.push(1) });
    const tokens = { accessToken: 'at-before-failover-01', tokenType: 'Bearer' } as TokenSet;
    await store.set('k', tokens);
    await new Promise((resolve) => setTimeout(resolve, 100)); // the feed is subscribed

    const during: Array<PromiseSettledResult<unknown>> = [];
    let switching = true;
    const load = (async () => {
      while (switching) during.push(await settlesWithin(3000, () => store.get('k')));
    })();
    try {
      await redis.failover();
      await eventually(
        async () => (await store.get('k'))?.accessToken === tokens.accessToken,
        'readable after',
      );
    } finally {
      switching = false;
      await load;
    }

    for (const result of during) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(TokenStoreError);
    }
    await store.set('k', { ...tokens, accessToken: 'at-after-failover-02' });
    expect((await store.get('k'))?.accessToken).toBe('at-after-failover-02');
    await eventually(async () => resets.length > 0, 'the change feed resubscribed (onReset)');
    unsubscribe();
  }, 60_000);

  it('the primary SIGKILLed right after a rotating refresh was written: nothing is lost, the next refresh is one request', async () => {
    const prefix = `k-${randomUUID()}:`;
    const writer = managerFor(storeFor(prefix));
    const other = managerFor(storeFor(prefix));
    const seen = [watch(writer), watch(other)];
    await writer.storeTokens((await userTokens()) as never);
    const rotated = await writer.refreshTokens(); // written, and acknowledged by the replica

    await redis.killPrimary();
    try {
      // Another process, which never saw the rotation, reads the promoted replica.
      await eventually(
        async () => (await other.getTokens())?.refreshToken === rotated.refreshToken,
        'the rotated set is on the new primary',
      );

      // No replica is left to vouch for a lock: a refresh is refused, sends nothing, keeps the tokens.
      server.resetStats();
      const refused = await other.refreshTokens().catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(TokenStoreError);
      expect(refused).toMatchObject({ operation: 'lock' });
      expect((refused as Error).message).toContain('0 of the 1 replicas');
      expect(server.stats().token).toBe(0);
      expect((await other.getTokens())?.refreshToken).toBe(rotated.refreshToken);

      await redis.revive(); // a replica again: refreshes run, one request each
      server.resetStats();
      const next = await other.refreshTokens();
      expect(server.stats().token).toBe(1);
      expect(next.refreshToken).not.toBe(rotated.refreshToken);
      for (const s of seen) {
        expect(s.refreshFailures).toEqual([]);
        expect(s.cleared).toBe(0);
      }
    } finally {
      await redis.revive();
    }
  }, 60_000);
});
