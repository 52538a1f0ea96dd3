/**
 * Timing helpers: run an async operation a fixed number of times with a fixed concurrency, and
 * compare contenders over several interleaved rounds, reporting the median.
 */
import { performance } from 'node:perf_hooks';
import type { TokenStore } from '@tessera/core';

/** How much work one measured run does. */
export interface LoadShape {
  /** Operations per run. */
  operations: number;
  /** Operations in flight at once (each of `concurrency` workers runs its operations one by one). */
  concurrency: number;
}

/** How a set of contenders is measured. */
export interface MeasureOptions extends LoadShape {
  /** Operations run once per contender before the first round, not timed. */
  warmup: number;
  /** Timed runs per contender; the median is reported. */
  rounds: number;
}

/** One implementation of an operation under test. */
export interface Contender {
  /** Short name, used in tables and in `BENCH_ONLY`. */
  name: string;
  /** One operation, e.g. one token request; must reject on any failure. */
  operation: () => Promise<unknown>;
  /**
   * Runs before each of the contender's runs (warm-up included) and returns what undoes it after
   * the run: state that must not be in place while the other contenders run (a subscription).
   */
  setup?: () => () => void;
}

/** A contender's figures. */
export interface ContenderResult {
  name: string;
  /** Median over the rounds, operations per second. */
  opsPerSecond: number;
  /** Every round, operations per second, in the order run. */
  rounds: readonly number[];
  /**
   * Median over the rounds of the CPU time (user + system) this process spent per operation, in
   * µs. The server runs in another process, so this is the client's cost alone; it varies much
   * less than throughput on a shared machine.
   */
  cpuMicrosPerOp: number;
}

/** One timed run: wall-clock time and this process's CPU time. */
export interface RunTiming {
  elapsedMs: number;
  /** User + system CPU time of this process during the run, in µs. */
  cpuMicros: number;
}

/**
 * Runs `operation` `shape.operations` times, at most `shape.concurrency` at once, and returns the
 * elapsed wall-clock time and CPU time. The first failure rejects (after the in-flight operations end).
 */
export async function runConcurrently(
  operation: () => Promise<unknown>,
  shape: LoadShape,
): Promise<RunTiming> {
  let started = 0;
  const worker = async (): Promise<void> => {
    while (started < shape.operations) {
      started++;
      await operation();
    }
  };
  const workers = Math.max(1, Math.min(shape.concurrency, shape.operations));
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const outcomes = await Promise.allSettled(Array.from({ length: workers }, worker));
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failure !== undefined) throw failure.reason;
  return { elapsedMs, cpuMicros: cpu.user + cpu.system };
}

/** Operations per second of `operations` operations done in `elapsedMs`. */
export function opsPerSecond(operations: number, elapsedMs: number): number {
  return (operations * 1000) / elapsedMs;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * Collects garbage when node runs with `--expose-gc` (between runs, so one run's garbage is not
 * billed to the next); returns whether it could.
 */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return false;
  gc();
  return true;
}

/** `process.memoryUsage().heapUsed` after a full collection, or `undefined` without `--expose-gc`. */
export function heapUsedAfterGc(): number | undefined {
  if (!collectGarbage()) return undefined;
  collectGarbage(); // a second pass frees what the first one's finalizers released
  return process.memoryUsage().heapUsed;
}

/**
 * Measures each contender: a warm-up, then `rounds` timed runs. Rounds are interleaved and the
 * order rotates each round, so a slow phase of the machine does not fall on one contender only.
 */
export async function measureContenders(
  contenders: readonly Contender[],
  options: MeasureOptions,
): Promise<ContenderResult[]> {
  for (const contender of contenders) {
    if (options.warmup > 0) {
      await runSetUp(contender, () =>
        runConcurrently(contender.operation, {
          operations: options.warmup,
          concurrency: options.concurrency,
        }),
      );
    }
  }
  const rounds = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  const cpu = new Map<string, number[]>(contenders.map((c) => [c.name, []]));
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < contenders.length; i++) {
      const contender = contenders[(i + round) % contenders.length]!;
      collectGarbage();
      const timing = await runSetUp(contender, () => runConcurrently(contender.operation, options));
      rounds.get(contender.name)!.push(opsPerSecond(options.operations, timing.elapsedMs));
      cpu.get(contender.name)!.push(timing.cpuMicros / options.operations);
    }
  }
  return contenders.map((c) => {
    const figures = rounds.get(c.name)!;
    return {
      name: c.name,
      opsPerSecond: median(figures),
      rounds: figures,
      cpuMicrosPerOp: median(cpu.get(c.name)!),
    };
  });
}

/** Runs `run` between the contender's `setup` and what it returned. */
async function runSetUp<T>(contender: Contender, run: () => Promise<T>): Promise<T> {
  const undo = contender.setup?.();
  try {
    return await run();
  } finally {
    undo?.();
  }
}

/** Nanoseconds per awaited `getValidAccessToken()`, over `count` calls in one loop. */
export async function nsPerCall(
  count: number,
  manager: { getValidAccessToken(): Promise<string> },
): Promise<number> {
  collectGarbage();
  const start = performance.now();
  for (let i = 0; i < count; i++) await manager.getValidAccessToken();
  return ((performance.now() - start) * 1e6) / count;
}

/** A store without its change feed: a manager on it keeps no near-cache, every call reads the store. */
export function withoutChangeFeed(
  store: Required<Pick<TokenStore, 'get' | 'set' | 'delete' | 'lock'>>,
): TokenStore {
  return {
    get: (key) => store.get(key),
    set: (key, tokens) => store.set(key, tokens),
    delete: (key) => store.delete(key),
    lock: (key, options) => store.lock(key, options),
  };
}

/** Per-round cached-lookup figures of a store with and without its near-cache, against the memory store. */
export interface CachedLookupFigures {
  memory: number[];
  near: number[];
  /** near / memory, per round. */
  ratio: number[];
  far: number[];
}

/**
 * Cached `getValidAccessToken()` costs, in ns per call: the memory store, a store through the
 * near-cache (`near`) and without it (`far`, `farCalls` per round), warmed up, then `rounds`
 * interleaved rounds.
 */
export async function measureCachedLookups(
  managers: Record<'memory' | 'near' | 'far', { getValidAccessToken(): Promise<string> }>,
  options: { rounds: number; lookups: number; farCalls: number },
): Promise<CachedLookupFigures> {
  const { memory, near, far } = managers;
  for (const m of [memory, near, far]) await m.getValidAccessToken();
  await nsPerCall(10_000, memory);
  await nsPerCall(10_000, near);
  await nsPerCall(1_000, far);
  const figures: CachedLookupFigures = { memory: [], near: [], ratio: [], far: [] };
  for (let round = 0; round < options.rounds; round++) {
    const m = await nsPerCall(options.lookups, memory);
    const n = await nsPerCall(options.lookups, near);
    figures.memory.push(m);
    figures.near.push(n);
    figures.ratio.push(n / m);
    figures.far.push(await nsPerCall(options.farCalls, far));
  }
  return figures;
}
