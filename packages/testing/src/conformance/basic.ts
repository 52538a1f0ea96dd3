/**
 * The conformance tests every store runs: `get`, `set` and `delete`, copies, key isolation and
 * concurrent writers.
 */
import assert from 'node:assert/strict';
import type { TokenSet, TokenStore } from '@tessera/core';
import { assertTokens, fullTokenSet } from './suite.js';
import type { Mutable, Suite } from './suite.js';

export function basicTests<S extends TokenStore>({ runner, open }: Suite<S>): void {
  const { describe, it } = runner;
  describe('get, set and delete', () => {
    it('round-trips a minimal token set', async () => {
      const { store, key } = await open();
      const k = key('minimal');
      await store.set(k, { accessToken: 'access-1', tokenType: 'Bearer' });
      assertTokens(await store.get(k), { accessToken: 'access-1', tokenType: 'Bearer' });
    });

    it('resolves undefined for a missing key', async () => {
      const { store, key } = await open();
      assert.equal(await store.get(key('missing')), undefined);
    });

    it('overwrites: the last set wins, with no fields of the previous value left over', async () => {
      const { store, key } = await open();
      const k = key('overwrite');
      await store.set(k, fullTokenSet('first'));
      await store.set(k, { accessToken: 'second', tokenType: 'DPoP' });
      assertTokens(await store.get(k), { accessToken: 'second', tokenType: 'DPoP' });
    });

    it('deletes a key, and deleting a missing key resolves', async () => {
      const { store, key } = await open();
      const k = key('delete');
      await store.set(k, fullTokenSet('to-delete'));
      await store.delete(k);
      assert.equal(await store.get(k), undefined);
      assert.equal(await store.delete(k), undefined);
      assert.equal(await store.delete(key('never-set')), undefined);
      await store.set(k, { accessToken: 'again', tokenType: 'Bearer' });
      assertTokens(await store.get(k), { accessToken: 'again', tokenType: 'Bearer' });
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
        assertTokens(await store.get(k), { accessToken: `access-${index}`, tokenType: 'Bearer' }, k);
      }
      await store.delete(base);
      assert.equal(await store.get(base), undefined);
      for (const [index, k] of keys.entries()) {
        if (index > 0)
          assertTokens(await store.get(k), { accessToken: `access-${index}`, tokenType: 'Bearer' }, k);
      }
    });

    it('round-trips every optional field, with nested data in extra', async () => {
      const { store, key } = await open();
      const k = key('full');
      await store.set(k, fullTokenSet('full'));
      assertTokens(await store.get(k), fullTokenSet('full'));
    });

    it('round-trips a large value (a 64 KiB id token)', async () => {
      const { store, key } = await open();
      const k = key('large');
      const idToken = `eyJhbGciOiJSUzI1NiJ9.${'x'.repeat(64 * 1024)}.c2lnbmF0dXJl`;
      await store.set(k, { accessToken: 'access-large', tokenType: 'Bearer', idToken });
      const stored = await store.get(k);
      assert.equal(stored?.idToken?.length, idToken.length);
      assertTokens(stored, { accessToken: 'access-large', tokenType: 'Bearer', idToken });
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
      assertTokens(await store.get(k), fullTokenSet('original'));
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
      assertTokens(await store.get(k), fullTokenSet('original'));
    });

    it('ends with one whole value after 100 concurrent sets of one key, not a mix', async () => {
      const { store, key } = await open();
      const k = key('one-key-many-writers');
      const values = Array.from({ length: 100 }, (_, index) => fullTokenSet(`writer-${index}`));
      await Promise.all(values.map((value) => store.set(k, value)));
      const stored = await store.get(k);
      const winner = values.find((value) => value.accessToken === stored?.accessToken);
      assert.ok(winner, `the stored access token ${String(stored?.accessToken)} is none of the writers'`);
      assertTokens(stored, winner);
    });

    it('lands all of 100 concurrent sets of 100 keys', async () => {
      const { store, key } = await open();
      const keys = Array.from({ length: 100 }, (_, index) => key(`many-keys-${index}`));
      await Promise.all(keys.map((k, index) => store.set(k, fullTokenSet(`key-${index}`))));
      const stored = await Promise.all(keys.map((k) => store.get(k)));
      for (const [index, tokens] of stored.entries()) assertTokens(tokens, fullTokenSet(`key-${index}`));
    });
  });
}

/** Runs a mutation that a frozen value refuses (by throwing, in strict mode). */
function attempt(mutation: () => void): void {
  try {
    mutation();
  } catch {
    // Frozen: the mutation was refused, which is what the test wants.
  }
}
