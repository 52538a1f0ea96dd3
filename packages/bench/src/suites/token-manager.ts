/**
 * TokenManager: the cost of a cached `getValidAccessToken()`, 10,000 concurrent callers on an
 * expired key, and 100,000 keys with background refresh, against the local static token server.
 *
 * Targets (DESIGN.md, "What it must reach"):
 * - a cached `getValidAccessToken()` (memory store) at most 1.5x a bare `async` Map lookup;
 * - 10,000 concurrent callers on an expired key: exactly 1 token request in-process;
 * - 100,000 keys with background refresh: one timer, bounded memory, no event-loop stalls.
 *
 * Environment: `BENCH_LOOKUPS` awaited calls per timed run of the cached lookup (default
 * 1,000,000), `BENCH_CALLERS` concurrent callers (default 10,000), `BENCH_KEYS` keys with background
 * refresh (default 100,000); `BENCH_ROUNDS` as for every suite. `BENCH_ONLY=cached,concurrent,keys`
 * runs only the named parts (all of them when `BENCH_ONLY` names none).
 */
import { Client, TokenManager } from '@tessera/core';
import type { TokenHandle } from '@tessera/core';
import { performance } from 'node:perf_hooks';
import { integerFromEnv } from '../env.js';
import { collectGarbage, median } from '../measure.js';
import { STATIC_TOKEN_RESPONSE } from '../static-token-server.js';
import type { RequestCounts, StaticTokenServer } from '../static-token-server.js';
import type { Suite, SuiteContext, SuiteReport, TargetCheck } from '../suite.js';
import { formatBytes, formatCount, formatMs, formatRatio, formatTable } from '../table.js';
import { measureManyKeys, manyKeysTable, SCHEDULER_TIMERS } from './token-manager-keys.js';
import type { ManyKeysFigures } from './token-manager-keys.js';

const CLIENT_ID = 'c1';
const CLIENT_SECRET = 's1';
const TOKEN = STATIC_TOKEN_RESPONSE.access_token;

/** A cached lookup may cost at most this many times a bare `async` Map lookup. */
const CACHED_TARGET_RATIO = 1.5;
/** Token requests allowed for any number of concurrent callers on one expired key. */
const CONCURRENT_TARGET_REQUESTS = 1;
/** Scheduler timers allowed at once, whatever the number of keys. */
const TIMER_TARGET = 1;
/**
 * Bounded memory: what the manager keeps is per key, so refreshing every key a second time may not
 * grow the heap by more than this fraction (GC and allocator noise).
 */
const MEMORY_GROWTH_TARGET = 0.05;
/**
 * An event-loop turn delayed this long or longer (beyond the 10 ms sampling interval of
 * `monitorEventLoopDelay`) is a stall: 100 ms is where a request's latency becomes noticeable
 * (RAIL's response budget).
 */
const STALL_MS = 100;

/** `Promise.all` of `count` calls, timed. */
async function timeAll<T>(count: number, call: () => Promise<T>): Promise<{ ms: number; results: T[] }> {
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: count }, call));
  return { ms: performance.now() - start, results };
}

function newClient(issuer: string): Client {
  return new Client(
    { issuer, token_endpoint: `${issuer}/token` },
    { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_basic' },
  );
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}

/** Token requests (of any grant) between two readings of the server's counts. */
function tokenRequests(before: RequestCounts, after: RequestCounts): number {
  return sum(Object.values(after.token)) - sum(Object.values(before.token));
}

// --- 1. cached getValidAccessToken() ----------------------------------------------------------------

const CACHED_KEY = 'default';

/**
 * One awaited loop per contender (not one loop calling a closure), so that each call site sees one
 * function, as in a caller's own code.
 */
async function bareLookups(calls: number, map: ReadonlyMap<string, string>): Promise<unknown> {
  const lookup = async (key: string): Promise<string | undefined> => map.get(key);
  let last: unknown;
  for (let i = 0; i < calls; i++) last = await lookup(CACHED_KEY);
  return last;
}

async function managerLookups(calls: number, manager: TokenManager): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < calls; i++) last = await manager.getValidAccessToken();
  return last;
}

