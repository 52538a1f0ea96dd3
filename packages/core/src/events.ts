import type { TesseraError } from './errors.js';

/** The outcome of revoking one token (RFC 7009). */
export interface RevocationResult {
  tokenTypeHint: 'access_token' | 'refresh_token';
  revoked: boolean;
  /** Why it was not revoked. */
  error?: TesseraError;
}

/**
 * The events of a {@link TokenManager}: `noun.pastTense`, one payload object each. Payloads never
 * contain token values. Every failure also rejects the call that caused it; events only report.
 */
export interface TokenManagerEvents {
  'token.acquired': (event: { key: string; expiresAt?: number; scope?: string; grantType: string }) => void;
  'token.stored': (event: { key: string; expiresAt?: number; scope?: string }) => void;
  'token.refreshed': (event: {
    key: string;
    expiresAt?: number;
    scope?: string;
    rotated: boolean;
    durationMs: number;
  }) => void;
  /**
   * `outcomeUnknown`: a refresh was sent but its answer was lost (timeout, reset); if the server
   * rotated the refresh token, the grant may be lost, which the next refresh will show.
   */
  'refresh.failed': (event: {
    key: string;
    error: TesseraError;
    cleared: boolean;
    retryInMs?: number;
    outcomeUnknown?: true;
  }) => void;
  'token.expired': (event: { key: string; expiredAt: number }) => void;
  'token.revoked': (event: { key: string; results: RevocationResult[] }) => void;
  'token.cleared': (event: { key: string; reason: 'manual' | 'revoked' | 'invalid_grant' }) => void;
  'token.introspected': (event: { key: string; active: boolean }) => void;
  'store.failed': (event: {
    key: string;
    operation: 'get' | 'set' | 'delete' | 'lock';
    error: TesseraError;
  }) => void;
}

/** The name of a {@link TokenManagerEvents} event. */
export type TokenManagerEventName = keyof TokenManagerEvents;
