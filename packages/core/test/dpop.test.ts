import { describe, expect, it } from '@jest/globals';
import { decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify } from 'jose';
import {
  Client,
  ConfigurationError,
  DPoPHandle,
  accessTokenHash,
  findChallenge,
  parseWwwAuthenticate,
  randomDPoPKeyPair,
} from '@tessera/core';

const server = { issuer: 'https://as.example', token_endpoint: 'https://as.example/token' };
const client = new Client(server, { client_id: 'c', token_endpoint_auth_method: 'none' });

describe('randomDPoPKeyPair and the handle', () => {
  it.each([['ES256'], ['EdDSA'], ['PS256'], ['RS256']] as const)(
    '%s keys make verifiable proofs',
    async (alg) => {
      const keyPair = await randomDPoPKeyPair(alg);
      expect(keyPair.privateKey.extractable).toBe(false);
      const handle = client.getDPoPHandle(keyPair);
      expect(handle.alg).toBe(alg);
      const proof = await handle.proof('post', 'https://as.example/token');
      const { payload, protectedHeader } = await jwtVerify(proof, keyPair.publicKey, { typ: 'dpop+jwt' });
      expect(protectedHeader.alg).toBe(alg);
      expect(payload).toMatchObject({ htm: 'POST', htu: 'https://as.example/token' });
      expect(typeof payload.iat).toBe('number');
      expect(payload.ath).toBeUndefined();
      expect(payload.nonce).toBeUndefined();
    },
  );

  it('puts only the public members in the jwk header', async () => {
    const handle = client.getDPoPHandle(await randomDPoPKeyPair('RS256', { extractable: true }));
    const { jwk } = decodeProtectedHeader(await handle.proof('GET', 'https://rs.example/'));
    expect(Object.keys(jwk!).sort()).toEqual(['e', 'kty', 'n']);
    expect(Object.keys(await handle.publicJwk()).sort()).toEqual(['e', 'kty', 'n']);
  });

  it('strips query, fragment and userinfo from htu, keeps a non-default port', async () => {
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    const claims = decodeJwt(await handle.proof('GET', 'https://user:pw@rs.example:8443/api?x=1#f'));
    expect(claims.htu).toBe('https://rs.example:8443/api');
    expect(decodeJwt(await handle.proof('GET', 'https://rs.example:443/api?x=1')).htu).toBe(
      'https://rs.example/api',
    );
  });

  it('never reuses a jti across 1000 proofs', async () => {
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    const proofs = await Promise.all(
      Array.from({ length: 1000 }, () => handle.proof('POST', 'https://as.example/token')),
    );
    expect(new Set(proofs.map((p) => decodeJwt(p).jti)).size).toBe(1000);
  });

  it('adds ath for a resource request (RFC 9449 §4.2 vector)', async () => {
    const token = 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU';
    expect(accessTokenHash(token)).toBe('fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo');
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    expect(decodeJwt(await handle.proof('GET', 'https://rs.example/api', { accessToken: token })).ath).toBe(
      'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo',
    );
  });

  it('computes the RFC 7638 thumbprint (RFC 7638 §3.1 vector)', async () => {
    const publicKey = (await importJWK(
      {
        crv: 'P-256',
        kty: 'EC',
        x: 'l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs',
        y: '9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA',
      },
      'ES256',
    )) as CryptoKey;
    const { privateKey } = await generateKeyPair('ES256');
    const handle = new DPoPHandle({ publicKey, privateKey });
    await expect(handle.thumbprint()).resolves.toBe('0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I');
  });

  it('remembers nonces per origin and uses the latest', async () => {
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    expect(handle.learnNonce('https://as.example/token', 'n1')).toBe(true);
    expect(handle.learnNonce('https://as.example/other', 'n1')).toBe(false);
    expect(handle.learnNonce('https://as.example/token', 'n2')).toBe(true);
    expect(handle.learnNonce('https://as.example/token', undefined)).toBe(false);
    expect(decodeJwt(await handle.proof('POST', 'https://as.example/token')).nonce).toBe('n2');
    expect(decodeJwt(await handle.proof('GET', 'https://rs.example/api')).nonce).toBeUndefined();
    expect(handle.nonce('https://rs.example')).toBeUndefined();
  });

  it('learns from a resource server: retry once on a use_dpop_nonce challenge with a new nonce', async () => {
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    const url = 'https://rs.example/api/items?page=2';
    const challenge = {
      status: 401,
      headers: new Headers({
        'www-authenticate': 'Bearer error="invalid_token", DPoP algs="ES256", error="use_dpop_nonce"',
        'dpop-nonce': 'rs-nonce-1',
      }),
    };
    expect(handle.learnFromResponse(url, challenge)).toBe(true);
    expect(handle.learnFromResponse(url, challenge)).toBe(false); // same nonce again: do not loop
    const proof = decodeJwt(await handle.proof('GET', url, { accessToken: 'at' }));
    expect(proof).toMatchObject({ nonce: 'rs-nonce-1', htu: 'https://rs.example/api/items' });
    // axios-style plain headers, a 200 carrying a fresh nonce: remembered, no retry
    expect(handle.learnFromResponse(url, { status: 200, headers: { 'DPoP-Nonce': 'rs-nonce-2' } })).toBe(
      false,
    );
    expect(handle.nonce(url)).toBe('rs-nonce-2');
    // a Bearer-only invalid_token is not a nonce challenge
    expect(
      handle.learnFromResponse(url, {
        status: 401,
        headers: { 'www-authenticate': 'Bearer error="invalid_token"', 'dpop-nonce': 'x' },
      }),
    ).toBe(false);
    expect(handle.nonce('https://as.example/token')).toBeUndefined();
  });

  it('refuses a key the server does not accept, and symmetric keys', async () => {
    const strict = new Client(
      { ...server, dpop_signing_alg_values_supported: ['ES256'] },
      { client_id: 'c', token_endpoint_auth_method: 'none' },
    );
    expect(() => strict.getDPoPHandle({} as CryptoKeyPair)).toThrow(ConfigurationError);
    const rsa = await randomDPoPKeyPair('RS256');
    expect(() => strict.getDPoPHandle(rsa)).toThrow(ConfigurationError);
    expect(() => strict.getDPoPHandle(rsa)).toThrow(/ES256/);
  });
});

