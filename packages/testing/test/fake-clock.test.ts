import { describe, expect, it } from '@jest/globals';
import { createFakeClock } from '@tessera/testing';

const T0 = Date.UTC(2030, 0, 1);

describe('createFakeClock', () => {
  it('starts at startMs and stands still until moved', () => {
    const clock = createFakeClock(T0);
    expect(clock.now()).toBe(T0);
    expect(clock.now()).toBe(T0);
  });

  it('starts at the current time by default', () => {
    const before = Date.now();
    const clock = createFakeClock();
    expect(clock.now()).toBeGreaterThanOrEqual(before);
    expect(clock.now()).toBeLessThanOrEqual(Date.now());
  });

  it('advances by the given milliseconds, and by 0', () => {
    const clock = createFakeClock(T0);
    clock.advance(1500);
    clock.advance(0);
    clock.advance(0.5);
    expect(clock.now()).toBe(T0 + 1500.5);
  });

  it('sets an absolute time, backwards too', () => {
    const clock = createFakeClock(T0);
    clock.set(T0 + 60_000);
    expect(clock.now()).toBe(T0 + 60_000);
    clock.set(T0 - 1);
    expect(clock.now()).toBe(T0 - 1);
  });

  it('has methods bound to the clock, so `now` can be handed on alone', () => {
    const clock = createFakeClock(T0);
    const { now, advance, set } = clock;
    advance(10);
    expect(now()).toBe(T0 + 10);
    set(0);
    expect(now()).toBe(0);
  });

  it('keeps separate clocks apart', () => {
    const a = createFakeClock(T0);
    const b = createFakeClock(T0);
    a.advance(1000);
    expect(b.now()).toBe(T0);
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY])(
    'advance(%p) throws RangeError',
    (ms) => {
      const clock = createFakeClock(T0);
      expect(() => clock.advance(ms)).toThrow(RangeError);
      expect(clock.now()).toBe(T0);
    },
  );

  it.each([Number.NaN, Number.POSITIVE_INFINITY, '1000' as unknown as number])(
    'set(%p) and createFakeClock with it throw RangeError',
    (ms) => {
      expect(() => createFakeClock(T0).set(ms)).toThrow(RangeError);
      expect(() => createFakeClock(ms)).toThrow(RangeError);
    },
  );
});
