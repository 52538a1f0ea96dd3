/**
 * The conformance tests of failures: a broken store rejects with `TokenStoreError` naming the
 * operation, and never resolves as if a key were empty (a manager would then start a new grant).
 */
import type { TokenStore } from '@tessera/core';
import { fullTokenSet, rejectsWithStoreError } from './suite.js';
import type { Suite, SuiteContext, TokenStoreCapability } from './suite.js';

export function failureTests<S extends TokenStore>(
  suite: Suite<S>,
  capabilities: ReadonlySet<TokenStoreCapability>,
): void {
  const { breakStore } = suite.options;
  const openBroken = async (): Promise<SuiteContext<S>> => {
    const context = await suite.open();
    context.markBroken();
    await breakStore!(context.store);
    return context;
  };
  const test = (name: string, body: (context: SuiteContext<S>) => Promise<void>, when = true): void =>
    suite.test(breakStore !== undefined && when, name, async () => body(await openBroken()));

  suite.runner.describe('failures', () => {
    test('get rejects with TokenStoreError, never resolving as if the key were empty', async ({
      store,
      key,
    }) => {
      await rejectsWithStoreError(store.get(key('broken-get')), 'get');
    });

    test('set rejects with TokenStoreError', async ({ store, key }) => {
      await rejectsWithStoreError(store.set(key('broken-set'), fullTokenSet('broken')), 'set');
    });

    test('delete rejects with TokenStoreError', async ({ store, key }) => {
      await rejectsWithStoreError(store.delete(key('broken-delete')), 'delete');
    });

    test(
      'lock rejects with TokenStoreError',
      async ({ store, key }) => {
        await rejectsWithStoreError(
          store.lock!(key('broken-lock'), { ttlMs: suite.ttlMs, waitMs: suite.waitMs }),
          'lock',
        );
      },
      capabilities.has('lock'),
    );

    test(
      'getVersioned and setIfVersion reject with TokenStoreError, never as absent or as a conflict',
      async ({ store, key }) => {
        await rejectsWithStoreError(store.getVersioned!(key('broken-versioned')), 'get');
        await rejectsWithStoreError(
          store.setIfVersion!(key('broken-versioned'), fullTokenSet('broken'), 0),
          'set',
        );
      },
      capabilities.has('versioned'),
    );
  });
}
