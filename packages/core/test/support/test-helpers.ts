/** Small helpers shared by the core tests. */
import { jest } from '@jest/globals';
import type { TesseraError, TokenSet, TokenStore } from '@tessera/core';

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

/**
 * A plain object store: no lock, no feed, no versions (the simplest thing a user writes), whose
 * `data` shows the keys as stored.
 */
export function plainStore(): TokenStore & { data: Map<string, TokenSet> } {
  const data = new Map<string, TokenSet>();
  return {
    data,
    get: async (key) => data.get(key),
    set: async (key, tokens) => void data.set(key, JSON.parse(JSON.stringify(tokens)) as TokenSet),
    delete: async (key) => void data.delete(key),
  };
}
