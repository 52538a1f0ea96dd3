/**
 * What durable writes cost: `RedisTokenStore.set()` on Redis Sentinel (a primary, a replica and
 * three sentinels from `startRedisSentinel()`) with `waitForReplicas` (`WAIT 1` after each write,
 * the Sentinel default) and without it, in interleaved rounds, one write after another. Reported:
 * the median and p99 latency of a write, and what the wait adds. No target: it is the price of a
 * rotated refresh token surviving the primary's death, shown so that a user can weigh it.
 *
 * Environment: `BENCH_DURABLE_WRITES` writes per round and store (default 2,000); `BENCH_ROUNDS` as
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

/** The latency of each of `count` writes, one after another, in µs. */
async function timeWrites(store: RedisTokenStore, count: number): Promise<number[]> {
  const latencies: number[] = [];
  for (let i = 0; i < count; i++) {
    const tokens: TokenSet = {
      accessToken: `at-${i}-${randomUUID()}`,
      refreshToken: `rt-${i}-${randomUUID()}`,
      tokenType: 'Bearer',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
    };
    const start = performance.now();
    await store.set('durable', tokens);
    latencies.push((performance.now() - start) * 1000);
  }
  return latencies;
}

export const redisDurabilitySuite: Suite = {
  name: 'redis-durability',
  title: 'Redis Sentinel: the cost of waiting for a replica (WAIT) on each token set write',
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
      await timeWrites(stores.durable, Math.min(200, writes)); // connect, load the scripts
      await timeWrites(stores.plain, Math.min(200, writes));
      const all = { durable: [] as number[], plain: [] as number[] };
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? (['plain', 'durable'] as const) : (['durable', 'plain'] as const);
        for (const name of order) all[name].push(...(await timeWrites(stores[name], writes)));
      }
      const micros = (value: number): string => `${value.toFixed(0)} µs`;
      const row = (label: string, values: number[]): string[] => [
        label,
        micros(median(values)),
        micros(percentile(values, 99)),
      ];
      const table = formatTable(
        [
          { heading: 'set(), one write after another', align: 'left' },
          { heading: 'median', align: 'right' },
          { heading: 'p99', align: 'right' },
        ],
        [
          row('waitForReplicas: false (the primary only)', all.plain),
          row('waitForReplicas: { replicas: 1, timeoutMs: 1000 } (Sentinel default)', all.durable),
          [
            'what waiting for the replica adds',
            micros(median(all.durable) - median(all.plain)),
            micros(percentile(all.durable, 99) - percentile(all.plain, 99)),
          ],
        ],
      );
      return { table, targets: [] };
    } finally {
      await Promise.all([stores.durable.close(), stores.plain.close()]);
      await redis.close();
    }
  },
};
