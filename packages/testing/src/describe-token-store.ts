import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as JestGlobals from '@jest/globals';
import type { TokenSet, TokenStore } from '@tessera/core';

/** Options of {@link describeTokenStore}. */
export interface TokenStoreSuiteOptions {
  /**
   * Called after each test with every store handle the test opened (the peer first, when it is a
   * different object), e.g. to close it or its client. Errors fail the test, except after
   * `breakStore`.
   * @default (store) => store.close?.()
   */
  teardown?: (store: TokenStore) => Promise<void> | void;
  /**
   * A second handle on the SAME backing storage (another process's view, e.g. a store on a second
   * Redis connection), for the lock and subscribe tests across instances. It is torn down with
   * `teardown` too.
   * @default the same instance
   */
  peer?: (store: TokenStore) => Promise<TokenStore> | TokenStore;
  /**
   * Makes the store fail (e.g. stops the backend or closes its client) so errors can be checked.
   * When given, the suite checks that `get`, `set`, `delete` (and `lock`, when the store has it)
   * reject with `TokenStoreError` carrying the operation, and never resolve as if the key were empty.
   */
  breakStore?: (store: TokenStore) => Promise<void> | void;
  /**
   * Lock timings of the suite, in ms: `ttlMs` is how long the expiry tests wait for a lock to
   * expire, `waitMs` how long a waiter waits (it must be larger than `ttlMs`). Keep them small; raise
   * them only for a slow backend.
   * @default { ttlMs: 200, waitMs: 1000 }
   */
  lockTimings?: { ttlMs: number; waitMs: number };
}

/** What one test opened, torn down after it. */
interface SuiteContext {
  readonly store: TokenStore;
  readonly peer: TokenStore;
  /** A fresh key no other test (or run) uses; deleted after the test. */
  key(label: string): string;
  /** Deletes `key` after the test. */
  track(key: string): string;
  /** Marks the store as broken: keys are not cleaned up and teardown errors are ignored. */
  markBroken(): void;
}

/** A store that has `lock`. */
type LockingStore = TokenStore & Required<Pick<TokenStore, 'lock'>>;
/** A store that has `subscribe`. */
type SubscribingStore = TokenStore & Required<Pick<TokenStore, 'subscribe'>>;

/** The keys one `subscribe()` listener saw, awaitable. */
interface KeyRecorder {
  /** How many times the listener saw `key`. */
  count(key: string): number;
  /** Resolves once the listener saw `key` at least `times` times; rejects after `timeoutMs`. */
  waitFor(key: string, times: number, timeoutMs: number): Promise<void>;
  unsubscribe(): void;
}

const RUN_ID = randomUUID();

/**
 * Registers the `TokenStore` conformance suite (jest `describe`/`it`) for a store adapter: every
 * adapter, Tessera's and yours, runs it. Call it at the top level of a test file; `factory` makes a
 * fresh store for each test (it may return the same backend: every test uses fresh unique keys and
 * deletes them afterwards).
 *
 * What it checks: round trips (every optional field, nested `extra`, a 64 KiB value), missing keys,
 * overwrites, deletes, key isolation (prefixes, `:`, `{}`, glob and path characters, case, unicode),
 * copies on `set` and `get`, concurrent writers; with `lock`: exclusivity, independent keys, `waitMs`,
 * `ttlMs` expiry, idempotent and stale releases; with `subscribe`: delivery of `set` and `delete`
 * (through `peer`) and unsubscribe; with `breakStore`: failures reject with `TokenStoreError`. The lock
 * expiry tests wait for real (small) TTLs, so do not enable jest fake timers around it. Tests of a
 * capability the store does not have (`lock`, `subscribe`) pass without checking anything.
 *
 * @param name - the name of the `describe` block, e.g. the adapter's class name.
 * @param factory - makes the store under test, once per test.
 * @param options - teardown, a peer handle, how to break the store, lock timings.
 * @throws RangeError when `lockTimings` are not positive or `waitMs` is not larger than `ttlMs`.
 * @example
 * ```ts
 * import { describeTokenStore } from '@tessera/testing';
 * import { Redis } from 'ioredis';
 * import { RedisTokenStore } from '../src/index.js';
 *
 * describeTokenStore('RedisTokenStore', () => new RedisTokenStore({ client: new Redis() }), {
 *   peer: () => new RedisTokenStore({ client: new Redis() }),
 *   breakStore: (store) => (store as RedisTokenStore).client.disconnect(),
 *   lockTimings: { ttlMs: 300, waitMs: 2000 },
 * });
 * ```
 */
