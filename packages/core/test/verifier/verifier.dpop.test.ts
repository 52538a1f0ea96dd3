/**
 * DPoP at the resource server (RFC 9449 §4.3, §7, §9, §11.1): proofs checked against the request
 * and the token's key binding, replays refused, server nonces, and `htu` normalisation.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { accessTokenHash } from '@tessera/core';
import type { TokenVerifierOptions } from '@tessera/core';
import { normalizeHtu } from '../../src/verifier/dpop-proof.js';
import { refusal, startIssuer, verifierOf } from './issuer-fixture.js';
import type { Issuer } from './issuer-fixture.js';

const URL_ = 'https://resource.example.org/protectedresource';
let nowMs = 1_700_000_000_000;
const nowSeconds = () => Math.floor(nowMs / 1000);

let issuer: Issuer;
let keyPair: CryptoKeyPair;
let publicJwk: JWK;
let jkt: string;
beforeAll(async () => {
  issuer = await startIssuer();
  keyPair = await generateKeyPair('ES256', { extractable: true });
  const { kty, crv, x, y } = await exportJWK(keyPair.publicKey);
  publicJwk = { kty, crv, x, y } as JWK;
  jkt = await calculateJwkThumbprint(publicJwk);
});
afterAll(() => issuer.close());
beforeEach(() => {
  nowMs = 1_700_000_000_000;
});

const verifier = (options: Partial<TokenVerifierOptions> = {}) => verifierOf(issuer, () => nowMs, options);

async function proof(
  token: string,
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key: CryptoKey = keyPair.privateKey,
): Promise<string> {
  return new SignJWT({
    htm: 'GET',
    htu: URL_,
    iat: nowSeconds(),
    jti: randomUUID(),
    ath: accessTokenHash(token),
    ...claims,
  })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: publicJwk, ...header } as never)
    .sign(key);
}

const boundToken = () =>
  issuer.sign({ cnf: { jkt }, exp: nowSeconds() + 3600 }, { nowSeconds: nowSeconds() });

describe('proofs (RFC 9449 §4.3)', () => {
  it('accepts a good proof once, and refuses its replay', async () => {
    const token = await boundToken();
    const v = verifier();
    const dpopProof = await proof(token);
    await expect(v.verify(token, { method: 'GET', url: URL_, dpopProof })).resolves.toMatchObject({
      scheme: 'DPoP',
      cnf: { jkt },
    });
    const replay = await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof }));
    expect(replay).toMatchObject({ reason: 'dpop_proof', error: 'invalid_dpop_proof', status: 401 });
    expect(replay.wwwAuthenticate).toMatch(/DPoP realm="api", error="invalid_dpop_proof"/);
  });

  it.each([
    ['299 s old', -299, true],
    ['301 s old', -301, false],
    ['29 s ahead', 29, true],
    ['31 s ahead', 31, false],
  ])('with iat %s', async (_case, offset, ok) => {
    const token = await boundToken();
    const dpopProof = await proof(token, { iat: nowSeconds() + offset });
    const outcome = verifier().verify(token, { method: 'GET', url: URL_, dpopProof });
    if (ok) await expect(outcome).resolves.toMatchObject({ scheme: 'DPoP' });
    else expect((await refusal(outcome)).reason).toBe('dpop_proof');
  });

  it('compares htm exactly and htu without query and fragment', async () => {
    const token = await boundToken();
    const v = verifier();
    expect(
      (
        await refusal(
          v.verify(token, { method: 'GET', url: URL_, dpopProof: await proof(token, { htm: 'get' }) }),
        )
      ).reason,
    ).toBe('dpop_proof');
    await expect(
      v.verify(token, {
        method: 'GET',
        url: `${URL_}?a=1#f`,
        dpopProof: await proof(token, { htu: `${URL_}?b=2` }),
      }),
    ).resolves.toMatchObject({ scheme: 'DPoP' });
    const api = 'https://resource.example.org/api/';
    expect(
      (
        await refusal(
          v.verify(token, {
            method: 'GET',
            url: api,
            dpopProof: await proof(token, { htu: api.slice(0, -1) }),
          }),
        )
      ).reason,
    ).toBe('dpop_proof');
  });

  it('refuses the ath of another token (invalid_dpop_proof) and another key (invalid_token)', async () => {
    const token = await boundToken();
    const v = verifier();
    const wrongAth = await proof(token, { ath: accessTokenHash('another') });
    expect(await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof: wrongAth }))).toMatchObject({
      reason: 'dpop_proof',
      error: 'invalid_dpop_proof',
    });
    const other = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(other.publicKey);
    const otherKey = await proof(token, {}, { jwk: { kty, crv, x, y } }, other.privateKey);
    const binding = await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof: otherKey }));
    expect(binding).toMatchObject({ reason: 'dpop_binding', error: 'invalid_token' });
    expect(binding.wwwAuthenticate).toContain('error_description="Invalid DPoP key binding"');
  });

  it('refuses alg none, HS256, typ JWT, a jwk with a private part, and two DPoP headers', async () => {
    const token = await boundToken();
    const v = verifier();
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const payload = { htm: 'GET', htu: URL_, iat: nowSeconds(), jti: 'n', ath: accessTokenHash(token) };
    const bad = [
      `${part({ typ: 'dpop+jwt', alg: 'none', jwk: publicJwk })}.${part(payload)}.`,
      await new SignJWT(payload)
        .setProtectedHeader({ typ: 'dpop+jwt', alg: 'HS256', jwk: publicJwk } as never)
        .sign(new Uint8Array(32)),
      await proof(token, {}, { typ: 'JWT' }),
      await proof(token, {}, { jwk: { ...(await exportJWK(keyPair.privateKey)) } }),
      `${await proof(token)}, ${await proof(token)}`,
    ];
    for (const dpopProof of bad) {
      expect((await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof }))).reason).toBe(
        'dpop_proof',
      );
    }
  });

  it('refuses a bound token as Bearer, and an unbound one as DPoP', async () => {
    const v = verifier();
    const bound = await boundToken();
    expect(await refusal(v.verify(bound))).toMatchObject({ reason: 'dpop_binding', error: 'invalid_token' });
    const unbound = await issuer.sign({}, { nowSeconds: nowSeconds() });
    const dpopProof = await proof(unbound);
    expect((await refusal(v.verify(unbound, { method: 'GET', url: URL_, dpopProof }))).reason).toBe(
      'dpop_binding',
    );
  });

  it('with dpop.required refuses an unbound Bearer token, challenging with DPoP only', async () => {
    const unbound = await issuer.sign({}, { nowSeconds: nowSeconds() });
    const error = await refusal(verifier({ dpop: { required: true } }).verify(unbound));
    expect(error.reason).toBe('dpop_binding');
    expect(error.wwwAuthenticate).toMatch(/^DPoP /);
    expect(error.wwwAuthenticate).not.toContain('Bearer');
  });

  it('with dpop: false refuses a bound token (no proof can be checked)', async () => {
    const token = await boundToken();
    const error = await refusal(verifier({ dpop: false }).verify(token));
    expect(error.reason).toBe('dpop_binding');
    expect(error.wwwAuthenticate).toMatch(/^Bearer /);
    expect(error.wwwAuthenticate).not.toMatch(/, DPoP /);
  });
});

describe('server nonces (RFC 9449 §9)', () => {
  it('asks for a nonce, accepts the current and the previous one, and refuses an older one', async () => {
    const v = verifier({ dpop: { nonce: { secret: new Uint8Array(32).fill(7) } } });
    const token = await boundToken();
    const error = await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof: await proof(token) }));
    expect(error).toMatchObject({ reason: 'dpop_nonce', error: 'use_dpop_nonce', status: 401 });
    expect(error.dpopNonce).toBe(v.dpopNonce());
    const nonce = error.dpopNonce!;
    await expect(
      v.verify(token, { method: 'GET', url: URL_, dpopProof: await proof(token, { nonce }) }),
    ).resolves.toMatchObject({ scheme: 'DPoP' });
    nowMs += 5 * 60_000; // the next slot: the previous nonce still goes
    await expect(
      v.verify(token, { method: 'GET', url: URL_, dpopProof: await proof(token, { nonce }) }),
    ).resolves.toMatchObject({ scheme: 'DPoP' });
    nowMs += 5 * 60_000;
    expect(
      (await refusal(v.verify(token, { method: 'GET', url: URL_, dpopProof: await proof(token, { nonce }) })))
        .reason,
    ).toBe('dpop_nonce');
  });

  it('makes the same nonces on every instance given the same secret', () => {
    const secret = new Uint8Array(32).fill(9);
    expect(verifier({ dpop: { nonce: { secret } } }).dpopNonce()).toBe(
      verifier({ dpop: { nonce: { secret } } }).dpopNonce(),
    );
    expect(verifier().dpopNonce()).toBeUndefined();
  });
});

describe('htu normalisation (RFC 3986 §6.2.2-§6.2.3)', () => {
  it.each([
    ['HTTPS://Resource.Example.org:443/a/%7euser/./b/../c?x=1#f', 'https://resource.example.org/a/~user/c'],
    ['https://rs.example', 'https://rs.example/'],
    ['https://rs.example/api/', 'https://rs.example/api/'],
    ['https://rs.example:8443/%2fa', 'https://rs.example:8443/%2Fa'],
    ['https://bücher.example/p', 'https://xn--bcher-kva.example/p'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeHtu(input)).toBe(expected);
  });

  it('refuses paths starting with // and non-http URLs', () => {
    expect(normalizeHtu('https://rs.example//evil.example/x')).toBeUndefined();
    expect(normalizeHtu('ftp://rs.example/x')).toBeUndefined();
  });
});
