/** A clock a test moves by hand; see {@link createFakeClock}. */
export interface FakeClock {
  /**
   * The current time in epoch milliseconds. Bound to the clock, so it can be passed on as is:
   * `{ now: clock.now }`.
   */
  now(): number;
  /**
   * Moves the clock forward by `ms` milliseconds.
   * @throws RangeError when `ms` is negative or not finite.
   */
  advance(ms: number): void;
  /**
   * Sets the clock to `ms` epoch milliseconds; it may go backwards, e.g. to test clock skew.
   * @throws RangeError when `ms` is not finite.
   */
  set(ms: number): void;
}

/**
 * Creates a clock that only moves when the test moves it, to pass as the `now` option of a
 * `TokenManager` (or a `MemoryTokenStore`), so expiry can be tested at its exact boundaries.
 *
 * It only answers `now()`: it does not fire timers. When the code under test schedules work
 * (`autoRefresh`, retry backoff, lock TTLs), use jest fake timers as well and move both together,
 * e.g. `clock.advance(ms); await jest.advanceTimersByTimeAsync(ms);`.
 *
 * @param startMs - the initial time, in epoch milliseconds. Pass a fixed value for repeatable tests.
 * @default startMs `Date.now()` when the clock is created
 * @throws RangeError when `startMs` is not finite.
 * @example
 * ```ts
 * const clock = createFakeClock(Date.parse('2030-01-01T00:00:00Z'));
 * const manager = new TokenManager({ client, grant: 'client_credentials', now: clock.now });
 * await manager.getValidAccessToken(); // acquires a token with expires_in 300
 * clock.advance(240_000); // 60 s left: inside the default 60 s refresh skew
 * await manager.getValidAccessToken(); // refreshes
 * ```
 */
export function createFakeClock(startMs: number = Date.now()): FakeClock {
  let currentMs = finite('startMs', startMs);
  return {
    now: () => currentMs,
    advance: (ms: number) => {
      if (finite('ms', ms) < 0) throw new RangeError(`FakeClock.advance: ms must not be negative, got ${ms}`);
      currentMs += ms;
    },
    set: (ms: number) => {
      currentMs = finite('ms', ms);
    },
  };
}

function finite(name: string, value: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new RangeError(`FakeClock: ${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}
