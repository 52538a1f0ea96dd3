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
