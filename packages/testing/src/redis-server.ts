import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findExecutable } from './internal/find-executable.js';
import { pickFreePorts } from './internal/free-ports.js';
import { RedisProcess, RedisStartError } from './internal/redis-process.js';
import { sendRespCommand } from './internal/resp-command.js';

export const HOST = '127.0.0.1';

/** Bound on a server's start until it answers PING, and on its stop, in milliseconds. */
export const SERVER_TIMEOUT_MS = 10_000;

/** How many fresh ports a first start tries when the port it picked was taken meanwhile. */
const PORT_ATTEMPTS = 5;

/** The executables the harness runs. */
export type RedisExecutable = 'redis-server' | 'redis-cli';

/**
 * Thrown by {@link startRedisServer} when `redis-server` is not on `PATH` (and `REDIS_URL` is not
 * set), and by {@link startRedisCluster} when `redis-server` or `redis-cli` is not. The message says
 * how to install Redis: `apt-get update && apt-get install -y redis-server` (Debian/Ubuntu, which
 * brings `redis-cli` too), `brew install redis` (macOS), or, for a single server, set `REDIS_URL`.
 *
 * Recognise it by class, or by `code === 'REDIS_SERVER_MISSING'`.
 */
export class RedisServerMissingError extends Error {
  /** Stable machine-readable code. */
  readonly code = 'REDIS_SERVER_MISSING';
  /** The executable that was not found. */
  readonly executable: RedisExecutable;

  /**
   * Made by the harness when an executable is missing; the message says how to install it.
   *
   * @param executable - what was not found on `PATH`.
   * @param options - `cluster`: it was needed for a Redis Cluster, which `REDIS_URL` cannot stand in for.
   */
  constructor(executable: RedisExecutable, options: { cluster?: boolean } = {}) {
    const instead = options.cluster
      ? 'The Redis Cluster tests start their own nodes, so REDIS_URL does not replace it.'
      : 'Or set REDIS_URL (e.g. REDIS_URL=redis://127.0.0.1:6379) to use a Redis server that is already running.';
    super(
      `${executable} was not found on PATH. Install Redis: ` +
        '`apt-get update && apt-get install -y redis-server` (Debian/Ubuntu; `sudo` when not root), ' +
        `\`brew install redis\` (macOS). ${instead}`,
    );
    this.name = 'RedisServerMissingError';
    this.executable = executable;
  }
}

/**
 * A Redis server for tests, from {@link startRedisServer}. Every method waits until it is done; calls
 * on one handle run one after the other.
 */
export interface RedisServerHandle {
  /** `'127.0.0.1'` for a started server; the host of `REDIS_URL` otherwise. */
  readonly host: string;
  /** The server's port: ephemeral for a started server, and the same after `start()` again. */
  readonly port: number;
  /** `redis://127.0.0.1:PORT` for a started server; `REDIS_URL` as given otherwise. */
  readonly url: string;
  /**
   * Whether this harness started the server. `false` when `REDIS_URL` was used: `stop()`,
   * `start()` and `kill()` then reject, and `close()` does nothing.
   */
  readonly managed: boolean;
  /**
   * Shuts the server down gracefully (SIGTERM; persistence is off, so nothing is saved) and
   * resolves once it has exited, so its port refuses connections. SIGKILLs it when it has not
   * exited within 10 s. Does nothing when it is not running.
   * @throws Error when the server is not managed, or the handle is closed.
   */
  stop(): Promise<void>;
  /**
   * SIGKILLs the server (a crash: clients see the connection reset) and resolves once it has
   * exited. Does nothing when it is not running.
   * @throws Error when the server is not managed, or the handle is closed.
   */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port, after `stop()`, `kill()` or a crash, empty (nothing
   * was persisted), and resolves once it answers PING. Does nothing when it is running.
   * @throws Error when the server is not managed, the handle is closed, or the server does not come
   * up within 10 s (e.g. another process took the port); the message ends with the server's output.
   */
  start(): Promise<void>;
  /** Stops the server if it runs and removes its temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startRedisServer}. */
export interface RedisServerOptions {
  /**
   * Use the server at `REDIS_URL` when that variable is set, instead of starting one. Tests that
   * call `stop()`, `start()` or `kill()` need a server of their own: pass `false`.
   * @default true
   */
  useEnv?: boolean;
}

/** `redis-server`, `redis-cli` and `setpriv` as found on `PATH`. */
export interface Executables {
  redisServer: string;
  redisCli: string | undefined;
  setpriv: string | undefined;
}

export async function findExecutables(options: { cluster: boolean }): Promise<Executables> {
  const searchPath = process.env.PATH;
  const redisServer = await findExecutable('redis-server', searchPath);
  if (!redisServer) throw new RedisServerMissingError('redis-server', options);
  const redisCli = options.cluster ? await findExecutable('redis-cli', searchPath) : undefined;
  if (options.cluster && !redisCli) throw new RedisServerMissingError('redis-cli', options);
  // Linux only: PR_SET_PDEATHSIG. Elsewhere the process 'exit' handler is all there is.
  const setpriv = process.platform === 'linux' ? await findExecutable('setpriv', searchPath) : undefined;
  return { redisServer, redisCli, setpriv };
}

export function makeTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'tessera-redis-'));
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/**
 * Starts a `redis-server` on free ports (`portCount` of them: `ports[0]` is the server's, the others
 * go to `extraArgs`), picking new ones when a port was taken before the server bound it.
 */
