/**
 * What each event of a `TokenManager` and a `TokenVerifier` writes to their logger: one table per
 * emitter, so the README's table of levels is this file. A line carries the payload's flat fields
 * (no token value is in any payload), an error as its code and message, and, where an event is about
 * a token the emitter holds, that token's fingerprint.
 */
import type { TokenManagerEvents, TokenVerifierEvents } from '../events.js';
import type { LogFields, LogLevel } from '../logger.js';
import { errorFields, tokenFingerprint, type Log } from './log.js';

/** One line: its level, fields and message. */
export type LogLine = readonly [LogLevel, LogFields, string];

type Payload<Events, E extends keyof Events> = Events[E] extends (payload: infer P) => void ? P : never;

/** How each event of `Events` becomes a line. */
type EventLines<Events> = { readonly [E in keyof Events]: (payload: Payload<Events, E>) => LogLine };

/** The levels of a `TokenManager`'s events. */
export const TOKEN_MANAGER_LINES: EventLines<TokenManagerEvents> = {
  'token.acquired': ({ key, expiresAt, scope, grantType }) => [
    'info',
    { event: 'token.acquired', key, grantType, expiresAt, scope },
    `acquired a token for key ${key} (${grantType})`,
  ],
  'token.stored': ({ key, expiresAt, scope }) => [
    'info',
    { event: 'token.stored', key, expiresAt, scope },
    `stored tokens for key ${key}`,
  ],
  'token.refreshed': ({ key, expiresAt, scope, rotated, durationMs }) => [
    'info',
    { event: 'token.refreshed', key, expiresAt, scope, rotated, durationMs },
    `refreshed the token of key ${key}${rotated ? ' (refresh token rotated)' : ''}`,
  ],
  'refresh.failed': ({ key, error, cleared, retryInMs, outcomeUnknown }) => {
    const fields = {
      event: 'refresh.failed',
      key,
      ...errorFields(error),
      cleared,
      retryInMs,
      outcomeUnknown,
    };
    if (cleared) {
      return [
        'error',
        fields,
        `the server refused the refresh token of key ${key}: its tokens are cleared, sign in again`,
      ];
    }
    const retry = retryInMs === undefined ? '' : `; retrying in ${retryInMs} ms`;
    return ['warn', fields, `renewing the token of key ${key} failed: ${error.code}${retry}`];
  },
  'token.expired': ({ key, expiredAt }) => [
    'debug',
    { event: 'token.expired', key, expiredAt },
    `the access token of key ${key} expired: callers wait for its renewal`,
  ],
  'token.revoked': ({ key, results }) => {
    const failed = results.filter((result) => !result.revoked);
    const fields = {
      event: 'token.revoked',
      key,
      revoked: results.length - failed.length,
      notRevoked: failed.length,
      ...(failed[0]?.error === undefined ? {} : errorFields(failed[0].error)),
    };
    return failed.length === 0
      ? ['info', fields, `revoked the tokens of key ${key}`]
      : [
          'warn',
          fields,
          `the server did not revoke ${failed.map((r) => r.tokenTypeHint).join(' and ')} of key ${key}`,
        ];
  },
  'token.cleared': ({ key, reason }) => [
    'info',
    { event: 'token.cleared', key, reason },
    `cleared the tokens of key ${key} (${reason})`,
  ],
  'token.introspected': ({ key, active }) => [
    'debug',
    { event: 'token.introspected', key, active },
    `introspected the token of key ${key}: ${active ? 'active' : 'inactive'}`,
  ],
  'store.failed': ({ key, operation, error }) => [
    'warn',
    { event: 'store.failed', key, operation, ...errorFields(error) },
    `the token store failed to ${operation} key ${key}: ${error.code}`,
  ],
};

/** The levels of a `TokenVerifier`'s events. */
export const TOKEN_VERIFIER_LINES: EventLines<TokenVerifierEvents> = {
  'token.verified': ({ kind, scheme, issuer, subject, clientId, cached }) => [
    'debug',
    { event: 'token.verified', kind, scheme, issuer, subject, clientId, cached },
    `verified a ${scheme} token (${kind}${cached ? ', cached' : ''})`,
  ],
  'token.rejected': ({ reason, status, error }) => [
    // A refused token is the caller's problem (debug); no decision possible is ours (warn).
    reason === 'unavailable' ? 'warn' : 'debug',
    { event: 'token.rejected', reason, status, ...errorFields(error) },
    reason === 'unavailable'
      ? `could not verify a token: ${error.message}`
      : `rejected a token (${reason}, ${status})`,
  ],
  'cache.evicted': ({ by, origin }) => [
    'info',
    { event: 'cache.evicted', by, origin },
    `forgot verification results by ${by} (${origin})`,
  ],
};

/**
 * Writes `event`'s line of `lines` to `log` (nothing is built without a logger); `token`, the
 * token the event is about, appears as its fingerprint.
 */
export function logEvent<Events, E extends keyof Events>(
  log: Log,
  lines: EventLines<Events>,
  event: E,
  payload: Payload<Events, E>,
  token?: string,
): void {
  if (log.logger === undefined) return;
  const [level, fields, message] = lines[event](payload);
  if (!log.enabled(level)) return;
  log.write(level, token === undefined ? fields : { ...fields, token: tokenFingerprint(token) }, message);
}