async function handleLookups(calls: number, handle: TokenHandle): Promise<unknown> {
  let last: unknown;
  for (let i = 0; i < calls; i++) last = await handle.getValidAccessToken();
  return last;
}

const BARE = 'bare async Map lookup';
const MANAGER = 'manager.getValidAccessToken()';
const HANDLE = "manager.for('k').getValidAccessToken()";
type CachedName = typeof BARE | typeof MANAGER | typeof HANDLE;

interface CachedFigures {
  name: CachedName;
  /** ns per awaited call, per round. */
  rounds: number[];
}

async function measureCached(
  server: StaticTokenServer,
  rounds: number,
  calls: number,
): Promise<CachedFigures[]> {
  const manager = new TokenManager({ client: newClient(server.issuer), grant: 'client_credentials' });
  try {
    // Acquire both keys' tokens once (expires_in 3600 s, far beyond the 60 s skew): from then on
    // every call is served from the memory store.
    const handle = manager.for('k', { grant: 'client_credentials' });
    await manager.getValidAccessToken();
    await handle.getValidAccessToken();
    const map = new Map([[CACHED_KEY, TOKEN]]);
    const runs: Record<CachedName, (n: number) => Promise<unknown>> = {
      [BARE]: (n) => bareLookups(n, map),
      [MANAGER]: (n) => managerLookups(n, manager),
      [HANDLE]: (n) => handleLookups(n, handle),
    };
    const names = Object.keys(runs) as CachedName[];
    const before = await server.counts();
    for (const name of names) await runs[name](Math.ceil(calls / 10)); // warm-up
    const figures = names.map((name) => ({ name, rounds: [] as number[] }));
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < names.length; i++) {
        const index = (i + round) % names.length;
        collectGarbage();
        const start = performance.now();
        const last = await runs[names[index]!](calls);
        const ms = performance.now() - start;
        if (last !== TOKEN) throw new Error(`${names[index]!}: unexpected token`);
        figures[index]!.rounds.push((ms * 1e6) / calls);
      }
    }
    const requests = tokenRequests(before, await server.counts());
    if (requests !== 0) throw new Error(`cached lookups made ${requests} token requests`);
    return figures;
  } finally {
    await manager.close();
  }
}

// --- 2. concurrent callers on an expired key --------------------------------------------------------

interface ConcurrentFigures {
  /** One client_credentials grant on its own, ms, per round. */
  grantMs: number[];
  /** `callers` concurrent cached calls (no request), ms, per round. */
  cachedMs: number[];
  /** `callers` concurrent calls on an expired key, ms, per round. */
  expiredMs: number[];
  /** Token requests the server received for each round of expired calls. */
  requests: number[];
}

async function measureConcurrent(
  server: StaticTokenServer,
  rounds: number,
  callers: number,
): Promise<ConcurrentFigures> {
  const client = newClient(server.issuer);
  // The manager's clock jumps 2 h ahead before each round: the 3600 s token is then expired.
  let clockOffsetMs = 0;
  const manager = new TokenManager({
    client,
    grant: 'client_credentials',
    now: () => Date.now() + clockOffsetMs,
  });
  const figures: ConcurrentFigures = { grantMs: [], cachedMs: [], expiredMs: [], requests: [] };
  const expire = (): void => {
    clockOffsetMs += 2 * 3600 * 1000;
  };
  const check = (results: readonly string[]): void => {
    if (results.some((token) => token !== TOKEN))
      throw new Error('a concurrent caller got an unexpected token');
  };
  try {
    // Warm-up: the first acquisition, then a smaller round of each.
    await manager.getValidAccessToken();
    check((await timeAll(Math.ceil(callers / 10), () => manager.getValidAccessToken())).results);
    expire();
    check((await timeAll(Math.ceil(callers / 10), () => manager.getValidAccessToken())).results);
    for (let round = 0; round < rounds; round++) {
      collectGarbage();
      let start = performance.now();
      await client.clientCredentialsGrant();
      figures.grantMs.push(performance.now() - start);

      collectGarbage();
      const cached = await timeAll(callers, () => manager.getValidAccessToken());
      check(cached.results);
      figures.cachedMs.push(cached.ms);

      expire();
      collectGarbage();
      const before = await server.counts();
      start = performance.now();
      const expired = await timeAll(callers, () => manager.getValidAccessToken());
      figures.expiredMs.push(expired.ms);
      check(expired.results);
      figures.requests.push(tokenRequests(before, await server.counts()));
    }
    return figures;
  } finally {
    await manager.close();
  }
}

