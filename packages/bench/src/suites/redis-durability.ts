/**
 * What durable writes cost: `RedisTokenStore.set()`, and a refresh's store work (lock, write,
 * release), on Redis Sentinel (a primary, a replica and three sentinels from `startRedisSentinel()`)
 * with `waitForReplicas` (`WAIT 1` after each write and each lock taken, the Sentinel default) and
 * without it, in interleaved rounds, one after another. Reported: the median and p99 latency of
 * each, and what the wait adds. No target: it is the price of a
 * rotated refresh token surviving the primary's death, shown so that a user can weigh it.
 *
 * Environment: `BENCH_DURABLE_WRITES` operations per round, store and kind (default 2,000); `BENCH_ROUNDS` as
 * for every suite.
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { TokenSet } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisSentinel } from '@tessera/testing';
import { integerFromEnv } from '../env.js';
import { median } from '../measure.js';
import type { Suite, SuiteContext, SuiteReport } from '../suite.js';
import { formatTable } from '../table.js';

/** The `p`-th percentile (0-100) of a non-empty list, nearest rank. */
function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** A token set unlike any other. */
function freshTokens(i: number): TokenSet {
  return {
    accessToken: `at-${i}-${randomUUID()}`,
    refreshToken: `rt-${i}-${randomUUID()}`,
    tokenType: 'Bearer',
    expiresAt: Math.floor(Date.now() / 1000) + 3600,
  };
}

/** What is measured: a write alone, or a refresh's store work (lock, write, release). */
type Operation = 'write' | 'refresh';

/** The latency of each of `count` operations, one after another, in µs. */
async function timeOperations(
  store: RedisTokenStore,
  operation: Operation,
  count: number,
): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const tokens = freshTokens(i);
    const start = performance.now();
    if (operation === 'write') {
      await store.set('durable', tokens);
    } else {
      const lock = await store.lock('durable', { ttlMs: 30_000, waitMs: 1000 });
      await store.set('durable', tokens);
      await lock.release();
    }
    latencies.push((performance.now() - start) * 1000);
  }
  return latencies;
}

export const redisDurabilitySuite: Suite = {
  name: 'redis-durability',
  title: 'Redis Sentinel: the cost of waiting for a replica (WAIT) on a token set write and a refresh',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const writes = Math.max(1, integerFromEnv('BENCH_DURABLE_WRITES', 2_000));
    const rounds = context.config.rounds;
    const redis = await startRedisSentinel();
    const prefix = `bench-${randomUUID()}:`;
    const make = (waitForReplicas: false | undefined): RedisTokenStore =>
      new RedisTokenStore({
        sentinels: redis.sentinels,
        name: redis.name,
        keyPrefix: prefix,
        ...(waitForReplicas === false ? { waitForReplicas } : {}),
      });
    const stores = { durable: make(undefined), plain: make(false) };
    try {
      const all = {
        write: { durable: [] as number[], plain: [] as number[] },
        refresh: { durable: [] as number[], plain: [] as number[] },
      };
      for (const operation of ['write', 'refresh'] as const) {
        // Connect, load the scripts, open the lock's pub/sub: not measured.
        await timeOperations(stores.durable, operation, Math.min(200, writes));
        await timeOperations(stores.plain, operation, Math.min(200, writes));
        for (let round = 0; round < rounds; round++) {
          const order = round % 2 === 0 ? (['plain', 'durable'] as const) : (['durable', 'plain'] as const);
          for (const name of order)
            all[operation][name].push(...(await timeOperations(stores[name], operation, writes)));
        }
      }
      const micros = (value: number): string => `${value.toFixed(0)} µs`;
      const row = (label: string, values: number[]): string[] => [
        label,
        micros(median(values)),
        micros(percentile(values, 99)),
      ];
      const rows = (operation: Operation, label: string): string[][] => {
        const { durable, plain } = all[operation];
        return [
          row(`${label}, waitForReplicas: false (the primary only)`, plain),
          row(`${label}, waitForReplicas: { replicas: 1, timeoutMs: 1000 } (Sentinel default)`, durable),
          [
            `${label}: what waiting for the replica adds`,
            micros(median(durable) - median(plain)),
            micros(percentile(durable, 99) - percentile(plain, 99)),
          ],
        ];
      };
      const table = formatTable(
        [
          { heading: 'one after another', align: 'left' },
          { heading: 'median', align: 'right' },
          { heading: 'p99', align: 'right' },
        ],
        [...rows('write', 'set()'), ...rows('refresh', 'lock + set() + release')],
      );
      return { table, targets: [] };
    } finally {
      await Promise.all([stores.durable.close(), stores.plain.close()]);
      await redis.close();
    }
  },
};
