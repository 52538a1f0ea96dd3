import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The tests run the built command, as a user would: `tsc -b` (pnpm typecheck) comes first.
export const BIN = fileURLToPath(new URL('../dist/bin.js', import.meta.url));

/** @throws Error when the command has not been built. */
export function assertBuilt(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npx tsc -b\` first`);
}

/** How a run ended and what it printed. */
export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A command still running: its process, and what it has printed so far. */
export interface Running {
  readonly child: ChildProcessWithoutNullStreams;
  /** Settles when the process has exited and its streams are closed. */
  readonly done: Promise<Run>;
  /** Resolves with the first match of `pattern` in everything `stream` printed (so far or later). */
  waitFor(pattern: RegExp, stream?: 'stdout' | 'stderr'): Promise<RegExpMatchArray>;
}

/** Everything every run printed, for the tests that check no secret was ever printed. */
export const printed: string[] = [];

export interface StartOptions {
  /** Added to the environment (which has `NO_COLOR=1` and no `TESSERA_*` variable of the test's own). */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin; stdin is then closed unless `keepStdinOpen`. */
  input?: string;
  keepStdinOpen?: boolean;
  /** The run prints secrets by design (`dev-server` prints its clients'): not kept in {@link printed}. */
  printsSecrets?: boolean;
  /** The program and its first arguments, before the command's; default `node dist/bin.js`. */
  argv0?: readonly string[];
}

/** Starts `tessera args` (or `options.argv0` with `args`). */
export function startTessera(args: readonly string[], options: StartOptions = {}): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of Object.keys(env)) if (name.startsWith('TESSERA_')) delete env[name];
  Object.assign(env, options.env);
  for (const [name, value] of Object.entries(env)) if (value === undefined) delete env[name];
  const [program, ...first] = options.argv0 ?? [process.execPath, BIN];
  const child = spawn(program!, [...first, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  const watchers: Array<() => void> = [];
  let closed = false;
  for (const stream of ['stdout', 'stderr'] as const) {
    child[stream].setEncoding('utf8').on('data', (chunk: string) => {
      output[stream] += chunk;
      for (const watcher of [...watchers]) watcher();
    });
  }
  const done = new Promise<Run>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      closed = true;
      if (options.printsSecrets !== true) printed.push(output.stdout, output.stderr);
      for (const watcher of [...watchers]) watcher();
      resolve({ code, signal, ...output });
    });
  });
  if (options.input !== undefined) child.stdin.write(options.input);
  if (options.keepStdinOpen !== true) child.stdin.end();
  return {
    child,
    done,
    waitFor: (pattern, stream = 'stdout') =>
      new Promise((resolve, reject) => {
        const look = (): void => {
          const match = output[stream].match(pattern);
          if (match !== null) {
            watchers.splice(watchers.indexOf(look), 1);
            resolve(match);
          } else if (closed) {
            watchers.splice(watchers.indexOf(look), 1);
            reject(
              new Error(
                `exited before printing ${pattern} on ${stream}:\n${output.stdout}\n${output.stderr}`,
              ),
            );
          }
        };
        watchers.push(look);
        look();
      }),
  };
}

/** Runs `tessera args` to its end. */
export function tessera(args: readonly string[], options: StartOptions = {}): Promise<Run> {
  return startTessera(args, options).done;
}

/** Kills a run that a failed test left behind. */
export function stop(running: Running | undefined): void {
  if (running !== undefined && running.child.exitCode === null && running.child.signalCode === null) {
    running.child.kill('SIGKILL');
  }
}