export function describeTokenStore(
  name: string,
  factory: () => Promise<TokenStore> | TokenStore,
  options: TokenStoreSuiteOptions = {},
): void {
  const { ttlMs, waitMs } = options.lockTimings ?? { ttlMs: 200, waitMs: 1000 };
  if (!(Number.isFinite(ttlMs) && ttlMs > 0 && Number.isFinite(waitMs) && waitMs > ttlMs)) {
    throw new RangeError(
      `describeTokenStore: lockTimings need 0 < ttlMs < waitMs, got ttlMs ${String(ttlMs)}, waitMs ${String(waitMs)}`,
    );
  }
  const teardown = options.teardown ?? ((store: TokenStore) => store.close?.());
  /** A lock the test releases itself: long enough never to expire during the test. */
  const longTtlMs = waitMs * 10;
  /** For waits meant to fail, and for giving a wrong implementation the chance to show. */
  const shortMs = Math.max(1, Math.min(50, Math.floor(ttlMs / 4)));

  const { afterEach, describe, expect, it } = jestGlobals();
  /** Asserts a rejection with a `TokenStoreError` of `operation`, by name and code (not `instanceof`). */
  const expectStoreError = async (promise: Promise<unknown>, operation: string): Promise<void> => {
    await expect(promise).rejects.toMatchObject({ name: 'TokenStoreError', code: 'STORE_ERROR', operation });
  };
  let current: (SuiteContext & { dispose(): Promise<void> }) | undefined;

  async function open(): Promise<SuiteContext> {
    const store = await factory();
    let peer = store;
    try {
      if (options.peer !== undefined) peer = await options.peer(store);
    } catch (error) {
      await teardown(store);
      throw error;
    }
    const keys = new Set<string>();
    let broken = false;
    const prefix = `tessera-conformance:${RUN_ID}:${randomUUID()}`;
    const context = {
      store,
      peer,
      key: (label: string) => context.track(`${prefix}:${label}`),
      track: (key: string) => {
        keys.add(key);
        return key;
      },
      markBroken: () => {
        broken = true;
      },
      dispose: async () => {
        if (!broken) await Promise.allSettled([...keys].map((key) => store.delete(key)));
        const failures: unknown[] = [];
        for (const handle of peer === store ? [store] : [peer, store]) {
          try {
            await teardown(handle);
          } catch (error) {
            failures.push(error);
          }
        }
        if (failures.length > 0 && !broken) throw failures[0];
      },
    };
    current = context;
    return context;
  }

  describe(name, () => {
    afterEach(async () => {
      const context = current;
      current = undefined;
      await context?.dispose();
    });

    describe('get, set and delete', () => {
      it('round-trips a minimal token set', async () => {
        const { store, key } = await open();
        const k = key('minimal');
        await store.set(k, { accessToken: 'access-1', tokenType: 'Bearer' });
        expect(await store.get(k)).toEqual({ accessToken: 'access-1', tokenType: 'Bearer' });
      });

      it('resolves undefined for a missing key', async () => {
        const { store, key } = await open();
        expect(await store.get(key('missing'))).toBeUndefined();
      });

      it('overwrites: the last set wins, with no fields of the previous value left over', async () => {
        const { store, key } = await open();
        const k = key('overwrite');
        await store.set(k, fullTokenSet('first'));
        await store.set(k, { accessToken: 'second', tokenType: 'DPoP' });
        expect(await store.get(k)).toEqual({ accessToken: 'second', tokenType: 'DPoP' });
      });

      it('deletes a key, and deleting a missing key resolves', async () => {
        const { store, key } = await open();
        const k = key('delete');
        await store.set(k, fullTokenSet('to-delete'));
        await store.delete(k);
        expect(await store.get(k)).toBeUndefined();
        await expect(store.delete(k)).resolves.toBeUndefined();
        await expect(store.delete(key('never-set'))).resolves.toBeUndefined();
        await store.set(k, { accessToken: 'again', tokenType: 'Bearer' });
        expect(await store.get(k)).toEqual({ accessToken: 'again', tokenType: 'Bearer' });
      });

      it('keeps keys apart: prefixes, separators, braces, glob and path characters, case, unicode', async () => {
        const { store, key, track } = await open();
        const base = key('isolation');
        const keys = [
          base,
          `${base}a`,
          `${base}A`,
          `${base}:a`,
          `${base}:a:b`,
          `${base}{tag}`,
          `{${base}}`,
          `${base}*`,
          `${base}?[x]`,
          `${base} space`,
          `${base}/../escape`,
          `${base}\\back`,
          `${base}%2F`,
          `${base}:ü:日本:🔑`,
        ].map(track);
        await Promise.all(
          keys.map((k, index) => store.set(k, { accessToken: `access-${index}`, tokenType: 'Bearer' })),
        );
        for (const [index, k] of keys.entries()) {
          expect(await store.get(k)).toEqual({ accessToken: `access-${index}`, tokenType: 'Bearer' });
        }
        await store.delete(base);
        expect(await store.get(base)).toBeUndefined();
        for (const [index, k] of keys.entries()) {
          if (index > 0)
            expect(await store.get(k)).toEqual({ accessToken: `access-${index}`, tokenType: 'Bearer' });
        }
      });

      it('round-trips every optional field, with nested data in extra', async () => {
        const { store, key } = await open();
        const k = key('full');
        const tokens = fullTokenSet('full');
        await store.set(k, tokens);
        expect(await store.get(k)).toEqual(fullTokenSet('full'));
      });

      it('round-trips a large value (a 64 KiB id token)', async () => {
        const { store, key } = await open();
        const k = key('large');
        const idToken = `eyJhbGciOiJSUzI1NiJ9.${'x'.repeat(64 * 1024)}.c2lnbmF0dXJl`;
        await store.set(k, { accessToken: 'access-large', tokenType: 'Bearer', idToken });
        const stored = await store.get(k);
        expect(stored?.idToken).toHaveLength(idToken.length);
        expect(stored).toEqual({ accessToken: 'access-large', tokenType: 'Bearer', idToken });
      });

      it('stores a copy: later changes to the object passed to set do not leak in', async () => {
        const { store, key } = await open();
        const k = key('copy-on-set');
        const tokens = structuredClone(fullTokenSet('original')) as unknown as Mutable;
        await store.set(k, tokens as unknown as TokenSet);
        tokens.accessToken = 'changed';
        tokens.extra.issued_token_type = 'changed';
        tokens.extra.authorization_details[0]!.locations.push('https://changed.example');
        tokens.extra.nested.deep.flag = false;
        expect(await store.get(k)).toEqual(fullTokenSet('original'));
      });

      it('hands back values that a reader cannot change for the next reader', async () => {
        const { store, key } = await open();
        const k = key('copy-on-get');
        await store.set(k, fullTokenSet('original'));
        const first = (await store.get(k)) as unknown as Mutable;
        attempt(() => {
          first.accessToken = 'changed';
        });
        attempt(() => {
          first.extra.nested.deep.flag = false;
        });
        attempt(() => {
          first.extra.authorization_details[0]!.locations.push('https://changed.example');
        });
        expect(await store.get(k)).toEqual(fullTokenSet('original'));
      });

      it('ends with one whole value after 100 concurrent sets of one key, not a mix', async () => {
        const { store, key } = await open();
        const k = key('one-key-many-writers');
        const values = Array.from({ length: 100 }, (_, index) => fullTokenSet(`writer-${index}`));
        await Promise.all(values.map((value) => store.set(k, value)));
        const stored = await store.get(k);
        const winner = values.find((value) => value.accessToken === stored?.accessToken);
        expect(winner).toBeDefined();
        expect(stored).toEqual(winner);
      });

      it('lands all of 100 concurrent sets of 100 keys', async () => {
        const { store, key } = await open();
        const keys = Array.from({ length: 100 }, (_, index) => key(`many-keys-${index}`));
        await Promise.all(keys.map((k, index) => store.set(k, fullTokenSet(`key-${index}`))));
        const stored = await Promise.all(keys.map((k) => store.get(k)));
        expect(stored).toEqual(keys.map((_, index) => fullTokenSet(`key-${index}`)));
      });
    });

    describe('lock (when the store has it)', () => {
      it('is exclusive: a second locker acquires only after the first releases', async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
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
        expect(events).toEqual(['first releasing', 'second acquired']);
      });

      it('does not block other keys', async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
        const held = await store.lock(key('held'), { ttlMs: longTtlMs, waitMs });
        const other = await peer.lock(key('other'), { ttlMs: longTtlMs, waitMs: shortMs });
        await other.release();
        await held.release();
      });

      it('rejects with TokenStoreError (operation lock) when not acquired within waitMs', async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
        const k = key('wait-exceeded');
        const held = await store.lock(k, { ttlMs: longTtlMs, waitMs });
        await expectStoreError(peer.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
        await held.release();
      });

      it('takes the lock from a holder that never releases once ttlMs has passed', async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
        const k = key('expiry');
        await store.lock(k, { ttlMs, waitMs }); // never released
        const next = await peer.lock(k, { ttlMs: longTtlMs, waitMs });
        await next.release();
      });

      it('releases idempotently: a repeated release does not free the next holder', async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
        const k = key('idempotent');
        const first = await store.lock(k, { ttlMs: longTtlMs, waitMs });
        await first.release();
        await expect(first.release()).resolves.toBeUndefined();
        const second = await peer.lock(k, { ttlMs: longTtlMs, waitMs: shortMs });
        await expect(first.release()).resolves.toBeUndefined();
        await expectStoreError(store.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
        await second.release();
      });

      it("does not free the next holder's lock when released after it expired", async () => {
        const { store, peer, key } = await open();
        if (!hasLock(store) || !hasLock(peer)) return;
        const k = key('stale-release');
        const stale = await store.lock(k, { ttlMs, waitMs });
        const holder = await peer.lock(k, { ttlMs: longTtlMs, waitMs }); // after the stale one expired
        await expect(stale.release()).resolves.toBeUndefined();
        await expectStoreError(store.lock(k, { ttlMs: longTtlMs, waitMs: shortMs }), 'lock');
        await holder.release();
        const after = await store.lock(k, { ttlMs: longTtlMs, waitMs });
        await after.release();
      });
    });

    describe('subscribe (when the store has it)', () => {
      it('calls a listener after set and after delete of a key (through the peer)', async () => {
        const { store, peer, key } = await open();
        if (!hasSubscribe(peer)) return;
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

      it('stops calling a listener once it unsubscribed', async () => {
        const { store, peer, key } = await open();
        if (!hasSubscribe(peer)) return;
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
          expect(stopped.count(k)).toBe(0);
        } finally {
          still.unsubscribe();
        }
      });
    });

    const { breakStore } = options;
    if (breakStore !== undefined) {
      describe('failures', () => {
        const openBroken = async (): Promise<SuiteContext> => {
          const context = await open();
          context.markBroken();
          await breakStore(context.store);
          return context;
        };

        it('get rejects with TokenStoreError, never resolving as if the key were empty', async () => {
          const { store, key } = await openBroken();
          await expectStoreError(store.get(key('broken-get')), 'get');
        });

        it('set rejects with TokenStoreError', async () => {
          const { store, key } = await openBroken();
          await expectStoreError(store.set(key('broken-set'), fullTokenSet('broken')), 'set');
        });

        it('delete rejects with TokenStoreError', async () => {
          const { store, key } = await openBroken();
          await expectStoreError(store.delete(key('broken-delete')), 'delete');
        });

        it('lock rejects with TokenStoreError (when the store has it)', async () => {
          const { store, key } = await openBroken();
          if (!hasLock(store)) return;
          await expectStoreError(store.lock(key('broken-lock'), { ttlMs, waitMs }), 'lock');
        });
      });
    }
  });
}