// --- the suite -----------------------------------------------------------------------------------

function cachedTable(figures: readonly CachedFigures[]): { table: string; ratios: Map<CachedName, number> } {
  const bare = figures.find((f) => f.name === BARE)!;
  const ratios = new Map<CachedName, number>();
  const rows = figures.map((f) => {
    const ratio = median(f.rounds.map((ns, round) => ns / bare.rounds[round]!));
    ratios.set(f.name, ratio);
    const ns = median(f.rounds);
    return [
      f.name,
      ns.toFixed(1),
      f.rounds.map((r) => r.toFixed(1)).join(' / '),
      formatRatio(ratio),
      formatCount(1e9 / ns),
    ];
  });
  const table = formatTable(
    [
      { heading: 'awaited call' },
      { heading: 'ns/op (median)', align: 'right' },
      { heading: 'rounds (ns/op)', align: 'right' },
      { heading: 'vs bare async Map (median of rounds)', align: 'right' },
      { heading: 'calls/s', align: 'right' },
    ],
    rows,
  );
  return { table, ratios };
}

function concurrentTable(figures: ConcurrentFigures, callers: number): string {
  const row = (label: string, values: readonly number[], requests: string): string[] => [
    label,
    formatMs(median(values)),
    values.map(formatMs).join(' / '),
    requests,
  ];
  return formatTable(
    [
      { heading: 'operation' },
      { heading: 'time (median)', align: 'right' },
      { heading: 'rounds', align: 'right' },
      { heading: 'token requests per round', align: 'right' },
    ],
    [
      row('one client_credentials grant (Client, no manager)', figures.grantMs, '1'),
      row(`${formatCount(callers)} concurrent callers, cached token`, figures.cachedMs, '0'),
      row(
        `${formatCount(callers)} concurrent callers, expired key`,
        figures.expiredMs,
        figures.requests.join(' / '),
      ),
    ],
  );
}

/** "One timer, bounded memory, no event-loop stalls", as measured. */
function manyKeysTargets(many: ManyKeysFigures): TargetCheck[] {
  const keys = formatCount(many.keys);
  const scheduler = many.timers.get(SCHEDULER_TIMERS);
  const schedulerTimers = scheduler?.maxLive ?? 0;
  const [first, second] = many.cycles;
  const growth =
    first?.heapBytesPerKey === undefined || second?.heapBytesPerKey === undefined
      ? undefined
      : second.heapBytesPerKey / first.heapBytesPerKey - 1;
  const complete =
    many.cycles.length === 2 && many.cycles.every((c) => !c.deadlineHit && c.refreshed === many.keys);
  const worst = Math.max(...many.cycles.map((c) => c.loopDelay.max));
  const worstP99 = Math.max(...many.cycles.map((c) => c.loopDelay.p99));
  return [
    {
      description: `${keys} keys, background refresh: scheduler timers pending at once <= ${TIMER_TARGET}`,
      measured: schedulerTimers,
      shown: `${schedulerTimers} (${formatCount(scheduler?.created ?? 0)} setTimeout calls in all)`,
      met: schedulerTimers <= TIMER_TARGET,
    },
    {
      description: `${keys} keys, background refresh: heap growth from refresh cycle 1 to cycle 2 <= ${MEMORY_GROWTH_TARGET * 100}%`,
      measured: growth,
      shown:
        growth === undefined
          ? undefined
          : `${(growth * 100).toFixed(1)}% (${formatBytes(first!.heapBytesPerKey!)} → ${formatBytes(second!.heapBytesPerKey!)} per key)`,
      met: growth === undefined ? undefined : growth <= MEMORY_GROWTH_TARGET,
    },
    {
      description: `${keys} keys, background refresh: every key refreshed twice, event-loop delay max < ${STALL_MS} ms`,
      measured: worst,
      shown: `max ${formatMs(worst)}, p99 ${formatMs(worstP99)}; refreshed ${many.cycles.map((c) => formatCount(c.refreshed)).join(' + ')}`,
      met: complete && worst < STALL_MS,
    },
  ];
}

