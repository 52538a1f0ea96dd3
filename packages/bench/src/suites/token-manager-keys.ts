/**
 * Many keys with background refresh (part of the TokenManager suite): `keys` token sets stored in
 * one manager with `autoRefresh`, their expiries spread over a few seconds, then two refresh cycles
 * answered by the static token server, while the timers, the active resources, the heap and the
 * event-loop delay are watched.
 *
 * - Storing: `storeTokens()` for every key, one after another, with `expires_in` 2–5 s. The
 *   manager's clock (`now` option) stands still while storing, so the expiries count from the end
 *   of storing however long it takes; then it runs at the real pace.
 * - Cycle 1: every key comes due within those seconds (`refreshSkewSeconds: 0`,
 *   `autoRefresh.aheadSeconds: 0`; the scheduler adds its jitter) and is refreshed. The server
 *   answers these refreshes with `expires_in` {@link CYCLE_SECONDS}, so that every key comes due
 *   once more, in the order cycle 1 refreshed it.
 * - Cycle 2: every key is refreshed again; the server now answers with `expires_in` 3600, so
 *   nothing else comes due. The heap after cycle 2 against after cycle 1 shows whether memory grows
 *   with refreshes (it should not: everything the manager keeps is per key).
 */
import { Client, TokenManager } from '@tessera/core';
import type { GrantOptions, Parameters as RequestParameters, TokenResponse } from '@tessera/core';
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';
import { heapUsedAfterGc } from '../measure.js';
import { STATIC_TOKEN_RESPONSE } from '../static-token-server.js';
import type { RequestCounts, StaticTokenServer } from '../static-token-server.js';
import { formatBytes, formatCount, formatMs, formatTable } from '../table.js';
import { installTimerCensus } from '../timer-census.js';
import type { TimerOrigin, TimerOrigins } from '../timer-census.js';

/** Expiries of the stored tokens, counted from the end of storing: 2 to 5 s, in whole seconds. */
const FIRST_EXPIRY_SECONDS = 2;
const EXPIRY_SPREAD_SECONDS = 4;
/**
 * `expires_in` of cycle 1's refresh responses: long enough that cycle 2 starts after cycle 1 ends
 * (100,000 refreshes take 10–25 s here), short enough to keep the run short.
 */
export const CYCLE_SECONDS = 20;
/**
 * The heap after a cycle is compared only when at most this fraction of the keys (100 of 100,000)
 * has a renewal in flight: a few requests weigh nothing per key, thousands do.
 */
const IN_FLIGHT_TOLERANCE = 0.001;
/** Give up waiting for a cycle after this long. */
const CYCLE_DEADLINE_MS = 120_000;
/** The sampling interval of the event-loop delay histogram. */
const RESOLUTION_MS = 10;
/** How often the active resources are sampled while refreshing. */
const SAMPLE_EVERY_MS = 50;

/** The timers of interest, by the source text of their callbacks in `@tessera/core`. */
const TIMER_ORIGINS: TimerOrigins = [
  ['refresh scheduler', 'this.#fire()'],
  ['memory store lock TTL', 'holder.timer = undefined'],
  ['memory store lock wait', 'waiter.timer = undefined'],
  ['HTTP request timeout', 'timedOut = true'],
  ['coarse clock ticker', 'nowMs = Date.now()'],
];
/** The benchmark's own timers, taken before the census wraps the globals, so they are not counted. */
const benchTimers = { setTimeout, clearTimeout, setInterval, clearInterval };
/** The origin the "one timer" target is about. */
export const SCHEDULER_TIMERS = 'refresh scheduler';

