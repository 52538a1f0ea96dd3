/**
 * The conformance tests of `subscribe(listener, { onReset })`, the change feed: delivery across
 * handles, unsubscribe, and `onReset` after the feed missed changes (what keeps a fleet's caches
 * from serving a token another process replaced).
 */
import assert from 'node:assert/strict';
import type { TokenStore } from '@tessera/core';
import { fullTokenSet } from './suite.js';
import type { Suite, SuiteContext, SubscribingStore } from './suite.js';

export function subscribeTests<S extends TokenStore>(suite: Suite<S>, enabled: boolean): void {
  const { runner, waitMs, options } = suite;
  const test = (
    name: string,
    body: (context: SuiteContext<S> & { peer: S & SubscribingStore }) => Promise<void>,
    when = enabled,
  ): void => suite.test(when, name, async () => body(subscribing(await suite.open())));

  runner.describe('subscribe', () => {
    test('calls a listener after set and after delete of a key (through the peer)', async ({
      store,
      peer,
      key,
    }) => {
      const listener = recordKeys(peer);
      try {
        await untilListening(store, listener, key('probe'), waitMs);
        const k = key('watched');
        await store.set(k, fullTokenSet('watched'));
        await listener.waitFor(k, 1, waitMs);
        await store.delete(k);
        await listener.waitFor(k, 2, waitMs);
      } finally {
        listener.unsubscribe();
      }
    });

    test('stops calling a listener once it unsubscribed', async ({ store, peer, key }) => {
      const stopped = recordKeys(peer);
      const still = recordKeys(peer);
      try {
        await untilListening(store, stopped, key('probe-stopped'), waitMs);
        await untilListening(store, still, key('probe-still'), waitMs);
        stopped.unsubscribe();
        stopped.unsubscribe(); // idempotent
        const k = key('after-unsubscribe');
        await store.set(k, fullTokenSet('after'));
        await store.delete(k);
        await still.waitFor(k, 2, waitMs);
        assert.equal(stopped.count(k), 0);
      } finally {
        still.unsubscribe();
      }
    });

    const { interruptFeed } = options;
    test(
      'calls onReset once the feed missed changes, then delivers changes again',
      async ({ store, peer, key }) => {
        const listener = recordKeys(peer);
        try {
          await untilListening(store, listener, key('probe-before'), waitMs);
          assert.equal(listener.resets(), 0, 'onReset was called before the feed was interrupted');
          await interruptFeed!(peer);
          await listener.waitForReset(waitMs);
          await untilListening(store, listener, key('probe-after'), waitMs);
        } finally {
          listener.unsubscribe();
        }
      },
      enabled && interruptFeed !== undefined,
    );

    test(
      'calls no onReset of a listener that unsubscribed',
      async ({ store, peer, key }) => {
        const stopped = recordKeys(peer);
        const still = recordKeys(peer);
        try {
          await untilListening(store, still, key('probe'), waitMs);
          stopped.unsubscribe();
          await interruptFeed!(peer);
          await still.waitForReset(waitMs);
          assert.equal(stopped.resets(), 0);
        } finally {
          still.unsubscribe();
        }
      },
      enabled && interruptFeed !== undefined,
    );
  });
}

/** The keys (and resets) one `subscribe()` listener saw, awaitable. */
interface KeyRecorder {
  /** How many times the listener saw `key`. */
  count(key: string): number;
  /** Resolves once the listener saw `key` at least `times` times; rejects after `timeoutMs`. */
  waitFor(key: string, times: number, timeoutMs: number): Promise<void>;
  /** How many times `onReset` was called. */
  resets(): number;
  /** Resolves once `onReset` was called; rejects after `timeoutMs`. */
  waitForReset(timeoutMs: number): Promise<void>;
  unsubscribe(): void;
}

/** The context with the peer checked to have `subscribe` (the capability was declared). */
function subscribing<S extends TokenStore>(
  context: SuiteContext<S>,
): SuiteContext<S> & { peer: S & SubscribingStore } {
  for (const handle of [context.store, context.peer]) {
    assert.equal(
      typeof handle.subscribe,
      'function',
      "the 'subscribe' capability is declared but the store has no subscribe()",
    );
  }
  return context as SuiteContext<S> & { peer: S & SubscribingStore };
}

/** Subscribes to `store` and records the keys the listener sees and its resets. */
function recordKeys(store: SubscribingStore): KeyRecorder {
  const counts = new Map<string, number>();
  let resets = 0;
  const waiters = new Set<{ done: () => boolean; resolve: () => void }>();
  const wake = (): void => {
    for (const waiter of waiters) {
      if (waiter.done()) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };
  const until = (done: () => boolean, timeoutMs: number, what: () => string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      if (done()) {
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`${what()} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = {
        done,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      waiters.add(waiter);
    });
  const unsubscribe = store.subscribe(
    (key) => {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      wake();
    },
    {
      onReset: () => {
        resets++;
        wake();
      },
    },
  );
  return {
    count: (key) => counts.get(key) ?? 0,
    waitFor: (key, times, timeoutMs) =>
      until(
        () => (counts.get(key) ?? 0) >= times,
        timeoutMs,
        () => `the subscribe() listener saw ${counts.get(key) ?? 0} of ${times} changes`,
      ),
    resets: () => resets,
    waitForReset: (timeoutMs) =>
      until(
        () => resets > 0,
        timeoutMs,
        () => 'onReset was not called after the feed was interrupted',
      ),
    unsubscribe,
  };
}

/**
 * Writes `probeKey` until the listener sees it: a change feed on another connection (e.g. Redis
 * pub/sub) may take a moment to start delivering after `subscribe()` returns.
 */
async function untilListening(
  store: TokenStore,
  listener: KeyRecorder,
  probeKey: string,
  waitMs: number,
): Promise<void> {
  const deadline = Date.now() + waitMs;
  const seen = listener.count(probeKey);
  for (let attempt = 1; ; attempt++) {
    await store.set(probeKey, { accessToken: `probe-${attempt}`, tokenType: 'Bearer' });
    const remainingMs = deadline - Date.now();
    try {
      await listener.waitFor(probeKey, seen + 1, Math.max(1, Math.min(remainingMs, 25 * attempt)));
      return;
    } catch (error) {
      // Not listening yet: write again, until waitMs has passed.
      if (remainingMs <= 25 * attempt) throw error;
    }
  }
}
