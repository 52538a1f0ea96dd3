/**
 * A fleet of real processes (test-support/fleet/worker.ts) on Redis Sentinel, against the real
 * authorization server with rotating refresh tokens: the primary is SIGKILLed right after a refresh
 * was written, or switched over by a planned failover, and the next expiry is still one refresh by
 * the whole fleet, with the rotated refresh token, and no `invalid_grant`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startRedisSentinel, startTestServer } from '@tessera/testing';
import type { RedisSentinelHandle, TestServer } from '@tessera/testing';
import { expireStored, fleetWave, seedExpiredTokens } from '../../../test-support/fleet/describe-fleet.js';
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

describe('a fleet of processes on Redis Sentinel', () => {
  it.each([
    ['the primary SIGKILLed right after the refresh was written', () => redis.killPrimary()],
    ['a planned failover right after the refresh was written', () => redis.failover()],
  ])(
    '%s: nothing lost, the next expiry is one refresh, no invalid_grant',
    async (_case, fail) => {
      // Its writes and locks wait for the replica (the Sentinel default).
      const store: SharedStore = {
        kind: 'redis-sentinel',
        sentinels: [...redis.sentinels],
        name: redis.name,
        keyPrefix: `sf-${randomUUID()}:`,
      };
      const issued = await seedExpiredTokens(server, store, 'shared', '');
      const wave = () =>
        fleetWave({ server, store, key: 'shared', namespace: '', processes: 4, calls: 100 }, children);

      expect(await wave()).toEqual({ requests: 1, refreshed: 1, fingerprints: 1, bad: [] });

      await fail(); // the rotated set was written with WAIT: the new primary has it
      try {
        await redis.revive(); // after a kill: the old primary back, as a replica (writes wait for it)
        const rotated = await expireStored(store, 'shared');
        expect(rotated).not.toBe(issued);
        expect(await wave()).toEqual({ requests: 1, refreshed: 1, fingerprints: 1, bad: [] });
      } finally {
        await redis.revive();
      }
    },
    90_000,
  );
});
