/** Where a command reads and writes: the process's streams in `bin.ts`, anything in tests. */
export interface Io {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream;
  readonly env: NodeJS.ProcessEnv;
  /** Resolves when the process is asked to stop (SIGINT or SIGTERM); used by `dev-server`. */
  readonly stopRequested: () => Promise<void>;
}

/** The real process's streams, environment and stop signals. */
export function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    stopRequested: () =>
      new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve();
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      }),
  };
}

/** What every command gets and sets while it runs. */
export interface CommandContext {
  readonly io: Io;
  /** The secrets read so far: scrubbed from anything written to stderr. */
  readonly secrets: Set<string>;
  /** The process's exit code when the command returns normally (`introspect` sets 3). */
  exitCode: number;
}
