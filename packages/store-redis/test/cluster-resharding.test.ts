/**
 * A fleet of managers on a real 3-master Redis Cluster, against the real authorization server with
 * rotating refresh tokens, while the hash slot of their key moves between nodes (`MOVED` / `ASK`):
 * the key's data and lock move together, the managers' change feed follows, and every expiry is
 * still one refresh, with no `invalid_grant` and no lost grant. (The same with the managers in child
 * processes: cluster-fleet.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Client } from '@tessera/core';
import { startRedisCluster, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, TestServer } from '@tessera/testing';
import { ClusterManagers } from './fixtures/cluster-managers.js';

let server: TestServer;
let cluster: RedisClusterHandle;
let client: Client;
const fleets: ClusterManagers[] = [];

beforeAll(async () => {
  [server, cluster] = await Promise.all([startTestServer(), startRedisCluster()]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(fleets.map((fleet) => fleet.close()));
  await Promise.all([server?.close(), cluster?.close()]);
});

describe('RedisTokenStore while a Cluster reshards', () => {
  it("4 managers, the key's slot moved back and forth mid-load: one refresh per expiry, nothing lost", async () => {
    const fleet = new ClusterManagers({ cluster, server, client, keyPrefix: `m-${randomUUID()}:`, size: 4 });
    fleets.push(fleet);
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    await fleet.members[0]!.manager.storeTokens(issued as never);
    const slot = await fleet.slot();

    /** One expiry, every manager's callers at once: the token requests it cost. */
    const expiry = async (): Promise<number> => {
      const expired = await fleet.expire();
      const { tokens, requests } = await fleet.wave(50);
      expect(tokens.size).toBe(1);
      expect(tokens.has(expired)).toBe(false);
      return requests;
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
    expect(fleet.failures).toEqual([]);
    expect(fleet.cleared).toBe(0);
  }, 60_000);
});
