/**
 * TokenVerifier: reading credentials from a request (RFC 6750 §2), the challenges (RFC 6750 §3,
 * RFC 9449 §7.1, RFC 9728 §5.1), introspection that fails (503, never cached), the cache and its
 * evictions, and secrets kept out of every error and event.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { inspect } from 'node:util';
import {
  MemoryTokenStore,
  MemoryVerificationCache,
  TokenManager,
  TokenVerifier,
  parseWwwAuthenticate,
  protectedResourceMetadataUrl,
} from '@tessera/core';
import type { TokenVerifierOptions, VerificationCache } from '@tessera/core';
import { json, raw } from '../support/fake-server.js';
import { AUDIENCE, startIssuer, refusal, verifierOf } from './issuer-fixture.js';
import type { Issuer } from './issuer-fixture.js';

const URL_ = 'https://rs.example.com/orders';
let nowMs = 1_700_000_000_000;
const nowSeconds = () => Math.floor(nowMs / 1000);

let issuer: Issuer;
beforeAll(async () => {
  issuer = await startIssuer();
});
afterAll(() => issuer.close());
beforeEach(() => {
  nowMs = 1_700_000_000_000;
  issuer.reset();
  issuer.introspect = (_request, response) =>
    json(response, 200, {
      active: true,
      scope: 'orders:read',
      sub: 'u1',
      client_id: 'c1',
      exp: nowSeconds() + 120,
    });
});

const verifier = (options: Partial<TokenVerifierOptions> = {}) => verifierOf(issuer, () => nowMs, options);

const request = (
  headers: Record<string, string | string[]>,
  extra: { url?: string; rawHeaders?: string[]; body?: unknown } = {},
) => ({
  method: 'GET',
  url: extra.url ?? URL_,
  headers,
  ...(extra.rawHeaders === undefined ? {} : { rawHeaders: extra.rawHeaders }),
  ...(extra.body === undefined ? {} : { body: extra.body }),
});

describe('credentials and challenges', () => {
  it('answers no token, or another scheme, with 401 and challenges without error (RFC 6750 §3.1)', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwYXNz' }] as Array<Record<string, string>>) {
      const error = await refusal(
        verifier({ resource: 'https://rs.example.com/' }).verifyRequest(request(headers)),
      );
      expect(error).toMatchObject({ reason: 'missing', status: 401 });
      const challenges = parseWwwAuthenticate(error.wwwAuthenticate);
      expect(challenges.map((c) => c.scheme)).toEqual(['Bearer', 'DPoP']);
      expect(challenges[0]!.parameters).toStrictEqual({
        realm: 'api',
        resource_metadata: 'https://rs.example.com/.well-known/oauth-protected-resource',
      });
      expect(challenges[1]!.parameters.algs).toContain('ES256');
      expect(challenges[1]!.parameters.error).toBeUndefined();
    }
  });

  it('answers a header plus a query token, two Authorization headers, or a query token with 400', async () => {
    const v = verifier();
    const both = await refusal(
      v.verifyRequest(request({ authorization: 'Bearer abc' }, { url: `${URL_}?access_token=abc` })),
    );
    expect(both).toMatchObject({ reason: 'request', status: 400, error: 'invalid_request' });
    const challenges = parseWwwAuthenticate(both.wwwAuthenticate);
    expect(challenges.every((c) => c.parameters.error === 'invalid_request')).toBe(true);
    const twice = request(
      { authorization: 'Bearer abc' },
      { rawHeaders: ['Authorization', 'Bearer abc', 'authorization', 'Bearer def'] },
    );
    expect((await refusal(v.verifyRequest(twice))).status).toBe(400);
    expect((await refusal(v.verifyRequest(request({}, { url: `${URL_}?access_token=abc` })))).status).toBe(
      400,
    );
    expect(issuer.server.requests).toHaveLength(0);
  });

  it('takes a query or body token only when bearerMethods allows it', async () => {
    const v = verifier({ bearerMethods: ['header', 'query', 'body'] });
    await expect(
      v.verifyRequest(request({}, { url: `${URL_}?access_token=opaque-1` })),
    ).resolves.toMatchObject({ kind: 'introspection' });
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    await expect(
      v.verifyRequest({ ...request(form, { body: { access_token: 'opaque-2' } }), method: 'POST' }),
    ).resolves.toMatchObject({ kind: 'introspection' });
    // RFC 6750 §2.2: a JSON body's member, or a GET's body, is data, not a token
    const json = { 'content-type': 'application/json', authorization: 'Bearer opaque-3' };
    await expect(
      v.verifyRequest({ ...request(json, { body: { access_token: 'data' } }), method: 'POST' }),
    ).resolves.toMatchObject({ kind: 'introspection' });
    expect((await refusal(v.verifyRequest(request(form, { body: { access_token: 'x' } })))).reason).toBe(
      'missing',
    );
  });

  it('answers a malformed Authorization header with 400', async () => {
    for (const authorization of ['Bearer a b', 'Bearer', 'DPoP  ', 'Bearer a, Bearer b']) {
      expect((await refusal(verifier().verifyRequest(request({ authorization })))).status).toBe(400);
    }
  });

  it('reads the scheme case-insensitively and needs a proof with DPoP', async () => {
    const v = verifier();
    await expect(v.verifyRequest(request({ authorization: 'bearer opaque-3' }))).resolves.toMatchObject({
      scheme: 'Bearer',
    });
    const error = await refusal(v.verifyRequest(request({ authorization: 'DPoP opaque-3' })));
    expect(error).toMatchObject({ reason: 'dpop_proof', error: 'invalid_dpop_proof' });
  });

  it('puts the error in the challenge of the scheme used, sanitised, never with token content', async () => {
    issuer.introspect = (_request, response) => json(response, 200, { active: false });
    const error = await refusal(
      verifier().verifyRequest(request({ authorization: 'Bearer secret-token-value' })),
    );
    const [bearer, dpop] = parseWwwAuthenticate(error.wwwAuthenticate);
    expect(bearer!.parameters).toMatchObject({ error: 'invalid_token' });
    expect(dpop!.parameters.error).toBeUndefined();
    expect(error.wwwAuthenticate).not.toMatch(/[\r\n\\]/);
    expect(error.wwwAuthenticate).not.toContain('secret-token-value');
  });

  it('builds the RFC 9728 well-known URL of a resource', () => {
    expect(protectedResourceMetadataUrl('https://resource.example.com')).toBe(
      'https://resource.example.com/.well-known/oauth-protected-resource',
    );
    expect(protectedResourceMetadataUrl('https://resource.example.com/resource1')).toBe(
      'https://resource.example.com/.well-known/oauth-protected-resource/resource1',
    );
    expect(protectedResourceMetadataUrl('https://mcp.example.com:8443/server/mcp')).toBe(
      'https://mcp.example.com:8443/.well-known/oauth-protected-resource/server/mcp',
    );
    expect(protectedResourceMetadataUrl('https://api.example.com/v1/')).toBe(
      'https://api.example.com/.well-known/oauth-protected-resource/v1',
    );
  });

  it('refuses a realm with a quote-breaking control character', () => {
    expect(() => verifier({ realm: 'a\r\nb' })).toThrow(/realm/);
  });
});

describe('introspection that cannot decide (503, never cached)', () => {
  it.each([
    [
      'a 502',
      (response: Parameters<Issuer['introspect']>[1]) => raw(response, 502, '<html>bad gateway</html>'),
    ],
    [
      'a 429',
      (response: Parameters<Issuer['introspect']>[1]) => raw(response, 429, '', { 'retry-after': '1' }),
    ],
    [
      'an Edlink $error body',
      (response: Parameters<Issuer['introspect']>[1]) => json(response, 401, { $error: 'Invalid client.' }),
    ],
    [
      'invalid_client',
      (response: Parameters<Issuer['introspect']>[1]) => json(response, 401, { error: 'invalid_client' }),
    ],
    [
      'broken JSON',
      (response: Parameters<Issuer['introspect']>[1]) =>
        raw(response, 200, '{"active":', { 'content-type': 'application/json' }),
    ],
  ])('answers %s with 503 unavailable, and asks again next time', async (_case, answer) => {
    issuer.introspect = (_request, response) => answer(response);
    const v = verifier();
    const error = await refusal(v.verify('opaque-down'));
    expect(error).toMatchObject({ reason: 'unavailable', status: 503, error: 'temporarily_unavailable' });
    expect(parseWwwAuthenticate(error.wwwAuthenticate)[0]!.parameters.error).toBeUndefined();
    await refusal(v.verify('opaque-down'));
    expect(issuer.introspectionRequests()).toBe(2);
  });

  it('introspects a JWT at the issuer it names, an opaque token at the first, and nothing for an unknown issuer', async () => {
    const second = await startIssuer();
    try {
      second.introspect = (_request, response) =>
        json(response, 200, { active: true, scope: 'b', exp: nowSeconds() + 60 });
      const v = new TokenVerifier({
        opaqueTokenIssuer: issuer.client,
        issuers: [issuer.client, second.client],
        accept: ['introspection'],
        now: () => nowMs,
      });
      const fromSecond = await second.sign({}, { header: { typ: 'JWT' }, nowSeconds: nowSeconds() });
      await expect(v.verify(fromSecond)).resolves.toMatchObject({ issuer: second.issuer, scopes: ['b'] });
      await expect(v.verify('opaque-routed')).resolves.toMatchObject({ issuer: issuer.issuer });
      expect([issuer.introspectionRequests(), second.introspectionRequests()]).toEqual([1, 1]);
      const stranger = await second.sign({ iss: 'https://stranger.example/' }, { nowSeconds: nowSeconds() });
      expect((await refusal(v.verify(stranger))).reason).toBe('issuer');
      expect([issuer.introspectionRequests(), second.introspectionRequests()]).toEqual([1, 1]);
    } finally {
      await second.close();
    }
  });

  it('authenticates introspection with introspectionBearer, and never hangs on it', async () => {
    await verifier({ introspectionBearer: () => 'rs-bearer-token' }).verify('opaque-bearer');
    expect(issuer.server.requestsTo('/introspect').at(-1)!.headers.authorization).toBe(
      'Bearer rs-bearer-token',
    );
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate'] });
    try {
      const hanging = verifier({ introspectionBearer: () => new Promise<string>(() => undefined) });
      const outcome = refusal(hanging.verify('opaque-hanging'));
      await jest.advanceTimersByTimeAsync(10_001);
      expect((await outcome).reason).toBe('unavailable');
    } finally {
      jest.useRealTimers();
    }
  });

  it('answers a timeout with 503', async () => {
    const slow = await startIssuer({ clientOptions: { timeoutMs: 100, retry: { retries: 0 } } });
    try {
      slow.introspect = () => undefined; // never answers
      const v = new TokenVerifier({ client: slow.client, accept: ['introspection'] });
      expect((await refusal(v.verify('opaque-slow'))).reason).toBe('unavailable');
    } finally {
      await slow.close();
    }
  });

  it('caches an inactive answer for negativeTtlSeconds only', async () => {
    issuer.introspect = (_request, response) => json(response, 200, { active: false });
    const v = verifier({ cache: { negativeTtlSeconds: 10 } });
    expect((await refusal(v.verify('opaque-inactive'))).reason).toBe('inactive');
    expect((await refusal(v.verify('opaque-inactive'))).reason).toBe('inactive');
    expect(issuer.introspectionRequests()).toBe(1);
    nowMs += 10_001;
    await refusal(v.verify('opaque-inactive'));
    expect(issuer.introspectionRequests()).toBe(2);
  });

  it('caches an active answer for min(maxTtlSeconds, exp - now)', async () => {
    const v = verifier({ cache: { maxTtlSeconds: 60 } });
    await v.verify('opaque-active');
    nowMs += 59_000;
    await v.verify('opaque-active');
    expect(issuer.introspectionRequests()).toBe(1);
    nowMs += 2_000;
    await v.verify('opaque-active');
    expect(issuer.introspectionRequests()).toBe(2);
  });

  it('refuses an introspected token for another audience or issuer', async () => {
    issuer.introspect = (_request, response) =>
      json(response, 200, { active: true, aud: 'https://other.example', exp: nowSeconds() + 60 });
    expect((await refusal(verifier().verify('opaque-aud'))).reason).toBe('audience');
    issuer.introspect = (_request, response) =>
      json(response, 200, { active: true, iss: 'https://other.example/', exp: nowSeconds() + 60 });
    expect((await refusal(verifier().verify('opaque-iss'))).reason).toBe('issuer');
  });
});

describe('cache and evictions', () => {
  it('keys the cache by SHA-256 of the token, never the token', async () => {
    const seen: string[] = [];
    const inner = new MemoryVerificationCache();
    const cache: VerificationCache = {
      get: (hash) => (seen.push(hash), inner.get(hash)),
      set: (hash, entry, ttl) => (seen.push(hash), inner.set(hash, entry, ttl)),
      delete: (hash) => inner.delete(hash),
      revokeSubject: (s, at, ttl) => inner.revokeSubject(s, at, ttl),
      subjectRevokedAt: (s) => inner.subjectRevokedAt(s),
      markUsed: (k, ttl) => inner.markUsed(k, ttl),
    };
    await verifier({ cache }).verify('opaque-hashed');
    expect(seen.length).toBeGreaterThan(0);
    expect(
      seen.every((hash) => /^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/.test(hash) && !hash.includes('opaque')),
    ).toBe(true);
  });

  it('answers 503 when the cache fails or hangs, and not for a cache that cannot store', async () => {
    const failing = new MemoryVerificationCache();
    (failing as VerificationCache).get = () => Promise.reject(new Error('connection lost'));
    expect((await refusal(verifier({ cache: failing }).verify('opaque-x'))).reason).toBe('unavailable');
    const hanging = new MemoryVerificationCache();
    (hanging as VerificationCache).get = () => new Promise(() => undefined);
    expect(
      (await refusal(verifier({ cache: { store: hanging, timeoutMs: 20 } }).verify('opaque-x'))).reason,
    ).toBe('unavailable');
    const readOnly = new MemoryVerificationCache();
    readOnly.set = () => Promise.reject(new Error('read only'));
    await expect(verifier({ cache: readOnly }).verify('opaque-x')).resolves.toMatchObject({
      kind: 'introspection',
    });
  });

  it('refuses an evicted JWT until it expires, although its signature is good', async () => {
    const v = verifier();
    const token = await issuer.sign({}, { nowSeconds: nowSeconds() });
    await v.verify(token);
    const evicted: unknown[] = [];
    v.on('cache.evicted', (event) => evicted.push(event));
    await v.evict(token);
    expect((await refusal(v.verify(token))).reason).toBe('inactive');
    expect(evicted).toEqual([{ by: 'token', origin: 'local' }]);
  });

  it('with cache: false decides every time, and still refuses an evicted token', async () => {
    const v = verifier({ cache: false });
    const token = await issuer.sign({}, { nowSeconds: nowSeconds() });
    const cached: boolean[] = [];
    v.on('token.verified', (event) => cached.push(event.cached));
    await v.verify(token);
    await v.verify(token);
    expect(cached).toEqual([false, false]);
    await v.evict(token);
    expect((await refusal(v.verify(token))).reason).toBe('inactive');
  });

  it("refuses a subject's tokens issued before evictSubject, and accepts its newer ones", async () => {
    const v = verifier();
    const older = await issuer.sign({ sub: 'mallory' }, { nowSeconds: nowSeconds() });
    const other = await issuer.sign({ sub: 'alice' }, { nowSeconds: nowSeconds() });
    await v.verify(older);
    await v.evictSubject('mallory');
    expect((await refusal(v.verify(older))).reason).toBe('inactive');
    await expect(v.verify(other)).resolves.toMatchObject({ subject: 'alice' });
    // An issuer whose clock runs ahead within the tolerance: still refused.
    const ahead = await issuer.sign({ sub: 'mallory' }, { nowSeconds: nowSeconds() + 25 });
    expect((await refusal(v.verify(ahead))).reason).toBe('inactive');
    nowMs += 31_000; // past the tolerance: a token issued now is a new one
    const newer = await issuer.sign({ sub: 'mallory' }, { nowSeconds: nowSeconds() });
    await expect(v.verify(newer)).resolves.toMatchObject({ subject: 'mallory' });
  });

  it('does not cache a decision that was in flight when the token was evicted', async () => {
    let answer: (() => void) | undefined;
    issuer.introspect = (_request, response) => {
      answer = () => json(response, 200, { active: true, exp: nowSeconds() + 60 });
    };
    const v = verifier();
    const pending = v.verify('opaque-racing');
    while (answer === undefined) await new Promise((resolve) => setImmediate(resolve));
    await v.evict('opaque-racing');
    answer();
    await pending;
    issuer.introspect = (_request, response) => json(response, 200, { active: false });
    expect((await refusal(v.verify('opaque-racing'))).reason).toBe('inactive');
  });

  it('forgets the tokens a TokenManager of the same process revokes', async () => {
    const manager = new TokenManager({ client: issuer.client, store: new MemoryTokenStore(), key: 'k' });
    issuer.server.on('/revoke', (_request, response) => raw(response, 200, ''));
    const token = await issuer.sign({}, { nowSeconds: Math.floor(Date.now() / 1000) });
    await manager.storeTokens({ access_token: token, token_type: 'Bearer', expires_in: 300 });
    const v = new TokenVerifier({ client: issuer.client, audience: AUDIENCE, tokenManager: manager });
    await v.verify(token);
    const evicted = new Promise((resolve) => v.once('cache.evicted', resolve));
    await manager.revokeTokens();
    await expect(evicted).resolves.toEqual({ by: 'token', origin: 'token-manager' });
    expect((await refusal(v.verify(token))).reason).toBe('inactive');
    await v.close();
    await manager.close();
  });
});

describe('secrets', () => {
  it('keeps the token out of errors, their JSON and inspect output, and events', async () => {
    const token = 'opaque-SECRET-1234567890';
    issuer.introspect = (_request, response) => json(response, 502, { error_description: `bad ${token}` });
    const v = verifier();
    const events: unknown[] = [];
    v.on('token.rejected', (event) => events.push(event));
    const error = await refusal(v.verify(token));
    for (const text of [
      error.message,
      JSON.stringify(error),
      inspect(error, { depth: 5 }),
      error.wwwAuthenticate,
      inspect(events, { depth: 5 }),
    ]) {
      expect(text).not.toContain('SECRET');
    }
  });
});
