import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
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

/** Bound on `redis-cli --cluster create`, which polls once a second until the nodes agree. */
const CLUSTER_CREATE_TIMEOUT_MS = 30_000;

/** Bound on waiting for `cluster_state:ok` on every node after `--cluster create`. */
const CLUSTER_OK_TIMEOUT_MS = 10_000;

const CLUSTER_SIZE = 3;

/** How {@link RedisClusterHandle.migrateSlot} moves a slot's keys. */
export interface SlotMigrationOptions {
  /** How many keys one `MIGRATE` moves (1: every key alone, the longest window). @default 100 */
  keysPerStep?: number;
  /** Awaited after each `MIGRATE`, to let clients run mid-migration (they see `ASK`). */
  betweenSteps?: () => Promise<void>;
}

/** A Redis Cluster for tests, from {@link startRedisCluster}. */
export interface RedisClusterHandle {
  /** The three masters, on 127.0.0.1; hand any of them to a cluster client. */
  readonly nodes: ReadonlyArray<{
    /** The node's address, `127.0.0.1`. */
    readonly host: string;
    /** The node's port (ephemeral). */
    readonly port: number;
  }>;
  /**
   * Moves one hash slot, with its keys, to the node at `to` (an index into `nodes`), as a resharding
   * does: the slot is marked importing and migrating, its keys are moved a few at a time
   * (`MIGRATE`), and the slot is given to the new node on every node. Meanwhile clients see `ASK`
   * redirects for keys already moved, and `MOVED` once it is done. Resolves with the index of the
   * node that held it; does nothing when `to` holds it already.
   */
  migrateSlot(slot: number, to: number, options?: SlotMigrationOptions): Promise<number>;
  /** Stops every node and removes their temporary directory. Idempotent. */
  close(): Promise<void>;
}

/** `redis-cli` output without its colour escapes, for messages. */
function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}

function runClusterCreate(redisCli: string, ports: readonly number[]): Promise<void> {
  const args = ['--cluster', 'create', ...ports.map((port) => `${HOST}:${port}`)];
  args.push('--cluster-replicas', '0', '--cluster-yes');
  return new Promise((resolve, reject) => {
    execFile(
      redisCli,
      args,
      { timeout: CLUSTER_CREATE_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1024 * 1024 },
      (error, stdout, stderr) => {
        const output = stripAnsi(`${stdout}${stderr}`).trim();
        // redis-cli exits 0 even for some refusals; its success line is the reliable sign.
        if (!error && /\[OK\] All 16384 slots covered/.test(output)) {
          resolve();
          return;
        }
        const why = error?.killed ? `did not finish within ${CLUSTER_CREATE_TIMEOUT_MS} ms` : 'failed';
        reject(
          new Error(`startRedisCluster: \`redis-cli ${args.join(' ')}\` ${why}. Its output:\n${output}`),
        );
      },
    );
  });
}

async function clusterInfo(port: number): Promise<string> {
  const reply = await sendRespCommand({ host: HOST, port, timeoutMs: 1_000 }, ['CLUSTER', 'INFO']);
  return reply.type === 'bulk' ? (reply.value ?? '') : '';
}

/** Resolves once every node reports `cluster_state:ok` and knows all the nodes. */
async function waitForClusterOk(ports: readonly number[]): Promise<void> {
  const deadline = Date.now() + CLUSTER_OK_TIMEOUT_MS;
  let infos: string[] = [];
  for (;;) {
    infos = await Promise.all(ports.map((port) => clusterInfo(port).catch((error: Error) => error.message)));
    const ok = infos.every(
      (info) =>
        /^cluster_state:ok\r?$/m.test(info) &&
        new RegExp(`^cluster_known_nodes:${ports.length}\\r?$`, 'm').test(info),
    );
    if (ok) return;
    if (Date.now() >= deadline) break;
    await delay(50);
  }
  const states = ports.map(
    (port, i) => `${port}: ${/^cluster_state:\w+/m.exec(infos[i] ?? '')?.[0] ?? infos[i]}`,
  );
  throw new Error(
    `startRedisCluster: the cluster did not reach cluster_state:ok within ${CLUSTER_OK_TIMEOUT_MS} ms (${states.join(', ')})`,
  );
}

