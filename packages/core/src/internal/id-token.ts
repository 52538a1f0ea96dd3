/**
 * ID Token validation for token endpoint responses (OpenID Connect Core §3.1.3.7).
 */
import { createHash } from 'node:crypto';
import type { JWTVerifyGetKey } from 'jose';
import { IdTokenError } from '../errors.js';
import type { TesseraError } from '../errors.js';
import type { IDTokenClaims } from '../types.js';
import { isEncryptedJwt, verifyJwt } from './jwt.js';

/** Everything validation needs to know about the client and the server. */
export interface IdTokenContext {
  issuer: string;
  clientId: string;
  clientSecret: string | undefined;
  /** The registered `id_token_signed_response_alg`, default RS256. */
  alg: string;
  toleranceSeconds: number;
  keySet: JWTVerifyGetKey;
}

/** Per-response expectations. */
export interface IdTokenExpectations {
  accessToken: string;
  nonce?: string | undefined;
  maxAgeSeconds?: number | undefined;
}

/** Validates an ID Token and returns its claims, or throws `IdTokenError` naming the failed check. */
export async function validateIdToken(
  idToken: string,
  context: IdTokenContext,
  expected: IdTokenExpectations,
): Promise<IDTokenClaims> {
  if (isEncryptedJwt(idToken)) {
    throw new IdTokenError('decrypt', 'is encrypted (JWE) and no decryption key is configured');
  }
  // §3.1.3.7 step 7: only the registered alg; `none` is never accepted here.
  const alg = context.alg;
  let key: JWTVerifyGetKey | Uint8Array = context.keySet;
  if (alg.startsWith('HS')) {
    if (context.clientSecret === undefined) throw new IdTokenError('alg', `alg ${alg} needs a client_secret`);
    key = new TextEncoder().encode(context.clientSecret); // §10.1: the secret's UTF-8 bytes
  }
  const claims = (await verifyJwt(
    idToken,
    key,
    {
      algorithm: alg,
      issuer: context.issuer,
      audience: context.clientId,
      clockTolerance: context.toleranceSeconds,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
    },
    idTokenError,
  )) as IDTokenClaims;
  checkAudience(claims, context.clientId);
  const now = Date.now() / 1000;
  if (claims.iat > now + context.toleranceSeconds) {
    throw new IdTokenError('iat', 'iat is in the future');
  }
  if (expected.nonce !== undefined && claims.nonce !== expected.nonce) {
    throw new IdTokenError('nonce', claims.nonce === undefined ? 'nonce is missing' : 'nonce does not match');
  }
  if (expected.maxAgeSeconds !== undefined) {
    if (typeof claims.auth_time !== 'number')
      throw new IdTokenError('auth_time', 'auth_time is missing although max_age was requested');
    if (claims.auth_time + expected.maxAgeSeconds + context.toleranceSeconds < now) {
      throw new IdTokenError('auth_time', 'auth_time is older than max_age');
    }
  }
  if (claims.at_hash !== undefined && claims.at_hash !== leftHalfHash(expected.accessToken, alg)) {
    throw new IdTokenError('at_hash', 'at_hash does not match the access token');
  }
  return claims;
}

/** §3.1.3.7 steps 3-4: extra audiences are trusted only when `azp` is this client. */
function checkAudience(claims: IDTokenClaims, clientId: string): void {
  if (claims.azp !== undefined && claims.azp !== clientId) {
    throw new IdTokenError('azp', 'azp is not this client');
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (audiences.length > 1 && claims.azp !== clientId) {
    throw new IdTokenError('aud', 'aud has other audiences and azp is not this client');
  }
}

/** §3.1.3.8: base64url of the left half of the hash that matches the JWS alg. */
function leftHalfHash(accessToken: string, alg: string): string {
  // The hash is named by the alg's suffix only for HS/RS/PS/ES; EdDSA and the fully-specified
  // Ed25519 (RFC 9864) use SHA-512, Ed25519's own digest. Any other alg (e.g. ML-DSA) has no defined
  // hash: fail the check instead of letting node:crypto throw a raw Error.
  const bits = alg === 'EdDSA' || alg === 'Ed25519' ? '512' : /^[HRPE]S(256|384|512)$/.exec(alg)?.[1];
  if (bits === undefined) throw new IdTokenError('at_hash', `at_hash cannot be checked for alg ${alg}`);
  const digest = createHash(`sha${bits}`).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

function idTokenError(check: string, message: string, cause?: unknown): TesseraError {
  return new IdTokenError(check, message, { cause });
}
