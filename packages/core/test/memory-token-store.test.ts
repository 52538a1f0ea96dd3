/**
 * MemoryTokenStore: the TokenStore conformance suite, then what is particular to the memory store
 * (FIFO lock waiters, close(), the injected clock, frozen copies, listener isolation, unref'd timers).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { TokenStoreError } from '@tessera/core';
import type { StoreLock, TokenSet } from '@tessera/core';
import { createFakeClock, describeTokenStore } from '@tessera/testing';
import { MemoryTokenStore } from '../src/memory-token-store.js';
import { rejection } from './support/test-helpers.js';

describeTokenStore('MemoryTokenStore', () => new MemoryTokenStore(), {
  capabilities: ['lock', 'subscribe'],
  peer: (store) => store,
  breakStore: (store) => store.close?.(),
});

const TOKENS: TokenSet = {
  accessToken: 'access-secret',
  tokenType: 'Bearer',
  expiresAt: 1_900_000_000,
  refreshToken: 'refresh-secret',
  extra: { nested: { list: [1, 2] } },
};

/** Lets queued promise callbacks run. */
async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('MemoryTokenStore', () => {
  let store: MemoryTokenStore;

  afterEach(async () => {
    jest.useRealTimers();
    await store?.close();
  });

  describe('values', () => {
    it('keeps a deep frozen copy and hands back that same copy to every reader', async () => {
      store = new MemoryTokenStore();
      await store.set('k', TOKENS);
      const first = await store.get('k');
      expect(first).toEqual(TOKENS);
      expect(first).not.toBe(TOKENS);
      expect(Object.isFrozen(first)).toBe(true);
      expect(Object.isFrozen(first?.extra)).toBe(true);
      expect(Object.isFrozen((first?.extra?.nested as { list: number[] }).list)).toBe(true);
      expect(await store.get('k')).toBe(first);
    });

    it('redacts token values in util.inspect of what it hands back', async () => {
      store = new MemoryTokenStore();
      await store.set('k', TOKENS);
      const shown = inspect(await store.get('k'));
      expect(shown).not.toContain('access-secret');
      expect(shown).not.toContain('refresh-secret');
      expect(shown).toContain('[redacted]');
    });

    it('keeps what a JSON round trip keeps, as stores that serialize do', async () => {
      store = new MemoryTokenStore();
      const tokens = {
        accessToken: 'a',
        tokenType: 'Bearer',
        scope: undefined,
        extra: { at: new Date(Date.UTC(2030, 0, 1)), gone: undefined },
      };
      await store.set('k', tokens);
      const stored = await store.get('k');
      expect(stored).toStrictEqual(
        expect.objectContaining({
          accessToken: 'a',
          tokenType: 'Bearer',
          extra: { at: '2030-01-01T00:00:00.000Z' },
        }),
      );
      expect(Object.keys(stored ?? {})).toEqual(['accessToken', 'tokenType', 'extra']);
    });

    it.each([
      [
        'a cycle',
        () => {
          const extra: Record<string, unknown> = {};
          extra.self = extra;
          return extra;
        },
      ],
      ['a BigInt', () => ({ big: 1n })],
    ])('rejects a token set with %s in extra with TokenStoreError (set)', async (_name, makeExtra) => {
      store = new MemoryTokenStore();
      const error = await rejection(
        store.set('k', { accessToken: 'a', tokenType: 'Bearer', extra: makeExtra() }),
      );
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ code: 'STORE_ERROR', operation: 'set' });
      expect(await store.get('k')).toBeUndefined();
    });
  });

  describe('lock', () => {
    it('wakes waiters in the order they asked, one per release', async () => {
      store = new MemoryTokenStore();
      const events: string[] = [];
      const first = await store.lock('k', { ttlMs: 60_000, waitMs: 60_000 });
      const waiters = ['second', 'third', 'fourth'].map((name) =>
        store.lock('k', { ttlMs: 60_000, waitMs: 60_000 }).then((lock) => {
          events.push(`${name} acquired`);
          return lock;
        }),
      );
      await flush();
      expect(events).toEqual([]);
      events.push('first releasing');
      await first.release();
      const second = await waiters[0]!;
      await flush();
      events.push('second releasing');
      await second.release();
      const third = await waiters[1]!;
      await flush();
      events.push('third releasing');
      await third.release();
      await (await waiters[2]!).release();
      expect(events).toEqual([
        'first releasing',
        'second acquired',
        'second releasing',
        'third acquired',
        'third releasing',
        'fourth acquired',
      ]);
    });

    it('drops a waiter that gave up from the queue without waking it', async () => {
      jest.useFakeTimers();
      store = new MemoryTokenStore();
      const first = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
      const impatient = rejection(store.lock('k', { ttlMs: 60_000, waitMs: 100 }));
      const patient = store.lock('k', { ttlMs: 60_000, waitMs: 10_000 });
      await jest.advanceTimersByTimeAsync(100);
      expect(await impatient).toMatchObject({ code: 'STORE_ERROR', operation: 'lock' });
      await first.release();
      await (await patient).release();
    });

    it('waitMs 0 takes a free lock at once and rejects at once on a held one', async () => {
      store = new MemoryTokenStore();
      const held = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
      const error = await rejection(store.lock('k', { ttlMs: 60_000, waitMs: 0 }));
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ operation: 'lock' });
      await held.release();
    });

    it.each([
      [{ ttlMs: 0, waitMs: 10 }],
      [{ ttlMs: -1, waitMs: 10 }],
      [{ ttlMs: Number.NaN, waitMs: 10 }],
      [{ ttlMs: Number.POSITIVE_INFINITY, waitMs: 10 }],
      [{ ttlMs: 10, waitMs: -1 }],
      [{ ttlMs: 10, waitMs: Number.NaN }],
    ])('rejects invalid options %p with TokenStoreError (lock)', async (options) => {
      store = new MemoryTokenStore();
      const error = await rejection(store.lock('k', options));
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ operation: 'lock' });
    });

    describe('with an injected clock', () => {
      it.each([
        [59_999, 'still held'],
        [60_000, 'expired'],
        [60_001, 'expired'],
      ])('after %d ms of a 60000 ms TTL the lock is %s', async (elapsedMs, state) => {
        const clock = createFakeClock(Date.UTC(2030, 0, 1));
        store = new MemoryTokenStore({ now: clock.now });
        const stale = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
        clock.advance(elapsedMs);
        const next = store.lock('k', { ttlMs: 60_000, waitMs: 0 });
        if (state === 'still held') {
          expect(await rejection(next)).toMatchObject({ operation: 'lock' });
        } else {
          const lock = await next;
          await stale.release(); // stale: must not free the new holder
          expect(await rejection(store.lock('k', { ttlMs: 60_000, waitMs: 0 }))).toMatchObject({
            operation: 'lock',
          });
          await lock.release();
        }
      });

      it('gives an expired lock to the first waiter, not to a newcomer', async () => {
        const clock = createFakeClock(Date.UTC(2030, 0, 1));
        store = new MemoryTokenStore({ now: clock.now });
        const events: string[] = [];
        await store.lock('k', { ttlMs: 1000, waitMs: 0 }); // never released
        const waiter = store.lock('k', { ttlMs: 1000, waitMs: 60_000 }).then((lock) => {
          events.push('waiter acquired');
          return lock;
        });
        clock.advance(1000);
        const newcomer = store.lock('k', { ttlMs: 1000, waitMs: 60_000 }).then((lock) => {
          events.push('newcomer acquired');
          return lock;
        });
        const first = await waiter;
        await flush();
        expect(events).toEqual(['waiter acquired']);
        await first.release();
        await (await newcomer).release();
        expect(events).toEqual(['waiter acquired', 'newcomer acquired']);
      });

      it('lets a waiter whose wait ends after the TTL passed on the clock take the lock', async () => {
        const clock = createFakeClock(Date.UTC(2030, 0, 1));
        store = new MemoryTokenStore({ now: clock.now });
        await store.lock('k', { ttlMs: 60_000, waitMs: 0 }); // never released, TTL far in real time
        const waiter = store.lock('k', { ttlMs: 60_000, waitMs: 20 });
        clock.advance(60_000);
        await (await waiter).release();
      });
    });

    describe('with jest fake timers', () => {
      it('hands the lock to a waiter exactly when the holder’s TTL runs out', async () => {
        jest.useFakeTimers({ now: Date.UTC(2030, 0, 1) });
        store = new MemoryTokenStore();
        let acquired: StoreLock | undefined;
        await store.lock('k', { ttlMs: 1000, waitMs: 0 }); // never released
        void store.lock('k', { ttlMs: 1000, waitMs: 5000 }).then((lock) => {
          acquired = lock;
        });
        await jest.advanceTimersByTimeAsync(999);
        expect(acquired).toBeUndefined();
        await jest.advanceTimersByTimeAsync(1);
        expect(acquired).toBeDefined();
        await acquired?.release();
      });

      it('rejects a waiter exactly when waitMs runs out', async () => {
        jest.useFakeTimers({ now: Date.UTC(2030, 0, 1) });
        store = new MemoryTokenStore();
        const held = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
        let outcome: unknown;
        store.lock('k', { ttlMs: 1000, waitMs: 500 }).then(
          () => (outcome = 'acquired'),
          (error: unknown) => (outcome = error),
        );
        await jest.advanceTimersByTimeAsync(499);
        expect(outcome).toBeUndefined();
        await jest.advanceTimersByTimeAsync(1);
        expect(outcome).toBeInstanceOf(TokenStoreError);
        await held.release();
      });
    });
  });

  describe('subscribe', () => {
    it('calls listeners with the key after set and delete, asynchronously', async () => {
      store = new MemoryTokenStore();
      const seen: string[] = [];
      store.subscribe((key) => seen.push(key));
      await store.set('a', TOKENS);
      await store.delete('b'); // a missing key is a change notice too
      await flush();
      expect(seen).toEqual(['a', 'b']);
    });

    it('isolates a listener that throws from the store and from the other listeners', async () => {
      store = new MemoryTokenStore();
      const seen: string[] = [];
      store.subscribe(() => {
        throw new Error('listener bug');
      });
      store.subscribe((key) => seen.push(key));
      await store.set('a', TOKENS);
      await store.set('b', TOKENS);
      await flush();
      expect(seen).toEqual(['a', 'b']);
      expect(await store.get('b')).toEqual(TOKENS);
    });

    it('does not deliver a change to a listener that unsubscribed before the delivery', async () => {
      store = new MemoryTokenStore();
      const seen: string[] = [];
      const unsubscribe = store.subscribe((key) => seen.push(key));
      const pending = store.set('a', TOKENS);
      unsubscribe();
      await pending;
      await flush();
      expect(seen).toEqual([]);
    });

    it('delivers to the same function subscribed twice until each subscription ends', async () => {
      store = new MemoryTokenStore();
      const seen: string[] = [];
      const listener = (key: string) => seen.push(key);
      const unsubscribeFirst = store.subscribe(listener);
      store.subscribe(listener);
      await store.set('a', TOKENS);
      await flush();
      unsubscribeFirst();
      await store.set('b', TOKENS);
      await flush();
      expect(seen).toEqual(['a', 'a', 'b']);
    });
  });

  describe('close', () => {
    it('rejects pending lock waiters with TokenStoreError (lock) and every later call', async () => {
      store = new MemoryTokenStore();
      const held = await store.lock('k', { ttlMs: 60_000, waitMs: 0 });
      const waiter = rejection(store.lock('k', { ttlMs: 60_000, waitMs: 60_000 }));
      await store.set('k', TOKENS);
      await store.close();
      const error = await waiter;
      expect(error).toBeInstanceOf(TokenStoreError);
      expect(error).toMatchObject({ operation: 'lock' });
      for (const [operation, call] of [
        ['get', () => store.get('k')],
        ['set', () => store.set('k', TOKENS)],
        ['delete', () => store.delete('k')],
        ['lock', () => store.lock('k', { ttlMs: 1000, waitMs: 0 })],
      ] as const) {
        expect(await rejection(call())).toMatchObject({ code: 'STORE_ERROR', operation });
      }
      await expect(held.release()).resolves.toBeUndefined();
      await expect(store.close()).resolves.toBeUndefined();
    });

    it('drops listeners: no delivery after close, even of a change made just before', async () => {
      store = new MemoryTokenStore();
      const seen: string[] = [];
      store.subscribe((key) => seen.push(key));
      const pending = store.set('a', TOKENS);
      await store.close();
      await pending;
      await flush();
      expect(seen).toEqual([]);
      expect(() => store.subscribe((key) => seen.push(key))()).not.toThrow();
    });
  });

  it('does not keep Node alive with a held lock and a waiting locker', async () => {
    const moduleUrl = new URL('../src/memory-token-store.ts', import.meta.url).href;
    const script = `
      const { MemoryTokenStore } = await import(${JSON.stringify(moduleUrl)});
      const store = new MemoryTokenStore();
      await store.lock('k', { ttlMs: 600000, waitMs: 0 });
      store.lock('k', { ttlMs: 600000, waitMs: 600000 }).catch(() => {});
    `;
    const root = fileURLToPath(new URL('../../..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: root,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(killer);
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});
