import type { TokenSet } from './token-set.js';

/** A held cross-process lock; `release()` is safe to call more than once. */
export interface StoreLock {
  /** Releases the lock if this caller still holds it; resolves, never rejects for a lock already lost. */
  release(): Promise<void>;
}

/** A stored token set with its version, for compare-and-set writes. */
export interface VersionedTokenSet {
  /** The stored token set. */
  tokens: TokenSet;
  /** Its version: an opaque number other than 0, changed by every write. */
  version: number;
}

/**
 * Where a {@link TokenManager} keeps token sets, by key. Any object with `get`, `set` and `delete`
 * works; `lock` and `subscribe` make a store safe and fast to share between processes.
 *
 * Contract (checked by `describeTokenStore()` in `@tessera/testing`):
 * - `get` of a missing key resolves `undefined`; a failure rejects with `TokenStoreError` and never
 *   pretends the key is empty.
 * - `set` stores a copy: later changes to the caller's object do not leak in, and `get` returns an
 *   equal token set.
 * - `lock(key, { ttlMs, waitMs })` resolves once this caller holds the key's lock, or rejects with
 *   `TokenStoreError` (`operation: 'lock'`) after `waitMs`; a holder that never releases loses the lock
 *   after `ttlMs`.
 * - `subscribe(listener)` calls `listener(key)` after any `set` or `delete` of a key, by anyone
 *   sharing the store, and returns an unsubscribe function. A feed that may have missed changes (a
 *   reconnect) calls `options.onReset()`: every cached value may be stale. A feed that loses its
 *   connection calls `options.onDisconnect()` at once, if it can tell: the store may come back
 *   without its data (a restart), and a manager then writes back the newest token set it holds.
 * - `getVersioned` / `setIfVersion`, when present, make writes conditional (compare-and-set), so a
 *   writer holding a stale view cannot overwrite a newer token set. Versions are opaque numbers;
 *   version `0` means "absent".
 */
export interface TokenStore {
  /** The token set of `key`, or `undefined` when there is none; rejects with `TokenStoreError` on failure. */
  get(key: string): Promise<TokenSet | undefined>;
  /** Stores a copy of `tokens` under `key`, replacing what was there. */
  set(key: string, tokens: TokenSet): Promise<void>;
  /** Removes `key`; resolves for a missing key too. */
  delete(key: string): Promise<void>;
  /**
   * Takes the cross-process lock of `key`, waiting up to `waitMs` (then `TokenStoreError`); a holder
   * that never releases loses it after `ttlMs` (both in milliseconds).
   */
  lock?(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock>;
  /**
   * Calls `listener(key)` after any change of a key by anyone sharing the store; `onReset` when
   * changes may have been missed, `onDisconnect` when the feed lost its connection. Returns the
   * unsubscribe function.
   */
  subscribe?(
    listener: (key: string) => void,
    options?: { onReset?: () => void; onDisconnect?: () => void },
  ): () => void;
  /** The token set with its version, or `undefined` (version 0). */
  getVersioned?(key: string): Promise<VersionedTokenSet | undefined>;
  /** Writes only if the stored version is still `version`; resolves `false` on a conflict. */
  setIfVersion?(key: string, tokens: TokenSet, version: number): Promise<boolean>;
  /** Releases the store's connections and timers; a manager that created the store calls it in `close()`. */
  close?(): Promise<void>;
}
