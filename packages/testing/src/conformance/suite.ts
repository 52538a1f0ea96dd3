/**
 * What every capability file of the conformance kit shares: the runner it registers tests with, the
 * options as the user gave them, and the per-test context (fresh keys, the store and its peer).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TokenSet, TokenStore } from '@tessera/core';

/**
 * What a store can do beyond `get`, `set` and `delete`, each checked by its own part of the suite:
 * - `'lock'`: `lock(key, { ttlMs, waitMs })`, the cross-process lock;
 * - `'subscribe'`: `subscribe(listener)`, the change feed (with `onReset` when `interruptFeed` is given);
 * - `'versioned'`: `getVersioned` and `setIfVersion`, compare-and-set writes.
 */
export type TokenStoreCapability = 'lock' | 'subscribe' | 'versioned';

/** Every capability, in the order the suite runs them. */
export const CAPABILITIES: readonly TokenStoreCapability[] = ['lock', 'subscribe', 'versioned'];

/**
 * The test runner the suite registers with: jest's, vitest's or node:test's `describe`, `it` and
 * `afterEach` (each has `it.skip`, which shows a capability the store lacks as skipped).
 */
export interface TestRunner {
  /** Registers a group of tests (`describe` of jest, vitest or node:test). */
  describe(name: string, body: () => void): unknown;
  /** Registers a test; `it.skip` registers one that is shown as skipped. */
  it: ((name: string, body: () => Promise<void>) => unknown) & {
    /** Registers a test shown as skipped (a capability the store does not declare). */
    skip(name: string, body: () => Promise<void>): unknown;
  };
  /** Registers what runs after each test (the suite tears down the stores it opened). */
  afterEach(body: () => Promise<void>): unknown;
}

/** Options of `describeTokenStore()`, typed by the store under test. */
export interface TokenStoreSuiteOptions<S extends TokenStore = TokenStore> {
  /**
   * What the store can do beyond `get`, `set` and `delete`. The suite checks each declared one, shows
   * the others as skipped, and fails when the store has a method of a capability it did not declare
   * (a manager would use it unchecked).
   * @default []
   */
  capabilities?: readonly TokenStoreCapability[];
  /**
   * `describe`, `it` and `afterEach` of the test runner: from `vitest`, from `node:test`, or
   * `@jest/globals`.
   * @default the runner's globals (`globalThis.describe`, `it`, `afterEach`), as jest provides them
   */
  runner?: TestRunner;
  /**
   * Called after each test with every store handle the test opened (the peer first, when it is a
   * different object), e.g. to close it or its client. Errors fail the test, except after
   * `breakStore`.
   * @default (store) => store.close?.()
   */
  teardown?: (store: S) => Promise<void> | void;
  /**
   * A second handle on the SAME backing storage (another process's view, e.g. a store on a second
   * Redis connection), for the lock, subscribe and compare-and-set tests across instances. It is
   * torn down with `teardown` too.
   * @default the same instance
   */
  peer?: (store: S) => Promise<S> | S;
  /**
   * Makes the store fail (e.g. stops the backend or closes its client) so errors can be checked.
   * When given, the suite checks that `get`, `set`, `delete` (and `lock`, `getVersioned` and
   * `setIfVersion`, when declared) reject with `TokenStoreError` carrying the operation, and never
   * resolve as if the key were empty. Without it, the failure tests show as skipped.
   */
  breakStore?: (store: S) => Promise<void> | void;
  /**
   * Cuts the change feed of `store` so that it misses changes and then reconnects (e.g. kills the
   * store's pub/sub connection on the server). When given with the `'subscribe'` capability, the
   * suite checks that every listener's `onReset` is called and that changes are delivered again;
   * without it, those tests show as skipped.
   */
  interruptFeed?: (store: S) => Promise<void> | void;
  /**
   * Timings of the suite, in ms: `ttlMs` is how long the expiry tests wait for a lock to expire,
   * `waitMs` how long a waiter (a lock, a change notification, an `onReset`) waits; it must be
   * larger than `ttlMs`. Keep them small; raise them only for a slow backend.
   * @default { ttlMs: 200, waitMs: 1000 }
   */
  lockTimings?: {
    /** The lock TTL of the expiry tests, in milliseconds. @default 200 */
    ttlMs: number;
    /** How long a waiter waits, in milliseconds; larger than `ttlMs`. @default 1000 */
    waitMs: number;
  };
}

/** What one test opened, torn down after it. */
export interface SuiteContext<S extends TokenStore = TokenStore> {
  readonly store: S;
  readonly peer: S;
  /** A fresh key no other test (or run) uses; deleted after the test. */
  key(label: string): string;
  /** Deletes `key` after the test. */
  track(key: string): string;
  /** Marks the store as broken: keys are not cleaned up and teardown errors are ignored. */
  markBroken(): void;
}

