/** An output stream; `isTTY` and `columns` as `process.stdout` has them. */
export type OutputStream = NodeJS.WritableStream & { readonly isTTY?: boolean; readonly columns?: number };

/** The input stream; `isTTY` and `setRawMode` as `process.stdin` has them on a terminal. */
export type InputStream = NodeJS.ReadableStream & {
  readonly isTTY?: boolean;
  readonly readableEnded?: boolean;
  setRawMode?: (mode: boolean) => unknown;
};

/** Where a command reads and writes: the process's streams in `bin.ts`, anything in tests. */
export interface Io {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  readonly stdin: InputStream;
  readonly env: NodeJS.ProcessEnv;
  /**
   * Calls `listener` once when the process is asked to stop (SIGINT, i.e. Ctrl-C, or SIGTERM);
   * returns the function that stops listening. Used by `dev-server` and the device flow.
   */
  readonly onStop: (listener: () => void) => () => void;
}

/** The real process's streams, environment and stop signals. */
export function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    onStop: (listener) => {
      const stop = (): void => {
        unsubscribe();
        listener();
      };
      const unsubscribe = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
      return unsubscribe;
    },
  };
}

/** Whether a stream is a terminal (a person is watching it). */
export function isTerminal(stream: OutputStream | InputStream): boolean {
  return stream.isTTY === true;
}

/** What every command gets and sets while it runs. */
export interface CommandContext {
  readonly io: Io;
  /** The secrets read so far: scrubbed from anything written to stderr. */
  readonly secrets: Set<string>;
  /** The process's exit code when the command returns normally (`introspect` sets 3). */
  exitCode: number;
}
