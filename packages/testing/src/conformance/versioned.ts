/**
 * The conformance tests of `getVersioned` / `setIfVersion`, compare-and-set writes: what keeps a
 * process holding a stale view from overwriting a newer (rotated) token set.
 */
import assert from 'node:assert/strict';
import type { TokenStore } from '@tessera/core';
import { assertTokens, fullTokenSet } from './suite.js';
import type { Suite, SuiteContext, VersionedStore } from './suite.js';

export function versionedTests<S extends TokenStore>(suite: Suite<S>, enabled: boolean): void {
  const test = (name: string, body: (context: SuiteContext<S> & Versioned) => Promise<void>): void =>
    suite.test(enabled, name, async () => body(versioned(await suite.open())));

  suite.runner.describe('compare-and-set (getVersioned, setIfVersion)', () => {
    test('reads a missing key as undefined, and writes it only at version 0', async ({ store, key }) => {
      const k = key('absent');
      assert.equal(await store.getVersioned(k), undefined);
      assert.equal(await store.setIfVersion(k, fullTokenSet('first'), 0), true);
      const stored = await store.getVersioned(k);
      assert.ok(stored, 'getVersioned is undefined after a successful setIfVersion at version 0');
      assertTokens(stored.tokens, fullTokenSet('first'));
      assert.ok(
        Number.isFinite(stored.version) && stored.version !== 0,
        `version ${stored.version} is not a non-zero number`,
      );
      assert.equal(
        await store.setIfVersion(k, fullTokenSet('second'), 0),
        false,
        'version 0 wrote over a present key',
      );
      assertTokens(await store.get(k), fullTokenSet('first'));
    });

    test('writes at the current version, and refuses the version it replaced', async ({ store, key }) => {
      const k = key('stale');
      await store.set(k, fullTokenSet('first'));
      const first = await store.getVersioned(k);
      assert.ok(first, 'getVersioned does not see a value written with set');
      assertTokens(first.tokens, fullTokenSet('first'));
      assert.equal(await store.setIfVersion(k, fullTokenSet('second'), first.version), true);
      const second = await store.getVersioned(k);
      assert.ok(second);
      assert.notEqual(second.version, first.version, 'a write left the version as it was');
      assertTokens(second.tokens, fullTokenSet('second'));
      assert.equal(await store.setIfVersion(k, fullTokenSet('stale'), first.version), false);
      assertTokens(await store.get(k), fullTokenSet('second'));
    });

    test('a plain set and a delete change the version too', async ({ store, key }) => {
      const k = key('plain-writes');
      await store.set(k, fullTokenSet('first'));
      const before = await store.getVersioned(k);
      assert.ok(before);
      await store.set(k, fullTokenSet('overwritten'));
      assert.equal(
        await store.setIfVersion(k, fullTokenSet('stale'), before.version),
        false,
        'set kept the version',
      );
      const current = await store.getVersioned(k);
      assert.ok(current);
      await store.delete(k);
      assert.equal(await store.getVersioned(k), undefined);
      assert.equal(
        await store.setIfVersion(k, fullTokenSet('stale'), current.version),
        false,
        'delete kept the version',
      );
      assert.equal(await store.get(k), undefined);
      assert.equal(await store.setIfVersion(k, fullTokenSet('again'), 0), true);
      assertTokens(await store.get(k), fullTokenSet('again'));
    });

    test('lets exactly one of 20 concurrent writers at one version win, across handles', async ({
      store,
      peer,
      key,
    }) => {
      const k = key('race');
      await store.set(k, fullTokenSet('start'));
      const start = await peer.getVersioned(k);
      assert.ok(start, 'the peer does not see the value through getVersioned');
      const writers = Array.from({ length: 20 }, (_, index) => fullTokenSet(`writer-${index}`));
      const results = await Promise.all(
        writers.map((tokens, index) =>
          (index % 2 === 0 ? store : peer).setIfVersion(k, tokens, start.version),
        ),
      );
      assert.equal(results.filter(Boolean).length, 1, `${results.filter(Boolean).length} of 20 writers won`);
      const winner = writers[results.indexOf(true)];
      assertTokens(await store.get(k), winner);
      assertTokens((await peer.getVersioned(k))?.tokens, winner);
    });

    test('stores a copy and hands back the same data as get', async ({ store, key }) => {
      const k = key('copy');
      const tokens = structuredClone(fullTokenSet('original'));
      assert.equal(await store.setIfVersion(k, tokens, 0), true);
      (tokens as { accessToken: string }).accessToken = 'changed';
      assertTokens((await store.getVersioned(k))?.tokens, fullTokenSet('original'));
      assertTokens(await store.get(k), fullTokenSet('original'));
    });
  });
}

interface Versioned {
  readonly store: VersionedStore;
  readonly peer: VersionedStore;
}

/** The context with both handles checked to have compare-and-set (the capability was declared). */
function versioned<S extends TokenStore>(context: SuiteContext<S>): SuiteContext<S> & Versioned {
  for (const handle of [context.store, context.peer]) {
    for (const method of ['getVersioned', 'setIfVersion'] as const) {
      assert.equal(
        typeof handle[method],
        'function',
        `the 'versioned' capability is declared but the store has no ${method}()`,
      );
    }
  }
  return context as SuiteContext<S> & Versioned;
}
