/**
 * Tessera's `node:diagnostics_channel` tracing channels: what a tracer subscribes to (the
 * `@tessera/opentelemetry` package, or any `tracingChannel(name).subscribe(...)`). Nothing is
 * published, and no context object is even built, while nobody subscribes.
 *
 * Contexts hold no secret: no token, no credential, no header, no body, no query string.
 */
import type { TesseraError } from './errors.js';

/** The names of the channels. */
export const DIAGNOSTICS_CHANNELS = {
  /** Around every HTTP attempt at the authorization server (a retry is a new attempt). */
  request: 'tessera:request',
  /** Around every renewal of a key by a `TokenManager` (one per key at a time, shared by its callers). */
  refresh: 'tessera:refresh',
  /** Around every `TokenVerifier.verify()` (and so every `verifyRequest()` and middleware check). */
  verify: 'tessera:verify',
} as const;

/**
 * The context of one `tessera:request` trace: the same object is seen by `start`, `end`,
 * `asyncStart`, `asyncEnd` and `error`; `status` or `error` are set before `asyncStart`.
 */
export interface RequestTraceContext {
  /** The endpoint's name: `'token endpoint'`, `'introspection endpoint'`, `'discovery endpoint'`, ... */
  readonly endpoint: string;
  /** The HTTP method. */
  readonly method: 'GET' | 'POST';
  /** The URL without query or fragment (they may carry parameters), and without user info. */
  readonly url: string;
  /** 0 for the first attempt, 1 for the first retry, ... */
  readonly attempt: number;
  /** The HTTP status of the answer (a 4xx or 5xx answer is a status, not an error). */
  status?: number;
  /** Why no answer came: a `TransportError` or `ResponseError` (their messages hold no secret). */
  error?: TesseraError | Error;
  /** `error`'s code (`'TIMEOUT'`, `'NETWORK_ERROR'`, `'ABORTED'`, ...). */
  errorCode?: string;
}

/** How a renewal ended: a refresh, a new grant, or a token another process stored meanwhile. */
export type RefreshOutcome = 'refreshed' | 'acquired' | 'reused' | 'failed';

/** The context of one `tessera:refresh` trace; filled in as the renewal learns what it does. */
export interface RefreshTraceContext {
  /** The key's fingerprint: the first 16 hex digits of its SHA-256 (keys may name users). */
  readonly key: string;
  /** `'refresh_token'`, or the grant that acquired the token (`'client_credentials'`, ...). */
  grantType?: string;
  /** Set when the renewal ends, `'failed'` included. */
  outcome?: RefreshOutcome;
  /** A refresh: whether the server sent a new refresh token. */
  rotated?: boolean;
  /** Why it failed: the `TesseraError` callers get (its message holds no secret). */
  error?: Error;
  /** `error`'s code. */
  errorCode?: string;
}

/** The context of one `tessera:verify` trace; the outcome is set before `asyncStart`. */
export interface VerifyTraceContext {
  /** The scheme the token came with. */
  readonly scheme: 'Bearer' | 'DPoP';
  /** How it was verified: `'jwt'` (locally) or `'introspection'`, once verified. */
  kind?: 'jwt' | 'introspection';
  /** Whether the decision came from the verification cache (tombstones included). */
  cached?: boolean;
  /** Set when the verification ends. */
  outcome?: 'verified' | 'rejected';
  /** A rejection's reason (`'expired'`, `'revoked'`, `'unavailable'`, ...). */
  reason?: string;
  /** A rejection's HTTP status (401, 403, 400 or 503). */
  status?: number;
  /** A rejection's `TokenVerificationError` (its message holds no token). */
  error?: Error;
  /** `error`'s code. */
  errorCode?: string;
}
