/** The conformance tests of `lock(key, { ttlMs, waitMs })`, the cross-process lock. */
import assert from 'node:assert/strict';
import type { TokenStore } from '@tessera/core';
import { delay, rejectsWithStoreError } from './suite.js';
import type { LockingStore, Suite, SuiteContext } from './suite.js';

export function lockTests<S extends TokenStore>(suite: Suite<S>, enabled: boolean): void {
  const { runner, waitMs, ttlMs, longTtlMs, shortMs } = suite;
  const test = (name: string, body: (context: SuiteContext<S> & Locking) => Promise<void>): void =>
    suite.test(enabled, name, async () => body(locking(await suite.open())));

  runner.describe('lock', () => {
    test('is exclusive: a second locker acquires only after the first releases', async ({
      store,
      peer,
      key,
    }) => {
      const k = key('exclusive');
      const events: string[] = [];
      const first = await store.lock(k, { ttlMs: longTtlMs, waitMs });
      const second = peer.lock(k, { ttlMs: longTtlMs, waitMs }).then((lock) => {
        events.push('second acquired');
        return lock;
      });
      await delay(shortMs); // room for a broken lock to let the second in early
      events.push('first releasing');
      await first.release();
      await (await second).release();
      assert.deepEqual(events, ['first releasing', 'second acquired']);
    });

    test('does not block other keys', async ({ store, peer, key }) => {
      const held = await store.lock(key('held'), { ttlMs: longTtlMs, waitMs });
      const other = await peer.lock(key('other'), { ttlMs: longTtlMs, waitMs: shortMs });
      await other.release();
      await held.release();
    });

    test('rejects with TokenStoreError (operation lock) when not acquired within waitMs', async ({
      store,
      peer,
      key,
    }) => {
      const k = key('wait-exceeded');
      const held = await store.lock(k, { ttlMs: longTtlMs, waitMs });
      await rejectsWithStoreError(peer.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
      await held.release();
    });

    test('takes the lock from a holder that never releases once ttlMs has passed', async ({
      store,
      peer,
      key,
    }) => {
      const k = key('expiry');
      await store.lock(k, { ttlMs, waitMs }); // never released
      const next = await peer.lock(k, { ttlMs: longTtlMs, waitMs });
      await next.release();
    });

    test('releases idempotently: a repeated release does not free the next holder', async ({
      store,
      peer,
      key,
    }) => {
      const k = key('idempotent');
      const first = await store.lock(k, { ttlMs: longTtlMs, waitMs });
      await first.release();
      assert.equal(await first.release(), undefined);
      const second = await peer.lock(k, { ttlMs: longTtlMs, waitMs: shortMs });
      assert.equal(await first.release(), undefined);
      await rejectsWithStoreError(store.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
      await second.release();
    });

    test("does not free the next holder's lock when released after it expired", async ({
      store,
      peer,
      key,
    }) => {
      const k = key('stale-release');
      const stale = await store.lock(k, { ttlMs, waitMs });
      const holder = await peer.lock(k, { ttlMs: longTtlMs, waitMs }); // after the stale one expired
      assert.equal(await stale.release(), undefined);
      await rejectsWithStoreError(store.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
      await holder.release();
      const after = await store.lock(k, { ttlMs: longTtlMs, waitMs });
      await after.release();
    });
  });
}

interface Locking {
  readonly store: LockingStore;
  readonly peer: LockingStore;
}

/** The context with both handles checked to have `lock` (the capability was declared). */
function locking<S extends TokenStore>(context: SuiteContext<S>): SuiteContext<S> & Locking {
  for (const handle of [context.store, context.peer]) {
    assert.equal(
      typeof handle.lock,
      'function',
      "the 'lock' capability is declared but the store has no lock()",
    );
  }
  return context as SuiteContext<S> & Locking;
}
