/**
 * The `logger` option of `Client`, `TokenManager` and `TokenVerifier`: any pino-style logger, silent
 * when none is given. What is logged at which level is in the README's "Logging" table.
 *
 * A log line is built from safe parts only: endpoint names, URLs without query, statuses,
 * durations, keys, error codes and the messages of Tessera's errors (which never hold a secret). A
 * token appears only as its {@link tokenFingerprint}, never a token, secret, assertion, DPoP
 * proof, header or body.
 */
import { createHash } from 'node:crypto';

/** A log level, from the most to the least verbose. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * What Tessera logs to: pino, bunyan, or anything with `debug`, `info`, `warn` and `error` taking
 * `(fields, message)` (so `console` works too). A logger that throws is ignored.
 */
export interface Logger {
  /** Every exchange with the authorization server, every verification. */
  debug(fields: LogFields, message: string): void;
  /** Tokens acquired, refreshed, stored, revoked and cleared. */
  info(fields: LogFields, message: string): void;
  /** A transient failure Tessera works around (a refresh it retries, a store that failed). */
  warn(fields: LogFields, message: string): void;
  /** A failure that needs someone: a refresh token the server refused (the user must sign in again). */
  error(fields: LogFields, message: string): void;
  /** pino's: when present, nothing is built for a level it says is off. */
  isLevelEnabled?(level: string): boolean;
}

/** The fields of a log line: `component` (`'tessera.client'`, ...) and flat, secret-free values. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * A token's fingerprint: the first 16 hex digits of its SHA-256. Logs show tokens only so; compute
 * it over a token you hold to find the log lines about it, in this service or in the one that
 * verified it.
 */
export function tokenFingerprint(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 16);
}
