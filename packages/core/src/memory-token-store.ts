import { TokenStoreError } from './errors.js';
import { deepFreeze } from './internal/freeze.js';
import { freezeTokenSet } from './token-set.js';
import type { TokenSet } from './token-set.js';
import type { StoreLock, TokenStore } from './token-store.js';

/** Options of a {@link MemoryTokenStore}. */
export interface MemoryTokenStoreOptions {
  /**
   * The clock lock TTLs are measured with, in epoch milliseconds. Inject a fake clock (e.g.
   * `createFakeClock()` from `@tessera/testing`) to expire locks without waiting: a `lock()` call
   * takes over a lock whose TTL has passed on this clock at once, and queued waiters get it at the
   * next TTL or wait timer check.
   * @default () => Date.now()
   */
  now?: () => number;
}

/** A queued `lock()` call. */
interface LockWaiter {
  readonly ttlMs: number;
  readonly resolve: (lock: StoreLock) => void;
  readonly reject: (error: TokenStoreError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The current holder of a key's lock; compared by identity, so a stale holder cannot release. */
interface LockHolder {
  readonly expiresAtMs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/** The lock of one key: its holder and the FIFO queue of waiters. Dropped when both are empty. */
interface KeyLock {
  holder: LockHolder | undefined;
  readonly waiters: LockWaiter[];
}

/** One `subscribe()` call; an object so the same function can be subscribed twice. */
interface Subscription {
  readonly listener: (key: string) => void;
}

/**
 * A {@link TokenStore} in this process's memory: the default store of a `TokenManager`, and a store
 * several managers of one process (or one test) can share.
 *
 * - `set` keeps a deep, frozen copy of the token set made by a JSON round trip, as a store that
 *   serializes would (so `undefined` members are dropped and a `Date` in `extra` becomes a string);
 *   later changes to the caller's object do not leak in. `get` hands back that frozen copy (no
 *   copying per read).
 * - `lock` gives mutual exclusion between the callers of this process: waiters are queued FIFO and
 *   woken on release (no polling); a holder that does not release within `ttlMs` loses the lock to
 *   the next waiter; a waiter that does not get it within `waitMs` is rejected with a
 *   `TokenStoreError` (`operation: 'lock'`). Release is idempotent, and a release after the lock
 *   expired never frees a later holder's lock.
 * - `subscribe` listeners are called with the key in a microtask after every `set` and `delete`
 *   (also of a missing key). A listener that throws is ignored and does not affect the others.
 * - Timers are `unref()`ed: nothing here keeps Node alive. `close()` stops them, rejects pending lock
 *   waiters, drops listeners and data; afterwards every operation rejects with `TokenStoreError`.
 *
 * Nothing is shared with other processes: for a fleet, use a shared store such as `RedisTokenStore`.
 *
 * @example
 * ```ts
 * const store = new MemoryTokenStore();
 * const a = new TokenManager({ client, store, grant: 'client_credentials' });
 * const b = new TokenManager({ client, store, grant: 'client_credentials' });
 * // a and b share one token per key and refresh it once between them.
 * ```
 */
export class MemoryTokenStore implements TokenStore {
  readonly #now: () => number;
  readonly #entries = new Map<string, TokenSet>();
  readonly #locks = new Map<string, KeyLock>();
  readonly #subscriptions = new Set<Subscription>();
  #closed = false;

  /**
   * @param options - `now`: the clock of lock TTLs (for tests).
   * @example
   * ```ts
   * const clock = createFakeClock();
   * const store = new MemoryTokenStore({ now: clock.now });
   * ```
   */
  constructor(options: MemoryTokenStoreOptions = {}) {
    this.#now = options.now ?? (() => Date.now());
  }

  /**
   * The token set stored under `key` (frozen), or `undefined` when there is none.
   *
   * @throws TokenStoreError (`operation: 'get'`) after `close()`.
   * @example
   * ```ts
   * const tokens = await store.get('default');
   * ```
   */
  async get(key: string): Promise<TokenSet | undefined> {
    this.#assertOpen('get');
    return this.#entries.get(key);
  }

  /**
   * Stores a deep, frozen copy of `tokens` (a JSON round trip) under `key`, replacing what was
   * there, then notifies the subscribers.
   *
   * @throws TokenStoreError (`operation: 'set'`) after `close()`, or when `tokens` cannot be
   *   serialized as JSON (e.g. a cycle or a `BigInt` in `extra`).
   * @example
   * ```ts
   * await store.set('default', { accessToken: 'at', tokenType: 'Bearer', expiresAt: 1_900_000_000 });
   * ```
   */
  async set(key: string, tokens: TokenSet): Promise<void> {
    this.#assertOpen('set');
    let copy: TokenSet;
    try {
      copy = frozenCopy(tokens);
    } catch (cause) {
      throw new TokenStoreError(
        'set',
        'memory token store: the token set is not plain data and cannot be copied',
        {
          cause,
        },
      );
    }
    this.#entries.set(key, copy);
    this.#notify(key);
  }

  /**
   * Removes the token set of `key` (a missing key is fine), then notifies the subscribers.
   *
   * @throws TokenStoreError (`operation: 'delete'`) after `close()`.
   * @example
   * ```ts
   * await store.delete('default');
   * ```
   */
  async delete(key: string): Promise<void> {
    this.#assertOpen('delete');
    this.#entries.delete(key);
    this.#notify(key);
  }

  /**
   * Waits until this caller holds the lock of `key` (independent of the stored value). Waiters get
   * the lock in the order they asked for it, as soon as it is released or expires.
   *
   * @param options - `ttlMs`: how long the lock is held at most (ms, > 0); `waitMs`: how long to wait
   *   for it (ms, >= 0; `0` only takes a free lock).
   * @throws TokenStoreError (`operation: 'lock'`) when the lock is not acquired within `waitMs`, when
   *   the options are not valid, or when the store is (or gets) closed.
   * @example
   * ```ts
   * const lock = await store.lock('default', { ttlMs: 30_000, waitMs: 30_000 });
   * try {
   *   // re-read, refresh, write
   * } finally {
   *   await lock.release();
   * }
   * ```
   */
  async lock(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock> {
    this.#assertOpen('lock');
    const { ttlMs, waitMs } = options;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) {
      throw new TokenStoreError(
        'lock',
        `memory token store: ttlMs must be a positive number, got ${String(ttlMs)}`,
      );
    }
    if (!Number.isFinite(waitMs) || waitMs < 0) {
      throw new TokenStoreError(
        'lock',
        `memory token store: waitMs must be a non-negative number, got ${String(waitMs)}`,
      );
    }
    const existing = this.#locks.get(key);
    if (existing !== undefined) this.#expireIfDue(key, existing); // may forget the key when idle
    let state = this.#locks.get(key);
    if (state === undefined) {
      state = { holder: undefined, waiters: [] };
      this.#locks.set(key, state);
    }
    if (state.holder === undefined && state.waiters.length === 0) return this.#grant(key, state, ttlMs);
    if (waitMs === 0) throw notAcquired(waitMs);

    const queue = state.waiters;
    return new Promise<StoreLock>((resolve, reject) => {
      const waiter: LockWaiter = { ttlMs, resolve, reject, timer: undefined };
      waiter.timer = setTimeout(() => {
        waiter.timer = undefined;
        // The holder may have expired on an injected clock without a timer noticing yet.
        const current = this.#locks.get(key);
        if (current !== undefined) this.#expireIfDue(key, current);
        const index = queue.indexOf(waiter);
        if (index === -1) return; // granted meanwhile
        queue.splice(index, 1);
        if (current !== undefined) this.#dropIfIdle(key, current);
        reject(notAcquired(waitMs));
      }, waitMs);
      waiter.timer.unref();
      queue.push(waiter);
    });
  }

  /**
   * Calls `listener(key)` in a microtask after every `set` and `delete` on this store. A listener
   * that throws is ignored. Returns the unsubscribe function (idempotent); after `close()` the
   * listener is never called.
   *
   * @example
   * ```ts
   * const unsubscribe = store.subscribe((key) => cache.delete(key));
   * // later
   * unsubscribe();
   * ```
   */
  subscribe(listener: (key: string) => void): () => void {
    if (this.#closed) return () => undefined;
    const subscription: Subscription = { listener };
    this.#subscriptions.add(subscription);
    return () => {
      this.#subscriptions.delete(subscription);
    };
  }

  /**
   * Closes the store (idempotent): stops every timer, rejects pending `lock()` calls with
   * `TokenStoreError` (`operation: 'lock'`), drops listeners, locks and data. Every later call
   * rejects with `TokenStoreError`; releasing a lock taken before is a no-op.
   *
   * @example
   * ```ts
   * await store.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const locks = [...this.#locks.values()];
    this.#locks.clear();
    this.#subscriptions.clear();
    this.#entries.clear();
    for (const state of locks) {
      if (state.holder?.timer !== undefined) clearTimeout(state.holder.timer);
      state.holder = undefined;
      for (const waiter of state.waiters.splice(0)) {
        if (waiter.timer !== undefined) clearTimeout(waiter.timer);
        waiter.reject(new TokenStoreError('lock', 'memory token store was closed while waiting for a lock'));
      }
    }
  }

  #assertOpen(operation: 'get' | 'set' | 'delete' | 'lock'): void {
    if (this.#closed) throw new TokenStoreError(operation, 'memory token store is closed');
  }

  /** Makes a new holder of `state` and arms its TTL timer. */
  #grant(key: string, state: KeyLock, ttlMs: number): StoreLock {
    const holder: LockHolder = { expiresAtMs: this.#now() + ttlMs, timer: undefined };
    state.holder = holder;
    this.#armTtl(key, holder, ttlMs);
    return {
      release: async () => {
        const current = this.#locks.get(key);
        // Only the current holder releases: a second release, or one after expiry, is a no-op.
        if (current === undefined || current.holder !== holder) return;
        if (holder.timer !== undefined) clearTimeout(holder.timer);
        holder.timer = undefined;
        current.holder = undefined;
        this.#handOver(key, current);
      },
    };
  }

  /** Checks the holder's expiry (on the injected clock) after `delayMs`, and again until it is due. */
  #armTtl(key: string, holder: LockHolder, delayMs: number): void {
    holder.timer = setTimeout(() => {
      holder.timer = undefined;
      const state = this.#locks.get(key);
      if (state === undefined || state.holder !== holder) return;
      const remainingMs = holder.expiresAtMs - this.#now();
      if (remainingMs > 0) {
        this.#armTtl(key, holder, remainingMs);
        return;
      }
      state.holder = undefined;
      this.#handOver(key, state);
    }, delayMs);
    holder.timer.unref();
  }

  /** Drops the holder when its TTL has passed on the injected clock, and wakes the next waiter. */
  #expireIfDue(key: string, state: KeyLock): void {
    const { holder } = state;
    if (holder === undefined || this.#now() < holder.expiresAtMs) return;
    if (holder.timer !== undefined) clearTimeout(holder.timer);
    holder.timer = undefined;
    state.holder = undefined;
    this.#handOver(key, state);
  }

  /** Gives a free lock to the first waiter, or forgets the key when nobody waits. */
  #handOver(key: string, state: KeyLock): void {
    const next = state.waiters.shift();
    if (next === undefined) {
      this.#dropIfIdle(key, state);
      return;
    }
    if (next.timer !== undefined) clearTimeout(next.timer);
    next.timer = undefined;
    next.resolve(this.#grant(key, state, next.ttlMs));
  }

  #dropIfIdle(key: string, state: KeyLock): void {
    if (state.holder === undefined && state.waiters.length === 0 && this.#locks.get(key) === state) {
      this.#locks.delete(key);
    }
  }

  /** Calls the current subscribers with `key` in one microtask, each isolated from the others. */
  #notify(key: string): void {
    if (this.#subscriptions.size === 0) return;
    const subscriptions = [...this.#subscriptions];
    queueMicrotask(() => {
      for (const subscription of subscriptions) {
        // Unsubscribed (or closed) between the change and the delivery: not delivered.
        if (!this.#subscriptions.has(subscription)) continue;
        try {
          subscription.listener(key);
        } catch {
          // A listener's failure is its own; the store and the other listeners carry on.
        }
      }
    });
  }
}

function notAcquired(waitMs: number): TokenStoreError {
  return new TokenStoreError('lock', `memory token store: lock not acquired within ${waitMs} ms`);
}

/**
 * A JSON round trip of `tokens` (what a store that serializes keeps, so the memory store behaves like
 * the others), with every nested object frozen, then frozen and redacted as a TokenSet.
 */
function frozenCopy(tokens: TokenSet): TokenSet {
  const copy = JSON.parse(JSON.stringify(tokens)) as { extra?: unknown };
  if (copy === null || typeof copy !== 'object' || Array.isArray(copy)) throw new TypeError('not an object');
  deepFreeze(copy.extra);
  return freezeTokenSet(copy as TokenSet);
}