/**
 * jest's `describe`, `it`, `expect` and `afterEach`, loaded when the suite is registered: importing
 * `@jest/globals` outside jest throws, and this package's other helpers (`startTestServer()`) also
 * run outside jest, e.g. in examples.
 */
function jestGlobals(): typeof JestGlobals {
  try {
    return createRequire(import.meta.url)('@jest/globals') as typeof JestGlobals;
  } catch (cause) {
    throw new Error(
      'describeTokenStore() registers jest tests: call it at the top level of a jest test file',
      {
        cause,
      },
    );
  }
}

/** The token set shape the tests mutate: every field, `extra` with nested objects and arrays. */
interface Mutable {
  accessToken: string;
  extra: {
    issued_token_type: string;
    authorization_details: { type: string; locations: string[]; actions: string[] }[];
    nested: { deep: { flag: boolean; count: number; nothing: null; list: (string | number)[] } };
  };
}

/** A token set with every optional field, distinct per `label`. */
function fullTokenSet(label: string): TokenSet {
  return {
    accessToken: `access-${label}`,
    tokenType: 'DPoP',
    expiresAt: 1_900_000_000,
    refreshToken: `refresh-${label}`,
    idToken: `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(label).toString('base64url')}.c2ln`,
    scope: 'openid offline_access api:read',
    dpopJkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I',
    extra: {
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      authorization_details: [
        { type: 'payment_initiation', locations: ['https://bank.example'], actions: ['initiate'] },
      ],
      nested: { deep: { flag: true, count: 1.5, nothing: null, list: ['a', 1, label] } },
    },
    // Who obtained it: a manager refuses a set of another issuer or client, so a store must keep these.
    issuer: 'https://as.example.com',
    clientId: 'billing-service',
  };
}

