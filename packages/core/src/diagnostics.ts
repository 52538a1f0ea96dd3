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
} as const;

/**
 * The context of one `tessera:request` trace: the same object is seen by `start`, `end`,
 * `asyncStart`, `asyncEnd` and `error`; `status` or `error` are set before `asyncStart`.
 */
export interface RequestTraceContext {
  /** The endpoint's name: `'token endpoint'`, `'introspection endpoint'`, `'discovery endpoint'`, ... */
  readonly endpoint: string;
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
