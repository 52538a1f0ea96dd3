import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pickFreePorts } from './internal/free-ports.js';
import { info, infoField, onlineReplicas, pollUntil, writeReachesReplica } from './internal/redis-admin.js';
import { RedisProcess } from './internal/redis-process.js';
import { sendRespCommand } from './internal/resp-command.js';
import {
  HOST,
  SERVER_TIMEOUT_MS,
  findExecutables,
  makeTempDir,
  removeDir,
  serialize,
  startOnFreePort,
} from './redis-server.js';
import type { Executables } from './redis-server.js';

/** The name the sentinels monitor the primary under (`SENTINEL MONITOR <name> ...`). */
const MASTER_NAME = 'tessera';

/** How long a silent primary stays "up" for a sentinel; short, so that a kill fails over in ~1-3 s. */
const DOWN_AFTER_MS = 500;

/** Sentinel's failover timeout: how long one failover attempt may take before another is tried. */
const FAILOVER_TIMEOUT_MS = 2_000;

/** Bound on the harness's waits: the sentinels finding each other, a failover, a resync. */
const SETTLE_TIMEOUT_MS = 20_000;

/**
 * A full resynchronisation starts at once: by default a primary waits 5 s for more replicas before
 * streaming a diskless snapshot, and a replica that resyncs after a failover acknowledges nothing
 * meanwhile.
 */
const SYNC_AT_ONCE = ['--repl-diskless-sync-delay', '0'];

/** An address on 127.0.0.1. */
export interface RedisAddress {
  /** `'127.0.0.1'`. */
  readonly host: string;
  /** An ephemeral port. */
  readonly port: number;
}

/**
 * A Redis primary with one replica, watched by three sentinels, from {@link startRedisSentinel}.
 * Every method waits until the topology has settled; calls on one handle run one after the other.
 */
export interface RedisSentinelHandle {
  /** The name the sentinels know the primary by: pass it as ioredis's `name`. */
  readonly name: string;
  /** The three sentinels: pass them as ioredis's `sentinels`. */
  readonly sentinels: readonly RedisAddress[];
  /** The primary now, as every sentinel reports it. */
  primary(): Promise<RedisAddress>;
  /** The data nodes (primary and replica), whatever their roles are now. */
  readonly nodes: readonly RedisAddress[];
  /**
   * A planned failover (`SENTINEL FAILOVER`): the replica is promoted, the old primary becomes its
   * replica. Resolves with the new primary once every sentinel names it and the old primary has
   * resynchronised from it (so `WAIT 1` works again).
   * @throws Error when the sentinel refuses it, or the topology has not settled, within 20 s; or a
   *   node is down.
   */
  failover(): Promise<RedisAddress>;
  /**
   * A crash: SIGKILLs the primary, so whatever it had not replicated yet is lost, and resolves with
   * the replica once the sentinels have promoted it (about 1-3 s). The killed node stays down until
   * {@link RedisSentinelHandle.revive}; meanwhile the new primary has no replica.
   * @throws Error when no failover happened within 20 s.
   */
  killPrimary(): Promise<RedisAddress>;
  /**
   * Starts the node that `killPrimary()` killed again, empty, as a replica of the current primary,
   * and resolves once it is in sync. Does nothing when no node is down.
   */
  revive(): Promise<void>;
  /** Stops the sentinels and nodes and removes their temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** What one sentinel says of the primary: `INFO sentinel`'s `master0` line. */
interface SentinelView {
  status: string;
  port: number;
  replicas: number;
  sentinels: number;
}

async function sentinelView(port: number): Promise<SentinelView | undefined> {
  const line = infoField(await info(port, 'sentinel'), 'master0');
  if (line === undefined) return undefined;
  const fields = Object.fromEntries(line.split(',').map((pair) => pair.split('=') as [string, string]));
  return {
    status: fields.status ?? '',
    port: Number(fields.address?.split(':').pop()),
    replicas: Number(fields.slaves),
    sentinels: Number(fields.sentinels),
  };
}

/** Polls `check` until it returns a value, or throws after {@link SETTLE_TIMEOUT_MS} saying `what`. */
function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  return pollUntil('startRedisSentinel', what, SETTLE_TIMEOUT_MS, check);
}

