/**
 * MemoryVerificationCache: a bounded LRU of results with a subject index, revoked subjects, and a
 * replay cache of DPoP proofs that refuses rather than forgets when full.
 */
import { describe, expect, it } from '@jest/globals';
import { ConfigurationError, MemoryVerificationCache, TokenStoreError, TokenVerifier } from '@tessera/core';
import type { CachedVerification } from '@tessera/core';
import { AUDIENCE } from './issuer-fixture.js';

const active = (subject?: string): CachedVerification => ({
  status: 'active',
  token: {
    kind: 'jwt',
    issuer: 'https://as.example/',
    claims: {},
    scopes: [],
    ...(subject === undefined ? {} : { subject }),
  },
});

describe('MemoryVerificationCache', () => {
  it('expires entries by the clock and forgets the least recently used first', () => {
    let nowMs = 0;
    const cache = new MemoryVerificationCache({ maxEntries: 2, now: () => nowMs });
    cache.set('a', active(), 10);
    cache.set('b', active(), 10);
    expect(cache.get('a')).toBeDefined(); // a is now the most recently used
    cache.set('c', active(), 10);
    expect(cache.get('b')).toBeUndefined();
    expect(cache.get('a')).toBeDefined();
    nowMs = 10_000;
    expect(cache.get('a')).toBeUndefined();
    cache.set('z', active(), 0);
    expect(cache.get('z')).toBeUndefined();
  });

  it("drops a subject's entries and remembers when it was revoked", () => {
    const cache = new MemoryVerificationCache();
    cache.set('a', active('alice'), 60);
    cache.set('b', active('bob'), 60);
    cache.revokeSubject('alice', 1234, 60);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBeDefined();
    expect(cache.subjectRevokedAt('alice')).toBe(1234);
    expect(cache.subjectRevokedAt('bob')).toBeUndefined();
  });

  it('refuses a revocation it cannot remember, instead of forgetting a live one', () => {
    const cache = new MemoryVerificationCache({ maxEntries: 1 });
    cache.revokeSubject('alice', 1, 60);
    expect(() => cache.revokeSubject('bob', 1, 60)).toThrow(TokenStoreError);
    expect(cache.subjectRevokedAt('alice')).toBe(1);
    cache.revokeSubject('alice', 2, 60); // renewing a remembered one is fine
    expect(cache.subjectRevokedAt('alice')).toBe(2);
  });

  it('records each proof once, and refuses when full of proofs still in their window', () => {
    let nowMs = 0;
    const cache = new MemoryVerificationCache({ maxProofs: 2, now: () => nowMs });
    expect(cache.markUsed('p1', 10)).toBe(true);
    expect(cache.markUsed('p1', 10)).toBe(false);
    expect(cache.markUsed('p2', 10)).toBe(true);
    expect(() => cache.markUsed('p3', 10)).toThrow(TokenStoreError);
    nowMs = 10_000; // both expired: room again
    expect(cache.markUsed('p3', 10)).toBe(true);
  });

  it('checks its options', () => {
    expect(() => new MemoryVerificationCache({ maxEntries: 0 })).toThrow(ConfigurationError);
    expect(() => new MemoryVerificationCache({ maxProofs: 1.5 })).toThrow(/maxProofs/);
  });

  it('is taken by a verifier as a cache, whatever other properties it has', async () => {
    const { Client } = await import('@tessera/core');
    const client = new Client(
      { issuer: 'https://as.example/', jwks_uri: 'https://as.example/jwks' },
      { client_id: 'x', token_endpoint_auth_method: 'none' },
    );
    const cache = Object.assign(new MemoryVerificationCache(), { maxEntries: 'not a number' });
    expect(() => new TokenVerifier({ client, audience: AUDIENCE, cache })).not.toThrow();
    // a partial cache is a ConfigurationError naming what it lacks, not a TypeError later
    const partial = { get: () => undefined } as never;
    expect(() => new TokenVerifier({ client, audience: AUDIENCE, cache: partial })).toThrow(/missing set/);
    expect(() => new TokenVerifier({ client, audience: AUDIENCE, cache: { store: partial } })).toThrow(
      ConfigurationError,
    );
  });
});
