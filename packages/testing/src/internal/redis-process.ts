import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { killOnExit } from './kill-children-on-exit.js';
import { sendRespCommand } from './resp-command.js';

/** How much of the server's output (stdout and stderr) is kept for error messages, in characters. */
const OUTPUT_TAIL_CHARS = 8_192;

/** Pause between two PINGs while waiting for the server, in milliseconds. */
const PING_INTERVAL_MS = 20;

/** Bound on one PING while waiting for the server, in milliseconds. */
const PING_TIMEOUT_MS = 1_000;

const HOST = '127.0.0.1';

/** How to run one `redis-server`. */
export interface RedisProcessOptions {
  /** Absolute path of `redis-server`. */
  readonly redisServer: string;
  /**
   * Absolute path of util-linux `setpriv`, to start the server with `--pdeathsig KILL` so that it
   * dies with the process that started it, however that process ends; `undefined` where there is
   * none (macOS).
   */
  readonly setpriv: string | undefined;
  readonly port: number;
  /** Working directory of the server (`--dir`). */
  readonly dir: string;
  /** More `--name value` arguments, e.g. the cluster settings. */
  readonly extraArgs?: readonly string[];
  /**
   * A configuration file, passed first (a sentinel needs one it can rewrite, and `--sentinel`
   * after it in `extraArgs`).
   */
  readonly configFile?: string;
  /** Bound on waiting for the first `+PONG`, in milliseconds. */
  readonly readyTimeoutMs: number;
}

/** A `redis-server` that did not come up; `portInUse` when another process holds its port. */
export class RedisStartError extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
    this.name = 'RedisStartError';
  }
}

function withOutput(message: string, output: string): string {
  const trimmed = output.trim();
  return trimmed ? `${message}. Its output:\n${trimmed}` : `${message} (it wrote nothing)`;
}

/**
 * One `redis-server` child process on 127.0.0.1: persistence off, not daemonized, no `detached`
 * (it stays in the caller's process group), not keeping the event loop alive, and killed when this
 * process exits. Start it with {@link RedisProcess.start}.
 */
export class RedisProcess {
  readonly port: number;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #exit: string | undefined;
  #output = '';

  private constructor(options: RedisProcessOptions) {
    this.port = options.port;
    const redisArgs = [
      ...(options.configFile === undefined ? [] : [options.configFile]),
      '--port',
      String(options.port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      options.dir,
      '--daemonize',
      'no',
      ...(options.extraArgs ?? []),
    ];
    const [command, args] = options.setpriv
      ? [options.setpriv, ['--pdeathsig', 'KILL', '--', options.redisServer, ...redisArgs]]
      : [options.redisServer, redisArgs];
    this.#child = spawn(command, args, { cwd: options.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#exited = new Promise((resolve) => {
      this.#child.once('exit', (code, signal) => {
        this.#exit = signal ? `was killed by ${signal}` : `exited with code ${String(code)}`;
        resolve();
      });
      this.#child.once('error', (error) => {
        // Only a failed spawn ends without 'exit'; a failed kill() leaves the child running.
        if (this.#child.pid !== undefined) return;
        this.#exit = `could not be started (${error.message})`;
        resolve();
      });
    });
    for (const stream of [this.#child.stdout, this.#child.stderr]) this.#capture(stream);
    killOnExit(this.#child);
    this.#child.unref();
  }

  /**
   * Spawns the server and resolves once it answers `PING` with `+PONG` and `INFO server` names its
   * own pid (so a server that was already on the port does not count).
   *
   * @throws RedisStartError when it exits first (`portInUse` when its port was taken), when the
   * port answers for another process, or after `readyTimeoutMs` (it is then killed); the message
   * ends with the server's output.
   */
  static async start(options: RedisProcessOptions): Promise<RedisProcess> {
    const server = new RedisProcess(options);
    await server.#waitUntilReady(options.readyTimeoutMs);
    return server;
  }

  /** Whether the process has not exited yet. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /**
   * Asks the server to shut down (SIGTERM: Redis closes its listeners and exits without saving,
   * since persistence is off) and waits until it has exited, which means its port is closed. After
   * `timeoutMs` it is SIGKILLed instead.
   */
  async stop(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGTERM');
    if (await this.#waitForExit(timeoutMs)) return;
    await this.kill(timeoutMs);
  }

  /**
   * SIGKILLs the server and waits until it has exited.
   * @throws Error when it is still running after `timeoutMs`.
   */
  async kill(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGKILL');
    if (!(await this.#waitForExit(timeoutMs))) {
      throw new Error(`redis-server on ${HOST}:${this.port} did not exit within ${timeoutMs} ms of SIGKILL`);
    }
  }

  /** The last lines the server wrote, for error messages. */
  get output(): string {
    return this.#output;
  }

  #capture(stream: Readable | null): void {
    if (!stream) return;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.#output = (this.#output + chunk).slice(-OUTPUT_TAIL_CHARS);
    });
    (stream as Readable & { unref?: () => void }).unref?.();
  }

  async #waitForExit(timeoutMs: number): Promise<boolean> {
    const timeout = new AbortController();
    try {
      return await Promise.race([
        this.#exited.then(() => true),
        delay(timeoutMs, false, { signal: timeout.signal }),
      ]);
    } finally {
      timeout.abort();
    }
  }

  async #waitUntilReady(timeoutMs: number): Promise<void> {
    const where = `redis-server on ${HOST}:${this.port}`;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#exit !== undefined) {
        const portInUse = /address already in use/i.test(this.#output);
        throw new RedisStartError(
          withOutput(`${where} ${this.#exit} before answering PING`, this.#output),
          portInUse,
        );
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) {
        await this.kill(timeoutMs);
        throw new RedisStartError(
          withOutput(`${where} did not answer PING within ${timeoutMs} ms and was killed`, this.#output),
          false,
        );
      }
      const target = { host: HOST, port: this.port, timeoutMs: Math.min(PING_TIMEOUT_MS, remainingMs) };
      const pong = await sendRespCommand(target, ['PING']).catch(() => undefined);
      if (pong?.type === 'simple' && pong.value === 'PONG') {
        const info = await sendRespCommand(target, ['INFO', 'server']).catch(() => undefined);
        const pid = /^process_id:(\d+)\r?$/m.exec(info?.value ?? '')?.[1];
        if (pid !== undefined && Number(pid) === this.#child.pid) return;
        if (pid !== undefined && this.running) {
          await this.kill(timeoutMs);
          throw new RedisStartError(
            `${where}: port ${this.port} is in use by another Redis server (pid ${pid})`,
            true,
          );
        }
      }
      await delay(PING_INTERVAL_MS);
    }
  }
}
