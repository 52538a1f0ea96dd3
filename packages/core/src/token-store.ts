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
 *   sharing the store, and returns an unsubscribe function.
 */
export interface TokenStore {
  get(key: string): Promise<TokenSet | undefined>;
  set(key: string, tokens: TokenSet): Promise<void>;
  delete(key: string): Promise<void>;
  lock?(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock>;
  subscribe?(listener: (key: string) => void): () => void;
  close?(): Promise<void>;
}
