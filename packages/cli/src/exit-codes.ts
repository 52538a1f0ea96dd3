/** The exit codes of the `tessera` command, as DESIGN.md lists them. */
export const EXIT_SUCCESS = 0;
/** A typed error (or any other failure): its code and message went to stderr. */
export const EXIT_FAILURE = 1;
/** The command line was wrong: unknown option, missing argument, conflicting flags. */
export const EXIT_USAGE = 2;
/** `introspect`: the server says the token is not active. */
export const EXIT_INACTIVE = 3;

/**
 * A mistake in the command line found after commander parsed it (a missing `--issuer`, two secret
 * sources). Exits with {@link EXIT_USAGE}; the message never holds a secret.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Stopped by Ctrl-C (SIGINT) or SIGTERM: 128 + SIGINT's number, as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** The user stopped the command (Ctrl-C at a prompt or while waiting); exits {@link EXIT_INTERRUPTED}. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor() {
    super('interrupted');
  }
}
