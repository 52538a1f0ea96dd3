/**
 * The Redis token store: what a cached `getValidAccessToken()` costs through it, with the
 * TokenManager's near-cache (kept fresh by the store's change feed) and without it (one Redis round
 * trip per call), against the memory store measured in the same run; and the fleet figure, refresh
 * requests per expiry for 8 managers with their own connections sharing one Redis.
 *
 * Targets (DESIGN.md, "What it must reach"): through the near-cache at most 2x the memory store;
 * 8 managers sharing Redis: exactly 1 refresh per expiry.
 *
 * Environment: `BENCH_REDIS_LOOKUPS` awaited calls per timed run through the near-cache and the
 * memory store (default 1,000,000), `BENCH_REDIS_ROUND_TRIPS` per timed run without the near-cache
 * (default 20,000); `BENCH_ROUNDS` as for every suite. Redis: its own `redis-server` on an ephemeral
 * port (or `REDIS_URL`).
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Client, MemoryTokenStore, TokenManager } from '@tessera/core';
import type { TokenStore } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisServer } from '@tessera/testing';
import { integerFromEnv } from '../env.js';
import { measureCachedLookups, median, withoutChangeFeed } from '../measure.js';
import type { RequestCounts } from '../static-token-server.js';
import type { Suite, SuiteContext, SuiteReport } from '../suite.js';
import { formatCount, formatRatio, formatTable } from '../table.js';

/** Through the near-cache, a cached lookup may cost at most this many times the memory store's. */
const NEAR_CACHE_TARGET_RATIO = 2;
const FLEET_MANAGERS = 8;
const FLEET_CALLERS = 500;

function newClient(issuer: string): Client {
  return new Client(
    { issuer, token_endpoint: `${issuer}/token` },
    { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_basic' },
  );
}

function totalTokenRequests(counts: RequestCounts): number {
  return Object.values(counts.token).reduce((a, b) => a + b, 0);
}

export const redisStoreSuite: Suite = {
  name: 'redis-store',
  title: 'Redis token store: cached lookups with and without the near-cache, and a fleet sharing one Redis',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const lookups = integerFromEnv('BENCH_REDIS_LOOKUPS', 1_000_000);
    const roundTrips = integerFromEnv('BENCH_REDIS_ROUND_TRIPS', 20_000);
    const rounds = context.config.rounds;
    const server = await context.tokenServer();
    const redis = await startRedisServer();
    const prefix = `bench-${randomUUID()}:`;
    const stores: RedisTokenStore[] = [];
    const managers: TokenManager[] = [];
    const redisStore = () => {
      const store = new RedisTokenStore({ url: redis.url, keyPrefix: prefix });
      stores.push(store);
      return store;
    };
    const manager = (store: TokenStore, key: string) => {
      const made = new TokenManager({
        client: newClient(server.issuer),
        grant: 'client_credentials',
        store,
        key,
      });
      managers.push(made);
      return made;
    };
    try {
      // 1-2. cached lookups: memory store, Redis with near-cache, Redis without (interleaved rounds)
      const memory = manager(new MemoryTokenStore(), 'cached');
      const near = manager(redisStore(), 'cached');
      const far = manager(withoutChangeFeed(redisStore()), 'cached');
      const figures = await measureCachedLookups(
        { memory, near, far },
        { rounds, lookups, farCalls: roundTrips },
      );

      // 3. the fleet: 8 managers, each with its own connection and near-cache, on one expired key
      const fleetKey = `fleet-${randomUUID()}`;
      const seed = redisStore();
      await seed.set(fleetKey, {
        accessToken: 'expired',
        tokenType: 'Bearer',
        expiresAt: Math.floor(Date.now() / 1000) - 1,
      });
      const fleet = Array.from({ length: FLEET_MANAGERS }, () => manager(redisStore(), fleetKey));
      const before = await server.counts();
      const start = performance.now();
      const tokens = await Promise.all(
        fleet.flatMap((m) => Array.from({ length: FLEET_CALLERS }, () => m.getValidAccessToken())),
      );
      const fleetMs = performance.now() - start;
      const refreshes = totalTokenRequests(await server.counts()) - totalTokenRequests(before);
      const distinct = new Set(tokens).size;

      const ns = (values: number[]) => `${median(values).toFixed(0)} ns`;
      const table = formatTable(
        [
          { heading: 'what', align: 'left' },
          { heading: 'figure (median)', align: 'right' },
          { heading: 'vs memory store', align: 'right' },
        ],
        [
          ['cached getValidAccessToken(), MemoryTokenStore', ns(figures.memory), '1.00x'],
          [
            'cached getValidAccessToken(), RedisTokenStore + near-cache',
            ns(figures.near),
            formatRatio(median(figures.ratio)),
          ],
          [
            'getValidAccessToken(), RedisTokenStore without near-cache (1 round trip)',
            ns(figures.far),
            formatRatio(median(figures.far) / median(figures.memory)),
          ],
          [
            `fleet: ${FLEET_MANAGERS} managers × ${FLEET_CALLERS} callers, expired key: token requests`,
            formatCount(refreshes),
            '',
          ],
          [
            'fleet: distinct tokens handed out / time for all callers',
            `${distinct} / ${fleetMs.toFixed(0)} ms`,
            '',
          ],
        ],
      );
      return {
        table,
        targets: [
          {
            description: `cached getValidAccessToken() through the Redis store's near-cache <= ${NEAR_CACHE_TARGET_RATIO}x the memory store`,
            measured: median(figures.ratio),
            met: median(figures.ratio) <= NEAR_CACHE_TARGET_RATIO,
          },
          {
            description: `${FLEET_MANAGERS} managers sharing Redis, one expired key: token requests per expiry = 1`,
            measured: refreshes,
            shown: `${refreshes} request${refreshes === 1 ? '' : 's'}`,
            met: refreshes === 1 && distinct === 1,
          },
        ],
      };
    } finally {
      await Promise.all(managers.map((m) => m.close()));
      await Promise.all(stores.map((s) => s.close()));
      await redis.close();
    }
  },
};
