/**
 * The shared JWT rules (internal/jwt.ts) that ID Tokens, RFC 9701 introspection responses and the
 * resource server's verifier all go through: what is refused before jose parses anything, and how
 * each jose failure is named.
 */
import { describe, expect, it } from '@jest/globals';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair } from 'jose';
import { TesseraError } from '../src/errors.js';
import { unverifiedClaims, verifyJwt } from '../src/internal/jwt.js';
import type { JwtFailure } from '../src/internal/jwt.js';

class CheckFailed extends TesseraError {
  override readonly name = 'CheckFailed';
  constructor(
    readonly check: string,
    message: string,
  ) {
    super('INVALID_RESPONSE', message);
  }
}
const fail: JwtFailure = (check, message) => new CheckFailed(check, message);

const { publicKey, privateKey } = await generateKeyPair('ES256');
const now = Math.floor(Date.now() / 1000);

async function sign(claims: Record<string, unknown>, alg = 'ES256'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(privateKey);
}

function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function failure(
  jwt: string,
  options: Partial<Parameters<typeof verifyJwt>[2]> = {},
): Promise<CheckFailed> {
  const error = await verifyJwt(jwt, publicKey, { algorithm: 'ES256', ...options }, fail).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CheckFailed);
  return error as CheckFailed;
}

describe('verifyJwt', () => {
  it('returns the payload of a good JWS', async () => {
    const jwt = await sign({ iss: 'https://as', aud: 'me', iat: now, exp: now + 60 });
    await expect(
      verifyJwt(jwt, publicKey, { algorithm: 'ES256', issuer: 'https://as' }, fail),
    ).resolves.toMatchObject({
      aud: 'me',
    });
  });

  it('refuses alg none, and any alg but the expected one, before looking for a key', async () => {
    const none = `${segment({ alg: 'none' })}.${segment({ iss: 'x' })}.`;
    let resolved = 0;
    const keySet = async () => {
      resolved++;
      return publicKey;
    };
    for (const [jwt, algorithm] of [
      [none, 'none'],
      [none, 'ES256'],
    ] as const) {
      const error = await verifyJwt(jwt, keySet, { algorithm }, fail).catch((caught: unknown) => caught);
      expect(error).toMatchObject({ check: 'alg' });
    }
    expect((await failure(`${segment({ alg: 'RS256' })}.${segment({})}.sig`)).message).toBe(
      'alg RS256 is not the expected ES256',
    );
    expect((await failure(`${segment({})}.${segment({})}.sig`)).message).toBe('alg is missing');
    expect(resolved).toBe(0);
  });

  it('refuses a header or payload nesting too deep before any parser walks it', async () => {
    const deep = JSON.parse('['.repeat(100) + ']'.repeat(100)) as unknown;
    const error = await failure(`${segment({ alg: 'ES256' })}.${segment({ deep })}.sig`);
    expect(error.check).toBe('format');
    expect(error.message).toMatch(/nests deeper than 64 levels/);
  });

  it('names the claim jose checked, and shows both sides of an iss or aud mismatch when told how', async () => {
    const expired = await sign({ exp: now - 3600 });
    expect(await failure(expired)).toMatchObject({ check: 'exp', message: 'has expired' });
    const old = await sign({ iat: now - 3600 });
    expect(await failure(old, { maxTokenAge: 60 })).toMatchObject({
      check: 'iat',
      message: 'iat is too old',
    });

    const audiences = Array.from({ length: 100 }, (_, i) => `audience-${i}`);
    const wrongAudience = await sign({ aud: audiences });
    const plain = await failure(wrongAudience, { audience: 'me' });
    expect(plain.check).toBe('aud');
    expect(plain.message).not.toContain('audience-0');
    const described = await failure(wrongAudience, { audience: 'me', described: { aud: 'the client "me"' } });
    expect(described.message).toMatch(/^aud \["audience-0",.*… does not contain the client "me"$/);
    expect(described.message.length).toBeLessThan(300); // a hostile list stays short
    const wrongIssuer = await sign({ iss: 'https://other' });
    expect(
      await failure(wrongIssuer, { issuer: 'https://as', described: { iss: '"https://as"' } }),
    ).toMatchObject({
      check: 'iss',
      message: 'iss "https://other" is not "https://as"',
    });
  });

  it('names a bad signature and a key missing from the key set', async () => {
    const other = await generateKeyPair('ES256');
    const forged = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(other.privateKey);
    expect(await failure(forged)).toMatchObject({ check: 'signature', message: 'signature is invalid' });
    const keySet = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'known' }] });
    const unknownKid = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'rotated' })
      .sign(privateKey);
    await expect(verifyJwt(unknownKid, keySet, { algorithm: 'ES256' }, fail)).rejects.toMatchObject({
      check: 'signature',
      message: 'is signed with a key not in the server JWKS',
    });
  });
});

describe('unverifiedClaims', () => {
  it('reads a payload without trusting it, and is undefined for anything that is not a JWT', async () => {
    expect(unverifiedClaims(await sign({ sub: 'alice' }))).toMatchObject({ sub: 'alice' });
    for (const notJwt of ['', 'opaque-token', 'a.b.c', `${segment({ alg: 'ES256' })}.bm90IGpzb24.sig`]) {
      expect(unverifiedClaims(notJwt)).toBeUndefined();
    }
  });
});
