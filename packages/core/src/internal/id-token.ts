/**
 * ID Token validation for token endpoint responses (OpenID Connect Core §3.1.3.7).
 */
import { createHash } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTVerifyGetKey } from 'jose';
import { IdTokenError, TesseraError } from '../errors.js';
import type { IDTokenClaims } from '../types.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './response.js';

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

/**
 * Whether the header or payload of a compact JWT nests deeper than {@link MAX_JSON_DEPTH}: refused
 * before any library parses and walks it (a deep value overflows the stack).
 */
export function jwtNestsTooDeep(jwt: string): boolean {
  const [header = '', payload = ''] = jwt.split('.', 2);
  return [header, payload].some((segment) =>
    nestsDeeperThan(Buffer.from(segment, 'base64url').toString('utf8'), MAX_JSON_DEPTH),
  );
}

/** Validates an ID Token and returns its claims, or throws `IdTokenError` naming the failed check. */
export async function validateIdToken(
  idToken: string,
  context: IdTokenContext,
  expected: IdTokenExpectations,
): Promise<IDTokenClaims> {
  if (idToken.split('.').length === 5) {
    throw new IdTokenError('decrypt', 'is encrypted (JWE) and no decryption key is configured');
  }
  if (jwtNestsTooDeep(idToken)) {
    throw new IdTokenError('format', `header or payload nests deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(idToken).alg;
  } catch (cause) {
    throw new IdTokenError('format', 'is not a compact JWS', { cause });
  }
  // §3.1.3.7 step 7: only the registered alg; `none` is never accepted here.
  if (typeof alg !== 'string')
    throw new IdTokenError('alg', `alg is ${alg === undefined ? 'missing' : 'not a string'}`);
  if (alg !== context.alg || alg === 'none') {
    throw new IdTokenError('alg', `alg ${alg.slice(0, 40)} is not the expected ${context.alg}`);
  }
  let key: JWTVerifyGetKey | Uint8Array;
  if (alg.startsWith('HS')) {
    if (context.clientSecret === undefined) throw new IdTokenError('alg', `alg ${alg} needs a client_secret`);
    key = new TextEncoder().encode(context.clientSecret); // §10.1: the secret's UTF-8 bytes
  } else {
    key = context.keySet;
  }
  let claims: IDTokenClaims;
  try {
    const verified = await jwtVerify(idToken, key as JWTVerifyGetKey, {
      issuer: context.issuer,
      audience: context.clientId,
      algorithms: [alg],
      clockTolerance: context.toleranceSeconds,
      requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat'],
    });
    claims = verified.payload as IDTokenClaims;
  } catch (error) {
    throw joseFailure(error);
  }
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

/** jose's failure → IdTokenError naming the check, a TesseraError (JWKS fetch) passes through. */
export function joseFailure(
  error: unknown,
  wrap: (check: string, message: string, cause: unknown) => TesseraError = idTokenError,
): TesseraError {
  if (error instanceof TesseraError) return error;
  // jose also throws JWTExpired, with claim 'iat', for an `iat` older than `maxTokenAge` (the age
  // limit of RFC 9701 responses, RFC 9701 §5): name the claim jose checked, not always 'exp'.
  if (error instanceof joseErrors.JWTExpired) {
    return error.claim === 'exp'
      ? wrap('exp', 'has expired', error)
      : wrap(error.claim, `${error.claim} is too old`, error);
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return wrap(error.claim, `${error.claim} claim is invalid (${error.reason})`, error);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return wrap('signature', 'signature is invalid', error);
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return wrap('signature', 'is signed with a key not in the server JWKS', error);
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return wrap('alg', 'alg is not allowed', error);
  if (error instanceof joseErrors.JOSEError)
    return wrap('format', `could not be verified (${error.code})`, error);
  return wrap('format', 'could not be verified', error);
}

function idTokenError(check: string, message: string, cause: unknown): TesseraError {
  return new IdTokenError(check, message, { cause });
}