export async function startOnFreePort(
  executables: Executables,
  dir: string,
  portCount: number,
  extraArgs: (ports: number[]) => string[],
): Promise<RedisProcess> {
  for (let attempt = 1; ; attempt += 1) {
    const ports = await pickFreePorts(portCount);
    try {
      return await RedisProcess.start({
        redisServer: executables.redisServer,
        setpriv: executables.setpriv,
        port: ports[0] as number,
        dir,
        extraArgs: extraArgs(ports),
        readyTimeoutMs: SERVER_TIMEOUT_MS,
      });
    } catch (error) {
      if (!(error instanceof RedisStartError && error.portInUse) || attempt >= PORT_ATTEMPTS) throw error;
    }
  }
}

/** Runs the calls of one handle one after the other. */
export function serialize(): <T>(operation: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (operation) => {
    const result = tail.then(operation, operation);
    tail = result.catch(() => undefined);
    return result;
  };
}

/** `REDIS_URL` with its password replaced, for messages. */
function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  if (copy.password) copy.password = '***';
  return copy.href;
}

/**
 * Checks that the server at `REDIS_URL` answers: `PING`, or `AUTH` with the URL's credentials when
 * it has a password (each command here runs on a connection of its own).
 */
async function checkExternalServer(url: URL, host: string, port: number): Promise<void> {
  if (url.protocol !== 'redis:') return; // rediss: is TLS, which the raw-socket check does not speak
  const username = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  const [command, expected] = password
    ? [username ? ['AUTH', username, password] : ['AUTH', password], 'OK']
    : [['PING'], 'PONG'];
  const where = `the Redis server at REDIS_URL (${redactUrl(url)})`;
  let reply;
  try {
    reply = await sendRespCommand({ host, port, timeoutMs: SERVER_TIMEOUT_MS }, command);
  } catch (error) {
    throw new Error(`startRedisServer: ${where} is not reachable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (reply.type !== 'simple' || reply.value !== expected) {
    throw new Error(`startRedisServer: ${where} answered ${command[0]} with ${JSON.stringify(reply.value)}`);
  }
}

async function useExternalServer(rawUrl: string): Promise<RedisServerHandle> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new Error('startRedisServer: REDIS_URL is not a URL (expected redis://host:port)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new Error(
      `startRedisServer: REDIS_URL must start with redis:// or rediss://, got ${url.protocol}//`,
    );
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || HOST;
  const port = url.port ? Number(url.port) : 6379;
  await checkExternalServer(url, host, port);
  const notManaged = () =>
    Promise.reject(
      new Error(
        `startRedisServer: the Redis server at REDIS_URL (${redactUrl(url)}) was not started by this harness, ` +
          'so it cannot be stopped, killed or started; pass { useEnv: false } for a server of your own',
      ),
    );
  return Object.freeze({
    host,
    port,
    url: rawUrl,
    managed: false,
    stop: notManaged,
    kill: notManaged,
    start: notManaged,
    close: () => Promise.resolve(),
  });
}

/**
 * Starts a real `redis-server` for tests on an ephemeral port of 127.0.0.1, with persistence off and
 * a temporary directory of its own, and resolves once it answers PING. The handle can stop, kill and
 * restart it on the same port, to test how code behaves while Redis is away. When `REDIS_URL` is set
 * (and `useEnv` is not `false`), that server is used instead (`managed: false`).
 *
 * The server does not keep Node alive, and dies with the test process: it is SIGKILLed on
 * `process.on('exit')`, and on Linux started under `setpriv --pdeathsig KILL`, which also covers a
 * jest worker that is killed. Still, `close()` it in `afterAll`.
 *
 * @throws RedisServerMissingError when `redis-server` is not on `PATH` (code `REDIS_SERVER_MISSING`).
 * @throws Error when the server does not answer PING within 10 s (the message ends with its output),
 * or the server at `REDIS_URL` is not reachable.
 * @example
 * ```ts
 * const redis = await startRedisServer({ useEnv: false });
 * const client = new Redis(redis.url);
 * await redis.stop(); // commands now fail
 * await redis.start(); // same port, empty
 * await redis.close();
 * ```
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServerHandle> {
  const envUrl = process.env.REDIS_URL;
  if ((options.useEnv ?? true) && envUrl) return useExternalServer(envUrl);

  const executables = await findExecutables({ cluster: false });
  const dir = await makeTempDir();
  let server: RedisProcess;
  try {
    server = await startOnFreePort(executables, dir, 1, () => []);
  } catch (error) {
    await removeDir(dir);
    throw error;
  }
  const { port } = server;
  const run = serialize();
  let closed: Promise<void> | undefined;

  const ensureUsable = (method: string) => {
    if (closed) throw new Error(`RedisServerHandle.${method}: the handle is closed`);
  };

  return Object.freeze({
    host: HOST,
    port,
    url: `redis://${HOST}:${port}`,
    managed: true,
    stop: () =>
      run(async () => {
        ensureUsable('stop');
        await server.stop(SERVER_TIMEOUT_MS);
      }),
    kill: () =>
      run(async () => {
        ensureUsable('kill');
        await server.kill(SERVER_TIMEOUT_MS);
      }),
    start: () =>
      run(async () => {
        ensureUsable('start');
        if (server.running) return;
        server = await RedisProcess.start({
          redisServer: executables.redisServer,
          setpriv: executables.setpriv,
          port,
          dir,
          readyTimeoutMs: SERVER_TIMEOUT_MS,
        });
      }),
    close: () => {
      closed ??= run(async () => {
        try {
          await server.stop(SERVER_TIMEOUT_MS);
        } finally {
          await removeDir(dir);
        }
      });
      return closed;
    },
  });
}
