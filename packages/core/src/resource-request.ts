/**
 * The rules for sending a managed token to a resource server: the `Authorization` header (and DPoP
 * proof) for a token set, and what counts as the server rejecting the token (RFC 6750 §3,
 * RFC 9449 §7.1), shared by the fetch and axios integrations.
 */
import { InternalError } from './errors.js';
import { isDPoPTokenType } from './internal/token-type.js';
import type { TokenSource } from './internal/token-source.js';
import type { TokenSet } from './token-set.js';
import { parseWwwAuthenticate } from './www-authenticate.js';

/** The request headers for a token set: the scheme, and a DPoP proof when the token is bound. */
export async function authorization(
  source: TokenSource,
  tokens: TokenSet,
  method: string,
  url: string,
): Promise<Record<string, string>> {
  if (isDPoP(tokens)) {
    // A manager serves a DPoP-bound token only with the handle it is bound to: never reached.
    if (source.dpop === undefined)
      throw new InternalError('a DPoP-bound token reached a manager without a dpop handle');
    const proof = await source.dpop.proof(method, url, { accessToken: tokens.accessToken });
    return { authorization: `DPoP ${tokens.accessToken}`, dpop: proof };
  }
  // Always `Bearer` with a capital B, whatever case the token response used (RFC 6750 §2.1; RFC 7235 §2.1 makes the scheme case-insensitive).
  return { authorization: `Bearer ${tokens.accessToken}` };
}

export function isDPoP(tokens: TokenSet): boolean {
  return isDPoPTokenType(tokens.tokenType);
}

/**
 * Whether a 401 means "this token is no good": `error="invalid_token"`, or no error at all
 * (RFC 6750 §3). With `scheme`, only that scheme's challenge counts (RFC 9449 §7.1: a server may
 * send a Bearer and a DPoP challenge at once); a 401 without any challenge of it counts as a
 * rejection. `insufficient_scope` (403) and DPoP proof or nonce errors are not rejections.
 */
export function isTokenRejection(
  status: number,
  wwwAuthenticate: string | null | undefined,
  scheme?: string,
): boolean {
  if (status !== 401) return false;
  let challenges = parseWwwAuthenticate(wwwAuthenticate);
  if (scheme !== undefined)
    challenges = challenges.filter((c) => c.scheme.toLowerCase() === scheme.toLowerCase());
  if (challenges.length === 0) return true;
  return challenges.some((c) => c.parameters.error === undefined || c.parameters.error === 'invalid_token');
}

export function schemeOf(tokens: TokenSet): string {
  return isDPoP(tokens) ? 'DPoP' : 'Bearer';
}
