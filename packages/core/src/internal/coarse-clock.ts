/**
 * A clock for the hot path: reading `Date.now()` costs about as much as the whole cached
 * `getValidAccessToken()` on some virtual machines, so managers read a value that one unref'd
 * process-wide ticker refreshes every {@link TICK_MS}. It runs only while a manager uses it.
 */
export const TICK_MS = 100;

let nowMs = Date.now();
let users = 0;
let ticker: NodeJS.Timeout | undefined;

/** The time at the last tick, epoch ms (at most about {@link TICK_MS} behind). */
export function coarseNow(): number {
  return nowMs;
}

/** Starts the ticker for one more user. */
export function useCoarseClock(): void {
  users += 1;
  if (ticker !== undefined) return;
  nowMs = Date.now();
  ticker = setInterval(() => {
    nowMs = Date.now();
  }, TICK_MS);
  ticker.unref();
}

/** One user less; the ticker stops with the last. */
export function releaseCoarseClock(): void {
  users = Math.max(0, users - 1);
  if (users === 0 && ticker !== undefined) {
    clearInterval(ticker);
    ticker = undefined;
  }
}