/** A store that has `lock`. */
export type LockingStore = TokenStore & Required<Pick<TokenStore, 'lock'>>;
/** A store that has `subscribe`. */
export type SubscribingStore = TokenStore & Required<Pick<TokenStore, 'subscribe'>>;
/** A store that has `getVersioned` and `setIfVersion`. */
export type VersionedStore = TokenStore & Required<Pick<TokenStore, 'getVersioned' | 'setIfVersion'>>;

/** The suite as the capability files see it. */
export interface Suite<S extends TokenStore = TokenStore> {
  readonly runner: TestRunner;
  readonly options: TokenStoreSuiteOptions<S>;
  readonly ttlMs: number;
  readonly waitMs: number;
  /** A lock the test releases itself: long enough never to expire during the test. */
  readonly longTtlMs: number;
  /** For waits meant to fail, and for giving a wrong implementation the chance to show. */
  readonly shortMs: number;
  /** Opens the stores of one test; they are torn down after it. */
  open(): Promise<SuiteContext<S>>;
  /** `it`, or `it.skip` when `enabled` is false: a check that cannot run shows as skipped. */
  test(enabled: boolean, name: string, body: () => Promise<void>): void;
}

const RUN_ID = randomUUID();

/** The suite's shared state; `afterEach` tears down what the test opened. */
export function createSuite<S extends TokenStore>(
  runner: TestRunner,
  factory: () => Promise<S> | S,
  options: TokenStoreSuiteOptions<S>,
): Suite<S> & { dispose(): Promise<void> } {
  const { ttlMs, waitMs } = options.lockTimings ?? { ttlMs: 200, waitMs: 1000 };
  if (!(Number.isFinite(ttlMs) && ttlMs > 0 && Number.isFinite(waitMs) && waitMs > ttlMs)) {
    throw new RangeError(
      `describeTokenStore: lockTimings need 0 < ttlMs < waitMs, got ttlMs ${String(ttlMs)}, waitMs ${String(waitMs)}`,
    );
  }
  const teardown = options.teardown ?? ((store: S) => store.close?.());
  let dispose: (() => Promise<void>) | undefined;

  const open = async (): Promise<SuiteContext<S>> => {
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
    const track = (key: string): string => {
      keys.add(key);
      return key;
    };
    dispose = async () => {
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
    };
    return {
      store,
      peer,
      track,
      key: (label) => track(`${prefix}:${label}`),
      markBroken: () => {
        broken = true;
      },
    };
  };

  return {
    runner,
    options,
    ttlMs,
    waitMs,
    longTtlMs: waitMs * 10,
    shortMs: Math.max(1, Math.min(50, Math.floor(ttlMs / 4))),
    open,
    test: (enabled, name, body) => {
      if (enabled) runner.it(name, body);
      else runner.it.skip(name, body);
    },
    dispose: async () => {
      const current = dispose;
      dispose = undefined;
      await current?.();
    },
  };
}

/**
 * Asserts a rejection with a `TokenStoreError` of `operation`, by name and code (not `instanceof`:
 * an adapter may load another copy of `@tessera/core`).
 */
export async function rejectsWithStoreError(promise: Promise<unknown>, operation: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    const { name, code, operation: actual } = (error ?? {}) as Record<string, unknown>;
    assert.deepEqual(
      { name, code, operation: actual },
      { name: 'TokenStoreError', code: 'STORE_ERROR', operation },
      `expected a TokenStoreError of operation ${operation}, got ${String(error)}`,
    );
    return true;
  });
}

/**
 * Asserts that a store handed back `expected`, as data: a store that serializes may drop
 * `undefined` members, and its objects need not share our prototypes.
 */
export function assertTokens(
  actual: TokenSet | undefined,
  expected: TokenSet | undefined,
  message?: string,
): void {
  const asData = (value: unknown): unknown =>
    value === undefined ? undefined : JSON.parse(JSON.stringify(value));
  assert.deepStrictEqual(asData(actual), asData(expected), message);
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The token set shape the tests mutate: every field, `extra` with nested objects and arrays. */
export interface Mutable {
  accessToken: string;
  extra: {
    issued_token_type: string;
    authorization_details: { type: string; locations: string[]; actions: string[] }[];
    nested: { deep: { flag: boolean; count: number; nothing: null; list: (string | number)[] } };
  };
}

/** A token set with every optional field, distinct per `label`. */
export function fullTokenSet(label: string): TokenSet {
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