/**
 * The primary's port once every sentinel agrees on it, sees `replicas` replicas and the other
 * sentinels, and the node itself says it is a primary with that many replicas online.
 */
async function settledPrimary(
  sentinelPorts: readonly number[],
  replicas: number,
): Promise<number | undefined> {
  const views = await Promise.all(sentinelPorts.map(sentinelView));
  const port = views[0]?.port;
  const agreed = views.every(
    (view) =>
      view !== undefined &&
      view.status === 'ok' &&
      view.port === port &&
      view.replicas >= replicas &&
      view.sentinels === sentinelPorts.length,
  );
  if (!agreed || port === undefined) return undefined;
  const replication = await info(port, 'replication');
  if (infoField(replication, 'role') !== 'master') return undefined;
  return onlineReplicas(replication) >= replicas ? port : undefined;
}

function sentinelConfig(primaryPort: number): string {
  return [
    `sentinel monitor ${MASTER_NAME} ${HOST} ${primaryPort} 2`,
    `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
    `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
    `sentinel parallel-syncs ${MASTER_NAME} 1`,
    '',
  ].join('\n');
}

async function startSentinel(
  executables: Executables,
  dir: string,
  primaryPort: number,
): Promise<RedisProcess> {
  for (let attempt = 1; ; attempt += 1) {
    const [port] = (await pickFreePorts(1)) as [number];
    const configFile = join(dir, `sentinel-${port}.conf`);
    // A sentinel rewrites its configuration file as it learns the topology: one file each.
    await writeFile(configFile, sentinelConfig(primaryPort));
    try {
      return await RedisProcess.start({
        redisServer: executables.redisServer,
        setpriv: executables.setpriv,
        port,
        dir,
        configFile,
        extraArgs: ['--sentinel'],
        readyTimeoutMs: SERVER_TIMEOUT_MS,
      });
    } catch (error) {
      if (attempt >= 5) throw error;
    }
  }
}

/**
 * Starts a replicated Redis for tests: a primary and one replica (`redis-server --replicaof`), and
 * three sentinels (the same `redis-server` binary in sentinel mode, quorum 2, a primary counted down
 * after 500 ms of silence), all on ephemeral ports of 127.0.0.1, and resolves once the sentinels
 * know each other and the replica is in sync. It always starts its own processes (`REDIS_URL` is
 * not used). Expect it to take 2 to 5 s: sentinels find each other through the primary's hello
 * messages, every 2 s.
 *
 * The processes die with the test process, as servers of `startRedisServer` do; `close()` it in
 * `afterAll`.
 *
 * @throws RedisServerMissingError when `redis-server` or `redis-cli` is not on `PATH` (code
 *   `REDIS_SERVER_MISSING`).
 * @throws Error when a process does not start, or the topology does not settle within 20 s; what
 *   was started is stopped first.
 * @example
 * ```ts
 * const redis = await startRedisSentinel();
 * const client = new Redis({ sentinels: redis.sentinels, name: redis.name });
 * await client.set('key', 'value');
 * await redis.killPrimary(); // the replica is the primary now; the client follows it
 * await client.quit();
 * await redis.close();
 * ```
 */
