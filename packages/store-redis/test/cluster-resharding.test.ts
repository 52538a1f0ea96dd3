/**
 * A fleet of managers on a real 3-master Redis Cluster, against the real authorization server with
 * rotating refresh tokens, while the hash slot of their key moves between nodes (`MOVED` / `ASK`):
 * the key's data and lock move together, and every expiry is still one refresh, with no
 * `invalid_grant` and no lost grant.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { Client, TokenManager } from '@tessera/core';
import type { TesseraError } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisCluster, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, TestServer } from '@tessera/testing';

let server: TestServer;
let cluster: RedisClusterHandle;
let client: Client;
const connections: Cluster[] = [];
const managers: TokenManager[] = [];
const stores: RedisTokenStore[] = [];

beforeAll(async () => {
  [server, cluster] = await Promise.all([startTestServer(), startRedisCluster()]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(stores.map((s) => s.close()));
  for (const connection of connections) connection.disconnect();
  await Promise.all([server?.close(), cluster?.close()]);
});

function connection(): Cluster {
  const made = new Cluster(
    cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  made.on('error', () => undefined);
  connections.push(made);
  return made;
}

/** A manager with a Cluster connection and a store of its own, as another process would have. */
function managerFor(prefix: string): { manager: TokenManager; store: RedisTokenStore } {
  const store = new RedisTokenStore({ client: connection(), keyPrefix: prefix, commandTimeoutMs: 2000 });
  stores.push(store);
  const manager = new TokenManager({
    client,
    store,
    namespace: '',
    retry: { minDelayMs: 10, maxDelayMs: 50 },
  });
  managers.push(manager);
  return { manager, store };
}

describe('RedisTokenStore while a Cluster reshards', () => {
  it("4 managers, the key's slot moved back and forth mid-load: one refresh per expiry, nothing lost", async () => {
    const prefix = `m-${randomUUID()}:`;
    const fleet = Array.from({ length: 4 }, () => managerFor(prefix));
    const failures: TesseraError[] = [];
    let cleared = 0;
    for (const { manager } of fleet) {
      manager.on('refresh.failed', ({ error }) => failures.push(error));
      manager.on('token.cleared', () => (cleared += 1));
    }
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    await fleet[0]!.manager.storeTokens(issued as never);
    const admin = connection();
    const slot = Number(await admin.cluster('KEYSLOT', `${prefix}{default}:data`));

    /**
     * One expiry: the stored set is written back with its access token expired (as time passing
     * would), and every manager's callers ask at once. Returns the token requests it cost.
     */
    const expiry = async (): Promise<number> => {
      const current = (await fleet[0]!.store.get('default'))!;
      await fleet[0]!.store.set('default', { ...current, expiresAt: Math.floor(Date.now() / 1000) - 1 });
      // Each manager's near-cache learns of the write over the change feed: wait until all have.
      for (const { manager } of fleet) {
        for (
          let seen = await manager.getTokens();
          seen?.accessToken !== current.accessToken || (seen.expiresAt ?? 0) * 1000 > Date.now();
          seen = await manager.getTokens()
        ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      const before = server.stats().token;
      const tokens = await Promise.all(
        fleet.flatMap(({ manager }) => Array.from({ length: 50 }, () => manager.getValidAccessToken())),
      );
      expect(new Set(tokens).size).toBe(1);
      expect(tokens[0]).not.toBe(current.accessToken);
      return server.stats().token - before;
    };

    const costs: number[] = [await expiry()];
    let moves = 0;
    let midMigration = 0;
    for (const to of [1, 2, 0, 1]) {
      const from = await cluster.migrateSlot(slot, to, {
        keysPerStep: 1,
        // Mid-migration (the data key moved, the slot not yet handed over): clients get ASK.
        betweenSteps: async () => {
          midMigration += 1;
          costs.push(await expiry());
        },
      });
      if (from !== to) moves += 1;
      costs.push(await expiry()); // after it: MOVED, then the new owner
    }
    expect(moves).toBeGreaterThanOrEqual(3); // the first target may hold the slot already
    expect(midMigration).toBe(moves);
    expect(costs.every((cost) => cost === 1)).toBe(true);
    expect(failures).toEqual([]);
    expect(cleared).toBe(0);
  }, 60_000);
});
