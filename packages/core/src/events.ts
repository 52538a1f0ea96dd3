import type { TesseraError, TokenVerificationError, VerificationFailureReason } from './errors.js';

/** The outcome of revoking one token (RFC 7009). */
export interface RevocationResult {
  /** Which token this is about, as sent in `token_type_hint`. */
  tokenTypeHint: 'access_token' | 'refresh_token';
  /** Whether the server accepted the revocation. */
  revoked: boolean;
  /** Why it was not revoked. */
  error?: TesseraError;
}

/**
 * The events of a {@link TokenManager}: `noun.pastTense`, one payload object each. Payloads never
 * contain token values. Every failure also rejects the call that caused it; events only report.
 */
export interface TokenManagerEvents {
  /**
   * A grant got new tokens for a key that had none usable. `expiresAt`: epoch seconds; `grantType`:
   * the grant that ran.
   */
  'token.acquired': (event: { key: string; expiresAt?: number; scope?: string; grantType: string }) => void;
  /** `storeTokens()` stored a token set for `key`; `expiresAt` in epoch seconds, `scope` space-separated. */
  'token.stored': (event: { key: string; expiresAt?: number; scope?: string }) => void;
  /**
   * A refresh replaced the key's tokens: `rotated` when the server issued a new refresh token,
   * `durationMs` how long the request took.
   */
  'token.refreshed': (event: {
    key: string;
    expiresAt?: number;
    scope?: string;
    rotated: boolean;
    durationMs: number;
  }) => void;
  /**
   * A renewal (refresh or grant) failed. `error`: why (also the rejection of the callers that
   * waited); `cleared`: the key's tokens were dropped (`invalid_grant` only); `retryInMs`: the
   * backoff before the next attempt, in milliseconds (callers without a valid token get `error` at
   * once meanwhile); `outcomeUnknown`: a refresh was sent but its answer was lost (timeout, reset),
   * so if the server rotated the refresh token the grant may be lost, which the next refresh shows.
   */
  'refresh.failed': (event: {
    key: string;
    error: TesseraError;
    cleared: boolean;
    retryInMs?: number;
    outcomeUnknown?: true;
  }) => void;
  /**
   * A caller found the key's access token expired (reported once per token; `expiredAt` in epoch
   * seconds): callers now wait for a renewal instead of being served at once.
   */
  'token.expired': (event: { key: string; expiredAt: number }) => void;
  /** `revokeTokens()` finished: one result per token sent (refresh token first). */
  'token.revoked': (event: { key: string; results: RevocationResult[] }) => void;
  /**
   * The key's tokens were forgotten: `manual` (`clearTokens()`), `revoked` (`revokeTokens()`) or
   * `invalid_grant` (the server refused the refresh token: the user must sign in again).
   */
  'token.cleared': (event: { key: string; reason: 'manual' | 'revoked' | 'invalid_grant' }) => void;
  /** `introspectToken()` got the server's answer for the key's token. */
  'token.introspected': (event: { key: string; active: boolean }) => void;
  /**
   * A store call failed (or exceeded `storeTimeoutMs`): `operation` names it, `error` is a
   * `TokenStoreError`. The manager keeps serving what it knows and writes the newest token set back
   * once the store answers again.
   */
  'store.failed': (event: {
    key: string;
    operation: 'get' | 'set' | 'delete' | 'lock';
    error: TesseraError;
  }) => void;
}

/** The name of a {@link TokenManagerEvents} event. */
export type TokenManagerEventName = keyof TokenManagerEvents;

/**
 * The events of a {@link TokenVerifier}: `noun.pastTense`, one payload object each, never a token
 * value. Every failure also rejects the call; events only report (for logs and metrics).
 */
export interface TokenVerifierEvents {
  /**
   * A token was accepted. `cached`: decided from the cache, no signature check or introspection;
   * `subject` and `clientId` as the token says.
   */
  'token.verified': (event: {
    kind: 'jwt' | 'introspection';
    scheme: 'Bearer' | 'DPoP';
    issuer: string;
    subject?: string;
    clientId?: string;
    cached: boolean;
  }) => void;
  /**
   * A token was refused, or could not be judged (`reason: 'unavailable'`, `status` 503): `error`
   * is what the call rejected with.
   */
  'token.rejected': (event: {
    reason: VerificationFailureReason;
    status: number;
    error: TokenVerificationError;
  }) => void;
  /**
   * Results were forgotten: by `token` (`evict()`) or by `subject` (`evictSubject()`); `origin`
   * says where the eviction was made: here, by another instance sharing the cache (`remote`), or
   * by the TokenManager given to the verifier, which revoked the token.
   */
  'cache.evicted': (event: { by: 'token' | 'subject'; origin: 'local' | 'remote' | 'token-manager' }) => void;
}

/** The name of a {@link TokenVerifierEvents} event. */
export type TokenVerifierEventName = keyof TokenVerifierEvents;
