/**
 * The JWT rules every verifier here shares (ID Tokens, RFC 9701 introspection responses, and the
 * resource server's access tokens next): what is refused before jose parses anything, how a jose
 * failure becomes one of our errors naming the failed check, and how an unverified payload is read.
 */
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
import { TesseraError } from '../errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from './response.js';

/** Builds the caller's error for a failed check (`alg`, `exp`, `signature`, `format`, a claim name...). */
export type JwtFailure = (check: string, message: string, cause?: unknown) => TesseraError;

/** The longest received claim value quoted in a message: a hostile server's list stays short. */
const QUOTED_CLAIM_LIMIT = 200;

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

/** Whether a compact serialization is a JWE (five parts, RFC 7516 §7.1) rather than a JWS. */
export function isEncryptedJwt(jwt: string): boolean {
  return jwt.split('.').length === 5;
}

/** What a JWS must be: jose's options, with the algorithms allowed. */
export interface JwtExpectations extends Omit<JWTVerifyOptions, 'algorithms'> {
  /** The `alg` accepted, or the list of them; `none` never is (RFC 8725 §3.1). */
  algorithm: string | readonly string[];
  /**
   * How a message names what `iss` and `aud` should hold; when given, a mismatch shows both sides
   * (the usual misconfiguration, found at once).
   */
  described?: { iss?: string; aud?: string };
}

/**
 * Verifies a compact JWS and returns its payload; every failure becomes `fail(check, ...)`. A value
 * nesting too deep is refused before any parser sees it, and the `alg` is checked before any key is
 * fetched.
 */
export async function verifyJwt(
  jwt: string,
  key: JWTVerifyGetKey | CryptoKey | Uint8Array,
  expectations: JwtExpectations,
  fail: JwtFailure,
): Promise<JWTPayload> {
  const { algorithm, described, ...options } = expectations;
  if (jwtNestsTooDeep(jwt))
    throw fail('format', `header or payload nests deeper than ${MAX_JSON_DEPTH} levels`);
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(jwt).alg;
  } catch (cause) {
    throw fail('format', 'is not a compact JWS', cause);
  }
  if (typeof alg !== 'string') throw fail('alg', `alg is ${alg === undefined ? 'missing' : 'not a string'}`);
  const algorithms = typeof algorithm === 'string' ? [algorithm] : [...algorithm];
  if (!algorithms.includes(alg) || alg === 'none') {
    const expected =
      algorithms.length === 1 ? `the expected ${algorithms[0]}` : `one of ${algorithms.join(', ')}`;
    throw fail('alg', `alg ${alg.slice(0, 40)} is not ${expected}`);
  }
  try {
    const { payload } = await jwtVerify(jwt, key as JWTVerifyGetKey, { ...options, algorithms });
    return payload;
  } catch (error) {
    if (
      error instanceof joseErrors.JWTClaimValidationFailed &&
      (error.claim === 'aud' || error.claim === 'iss')
    ) {
      const wanted = described?.[error.claim];
      if (wanted !== undefined) {
        const whole = JSON.stringify(error.payload[error.claim] ?? null);
        const received = whole.length > QUOTED_CLAIM_LIMIT ? `${whole.slice(0, QUOTED_CLAIM_LIMIT)}…` : whole;
        const relation = error.claim === 'aud' ? 'does not contain' : 'is not';
        throw fail(error.claim, `${error.claim} ${received} ${relation} ${wanted}`, error);
      }
    }
    throw joseFailure(error, fail);
  }
}

/** jose's failure → the caller's error naming the check; a TesseraError (a JWKS fetch) passes through. */
export function joseFailure(error: unknown, fail: JwtFailure): TesseraError {
  if (error instanceof TesseraError) return error;
  // jose also throws JWTExpired, with claim 'iat', for an `iat` older than `maxTokenAge` (the age
  // limit of RFC 9701 §5 responses): name the claim jose checked, not always 'exp'.
  if (error instanceof joseErrors.JWTExpired) {
    return error.claim === 'exp'
      ? fail('exp', 'has expired', error)
      : fail(error.claim, `${error.claim} is too old`, error);
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return fail(error.claim, `${error.claim} claim is invalid (${error.reason})`, error);
  }
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return fail('signature', 'signature is invalid', error);
  if (error instanceof joseErrors.JWKSNoMatchingKey)
    return fail('signature', 'is signed with a key not in the server JWKS', error);
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return fail('alg', 'alg is not allowed', error);
  if (error instanceof joseErrors.JOSEError)
    return fail('format', `could not be verified (${error.code})`, error);
  return fail('format', 'could not be verified', error);
}

/**
 * The payload of a JWT without verifying it, or `undefined` when it is not one. Only for telling
 * what a token says of itself (whose it is, what a refresh must keep), never for trusting it.
 */
export function unverifiedClaims(jwt: string): JWTPayload | undefined {
  try {
    return decodeJwt(jwt);
  } catch {
    return undefined;
  }
}
