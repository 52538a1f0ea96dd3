/**
 * Regressions found by review: each test failed before its fix.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import {
  Client,
  MemoryVerificationCache,
  TokenVerifier,
  parseWwwAuthenticate,
  requireToken,
} from '@tessera/core';
import type { CachedVerification, VerificationCache } from '@tessera/core';
import { raw } from '../support/fake-server.js';
import { AUDIENCE, dpopKey, refusal, signingKey, startIssuer, verifierOf } from './issuer-fixture.js';
import type { Issuer } from './issuer-fixture.js';

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
});
const verifier = (options: Parameters<typeof verifierOf>[2] = {}) => verifierOf(issuer, () => nowMs, options);
const sign = (claims: Record<string, unknown> = {}) => issuer.sign(claims, { nowSeconds: nowSeconds() });

describe('evictions hold', () => {
  it('an evicted JWT stays refused however much traffic fills the cache after it', async () => {
    const v = verifier({ cache: { maxEntries: 5 } });
    const token = await sign();
    await v.verify(token);
    await v.evict(token);
    for (let i = 0; i < 20; i++) await refusal(v.verify(`junk-${i}`)); // inactive answers, cached
    expect((await refusal(v.verify(token))).reason).toBe('inactive');
  });

  it('a decision that read the cache before an eviction does not overwrite its tombstone', async () => {
    const inner = new MemoryVerificationCache({ now: () => nowMs });
    let release: (() => void) | undefined;
    const slow: VerificationCache = {
      get: (hash) =>
        new Promise<CachedVerification | undefined>((resolve) => {
          const found = inner.get(hash);
          release = () => resolve(found);
        }),
      set: (hash, entry, ttl) => inner.set(hash, entry, ttl),
      delete: (hash) => inner.delete(hash),
      revokeSubject: (s, at, ttl) => inner.revokeSubject(s, at, ttl),
      subjectRevokedAt: (s) => inner.subjectRevokedAt(s),
      markUsed: (k, ttl) => inner.markUsed(k, ttl),
    };
    const v = verifier({ cache: slow });
    const token = await sign();
    const pending = v.verify(token); // reads the cache: nothing yet
    await v.evict(token);
    release!();
    await pending.catch(() => undefined);
    const again = v.verify(token);
    release!();
    expect((await refusal(again)).reason).toBe('inactive');
  });
});

describe('a cache shared by verifiers with other settings', () => {
  it("never hands one verifier's results to another", async () => {
    const shared = new MemoryVerificationCache();
    const token = await sign({ aud: 'https://api-a.example' });
    const a = verifier({ audience: 'https://api-a.example', cache: shared });
    await a.verify(token);
    const introspectionOnly = verifier({ audience: undefined, accept: ['introspection'], cache: shared });
    expect((await refusal(introspectionOnly.verify(token))).reason).toBe('inactive'); // asked the AS itself
    const es256Only = verifier({ audience: 'https://api-a.example', algorithms: ['ES256'], cache: shared });
    expect((await refusal(es256Only.verify(token))).reason).toBe('signature');
  });
});

describe('what answers say', () => {
  it('never echoes token content (kid, alg) in the challenge', async () => {
    const stranger = await signingKey('RS256', 'INJECTED<script>kid');
    const token = await issuer.sign({}, { key: stranger, nowSeconds: nowSeconds() });
    nowMs += 31_000;
    const error = await refusal(verifier().verify(token));
    expect(error.reason).toBe('unknown_kid');
    expect(error.wwwAuthenticate).not.toContain('INJECTED');
    expect(error.message).not.toContain('INJECTED');
  });

  it('answers 503 with a Retry-After when introspection fails, and when the cache throws synchronously', async () => {
    issuer.introspect = (_request, response) => raw(response, 502, '');
    const error = await refusal(verifier().verify('opaque-502'));
    expect(error).toMatchObject({ reason: 'unavailable', status: 503 });
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    const throwing = new MemoryVerificationCache();
    (throwing as VerificationCache).get = () => {
      throw new Error('broken');
    };
    expect(await refusal(verifier({ cache: throwing }).verify('opaque-x'))).toMatchObject({
      reason: 'unavailable',
      status: 503,
    });
  });

  it('with dpop.required, puts a Bearer attempt’s error in the DPoP challenge', async () => {
    const error = await refusal(
      verifier({ dpop: { required: true } }).verify(await sign({ exp: nowSeconds() - 100 })),
    );
    const [dpop] = parseWwwAuthenticate(error.wwwAuthenticate);
    expect(dpop!.scheme).toBe('DPoP');
    expect(dpop!.parameters.error).toBe('invalid_token');
  });

  it('answers a replay store that is down with 503 (fail closed)', async () => {
    const key = await dpopKey();
    const token = await sign({ cnf: { jkt: key.jkt } });
    const url = 'https://rs.example.com/x';
    const dpopProof = await key.proof(token, url, nowSeconds());
    const cache = new MemoryVerificationCache();
    (cache as VerificationCache).markUsed = () => Promise.reject(new Error('redis down'));
    const error = await refusal(verifier({ cache }).verify(token, { method: 'GET', url, dpopProof }));
    expect(error).toMatchObject({ reason: 'unavailable', status: 503 });
  });
});

describe('several issuers', () => {
  it('sends an opaque token to no issuer unless opaqueTokenIssuer names one', async () => {
    const second = await startIssuer();
    try {
      const v = new TokenVerifier({ issuers: [issuer.client, second.client], accept: ['introspection'] });
      expect((await refusal(v.verify('opaque-of-someone'))).reason).toBe('malformed');
      expect(issuer.introspectionRequests() + second.introspectionRequests()).toBe(0);
    } finally {
      await second.close();
    }
  });

  it('keeps one key set per issuer however many Client objects a resolver hands out', async () => {
    const metadata = issuer.client.serverMetadata();
    const v = new TokenVerifier({
      issuers: (iss) =>
        iss === issuer.issuer
          ? new Client(metadata, {
              client_id: 'rs',
              client_secret: 'x',
              token_endpoint_auth_method: 'client_secret_basic',
            })
          : undefined,
      audience: AUDIENCE,
      cache: false,
      now: () => nowMs,
    });
    for (let i = 0; i < 5; i++) await v.verify(await sign());
    expect(issuer.jwksRequests()).toBe(1);
  });
});

describe('the URL of a DPoP proof, from Host', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    const app = express();
    const v = new TokenVerifier({
      client: issuer.client,
      audience: AUDIENCE,
      resource: 'https://rs.example.com',
    });
    app.get('/x', requireToken(v), (_req, res) => res.end('ok'));
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('is refused for a Host that is not the resource’s (a proof for another resource, replayed here)', async () => {
    const key = await dpopKey();
    const token = await issuer.sign({ aud: [AUDIENCE, 'https://other-rs.example'], cnf: { jkt: key.jkt } });
    const proofFor = (htu: string) => key.proof(token, htu);
    const { request } = await import('node:http');
    const send = (host: string, proof: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          `${base}/x`,
          { headers: { host, authorization: `DPoP ${token}`, dpop: proof } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    expect(await send('other-rs.example', await proofFor('http://other-rs.example/x'))).toBe(401);
    expect(await send('rs.example.com', await proofFor('http://rs.example.com/x'))).toBe(200);
  });

  it('needs baseUrl, allowedHosts or a resource when DPoP is on', () => {
    const v = new TokenVerifier({ client: issuer.client, audience: AUDIENCE });
    expect(() => requireToken(v)).toThrow(/baseUrl or allowedHosts/);
    expect(() =>
      requireToken(new TokenVerifier({ client: issuer.client, audience: AUDIENCE, dpop: false })),
    ).not.toThrow();
  });
});