/** The parts of the suite, for `BENCH_ONLY`. */
export const TOKEN_MANAGER_PARTS = ['cached', 'concurrent', 'keys'] as const;

/** The TokenManager suite (see the module comment). */
export const tokenManagerSuite: Suite = {
  name: 'token-manager',
  title:
    'TokenManager: cached lookups, concurrent callers on an expired key, many keys with background refresh',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const { rounds } = context.config;
    const calls = Math.max(1, integerFromEnv('BENCH_LOOKUPS', 1_000_000));
    const callers = Math.max(1, integerFromEnv('BENCH_CALLERS', 10_000));
    const keys = Math.max(1, integerFromEnv('BENCH_KEYS', 100_000));
    const server = await context.tokenServer();
    const targets: TargetCheck[] = [];
    const sections: string[] = [];
    const named = TOKEN_MANAGER_PARTS.filter((part) => context.config.only?.has(part) ?? false);
    const runs = (part: (typeof TOKEN_MANAGER_PARTS)[number]): boolean =>
      named.length === 0 || named.includes(part);

    if (runs('cached')) await cachedPart();
    if (runs('concurrent')) await concurrentPart();
    if (runs('keys')) await keysPart();
    return { table: sections.join('\n\n'), targets };

    async function cachedPart(): Promise<void> {
      const cached = cachedTable(await measureCached(server, rounds, calls));
      sections.push(
        `### Cached getValidAccessToken() (memory store), ${formatCount(calls)} awaited calls per round, ${rounds} rounds\n\n${cached.table}`,
      );
      for (const name of [MANAGER, HANDLE] as const) {
        const measured = cached.ratios.get(name);
        targets.push({
          description: `cached ${name} / bare async Map lookup <= ${CACHED_TARGET_RATIO}`,
          measured,
          met: measured === undefined ? undefined : measured <= CACHED_TARGET_RATIO,
        });
      }
    }

    async function concurrentPart(): Promise<void> {
      const concurrent = await measureConcurrent(server, rounds, callers);
      const requests = concurrent.requests.every((n) => n === concurrent.requests[0])
        ? `${concurrent.requests[0]} (every round)`
        : concurrent.requests.join(' / ');
      sections.push(
        `### ${formatCount(callers)} concurrent callers on an expired key (client_credentials), ${rounds} rounds\n\n` +
          `${concurrentTable(concurrent, callers)}\n\n` +
          `token requests made: ${requests}; all ${formatCount(callers)} callers resolved in ` +
          `${formatMs(median(concurrent.expiredMs))} (median)`,
      );
      const mostRequests = Math.max(...concurrent.requests);
      targets.push({
        description: `${formatCount(callers)} concurrent callers on an expired key: token requests == ${CONCURRENT_TARGET_REQUESTS}`,
        measured: mostRequests,
        shown: `token requests made: ${concurrent.requests.join(' / ')} (per round), all resolved in ${formatMs(median(concurrent.expiredMs))} (median)`,
        met: concurrent.requests.every((n) => n === CONCURRENT_TARGET_REQUESTS),
      });
    }

    async function keysPart(): Promise<void> {
      const many = await measureManyKeys(server, keys);
      sections.push(`### ${formatCount(keys)} keys with background refresh\n\n${manyKeysTable(many)}`);
      targets.push(...manyKeysTargets(many));
    }
  },
};