/**
 * Starts a Redis Cluster of three masters (no replicas) on ephemeral ports of 127.0.0.1, for tests:
 * three `redis-server --cluster-enabled yes` nodes, joined by `redis-cli --cluster create`, and
 * resolves once every node reports `cluster_state:ok`. It always starts its own nodes (`REDIS_URL`
 * is not used). Expect it to take 1 to 5 s: `redis-cli` checks once a second whether the nodes
 * agree on the slots.
 *
 * Each node's cluster bus gets a free port of its own (`--cluster-port`), rather than the default
 * port + 10000, which is past 65535 for many ephemeral ports. The nodes die with the test process,
 * as servers of {@link startRedisServer} do; `close()` it in `afterAll`.
 *
 * @throws RedisServerMissingError when `redis-server` or `redis-cli` is not on `PATH` (code
 * `REDIS_SERVER_MISSING`).
 * @throws Error when a node does not start, `redis-cli --cluster create` fails (its output is in the
 * message), or the cluster is not ok within 10 s; the nodes started are stopped first.
 * @example
 * ```ts
 * const cluster = await startRedisCluster();
 * const client = new Cluster(cluster.nodes);
 * await client.set('key', 'value');
 * await client.quit();
 * await cluster.close();
 * ```
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const executables = await findExecutables({ cluster: true });
  const dir = await makeTempDir();
  const started = await Promise.allSettled(
    Array.from({ length: CLUSTER_SIZE }, () =>
      startOnFreePort(executables, dir, 2, ([port, busPort]) => [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '2000',
        '--cluster-port',
        String(busPort),
      ]),
    ),
  );
  const servers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stopAll = async () => {
    try {
      await Promise.all(servers.map((server) => server.stop(SERVER_TIMEOUT_MS)));
    } finally {
      await removeDir(dir);
    }
  };
  try {
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const ports = servers.map((server) => server.port);
    await runClusterCreate(executables.redisCli as string, ports);
    await waitForClusterOk(ports);
  } catch (error) {
    await stopAll();
    throw error;
  }
  let closed: Promise<void> | undefined;
  const run = serialize();
  const ports = servers.map((server) => server.port);
  return Object.freeze({
    nodes: Object.freeze(ports.map((port) => Object.freeze({ host: HOST, port }))),
    migrateSlot: (slot: number, to: number, options = {}) =>
      run(async () => {
        if (closed) throw new Error('RedisClusterHandle.migrateSlot: the handle is closed');
        if (!Number.isInteger(slot) || slot < 0 || slot > 16383 || ports[to] === undefined) {
          throw new Error(`RedisClusterHandle.migrateSlot: no slot ${slot} or node ${to}`);
        }
        return migrateSlot(executables.redisCli as string, ports, slot, to, options);
      }),
    close: () => (closed ??= run(stopAll)),
  });
}

/** One command on a node; an error reply rejects. */
async function nodeCommand(port: number, args: readonly string[]): Promise<string | null> {
  const reply = await sendRespCommand({ host: HOST, port, timeoutMs: 5_000 }, args);
  if (reply.type === 'error') throw new Error(`${args.slice(0, 2).join(' ')} on ${port}: ${reply.value}`);
  return reply.value;
}

/** `redis-cli` on a node, for the commands that answer arrays: one line per element. */
function cliLines(redisCli: string, port: number, args: readonly string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile(redisCli, ['-h', HOST, '-p', String(port), ...args], { timeout: 5_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout.split('\n').filter((line) => line !== ''));
    });
  });
}

/** The index of the node holding `slot`. */
async function slotOwner(ports: readonly number[], slot: number): Promise<number> {
  // CLUSTER SHARDS / SLOTS answer nested arrays; `CLUSTER NODES` is one text, with each node's ranges.
  const text = (await nodeCommand(ports[0]!, ['CLUSTER', 'NODES'])) ?? '';
  for (const line of text.split('\n')) {
    const [, address, , , , , , , ...ranges] = line.split(' ');
    const port = Number(address?.split('@')[0]?.split(':')[1]);
    const owns = ranges.some((range) => {
      if (range.startsWith('[')) return false; // a slot being migrated or imported
      const [from, until = from] = range.split('-').map(Number);
      return slot >= from! && slot <= until!;
    });
    if (owns) return ports.indexOf(port);
  }
  throw new Error(`RedisClusterHandle.migrateSlot: no node holds slot ${slot}`);
}

/** See {@link RedisClusterHandle.migrateSlot}. */
async function migrateSlot(
  redisCli: string,
  ports: readonly number[],
  slot: number,
  to: number,
  options: SlotMigrationOptions,
): Promise<number> {
  const from = await slotOwner(ports, slot);
  if (from === to) return from;
  const source = ports[from]!;
  const target = ports[to]!;
  const id = async (port: number): Promise<string> => (await nodeCommand(port, ['CLUSTER', 'MYID']))!;
  const [sourceId, targetId] = await Promise.all([id(source), id(target)]);
  const slotText = String(slot);
  await nodeCommand(target, ['CLUSTER', 'SETSLOT', slotText, 'IMPORTING', sourceId]);
  await nodeCommand(source, ['CLUSTER', 'SETSLOT', slotText, 'MIGRATING', targetId]);
  const step = String(Math.max(1, options.keysPerStep ?? 100));
  for (;;) {
    const keys = await cliLines(redisCli, source, ['CLUSTER', 'GETKEYSINSLOT', slotText, step]);
    if (keys.length === 0) break;
    await nodeCommand(source, ['MIGRATE', HOST, String(target), '', '0', '5000', 'KEYS', ...keys]);
    await options.betweenSteps?.();
  }
  // The new owner first, then the old one, then the rest (as `redis-cli --cluster reshard` does).
  for (const port of [target, source, ...ports.filter((p) => p !== source && p !== target)]) {
    await nodeCommand(port, ['CLUSTER', 'SETSLOT', slotText, 'NODE', targetId]);
  }
  return from;
}
