/**
 * A fleet of real processes (test-support/fleet/worker.ts) on Redis Sentinel, against the real
 * authorization server with rotating refresh tokens: the primary is SIGKILLed right after a refresh
 * was written, or switched over by a planned failover, and the next expiry is still one refresh by
 * the whole fleet, with the rotated refresh token, and no `invalid_grant`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Client, TokenManager } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisSentinel, startTestServer } from '@tessera/testing';
import type { RedisSentinelHandle, TestServer } from '@tessera/testing';
import { startWorker } from '../../../test-support/fleet/describe-fleet.js';
import type { SharedStore } from '../../../test-support/fleet/shared-store.js';

let server: TestServer;
let redis: RedisSentinelHandle;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  [server, redis] = await Promise.all([startTestServer({ rotateRefreshTokens: true }), startRedisSentinel()]);
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([server?.close(), redis?.close()]);
});

/** A store of this process on the fleet's Redis (waiting for the replica, the Sentinel default). */
function storeOf(shared: Extract<SharedStore, { kind: 'redis-sentinel' }>): RedisTokenStore {
  return new RedisTokenStore({ sentinels: shared.sentinels, name: shared.name, keyPrefix: shared.keyPrefix });
}

/** Writes the stored set back with its access token expired, as time passing would. */
async function expire(shared: Extract<SharedStore, { kind: 'redis-sentinel' }>): Promise<string> {
  const store = storeOf(shared);
  try {
    const current = (await store.get('shared'))!;
    await store.set('shared', { ...current, expiresAt: Math.floor(Date.now() / 1000) - 1 });
    return current.refreshToken!;
  } finally {
    await store.close();
  }
}

/** 4 processes × 100 callers on the expired key; what they got and did. */
async function wave(
  shared: SharedStore,
): Promise<{ requests: number; fingerprints: number; bad: unknown[] }> {
  server.resetStats();
  const workers = Array.from({ length: 4 }, () =>
    startWorker(
      {
        issuer: server.issuer,
        client: server.clients.basic,
        store: shared,
        key: 'shared',
        calls: 100,
        namespace: '',
      },
      children,
    ),
  );
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.child.send({ type: 'go' });
  const results = await Promise.all(workers.map((w) => w.done));
  const events = workers.flatMap((w) => w.events);
  return {
    requests: server.stats().token,
    fingerprints: new Set(results.flatMap((r) => r.fingerprints)).size,
    bad: [
      ...results.flatMap((r) => r.rejected),
      ...events.filter((e) => e.name === 'refresh.failed' || e.name === 'token.cleared'),
    ],
  };
}

describe('a fleet of processes on Redis Sentinel', () => {
  it.each([
    ['the primary SIGKILLed right after the refresh was written', () => redis.killPrimary()],
    ['a planned failover right after the refresh was written', () => redis.failover()],
  ])(
    '%s: nothing lost, the next expiry is one refresh, no invalid_grant',
    async (_case, fail) => {
      const shared = {
        kind: 'redis-sentinel' as const,
        sentinels: [...redis.sentinels],
        name: redis.name,
        keyPrefix: `sf-${randomUUID()}:`,
      };
      // Seed a rotating grant whose access token has expired.
      const client = await Client.discover(server.issuer, server.clients.basic);
      const seedStore = storeOf(shared);
      const seeder = new TokenManager({ client, store: seedStore, key: 'shared', namespace: '' });
      const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
      await seeder.storeTokens({ ...issued, expires_in: 0 } as never);
      await seeder.close();
      await seedStore.close();

      const first = await wave(shared);
      expect(first).toEqual({ requests: 1, fingerprints: 1, bad: [] });

      await fail(); // the rotated set was written with WAIT: the new primary has it
      try {
        await redis.revive(); // after a kill: the old primary back, as a replica (writes wait for it)
        const rotated = await expire(shared);
        expect(rotated).not.toBe(issued.refresh_token);
        const second = await wave(shared);
        expect(second).toEqual({ requests: 1, fingerprints: 1, bad: [] });
      } finally {
        await redis.revive();
      }
    },
    90_000,
  );
});
