/**
 * A fleet of real processes (test-support/fleet/worker.ts) on a real Redis Cluster with a replica
 * per master, against the real authorization server with rotating refresh tokens: the hash slot of
 * their key is migrated while they refresh (`ASK` mid-migration, `MOVED` after it), and the key's
 * master is SIGKILLed right after a refresh was written. Every expiry is one refresh by the whole
 * fleet, with the rotated refresh token, and no `invalid_grant`.
 *
 * (A master killed in the middle of a refresh, its write held, is cluster-failover.test.ts: holding
 * a write needs the managers in the test's process.)
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { startRedisCluster, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, TestServer } from '@tessera/testing';
import { expireStored, fleetWave, seedExpiredTokens } from '../../../test-support/fleet/describe-fleet.js';
import type { FleetWaveResult } from '../../../test-support/fleet/describe-fleet.js';
import type { SharedStore } from '../../../test-support/fleet/shared-store.js';

let server: TestServer;
let cluster: RedisClusterHandle;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  [server, cluster] = await Promise.all([
    startTestServer({ rotateRefreshTokens: true }),
    startRedisCluster({ replicas: 1 }),
  ]);
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([server?.close(), cluster?.close()]);
});

const ONE_REFRESH: FleetWaveResult = { requests: 1, refreshed: 1, fingerprints: 1, bad: [] };

/**
 * A fresh key prefix on the cluster, its writes and locks waiting for the replica; a seeded
 * rotating grant whose access token has expired; and the hash slot of its key.
 */
async function seededFleet(): Promise<{ store: SharedStore; issued: string; slot: number }> {
  const store: SharedStore = {
    kind: 'redis-cluster',
    nodes: cluster.nodes.map(({ host, port }) => ({ host, port })),
    keyPrefix: `cf-${randomUUID()}:`,
    waitForReplicas: { replicas: 1, timeoutMs: 1000 },
  };
  const issued = await seedExpiredTokens(server, store, 'shared', '');
  const node = new Redis({ host: cluster.nodes[0]!.host, port: cluster.nodes[0]!.port });
  try {
    const slot = Number(await node.cluster('KEYSLOT', `${store.keyPrefix}{shared}:data`));
    return { store, issued, slot };
  } finally {
    node.disconnect();
  }
}

/** 4 processes × 100 callers at once on the expired key. */
function wave(store: SharedStore): Promise<FleetWaveResult> {
  return fleetWave({ server, store, key: 'shared', namespace: '', processes: 4, calls: 100 }, children);
}

describe('a fleet of processes on a Redis Cluster', () => {
  it("the key's slot migrated between nodes mid-load: one refresh per expiry, nothing lost", async () => {
    const { store, issued, slot } = await seededFleet();
    expect(await wave(store)).toEqual(ONE_REFRESH);
    const spent = new Set([issued]);
    /** One expiry: the fleet refreshes once, presenting the refresh token the last refresh left. */
    const expiry = async () => {
      const presented = await expireStored(store, 'shared');
      expect(spent.has(presented)).toBe(false);
      spent.add(presented);
      expect(await wave(store)).toEqual(ONE_REFRESH);
    };
    let moves = 0;
    let midMigration = 0;
    for (const to of [1, 2, 0]) {
      const from = await cluster.migrateSlot(slot, to, {
        keysPerStep: 1,
        // The data key moved, the slot not yet handed over: the processes get ASK redirects.
        betweenSteps: async () => {
          midMigration += 1;
          await expiry();
        },
      });
      if (from !== to) moves += 1;
      await expiry(); // handed over: MOVED, then the new owner
    }
    expect(moves).toBeGreaterThanOrEqual(2); // the first target may hold the slot already
    expect(midMigration).toBe(moves);
  }, 120_000);

  it("the key's master SIGKILLed right after a refresh was written: nothing lost, the next expiry is one refresh", async () => {
    const { store, issued, slot } = await seededFleet();
    expect(await wave(store)).toEqual(ONE_REFRESH);
    // The rotated set was written with WAIT: the replica that takes over has it.
    const { killed, promoted } = await cluster.killMaster(slot);
    expect(promoted.port).not.toBe(killed.port);
    try {
      await cluster.revive(); // the killed node back, as the promoted one's replica
      const rotated = await expireStored(store, 'shared');
      expect(rotated).not.toBe(issued);
      expect(await wave(store)).toEqual(ONE_REFRESH);
    } finally {
      await cluster.revive();
    }
  }, 90_000);
});
