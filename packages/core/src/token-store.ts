import type { TokenSet } from './token-set.js';

/** A held cross-process lock; `release()` is safe to call more than once. */
export interface StoreLock {
  release(): Promise<void>;
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
  get(key: string): Promise<TokenSet | undefined>;
  set(key: string, tokens: TokenSet): Promise<void>;
  delete(key: string): Promise<void>;
  lock?(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock>;
  subscribe?(
    listener: (key: string) => void,
    options?: { onReset?: () => void; onDisconnect?: () => void },
  ): () => void;
  /** The token set with its version, or `undefined` (version 0). */
  getVersioned?(key: string): Promise<{ tokens: TokenSet; version: number } | undefined>;
  /** Writes only if the stored version is still `version`; resolves `false` on a conflict. */
  setIfVersion?(key: string, tokens: TokenSet, version: number): Promise<boolean>;
  close?(): Promise<void>;
}