/** Runs a mutation that a frozen value refuses (by throwing, in strict mode). */
function attempt(mutation: () => void): void {
  try {
    mutation();
  } catch {
    // Frozen: the mutation was refused, which is what the test wants.
  }
}

function hasLock(store: TokenStore): store is LockingStore {
  return typeof store.lock === 'function';
}

function hasSubscribe(store: TokenStore): store is SubscribingStore {
  return typeof store.subscribe === 'function';
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Subscribes to `store` and records the keys the listener sees. */
function recordKeys(store: SubscribingStore): KeyRecorder {
  const counts = new Map<string, number>();
  const waiters = new Set<{ key: string; times: number; resolve: () => void }>();
  const unsubscribe = store.subscribe((key) => {
    counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const waiter of waiters) {
      if (waiter.key === key && (counts.get(key) ?? 0) >= waiter.times) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  });
  return {
    count: (key) => counts.get(key) ?? 0,
    waitFor: (key, times, timeoutMs) =>
      new Promise<void>((resolve, reject) => {
        if ((counts.get(key) ?? 0) >= times) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(
            new Error(
              `the subscribe() listener saw ${counts.get(key) ?? 0} of ${times} changes within ${timeoutMs} ms`,
            ),
          );
        }, timeoutMs);
        const waiter = {
          key,
          times,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        };
        waiters.add(waiter);
      }),
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
  for (let attempt = 1; ; attempt++) {
    await store.set(probeKey, { accessToken: `probe-${attempt}`, tokenType: 'Bearer' });
    const remainingMs = deadline - Date.now();
    try {
      await listener.waitFor(probeKey, 1, Math.max(1, Math.min(remainingMs, 25 * attempt)));
      return;
    } catch (error) {
      // Not listening yet: write again, until waitMs has passed.
      if (remainingMs <= 25 * attempt) throw error;
    }
  }
}
