/**
 * A fleet of processes sharing one Redis refreshes a rotating refresh token exactly once, and
 * survives a process that dies holding the refresh lock (the shared fleet tests, test-support/fleet).
 */
import { afterAll, beforeAll } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { startRedisServer } from '@tessera/testing';
import type { RedisServerHandle } from '@tessera/testing';
import { describeFleet } from '../../../test-support/fleet/describe-fleet.js';

let redis: RedisServerHandle;
beforeAll(async () => {
  redis = await startRedisServer();
}, 60_000);
afterAll(() => redis?.close());

describeFleet('a fleet sharing Redis', () => ({
  kind: 'redis',
  url: redis.url,
  keyPrefix: `fleet-${randomUUID()}:`,
}));
