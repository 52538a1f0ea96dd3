/**
 * RedisTokenStore against a real redis-server (started by the harness on an ephemeral port, or
 * REDIS_URL) and a real 3-master Redis Cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { Client, TokenManager, TokenStoreError } from '@tessera/core';
import type { TokenSet, TokenStore } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { describeTokenStore, startRedisCluster, startRedisServer } from '@tessera/testing';
import type { RedisClusterHandle, RedisServerHandle } from '@tessera/testing';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

let redis: RedisServerHandle;
let cluster: RedisClusterHandle;
const clients = new WeakMap<TokenStore, Array<Redis | Cluster>>();

beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedisServer(), startRedisCluster()]);
}, 60_000);
afterAll(async () => {
  await Promise.all([redis?.close(), cluster?.close()]);
});

/** A store on its own connection (which the test closes), under a fresh prefix. */
function standalone(prefix: string): RedisTokenStore {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  const store = new RedisTokenStore({ client, keyPrefix: prefix, commandTimeoutMs: 1000 });
  clients.set(store, [client]);
  return store;
}

function clustered(prefix: string): RedisTokenStore {
  const client = new Cluster(
    cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  client.on('error', () => undefined);
  const store = new RedisTokenStore({ client, keyPrefix: prefix, commandTimeoutMs: 2000 });
  clients.set(store, [client]);
  return store;
}

/** Cuts every pub/sub connection of these servers, as a network blip or a failover would. */
async function killPubSubClients(urls: readonly string[]): Promise<void> {
  await Promise.all(
    urls.map(async (url) => {
      const admin = new Redis(url, { maxRetriesPerRequest: 1 });
      try {
        await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      } finally {
        admin.disconnect();
      }
    }),
  );
}

async function teardown(store: TokenStore): Promise<void> {
  await store.close?.();
  for (const client of clients.get(store) ?? []) client.disconnect();
}

describe('conformance', () => {
  let prefix = '';
  describeTokenStore('RedisTokenStore (standalone)', () => standalone((prefix = `t-${randomUUID()}:`)), {
    capabilities: ['lock', 'subscribe', 'versioned'],
    peer: () => standalone(prefix),
    teardown,
    breakStore: (store) => store.close(),
    interruptFeed: () => killPubSubClients([redis.url]),
  });
  let clusterPrefix = '';
  describeTokenStore('RedisTokenStore (Cluster)', () => clustered((clusterPrefix = `c-${randomUUID()}:`)), {
    capabilities: ['lock', 'subscribe', 'versioned'],
    peer: () => clustered(clusterPrefix),
    teardown,
    breakStore: (store) => store.close(),
    interruptFeed: () => killPubSubClients(cluster.nodes.map((node) => `redis://${node.host}:${node.port}`)),
  });
});

const tokens = (accessToken: string, extra: Partial<TokenSet> = {}): TokenSet => ({
  accessToken,
  tokenType: 'Bearer',
  expiresAt: Math.floor(Date.now() / 1000) + 300,
  ...extra,
});

describe('RedisTokenStore specifics', () => {
  it('versions every write and refuses a stale conditional write', async () => {
    const store = standalone(`v-${randomUUID()}:`);
    expect(await store.getVersioned('k')).toBeUndefined();
    expect(await store.setIfVersion('k', tokens('a'), 0)).toBe(true);
    const first = await store.getVersioned('k');
    expect(first).toMatchObject({ version: 1, tokens: { accessToken: 'a' } });
    expect(await store.setIfVersion('k', tokens('b'), 1)).toBe(true);
    expect(await store.setIfVersion('k', tokens('stale'), 1)).toBe(false); // a writer that read v1
    await expect(store.get('k')).resolves.toMatchObject({ accessToken: 'b' });
    await store.set('k', tokens('c'));
    await expect(store.getVersioned('k')).resolves.toMatchObject({ version: 3 });
    await teardown(store);
  });

  it('expires a key with the token set: refresh-token lifetime, else the maximum, never before the access token', async () => {
    const prefix = `ttl-${randomUUID()}:`;
    const store = new RedisTokenStore({ url: redis.url, keyPrefix: prefix, maxTtlSeconds: 3600 });
    const probe = new Redis(redis.url);
    const pttl = async (key: string) => probe.pttl(`${prefix}{${key}}:data`);
    await store.set('access-only', tokens('a'));
    await store.set('with-refresh', tokens('a', { refreshToken: 'r' }));
    await store.set('keycloak', tokens('a', { refreshToken: 'r', extra: { refresh_expires_in: 1800 } }));
    await store.set(
      'long-access',
      tokens('a', {
        refreshToken: 'r',
        expiresAt: Math.floor(Date.now() / 1000) + 7200,
        extra: { refresh_expires_in: 60 },
      }),
    );
    expect(await pttl('access-only')).toBeLessThanOrEqual(300_000);
    expect(await pttl('access-only')).toBeGreaterThan(290_000);
    expect(await pttl('with-refresh')).toBeGreaterThan(3590_000);
    expect(await pttl('keycloak')).toBeGreaterThan(1790_000);
    expect(await pttl('keycloak')).toBeLessThanOrEqual(1800_000);
    expect(await pttl('long-access')).toBeGreaterThan(7190_000);
    probe.disconnect();
    await store.close();
  });

  it('a waiter is woken by the release, never left asleep until the holder TTL (regression)', async () => {
    const prefix = `w-${randomUUID()}:`;
    const a = standalone(prefix);
    const b = standalone(prefix);
    for (let round = 0; round < 30; round++) {
      const held = await a.lock('k', { ttlMs: 60_000, waitMs: 1000 });
      const waiting = b.lock('k', { ttlMs: 60_000, waitMs: 3000 });
      await new Promise((r) => setTimeout(r, round % 5));
      await held.release();
      await (await waiting).release(); // a lost wake-up would sleep ~60 s and miss waitMs
    }
    await Promise.all([teardown(a), teardown(b)]);
  }, 30_000);

  it('a waiter whose pub/sub connection dropped as the release was published is woken once it listens again (regression: asleep until the TTL)', async () => {
    const prefix = `r-${randomUUID()}:`;
    const a = standalone(prefix);
    const b = standalone(prefix);
    const held = await a.lock('k', { ttlMs: 60_000, waitMs: 1000 });
    // Both bounds are past the test's own: a waiter left asleep fails the test by its timeout.
    const waiting = b.lock('k', { ttlMs: 60_000, waitMs: 30_000 });
    await new Promise((r) => setTimeout(r, 100)); // b listens, and sleeps until the release
    await killPubSubClients([redis.url]);
    await held.release(); // published while b's connection is down: b misses it
    await (await waiting).release(); // woken when it listens again
    await Promise.all([teardown(a), teardown(b)]);
  }, 15_000);

  it('keeps token values out of errors', async () => {
    const store = standalone(`s-${randomUUID()}:`);
    await store.close();
    const error = await store.set('k', tokens('very-secret-access-token')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(JSON.stringify(error) + inspect(error, { depth: 5 })).not.toContain('very-secret-access-token');
    await teardown(store);
  });
});

describe('the change feed on a Cluster', () => {
  /** The node holding a pub/sub connection, if one does. */
  async function pubSubNode(): Promise<string | undefined> {
    for (const { host, port } of cluster.nodes) {
      const admin = new Redis(port, host, { maxRetriesPerRequest: 1 });
      try {
        const list = String(await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub'));
        if (list.trim() !== '') return `${host}:${port}`;
      } finally {
        admin.disconnect();
      }
    }
    return undefined;
  }

  /** Writes `key` through `writer` until the listener saw it (pub/sub may take a moment). */
  async function untilSeen(writer: RedisTokenStore, seen: Set<string>, key: string): Promise<void> {
    for (let attempt = 0; attempt < 200 && !seen.has(key); attempt++) {
      await writer.set(key, tokens(`probe-${attempt}`));
      await new Promise((resolve) => setImmediate(resolve));
      if (!seen.has(key)) await writer.get(key); // a round trip for the message to arrive
    }
    expect(seen.has(key)).toBe(true);
  }

  it('listens on another node, and calls onReset, when its node stops taking connections (regression)', async () => {
    const prefix = `feed-${randomUUID()}:`;
    const store = clustered(prefix);
    const writer = clustered(prefix);
    const seen = new Set<string>();
    let reset!: () => void;
    const resetCalled = new Promise<void>((resolve) => (reset = resolve));
    const unsubscribe = store.subscribe((key) => seen.add(key), { onReset: () => reset() });
    let admin: Redis | undefined;
    try {
      await untilSeen(writer, seen, 'before');
      // The writer connects to the node holding 'after' now: once that node refuses new connections
      // (if it is the feed's), a first connection to it would fail with MOVED loops, not the feed.
      await untilSeen(writer, seen, 'after');
      seen.delete('after');
      const node = await pubSubNode();
      expect(node).toBeDefined();
      const [host, port] = node!.split(':');
      admin = new Redis(Number(port), host!, { maxRetriesPerRequest: 1 });
      await admin.config('SET', 'maxclients', '1'); // every new connection to this node is refused
      await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      await resetCalled;
      await untilSeen(writer, seen, 'after');
      await admin.config('SET', 'maxclients', '10000');
      expect(await pubSubNode()).not.toBe(node);
    } finally {
      await admin?.config('SET', 'maxclients', '10000');
      admin?.disconnect();
      unsubscribe();
      await Promise.all([teardown(store), teardown(writer)]);
    }
  }, 20_000);
});

describe('Redis going away and coming back', () => {
  let tokenServer: http.Server;
  let issued = 0;
  let base = '';

  beforeAll(async () => {
    tokenServer = http.createServer((_req, res) => {
      issued += 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `at-${issued}`, token_type: 'Bearer', expires_in: 3600 }));
    });
    await new Promise<void>((resolve) => tokenServer.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}`;
  });
  afterAll(
    () =>
      new Promise<void>((resolve) => {
        tokenServer.closeAllConnections();
        tokenServer.close(() => resolve());
      }),
  );

  it('typed errors within the bound, near-cached tokens still served, normal again after a restart', async () => {
    if (!redis.managed) return; // REDIS_URL: this test cannot stop the server
    const client = new Client(
      { issuer: base, token_endpoint: `${base}/token` },
      { client_id: 'c', client_secret: 's' },
    );
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    connection.on('error', () => undefined);
    const store = new RedisTokenStore({
      client: connection,
      keyPrefix: `down-${randomUUID()}:`,
      commandTimeoutMs: 500,
    });
    const manager = new TokenManager({
      client,
      store,
      grant: 'client_credentials',
      retry: { minDelayMs: 50, maxDelayMs: 200 },
    });
    const failures: Array<{ operation: string; code: string }> = [];
    manager.on('store.failed', ({ operation, error }) => failures.push({ operation, code: error.code }));

    const token = await manager.getValidAccessToken();
    await new Promise((r) => setTimeout(r, 50)); // let the change feed subscribe
    await redis.stop();

    // the near-cache keeps serving the still-valid token without touching Redis
    await expect(manager.getValidAccessToken()).resolves.toBe(token);
    // a key that needs Redis fails with a typed error, within the bound
    const other = manager.for('other', { grant: 'client_credentials' });
    const error = await other.getValidAccessToken().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(failures).toContainEqual({ operation: 'get', code: 'STORE_ERROR' });

    await redis.start();
    let recovered: string | undefined;
    for (let attempt = 0; attempt < 100 && recovered === undefined; attempt++) {
      recovered = await other.getValidAccessToken().catch(() => undefined);
      if (recovered === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    expect(recovered).toMatch(/^at-/);
    await manager.close();
    await store.close();
    connection.disconnect();
  }, 30_000);
});
