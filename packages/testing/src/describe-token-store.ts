import assert from 'node:assert/strict';
import type { TokenStore } from '@tessera/core';
import { basicTests } from './conformance/basic.js';
import { failureTests } from './conformance/failures.js';
import { lockTests } from './conformance/lock.js';
import { subscribeTests } from './conformance/subscribe.js';
import { CAPABILITIES, createSuite } from './conformance/suite.js';
import type { TestRunner, TokenStoreCapability, TokenStoreSuiteOptions } from './conformance/suite.js';
import { versionedTests } from './conformance/versioned.js';

export type { TestRunner, TokenStoreCapability, TokenStoreSuiteOptions } from './conformance/suite.js';

/** What each capability adds to a store, to tell an undeclared one. */
const CAPABILITY_METHODS: Record<TokenStoreCapability, readonly (keyof TokenStore)[]> = {
  lock: ['lock'],
  subscribe: ['subscribe'],
  versioned: ['getVersioned', 'setIfVersion'],
};

/**
 * Registers the `TokenStore` conformance suite for a store adapter: every adapter, Tessera's and
 * yours, runs it. Call it at the top level of a test file of jest, vitest or node:test; `factory`
 * makes a fresh store for each test (it may return the same backend: every test uses fresh unique
 * keys and deletes them afterwards).
 *
 * What it checks:
 * - always: round trips (every optional field, nested `extra`, a 64 KiB value), missing keys,
 *   overwrites, deletes, key isolation (prefixes, `:`, `{}`, glob and path characters, case,
 *   unicode), copies on `set` and `get`, concurrent writers; and that the store has no method of a
 *   capability it did not declare;
 * - `'lock'`: exclusivity (through `peer`), independent keys, `waitMs`, `ttlMs` expiry, idempotent
 *   and stale releases;
 * - `'subscribe'`: delivery of `set` and `delete` (through `peer`), unsubscribe; with
 *   `interruptFeed`, `onReset` after missed changes and delivery after it;
 * - `'versioned'`: compare-and-set: version 0 means absent, a stale version is refused, every write
 *   changes the version, exactly one of concurrent writers wins (across handles);
 * - with `breakStore`: every operation rejects with `TokenStoreError` naming it.
 *
 * A capability the store does not declare, and a check whose option is missing, shows as skipped.
 * The lock expiry tests wait for real (small) TTLs, so do not enable fake timers around it.
 *
 * @typeParam S - the store under test: the options' callbacks receive it as such.
 * @param name - the name of the `describe` block, e.g. the adapter's class name.
 * @param factory - makes the store under test, once per test.
 * @param options - capabilities, the runner, teardown, a peer handle, how to break the store or
 *   cut its feed, timings.
 * @throws RangeError when `lockTimings` are not positive or `waitMs` is not larger than `ttlMs`.
 * @throws Error when no `runner` is given and the runner has no `describe`/`it`/`afterEach` globals.
 * @example
 * ```ts
 * import { describe, it, afterEach } from 'vitest'; // or 'node:test'; jest needs no runner
 * import { describeTokenStore } from '@tessera/testing';
 * import { Redis } from 'ioredis';
 * import { RedisTokenStore } from '@tessera/store-redis';
 *
 * describeTokenStore('RedisTokenStore', () => new RedisTokenStore({ client: new Redis() }), {
 *   runner: { describe, it, afterEach },
 *   capabilities: ['lock', 'subscribe', 'versioned'],
 *   peer: () => new RedisTokenStore({ client: new Redis() }),
 *   breakStore: (store) => store.close(),
 *   lockTimings: { ttlMs: 300, waitMs: 2000 },
 * });
 * ```
 */
export function describeTokenStore<S extends TokenStore>(
  name: string,
  factory: () => Promise<S> | S,
  options: TokenStoreSuiteOptions<S> = {},
): void {
  const runner = options.runner ?? globalRunner();
  const declared = new Set(options.capabilities ?? []);
  for (const capability of declared) {
    if (!CAPABILITIES.includes(capability)) {
      throw new RangeError(
        `describeTokenStore: unknown capability ${JSON.stringify(capability)} (known: ${CAPABILITIES.join(', ')})`,
      );
    }
  }
  const suite = createSuite(runner, factory, options);

  runner.describe(name, () => {
    runner.afterEach(() => suite.dispose());

    runner.it('declares every capability it has', async () => {
      const { store, peer } = await suite.open();
      for (const handle of new Set([store, peer])) {
        for (const capability of CAPABILITIES) {
          if (declared.has(capability)) continue;
          for (const method of CAPABILITY_METHODS[capability]) {
            assert.notEqual(
              typeof handle[method],
              'function',
              `the store has ${String(method)}() but capabilities do not include '${capability}': a TokenManager would use it unchecked; declare it`,
            );
          }
        }
      }
    });

    basicTests(suite);
    lockTests(suite, declared.has('lock'));
    subscribeTests(suite, declared.has('subscribe'));
    versionedTests(suite, declared.has('versioned'));
    failureTests(suite, declared);
  });
}

/** jest's (or vitest's, with `globals: true`) `describe`, `it` and `afterEach`. */
function globalRunner(): TestRunner {
  const globals = globalThis as Partial<TestRunner>;
  if (
    typeof globals.describe !== 'function' ||
    typeof globals.it !== 'function' ||
    typeof globals.afterEach !== 'function'
  ) {
    throw new Error(
      "describeTokenStore() found no test runner globals: pass the runner's functions, e.g. " +
        "import { describe, it, afterEach } from 'vitest' (or 'node:test') and give { runner: { describe, it, afterEach } }",
    );
  }
  return { describe: globals.describe, it: globals.it, afterEach: globals.afterEach };
}
