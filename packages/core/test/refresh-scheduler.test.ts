/**
 * The refresh scheduler: one timer for any number of keys, and with a concurrency, a line of due
 * keys of which at most that many run at once (the TokenManager's background renewals).
 */
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { RefreshScheduler } from '../src/internal/refresh-scheduler.js';

afterEach(() => {
  jest.useRealTimers();
});

/** Lets promise callbacks run (no timers). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe('RefreshScheduler', () => {
  it('with a concurrency, runs at most that many at once and the rest in the order they came due', async () => {
    jest.useFakeTimers({ now: 0 });
    const running = new Map<string, () => void>();
    const started: string[] = [];
    let most = 0;
    const scheduler = new RefreshScheduler(
      Date.now,
      (key) =>
        new Promise<void>((resolve) => {
          started.push(key);
          running.set(key, resolve);
          most = Math.max(most, running.size);
        }),
      { concurrency: 3 },
    );
    for (let i = 0; i < 10; i++) scheduler.schedule(`k${i}`, 100 + i);
    jest.advanceTimersByTime(200);
    await settle();
    expect(started).toEqual(['k0', 'k1', 'k2']);
    while (running.size > 0) {
      const [key, finish] = running.entries().next().value as [string, () => void];
      running.delete(key);
      finish();
      await settle();
    }
    expect(started).toEqual(['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7', 'k8', 'k9']);
    expect(most).toBe(3);
    scheduler.close();
  });

  it('a run that rejects frees its place; close() drops the keys still waiting', async () => {
    jest.useFakeTimers({ now: 0 });
    const started: string[] = [];
    const scheduler = new RefreshScheduler(
      Date.now,
      async (key) => {
        started.push(key);
        if (key === 'a') throw new Error('reported by the run itself');
        await new Promise<void>(() => undefined); // never ends
      },
      { concurrency: 1 },
    );
    ['a', 'b', 'c'].forEach((key, i) => scheduler.schedule(key, 10 + i));
    jest.advanceTimersByTime(20);
    await settle();
    expect(started).toEqual(['a', 'b']);
    scheduler.close();
    await settle();
    expect(started).toEqual(['a', 'b']);
  });

  it('without a concurrency, calls run for every due key as it comes due', () => {
    jest.useFakeTimers({ now: 0 });
    const ran: string[] = [];
    const scheduler = new RefreshScheduler(Date.now, (key) => void ran.push(key));
    scheduler.schedule('x', 5);
    scheduler.schedule('y', 5);
    scheduler.cancel('y');
    jest.advanceTimersByTime(5);
    expect(ran).toEqual(['x']);
    scheduler.close();
  });
});