/** One refresh cycle's figures. */
export interface CycleFigures {
  /** `token.refreshed` events during the cycle. */
  refreshed: number;
  /** `refresh.failed` events during the cycle. */
  failed: number;
  /** Refresh requests the server answered during the cycle. */
  refreshRequests: number;
  /** TCP connections the server accepted during the cycle. */
  connections: number;
  /** From the cycle's first refresh request to its last refreshed token. */
  windowMs: number;
  /** Event-loop delay over that window, ms. */
  loopDelay: { p50: number; p99: number; max: number };
  /** Garbage collections over the window: how many, the longest pause and all pauses, ms. */
  gc: { count: number; longestMs: number; totalMs: number };
  /** CPU time the hypervisor gave to others over the window (Linux `steal`), ms; `undefined` elsewhere. */
  stealMs: number | undefined;
  /** Active resources: the peak of each type over the window. */
  peakResources: ReadonlyMap<string, number>;
  /** Renewals of the next cycle started before this one ended. */
  overlap: number;
  deadlineHit: boolean;
  /**
   * Heap per key after the cycle, relative to before the manager; `undefined` without
   * `--expose-gc`, or when renewals of the next cycle were in flight.
   */
  heapBytesPerKey: number | undefined;
}

/** The figures of the many-keys measurement. */
export interface ManyKeysFigures {
  keys: number;
  storeMs: number;
  /** Heap per key of a plain `Map` of the same token sets (the floor). */
  bareBytesPerKey: number | undefined;
  /** Heap per key after storing, relative to before the manager. */
  storedBytesPerKey: number | undefined;
  /** Heap per key left after `close()` (the manager object still referenced). */
  closedBytesPerKey: number | undefined;
  cycles: readonly CycleFigures[];
  /** `refresh.failed` events of both cycles, by error code. */
  failures: ReadonlyMap<string, number>;
  /** Every `setTimeout` from storing to `close()`, by origin. */
  timers: ReadonlyMap<string, TimerOrigin>;
  /** Scheduler timers pending right after storing. */
  schedulerTimersAfterStore: number;
  resources: {
    before: ReadonlyMap<string, number>;
    afterStore: ReadonlyMap<string, number>;
    afterClose: ReadonlyMap<string, number>;
  };
}

function keyName(i: number): string {
  return `user-${i}`;
}

/** A token about as long as a real opaque one (44 characters), unique per key. */
function tokenValue(prefix: string, i: number): string {
  return `${prefix}-${i.toString(36).padStart(8, '0')}-${'0123456789abcdef'.repeat(2)}`;
}

function bytesPerKey(
  after: number | undefined,
  before: number | undefined,
  keys: number,
): number | undefined {
  return after === undefined || before === undefined ? undefined : (after - before) / keys;
}

/** The heap a plain `Map<string, TokenSet>` of the same token sets takes, per key. */
function bareMapBytesPerKey(keys: number): number | undefined {
  const before = heapUsedAfterGc();
  const map = new Map<string, object>();
  const expiresAt = Math.floor(Date.now() / 1000) + 3600;
  for (let i = 0; i < keys; i++) {
    map.set(
      keyName(i),
      Object.freeze({
        accessToken: tokenValue('at', i),
        tokenType: 'Bearer',
        expiresAt,
        refreshToken: tokenValue('rt', i),
      }),
    );
  }
  const after = heapUsedAfterGc();
  if (map.size !== keys) throw new Error('the bare map lost keys');
  return bytesPerKey(after, before, keys);
}

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const type of process.getActiveResourcesInfo()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** A Client that counts its refresh requests and can tell when the next one starts. */
class ObservedClient extends Client {
  refreshesStarted = 0;
  onNextRefresh: (() => void) | undefined;

  override refreshTokenGrant(
    refreshToken: string,
    parameters?: RequestParameters,
    options?: GrantOptions,
  ): Promise<TokenResponse> {
    this.refreshesStarted++;
    const next = this.onNextRefresh;
    this.onNextRefresh = undefined;
    next?.();
    return super.refreshTokenGrant(refreshToken, parameters, options);
  }
}

/** Counts the manager's renewal events and resolves waits for a number of them. */
class RenewalCounter {
  refreshed = 0;
  failed = 0;
  lastRefreshAt = 0;
  /** `refresh.failed` events by error code (and system error code, e.g. `NETWORK_ERROR/EMFILE`). */
  readonly failures = new Map<string, number>();
  #waiting: { target: number; resolve: () => void } | undefined;

  constructor(manager: TokenManager) {
    manager.on('token.refreshed', () => {
      this.refreshed++;
      this.lastRefreshAt = performance.now();
      this.#check();
    });
    manager.on('refresh.failed', ({ error }) => {
      this.failed++;
      const systemCode = (error as { systemCode?: unknown }).systemCode;
      const code = typeof systemCode === 'string' ? `${error.code}/${systemCode}` : error.code;
      this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
      this.#check();
    });
  }

