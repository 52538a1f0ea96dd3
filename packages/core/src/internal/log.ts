/**
 * The one way the SDK writes to a caller's logger: lines are built only when their level is on,
 * from flat values (no object of ours, so no token set, request or response can slip in), and a
 * logger that throws cannot break the call that logged.
 */
import type { LogFields, Logger, LogLevel } from '../logger.js';
import { TesseraError } from '../errors.js';

export { tokenFingerprint } from '../logger.js';

/** Where lines come from, as their `component` field says. */
export type LogComponent = 'tessera.client' | 'tessera.token-manager' | 'tessera.token-verifier';

/** A component's log: {@link Log.silent} without a logger. */
export class Log {
  readonly #logger: Logger | undefined;
  readonly #component: LogComponent;

  private constructor(logger: Logger | undefined, component: LogComponent) {
    this.#logger = logger;
    this.#component = component;
  }

  /** The log of `component` writing to `logger`, or a silent one. */
  static to(logger: Logger | undefined, component: LogComponent): Log {
    return new Log(logger, component);
  }

  /** The logger given, for a part that logs as another component. */
  get logger(): Logger | undefined {
    return this.#logger;
  }

  /** Whether a line at `level` would be written: check before building costly fields. */
  enabled(level: LogLevel): boolean {
    const logger = this.#logger;
    if (logger === undefined) return false;
    try {
      return logger.isLevelEnabled?.(level) ?? true;
    } catch {
      return false;
    }
  }

  /** Writes one line when `level` is on. */
  write(level: LogLevel, fields: LogFields, message: string): void {
    if (!this.enabled(level)) return;
    try {
      this.#logger![level]({ component: this.#component, ...fields }, message);
    } catch {
      // The caller's logger failing is not the SDK's failure.
    }
  }
}

/**
 * What a line says of an error: a Tessera error's code and message (they hold no secret, by
 * construction); of anything else only its name, as its message may quote anything.
 */
export function errorFields(error: unknown): { errorCode?: string; error: string } {
  if (error instanceof TesseraError) return { errorCode: error.code, error: error.message };
  return { error: error instanceof Error ? error.name : typeof error };
}