describe('parseWwwAuthenticate (RFC 9110 §11.6.1)', () => {
  it.each<[string, ReturnType<typeof parseWwwAuthenticate>]>([
    [
      'Bearer realm="example", error="invalid_token"',
      [{ scheme: 'Bearer', parameters: { realm: 'example', error: 'invalid_token' } }],
    ],
    [
      'Bearer error="invalid_token", DPoP algs="ES256 PS256", error="use_dpop_nonce"',
      [
        { scheme: 'Bearer', parameters: { error: 'invalid_token' } },
        { scheme: 'DPoP', parameters: { algs: 'ES256 PS256', error: 'use_dpop_nonce' } },
      ],
    ],
    [
      'Basic YWxhZGRpbjpvcGVuc2VzYW1l',
      [{ scheme: 'Basic', parameters: {}, token68: 'YWxhZGRpbjpvcGVuc2VzYW1l' }],
    ],
    [
      'Basic realm="as", error=invalid_client',
      [{ scheme: 'Basic', parameters: { realm: 'as', error: 'invalid_client' } }],
    ],
    [
      'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
      [
        { scheme: 'Newauth', parameters: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
        { scheme: 'Basic', parameters: { realm: 'simple' } },
      ],
    ],
    ['', []],
  ])('%s', (header, expected) => {
    expect(parseWwwAuthenticate(header)).toEqual(expected);
  });

  it('finds a challenge by scheme, case-insensitively', () => {
    expect(findChallenge('Bearer error="x", dpop error="use_dpop_nonce"', 'DPoP')?.parameters.error).toBe(
      'use_dpop_nonce',
    );
    expect(findChallenge(undefined, 'Bearer')).toBeUndefined();
  });
});