  /** Renewals ended so far, refreshed or failed. */
  get ended(): number {
    return this.refreshed + this.failed;
  }

  /** Resolves with `true` once `target` renewals ended, `false` at the deadline. */
  waitFor(target: number, deadlineMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const deadline = benchTimers.setTimeout(() => {
        this.#waiting = undefined;
        resolve(false);
      }, deadlineMs);
      this.#waiting = {
        target,
        resolve: () => {
          benchTimers.clearTimeout(deadline);
          resolve(true);
        },
      };
      this.#check();
    });
  }

  #check(): void {
    const waiting = this.#waiting;
    if (waiting === undefined || this.ended < waiting.target) return;
    this.#waiting = undefined;
    waiting.resolve();
  }
}

/**
 * Watches one refresh cycle: the event-loop delay from its first refresh request (the histogram is
 * reset then) to its end, and the peak of each active resource type.
 */
class CycleWatch {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  readonly #peak = new Map<string, number>();
  readonly #sampler: NodeJS.Timeout;
  readonly #gcObserver: PerformanceObserver;
  #gc = { count: 0, longestMs: 0, totalMs: 0 };
  #stealAtStart = stealMs();
  firstRefreshAt = 0;

  constructor(client: ObservedClient) {
    this.#histogram.enable();
    this.#gcObserver = new PerformanceObserver((list) => {
      if (this.firstRefreshAt === 0) return;
      for (const entry of list.getEntries()) {
        this.#gc.count++;
        this.#gc.totalMs += entry.duration;
        this.#gc.longestMs = Math.max(this.#gc.longestMs, entry.duration);
      }
    });
    this.#gcObserver.observe({ entryTypes: ['gc'] });
    client.onNextRefresh = () => {
      this.firstRefreshAt = performance.now();
      this.#histogram.reset();
      this.#stealAtStart = stealMs();
    };
    this.#sampler = benchTimers.setInterval(() => {
      for (const [type, count] of resourceCounts()) {
        this.#peak.set(type, Math.max(this.#peak.get(type) ?? 0, count));
      }
    }, SAMPLE_EVERY_MS);
  }

  stop(): Pick<CycleFigures, 'loopDelay' | 'peakResources' | 'gc' | 'stealMs'> {
    this.#histogram.disable();
    benchTimers.clearInterval(this.#sampler);
    this.#gcObserver.disconnect();
    const steal = stealMs();
    // A sample is the time between two ticks of a RESOLUTION_MS timer: an idle loop reads about
    // 10.1 ms. The delay is what is beyond the interval.
    const ms = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
    return {
      loopDelay: {
        p50: ms(this.#histogram.percentile(50)),
        p99: ms(this.#histogram.percentile(99)),
        max: ms(this.#histogram.max),
      },
      peakResources: this.#peak,
      gc: this.#gc,
      stealMs:
        steal === undefined || this.#stealAtStart === undefined ? undefined : steal - this.#stealAtStart,
    };
  }
}

/** CPU time stolen by the hypervisor so far, all CPUs, ms (Linux `/proc/stat`); `undefined` elsewhere. */
function stealMs(): number | undefined {
  try {
    const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
    const ticks = Number(cpu[8]); // cpu user nice system idle iowait irq softirq steal
    return Number.isFinite(ticks) ? ticks * 10 : undefined; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Refresh requests between two readings of the server's counts. */
function refreshRequests(before: RequestCounts, after: RequestCounts): number {
  return (after.token.refresh_token ?? 0) - (before.token.refresh_token ?? 0);
}

/** Stores `keys` token sets with background refresh and watches two refresh cycles (see the module comment). */
export async function measureManyKeys(server: StaticTokenServer, keys: number): Promise<ManyKeysFigures> {
  const bareBytesPerKey = bareMapBytesPerKey(keys);
  const client = new ObservedClient(
    { issuer: server.issuer, token_endpoint: `${server.issuer}/token` },
    { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_basic' },
  );
  const census = installTimerCensus(TIMER_ORIGINS);
  try {
    const frozenAt = Date.now();
    let clockRuns = false;
    let clockOffsetMs = 0;
    const now = (): number => (clockRuns ? Date.now() - clockOffsetMs : frozenAt);

    const resourcesBefore = resourceCounts();
    const heapBefore = heapUsedAfterGc();
    const manager = new TokenManager({
      client,
      refreshSkewSeconds: 0,
      autoRefresh: { aheadSeconds: 0 },
      now,
    });
    const counter = new RenewalCounter(manager);
    await server.control({ expiresIn: CYCLE_SECONDS });

    const start = performance.now();
    for (let i = 0; i < keys; i++) {
      await manager.for(keyName(i)).storeTokens({
        access_token: tokenValue('at', i),
        token_type: 'Bearer',
        expires_in: FIRST_EXPIRY_SECONDS + Math.floor((EXPIRY_SPREAD_SECONDS * i) / keys),
        refresh_token: tokenValue('rt', i),
      });
    }
    const storeMs = performance.now() - start;
    const schedulerTimersAfterStore = census.byOrigin().get(SCHEDULER_TIMERS)?.maxLive ?? 0;
    const resourcesAfterStore = resourceCounts();
    const heapStored = heapUsedAfterGc();
    clockOffsetMs = Date.now() - frozenAt; // the clock runs again from where it stood
    clockRuns = true;

    const cycles: CycleFigures[] = [];
    // One reading at each cycle boundary, taken at once when the cycle's last renewal ends, so
    // that every renewal counts in exactly one cycle even when the next cycle started early.
    let boundary = { refreshed: 0, failed: 0, started: 0, counts: await server.counts() };
    for (let cycle = 1; cycle <= 2; cycle++) {
      const watch = new CycleWatch(client);
      const finished = await counter.waitFor(keys * cycle, CYCLE_DEADLINE_MS);
      const watched = watch.stop();
      const end = { refreshed: counter.refreshed, failed: counter.failed, started: client.refreshesStarted };
      // Cycle 1's answers are in: from now on refreshes get a long-lived token.
      if (cycle === 1) await server.control({ expiresIn: STATIC_TOKEN_RESPONSE.expires_in });
      const counts = await server.counts();
      const inFlight = client.refreshesStarted - counter.ended;
      cycles.push({
        refreshed: end.refreshed - boundary.refreshed,
        failed: end.failed - boundary.failed,
        refreshRequests: refreshRequests(boundary.counts, counts),
        connections: counts.connections - boundary.counts.connections,
        windowMs: watch.firstRefreshAt === 0 ? 0 : counter.lastRefreshAt - watch.firstRefreshAt,
        ...watched,
        overlap: Math.max(0, end.started - end.refreshed - end.failed),
        deadlineHit: !finished,
        // With many renewals in flight, the heap holds their requests and sockets too.
        heapBytesPerKey:
          inFlight > keys * IN_FLIGHT_TOLERANCE
            ? undefined
            : bytesPerKey(heapUsedAfterGc(), heapBefore, keys),
      });
      boundary = { ...end, counts };
      if (!finished) break;
    }
    await manager.close();
    return {
      keys,
      storeMs,
      bareBytesPerKey,
      storedBytesPerKey: bytesPerKey(heapStored, heapBefore, keys),
      closedBytesPerKey: bytesPerKey(heapUsedAfterGc(), heapBefore, keys),
      cycles,
      failures: counter.failures,
      timers: census.byOrigin(),
      schedulerTimersAfterStore,
      resources: { before: resourcesBefore, afterStore: resourcesAfterStore, afterClose: resourceCounts() },
    };
  } finally {
    census.uninstall();
    await server.control({ expiresIn: STATIC_TOKEN_RESPONSE.expires_in });
  }
}

function describeResources(counts: ReadonlyMap<string, number>): string {
  if (counts.size === 0) return 'none';
  return [...counts]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, count]) => `${type} ${formatCount(count)}`)
    .join(', ');
}

/** The figures as a Markdown table. */
export function manyKeysTable(f: ManyKeysFigures): string {
  const bytes = (value: number | undefined): string =>
    value === undefined ? 'n/a (run node with --expose-gc)' : formatBytes(value);
  const rows: string[][] = [
    ['keys (autoRefresh, refreshSkewSeconds 0, aheadSeconds 0, memory store)', formatCount(f.keys)],
    [
      'storing them (storeTokens, one after another)',
      `${formatMs(f.storeMs)} (${((f.storeMs * 1000) / f.keys).toFixed(1)} µs/key)`,
    ],
    [
      'cycle 1 due',
      `${FIRST_EXPIRY_SECONDS}–${FIRST_EXPIRY_SECONDS + EXPIRY_SPREAD_SECONDS - 1} s after storing (whole seconds), less the scheduler's jitter`,
    ],
    ['cycle 2 due', `${CYCLE_SECONDS} s after each key's cycle-1 refresh, less the jitter`],
  ];
  f.cycles.forEach((c, i) => {
    const n = i + 1;
    rows.push(
      [
        `cycle ${n}: refreshed / failed (events)`,
        `${formatCount(c.refreshed)} / ${formatCount(c.failed)}${c.deadlineHit ? ` (gave up after ${CYCLE_DEADLINE_MS / 1000} s)` : ''}`,
      ],
      [`cycle ${n}: refresh requests the server answered`, formatCount(c.refreshRequests)],
      [`cycle ${n}: TCP connections the server accepted`, formatCount(c.connections)],
      [
        `cycle ${n}: first refresh request → last token refreshed`,
        `${formatMs(c.windowMs)} (${formatCount((c.refreshed * 1000) / Math.max(1, c.windowMs))} refreshes/s)`,
      ],
      [
        `cycle ${n}: event-loop delay p50 / p99 / max (beyond the ${RESOLUTION_MS} ms sampling interval)`,
        `${formatMs(c.loopDelay.p50)} / ${formatMs(c.loopDelay.p99)} / ${formatMs(c.loopDelay.max)}`,
      ],
      [
        `cycle ${n}: GC pauses: count / longest / total`,
        `${formatCount(c.gc.count)} / ${formatMs(c.gc.longestMs)} / ${formatMs(c.gc.totalMs)}`,
      ],
      [
        `cycle ${n}: CPU time stolen by the hypervisor (both CPUs)`,
        c.stealMs === undefined ? 'n/a' : formatMs(c.stealMs),
      ],
      [`cycle ${n}: active resources, peak of each type`, describeResources(c.peakResources)],
    );
    if (i === 0 && f.cycles.length > 1) {
      rows.push([`cycle 2 refreshes started before cycle 1 ended`, formatCount(c.overlap)]);
    }
  });
  if (f.failures.size > 0) {
    rows.push([
      'refresh.failed by error code',
      [...f.failures].map(([code, count]) => `${code} ${formatCount(count)}`).join(', '),
    ]);
  }
  for (const [origin, { created, intervals, maxLive }] of [...f.timers].sort(
    ([, a], [, b]) => b.created - a.created,
  )) {
    const kind =
      intervals === 0 ? 'setTimeout' : intervals === created ? 'setInterval' : 'setTimeout/setInterval';
    rows.push([
      `${kind} calls: ${origin} (most pending at once)`,
      `${formatCount(created)} (${formatCount(maxLive)})`,
    ]);
  }
  rows.push(
    ['scheduler timers pending after storing every key', formatCount(f.schedulerTimersAfterStore)],
    ['active resources before the manager', describeResources(f.resources.before)],
    [
      'active resources after storing (unref’d timers are not listed)',
      describeResources(f.resources.afterStore),
    ],
    ['active resources after close()', describeResources(f.resources.afterClose)],
    ['heap per key: a plain Map of the same token sets', bytes(f.bareBytesPerKey)],
    ['heap per key: manager, after storing', bytes(f.storedBytesPerKey)],
    ...f.cycles.map((c, i) => [
      `heap per key: manager, after cycle ${i + 1}`,
      c.heapBytesPerKey === undefined && f.bareBytesPerKey !== undefined
        ? `not comparable: over ${formatCount(f.keys * IN_FLIGHT_TOLERANCE)} renewals of the next cycle in flight`
        : bytes(c.heapBytesPerKey),
    ]),
    ['heap per key: manager, after close()', bytes(f.closedBytesPerKey)],
  );
  return formatTable([{ heading: 'figure' }, { heading: 'value' }], rows);
}
