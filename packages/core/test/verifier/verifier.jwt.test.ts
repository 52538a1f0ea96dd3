/**
 * TokenVerifier and RFC 9068 JWT access tokens: the header and claim checks (§2, §4, RFC 8725),
 * the issuer's key set (rotation, cooldown, stale-if-error, penalty), and several issuers.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { SignJWT } from 'jose';
import { TokenVerifier } from '@tessera/core';
import type { TokenVerifierOptions } from '@tessera/core';
import { json, raw } from '../support/fake-server.js';
import { AUDIENCE, signingKey, startIssuer, unsignedJwt, refusal, verifierOf } from './issuer-fixture.js';
import type { Issuer } from './issuer-fixture.js';

const START_MS = 1_700_000_000_000;
let nowMs = START_MS;
const nowSeconds = () => Math.floor(nowMs / 1000);

let issuer: Issuer;
beforeAll(async () => {
  issuer = await startIssuer();
});
afterAll(() => issuer.close());
beforeEach(() => {
  nowMs = START_MS;
  issuer.reset();
});

const verifier = (options: Partial<TokenVerifierOptions> = {}) => verifierOf(issuer, () => nowMs, options);

const sign = (claims: Record<string, unknown> = {}, options: Parameters<Issuer['sign']>[1] = {}) =>
  issuer.sign(claims, { nowSeconds: nowSeconds(), ...options });

describe('header (RFC 9068 §2.1, §4; RFC 8725 §3.1)', () => {
  it('accepts the RFC 9068 §3 example shape, with typ at+JWT in any case and as application/at+jwt', async () => {
    for (const typ of ['at+JWT', 'at+jwt', 'application/at+jwt', 'Application/AT+JWT']) {
      const token = await sign({}, { header: { typ } });
      await expect(verifier({ cache: false }).verify(token)).resolves.toMatchObject({
        kind: 'jwt',
        subject: '5ba552d67',
        clientId: 's6BhdRkqt3',
        scopes: ['openid', 'profile', 'reademail'],
      });
    }
  });

  it.each(['JWT', 'jwt', 'dpop+jwt', undefined])(
    'refuses typ %s (an ID Token is not an access token)',
    async (typ) => {
      const token = await sign({}, { header: { typ } });
      expect(await refusal(verifier().verify(token))).toMatchObject({
        reason: 'malformed',
        status: 401,
        error: 'invalid_token',
      });
    },
  );

  it('refuses alg none without fetching keys', async () => {
    const header = { typ: 'at+jwt', alg: 'none', kid: issuer.keys[0]!.kid };
    const token = unsignedJwt(header, { iss: issuer.issuer, aud: AUDIENCE, exp: nowSeconds() + 60 });
    expect((await refusal(verifier().verify(token))).reason).toBe('signature');
    expect(issuer.jwksRequests()).toBe(0);
  });

  it('refuses HS256 signed with the public key bytes (RFC 8725 §2.1)', async () => {
    const key = issuer.keys[0]!;
    const secret = new TextEncoder().encode(JSON.stringify(key.publicJwk));
    const token = await new SignJWT({
      iss: issuer.issuer,
      sub: 's',
      aud: AUDIENCE,
      exp: nowSeconds() + 60,
      iat: nowSeconds(),
      jti: 'j',
      client_id: 'c',
    })
      .setProtectedHeader({ typ: 'at+jwt', alg: 'HS256', kid: key.kid })
      .sign(secret);
    expect((await refusal(verifier().verify(token))).reason).toBe('signature');
  });

  it('refuses an ES256 token whose kid names the RSA key, and an alg outside the allow-list', async () => {
    const ec = await signingKey('ES256', issuer.keys[0]!.kid);
    const token = await sign({}, { key: ec });
    expect((await refusal(verifier().verify(token))).reason).toMatch(/signature|unknown_kid/);
    const rsa = await sign();
    expect((await refusal(verifier({ algorithms: ['ES256'] }).verify(rsa))).reason).toBe('signature');
  });

  it('refuses an algorithms option with a MAC or none', () => {
    expect(() => verifier({ algorithms: ['HS256'] })).toThrow(/algorithms/);
    expect(() => verifier({ algorithms: ['none'] })).toThrow(/algorithms/);
  });

  it('ignores jku: no request to the host it names', async () => {
    const token = await sign({}, { header: { jku: 'http://127.0.0.1:1/attacker-jwks' } });
    await expect(verifier().verify(token)).resolves.toMatchObject({ kind: 'jwt' });
    expect(issuer.server.requests.map((r) => r.path)).toEqual(['/jwks']);
  });
});

describe('claims (RFC 9068 §2.2, §4)', () => {
  it('refuses an iss differing only by a trailing slash, and an unknown iss with no network request', async () => {
    const slashless = await sign({ iss: issuer.issuer.replace(/\/$/, '') });
    expect((await refusal(verifier().verify(slashless))).reason).toBe('issuer');
    const unknown = await sign({ iss: 'https://elsewhere.example/' });
    expect((await refusal(verifier().verify(unknown))).reason).toBe('issuer');
    expect(issuer.server.requests).toHaveLength(0);
  });

  it.each([
    ['a string match', AUDIENCE, true],
    ['an array containing it', ['https://x.example', AUDIENCE], true],
    ['an array without it', ['https://x.example'], false],
    ['the same URL without its trailing slash', 'https://rs.example.com', false],
  ])('aud as %s', async (_case, aud, ok) => {
    const token = await sign({ aud });
    const outcome = verifier().verify(token);
    if (ok) await expect(outcome).resolves.toMatchObject({ kind: 'jwt' });
    else expect((await refusal(outcome)).reason).toBe('audience');
  });

  it.each(['sub', 'client_id', 'iat', 'jti', 'exp'])('refuses a token without %s', async (claim) => {
    const token = await sign({}, { omit: [claim] });
    expect((await refusal(verifier().verify(token))).reason).toBe('malformed');
  });

  it('refuses an empty jti', async () => {
    expect((await refusal(verifier().verify(await sign({ jti: '' })))).reason).toBe('malformed');
  });

  it.each([
    ['exp - 1 s', -1, true],
    ['exp + tolerance - 1 s', 29, true],
    ['exp + tolerance + 1 s', 31, false],
  ])('with the clock at %s', async (_case, offset, ok) => {
    const exp = nowSeconds() + 100;
    const token = await sign({ exp });
    nowMs = (exp + offset) * 1000;
    const outcome = verifier().verify(token);
    if (ok) await expect(outcome).resolves.toMatchObject({ expiresAt: exp });
    else expect((await refusal(outcome)).reason).toBe('expired');
  });

  it('refuses an nbf beyond the tolerance and an iat 10 minutes ahead', async () => {
    expect(await refusal(verifier().verify(await sign({ nbf: nowSeconds() + 31 })))).toMatchObject({
      reason: 'expired',
    });
    expect(await refusal(verifier().verify(await sign({ iat: nowSeconds() + 600 })))).toMatchObject({
      reason: 'expired',
    });
  });

  it('never lets the tolerance extend a cached result: it is cached until exp, and expiresAt is exp', async () => {
    const exp = nowSeconds() + 100;
    const token = await sign({ exp });
    const v = verifier();
    const cached: boolean[] = [];
    v.on('token.verified', (event) => cached.push(event.cached));
    await expect(v.verify(token)).resolves.toMatchObject({ expiresAt: exp });
    nowMs = exp * 1000 - 1000;
    await v.verify(token);
    nowMs = exp * 1000 + 1;
    await expect(v.verify(token)).resolves.toMatchObject({ expiresAt: exp }); // checked afresh
    nowMs = (exp + 31) * 1000;
    expect((await refusal(v.verify(token))).reason).toBe('expired');
    expect(cached).toEqual([false, true, false]);
  });

  it('splits scope on spaces, and refuses a missing required scope with 403 and the scope', async () => {
    const token = await sign({ scope: 'a b  c' });
    await expect(verifier().verify(token)).resolves.toMatchObject({ scopes: ['a', 'b', 'c'] });
    const error = await refusal(verifier({ requiredScopes: ['d'] }).verify(token));
    expect(error).toMatchObject({ reason: 'scope', status: 403, error: 'insufficient_scope' });
    expect(error.wwwAuthenticate).toMatch(/error="insufficient_scope"/);
    expect(error.wwwAuthenticate).toMatch(/scope="d"/);
  });

  it('refuses the RFC 9449 Figure 9 claims (no typ, aud, client_id, iat, jti), re-signed', async () => {
    const token = await new SignJWT({
      sub: 'someone@example.com',
      iss: issuer.issuer,
      nbf: nowSeconds() - 10,
      exp: nowSeconds() + 60,
      cnf: { jkt: '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I' },
    })
      .setProtectedHeader({ alg: 'RS256', kid: issuer.keys[0]!.kid })
      .sign(issuer.keys[0]!.privateKey);
    expect((await refusal(verifier().verify(token))).reason).toBe('malformed');
  });

  it('hands back frozen results', async () => {
    const result = await verifier().verify(await sign());
    expect(Object.isFrozen(result)).toBe(true);
    expect(Object.isFrozen(result.claims)).toBe(true);
    expect(Object.isFrozen(result.scopes)).toBe(true);
  });
});

describe('routing by kind', () => {
  it('introspects the RFC 6749 opaque example, which has dots, instead of parsing it', async () => {
    issuer.introspect = (_request, response) =>
      json(response, 200, { active: true, scope: 'x', exp: nowSeconds() + 60 });
    const result = await verifier().verify('Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU');
    expect(result).toMatchObject({ kind: 'introspection', scopes: ['x'] });
    expect(issuer.introspectionRequests()).toBe(1);
  });

  it("refuses a JWE when only JWTs are accepted, and an opaque token with accept: ['jwt']", async () => {
    const jwe = 'eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..abc.def.ghi';
    expect((await refusal(verifier({ accept: ['jwt'] }).verify(jwe))).reason).toBe('malformed');
    expect((await refusal(verifier({ accept: ['jwt'] }).verify('opaque-token'))).reason).toBe('malformed');
    expect(issuer.server.requests).toHaveLength(0);
  });

  it('requires an audience to accept JWTs', () => {
    expect(() => new TokenVerifier({ client: issuer.client })).toThrow(/audience/);
    expect(() => new TokenVerifier({ client: issuer.client, accept: ['introspection'] })).not.toThrow();
  });
});

describe("the issuer's key set", () => {
  let rotated: Awaited<ReturnType<typeof signingKey>>;
  beforeAll(async () => {
    rotated = await signingKey();
  });
  afterEach(() => {
    issuer.keys = issuer.keys.slice(0, 1);
  });

  it('fetches once for an unknown kid, then not again within the cooldown, then once after it', async () => {
    const v = verifier();
    await v.verify(await sign());
    expect(issuer.jwksRequests()).toBe(1);
    nowMs += 31_000;
    const unknown = await sign({}, { key: rotated }); // not published
    expect((await refusal(v.verify(unknown))).reason).toBe('unknown_kid');
    expect(issuer.jwksRequests()).toBe(2);
    expect((await refusal(v.verify(await sign({}, { key: rotated })))).reason).toBe('unknown_kid');
    expect(issuer.jwksRequests()).toBe(2);
    issuer.keys = [...issuer.keys, rotated]; // the rotation is published
    nowMs += 31_000;
    await expect(v.verify(await sign({}, { key: rotated }))).resolves.toMatchObject({ kind: 'jwt' });
    expect(issuer.jwksRequests()).toBe(3);
  });

  it('makes one JWKS request for 100 concurrent tokens with a new kid', async () => {
    const v = verifier();
    await v.verify(await sign());
    issuer.keys = [...issuer.keys, rotated];
    nowMs += 31_000;
    const tokens = await Promise.all(Array.from({ length: 100 }, () => sign({}, { key: rotated })));
    await Promise.all(tokens.map((token) => v.verify(token)));
    expect(issuer.jwksRequests()).toBe(2);
  });

  it('keeps verifying with the last known good keys while the JWKS is down, then answers 503', async () => {
    const v = verifier();
    await v.verify(await sign());
    issuer.jwks = (_request, response) => raw(response, 502, 'bad gateway');
    nowMs += 11 * 60_000; // past freshness: refreshed in the background, and that fails
    await expect(v.verify(await sign({}, { nowSeconds: nowSeconds() }))).resolves.toMatchObject({
      kind: 'jwt',
    });
    nowMs += 61 * 60_000; // past the last-known-good bound
    const error = await refusal(v.verify(await sign({}, { nowSeconds: nowSeconds() })));
    expect(error).toMatchObject({ reason: 'unavailable', status: 503, error: 'temporarily_unavailable' });
    expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(error.wwwAuthenticate).not.toMatch(/error=/);
  });

  it('answers 503 for an unknown kid while the JWKS is down, then fetches nothing during the penalty', async () => {
    const v = verifier();
    await v.verify(await sign());
    issuer.jwks = (_request, response) => raw(response, 503, '');
    nowMs += 31_000;
    const before = issuer.jwksRequests();
    expect((await refusal(v.verify(await sign({}, { key: rotated })))).reason).toBe('unavailable');
    expect(issuer.jwksRequests()).toBe(before + 1);
    nowMs += 5_000;
    expect((await refusal(v.verify(await sign({}, { key: rotated })))).reason).toBe('unavailable');
    expect(issuer.jwksRequests()).toBe(before + 1);
    // a token whose key is known still verifies meanwhile
    await expect(v.verify(await sign())).resolves.toMatchObject({ kind: 'jwt' });
  });

  it('never uses a key published for encryption (use: enc)', async () => {
    const enc = await signingKey();
    issuer.keys = [...issuer.keys, { ...enc, publicJwk: { ...enc.publicJwk, use: 'enc' } }];
    expect((await refusal(verifier().verify(await sign({}, { key: enc })))).reason).toBe('unknown_kid');
  });

  it('does not fail a cached result when the keys become unreachable', async () => {
    const v = verifier();
    const token = await sign();
    await v.verify(token);
    issuer.jwks = (_request, response) => raw(response, 500, '');
    await expect(v.verify(token)).resolves.toMatchObject({ kind: 'jwt' });
  });
});

describe('several issuers', () => {
  let other: Issuer;
  beforeAll(async () => {
    // The same kid as the first issuer's key, a different key.
    other = await startIssuer({ keys: [await signingKey('RS256', 'shared-kid')] });
  });
  afterAll(() => other.close());

  it("takes each issuer's tokens with its own keys, and refuses A's token signed with B's key", async () => {
    const a = await startIssuer({ keys: [await signingKey('RS256', 'shared-kid')] });
    try {
      const v = new TokenVerifier({
        issuers: [a.client, other.client],
        audience: AUDIENCE,
        now: () => nowMs,
      });
      await expect(v.verify(await a.sign({}, { nowSeconds: nowSeconds() }))).resolves.toMatchObject({
        issuer: a.issuer,
      });
      await expect(v.verify(await other.sign({}, { nowSeconds: nowSeconds() }))).resolves.toMatchObject({
        issuer: other.issuer,
      });
      const forged = await a.sign({}, { key: other.keys[0]!, nowSeconds: nowSeconds() });
      expect((await refusal(v.verify(forged))).reason).toBe('signature');
    } finally {
      await a.close();
    }
  });

  it('asks a resolver, which may only select: a client of another issuer does not count', async () => {
    const v = new TokenVerifier({ issuers: () => other.client, audience: AUDIENCE, now: () => nowMs });
    expect((await refusal(v.verify(await sign()))).reason).toBe('issuer');
    await expect(v.verify(await other.sign({}, { nowSeconds: nowSeconds() }))).resolves.toMatchObject({
      kind: 'jwt',
    });
  });

  it('needs exactly one of client and issuers', () => {
    expect(() => new TokenVerifier({ audience: AUDIENCE })).toThrow(/exactly one/);
    expect(
      () => new TokenVerifier({ client: issuer.client, issuers: [other.client], audience: AUDIENCE }),
    ).toThrow(/exactly one/);
  });
});
