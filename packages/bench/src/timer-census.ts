/**
 * Counts the timers a piece of code creates: while installed, `globalThis.setTimeout`,
 * `setInterval`, `clearTimeout` and `clearInterval` are wrapped, and every timer is attributed to an
 * origin by its callback's source text (e.g. the refresh scheduler's `() => this.#fire()`). Node's
 * own internal timers (socket timeouts, keep-alive) do not go through the globals and are not
 * counted.
 */

/** One origin's figures. */
export interface TimerOrigin {
  /** `setTimeout` and `setInterval` calls. */
  created: number;
  /** Of which `setInterval`. */
  intervals: number;
  /** The most timers of this origin pending at once (created, neither fired nor cleared; an interval until cleared). */
  maxLive: number;
}

/** How a callback's source text maps to an origin: the first pattern it contains wins. */
export type TimerOrigins = readonly (readonly [origin: string, sourceContains: string])[];

/** A running census; `uninstall()` restores the globals. */
export interface TimerCensus {
  /** Figures per origin (plus `'other'`), so far. */
  byOrigin(): ReadonlyMap<string, TimerOrigin>;
  /** Timers pending now, of any origin. */
  live(): number;
  uninstall(): void;
}

const OTHER = 'other';

/** Wraps the global timer functions until `uninstall()`. One census at a time. */
export function installTimerCensus(origins: TimerOrigins): TimerCensus {
  const originalSetTimeout = globalThis.setTimeout;
  const originalClearTimeout = globalThis.clearTimeout;
  const originalSetInterval = globalThis.setInterval;
  const originalClearInterval = globalThis.clearInterval;
  const figures = new Map<string, TimerOrigin & { live: number }>();
  /** The origin of every pending timer. */
  const pending = new Map<unknown, string>();

  const originOf = (callback: unknown): string => {
    if (typeof callback !== 'function') return OTHER;
    const source = Function.prototype.toString.call(callback);
    for (const [origin, pattern] of origins) if (source.includes(pattern)) return origin;
    return OTHER;
  };
  const entry = (origin: string): TimerOrigin & { live: number } => {
    let found = figures.get(origin);
    if (found === undefined) {
      found = { created: 0, intervals: 0, maxLive: 0, live: 0 };
      figures.set(origin, found);
    }
    return found;
  };
  const settle = (timer: unknown): void => {
    const origin = pending.get(timer);
    if (origin === undefined) return;
    pending.delete(timer);
    entry(origin).live--;
  };

  const track = (timer: unknown, origin: string): void => {
    const figure = entry(origin);
    figure.created++;
    figure.live++;
    figure.maxLive = Math.max(figure.maxLive, figure.live);
    pending.set(timer, origin);
  };

  const wrappedSetTimeout = (callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    const origin = originOf(callback);
    const timer: NodeJS.Timeout = originalSetTimeout(
      (...callArgs: unknown[]) => {
        settle(timer);
        callback(...callArgs);
      },
      delay,
      ...args,
    );
    track(timer, origin);
    return timer;
  };
  const wrappedSetInterval = (callback: (...args: unknown[]) => void, delay?: number, ...args: unknown[]) => {
    const timer: NodeJS.Timeout = originalSetInterval(callback, delay, ...args);
    entry(originOf(callback)).intervals++;
    track(timer, originOf(callback));
    return timer;
  };
  const wrappedClearInterval = (timer: Parameters<typeof clearInterval>[0]): void => {
    settle(timer);
    originalClearInterval(timer);
  };
  const wrappedClearTimeout = (timer: Parameters<typeof clearTimeout>[0]): void => {
    settle(timer);
    originalClearTimeout(timer);
  };

  globalThis.setTimeout = Object.assign(wrappedSetTimeout, originalSetTimeout) as typeof setTimeout;
  globalThis.clearTimeout = wrappedClearTimeout as typeof clearTimeout;
  globalThis.setInterval = Object.assign(wrappedSetInterval, originalSetInterval) as typeof setInterval;
  globalThis.clearInterval = wrappedClearInterval as typeof clearInterval;
  return {
    byOrigin: () =>
      new Map(
        [...figures].map(([origin, { created, intervals, maxLive }]) => [
          origin,
          { created, intervals, maxLive },
        ]),
      ),
    live: () => pending.size,
    uninstall: () => {
      globalThis.setTimeout = originalSetTimeout;
      globalThis.clearTimeout = originalClearTimeout;
      globalThis.setInterval = originalSetInterval;
      globalThis.clearInterval = originalClearInterval;
    },
  };
}
