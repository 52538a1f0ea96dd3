/** Small helpers shared by the core tests. */
import { jest } from '@jest/globals';
import type { TesseraError } from '@tessera/core';

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<TesseraError> {
  try {
    await promise;
  } catch (error) {
    return error as TesseraError;
  }
  throw new Error('expected a rejection');
}

/**
 * Fakes only `Date` at `nowMs`, so `exp`/`iat`/cooldown checks can be tested at their exact limits,
 * while sockets, timeouts and jose's AbortSignal keep running on real timers. Undo with
 * `jest.useRealTimers()`.
 */
export function freezeDate(nowMs: number): void {
  jest.useFakeTimers({
    now: nowMs,
    doNotFake: [
      'hrtime',
      'nextTick',
      'performance',
      'queueMicrotask',
      'requestAnimationFrame',
      'cancelAnimationFrame',
      'requestIdleCallback',
      'cancelIdleCallback',
      'setImmediate',
      'clearImmediate',
      'setInterval',
      'clearInterval',
      'setTimeout',
      'clearTimeout',
    ],
  });
}