export async function startRedisSentinel(): Promise<RedisSentinelHandle> {
  // redis-cli (which comes with redis-server) checks that writes reach the replica.
  const executables = await findExecutables({ cluster: true });
  const redisCli = executables.redisCli!;
  const dir = await makeTempDir();
  const data: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const stopAll = async (): Promise<void> => {
    try {
      await Promise.all([...sentinels, ...data].map((server) => server.stop(SERVER_TIMEOUT_MS)));
    } finally {
      await removeDir(dir);
    }
  };
  const sentinelPorts = (): number[] => sentinels.map((sentinel) => sentinel.port);
  const startReplica = (primaryPort: number, port?: number): Promise<RedisProcess> => {
    const args = ['--replicaof', HOST, String(primaryPort), ...SYNC_AT_ONCE];
    if (port === undefined) return startOnFreePort(executables, dir, 1, () => args);
    return RedisProcess.start({
      redisServer: executables.redisServer,
      setpriv: executables.setpriv,
      port,
      dir,
      extraArgs: args,
      readyTimeoutMs: SERVER_TIMEOUT_MS,
    });
  };
  /** The primary's port once the topology has settled and its writes reach the replica. */
  const replicated = async (): Promise<number | undefined> => {
    const port = await settledPrimary(sentinelPorts(), 1);
    return port !== undefined && (await writeReachesReplica(redisCli, port, 'tessera-harness:probe'))
      ? port
      : undefined;
  };
  try {
    const primary = await startOnFreePort(executables, dir, 1, () => SYNC_AT_ONCE);
    data.push(primary);
    data.push(await startReplica(primary.port));
    for (let i = 0; i < 3; i += 1) sentinels.push(await startSentinel(executables, dir, primary.port));
    await waitFor('the sentinels finding each other and the replica', () => replicated());
  } catch (error) {
    await stopAll();
    throw error;
  }

  const run = serialize();
  let closed: Promise<void> | undefined;
  const ensureOpen = (method: string): void => {
    if (closed) throw new Error(`RedisSentinelHandle.${method}: the handle is closed`);
  };
  const address = (port: number): RedisAddress => Object.freeze({ host: HOST, port });
  const currentPrimary = async (): Promise<number> => {
    const views = await Promise.all(sentinelPorts().map(sentinelView));
    const port = views[0]?.port;
    if (port === undefined || views.some((view) => view?.port !== port)) {
      throw new Error('RedisSentinelHandle: the sentinels do not agree on the primary');
    }
    return port;
  };
  const promotedOtherThan = (old: number, replicas: number) => async (): Promise<number | undefined> => {
    const port = await settledPrimary(sentinelPorts(), replicas);
    return port !== undefined && port !== old ? port : undefined;
  };

  return Object.freeze({
    name: MASTER_NAME,
    sentinels: Object.freeze(sentinels.map((sentinel) => address(sentinel.port))),
    nodes: Object.freeze(data.map((node) => address(node.port))),
    primary: () =>
      run(async () => {
        ensureOpen('primary');
        return address(await currentPrimary());
      }),
    failover: () =>
      run(async () => {
        ensureOpen('failover');
        if (data.some((node) => !node.running)) {
          throw new Error('RedisSentinelHandle.failover: a node is down; revive() it first');
        }
        const old = await currentPrimary();
        const sentinel = sentinels[0]!;
        // A replica revived a moment ago is not a candidate until the sentinel has its INFO again
        // (every 10 s): the sentinel refuses with NOGOODSLAVE meanwhile, so ask until it agrees.
        await waitFor('the sentinel accepting SENTINEL FAILOVER', async () => {
          const target = { host: HOST, port: sentinel.port, timeoutMs: 5_000 };
          const reply = await sendRespCommand(target, ['SENTINEL', 'FAILOVER', MASTER_NAME]);
          if (reply.type === 'error') throw new Error(`SENTINEL FAILOVER: ${reply.value}`);
          return true;
        });
        const promoted = await waitFor('the planned failover', promotedOtherThan(old, 0));
        // What the sentinels do on their next look at the old primary (up to 10 s away): make it a
        // replica of the new one and drop its clients, so that they ask the sentinels again.
        const target = { host: HOST, port: old, timeoutMs: 5_000 };
        await sendRespCommand(target, ['REPLICAOF', HOST, String(promoted)]);
        await sendRespCommand(target, ['CLIENT', 'KILL', 'TYPE', 'normal']);
        await sendRespCommand(target, ['CLIENT', 'KILL', 'TYPE', 'pubsub']);
        await waitFor('the old primary syncing from the new one', async () =>
          (await replicated()) === promoted ? promoted : undefined,
        );
        return address(promoted);
      }),
    killPrimary: () =>
      run(async () => {
        ensureOpen('killPrimary');
        const old = await currentPrimary();
        await data.find((node) => node.port === old)!.kill(SERVER_TIMEOUT_MS);
        return address(await waitFor('the failover after the kill', promotedOtherThan(old, 0)));
      }),
    revive: () =>
      run(async () => {
        ensureOpen('revive');
        const index = data.findIndex((node) => !node.running);
        if (index === -1) return;
        const primary = await currentPrimary();
        data[index] = await startReplica(primary, data[index]!.port);
        await waitFor('the revived replica syncing', () => replicated());
      }),
    close: () => (closed ??= run(stopAll)),
  });
}
