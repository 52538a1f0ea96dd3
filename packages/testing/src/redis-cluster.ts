import { execFile } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
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

/** Bound on `redis-cli --cluster create`, which polls once a second until the nodes agree. */
const CLUSTER_CREATE_TIMEOUT_MS = 30_000;

/** Bound on waiting for `cluster_state:ok` on every node after `--cluster create`. */
const CLUSTER_OK_TIMEOUT_MS = 10_000;

const MASTERS = 3;

/**
 * How long a silent node stays up for the others (`cluster-node-timeout`): short with replicas, so
 * that a killed master fails over in about 2 s.
 */
const NODE_TIMEOUT_MS = { withReplicas: 1_000, withoutReplicas: 2_000 } as const;

/** Bound on a failover after a kill, and on a revived node's resync. */
const FAILOVER_TIMEOUT_MS = 20_000;

/** How {@link RedisClusterHandle.migrateSlot} moves a slot's keys. */
export interface SlotMigrationOptions {
  /** How many keys one `MIGRATE` moves (1: every key alone, the longest window). @default 100 */
  keysPerStep?: number;
  /** Awaited after each `MIGRATE`, to let clients run mid-migration (they see `ASK`). */
  betweenSteps?: () => Promise<void>;
}

/** Options of {@link startRedisCluster}. */
export interface RedisClusterOptions {
  /**
   * Replicas per master: `1` starts six nodes, each master with a replica that takes over its slots
   * when it dies ({@link RedisClusterHandle.killMaster}). @default 0
   */
  replicas?: 0 | 1;
}

/** A node of a Redis Cluster: an address on 127.0.0.1. */
export interface RedisClusterNode {
  /** The node's address, `127.0.0.1`. */
  readonly host: string;
  /** The node's port (ephemeral). */
  readonly port: number;
}

/** What {@link RedisClusterHandle.killMaster} did. */
export interface RedisClusterFailover {
  /** The master that was SIGKILLed. */
  readonly killed: RedisClusterNode;
  /** Its replica, which holds its slots now. */
  readonly promoted: RedisClusterNode;
}

/** A Redis Cluster for tests, from {@link startRedisCluster}. */
export interface RedisClusterHandle {
  /** The three nodes that started as masters; hand any of them to a cluster client. */
  readonly nodes: readonly RedisClusterNode[];
  /** The nodes that started as replicas (with `replicas: 1`, one per master), else none. */
  readonly replicas: readonly RedisClusterNode[];
  /**
   * A crash: SIGKILLs the master that holds `slot` now (whatever it had not replicated yet is
   * lost), and resolves once its replica has taken its slots over and every node that is up
   * reports `cluster_state:ok` (about 2 s). The killed node stays down until
   * {@link RedisClusterHandle.revive}; meanwhile the promoted node has no replica.
   * @throws Error when the cluster has no replicas, or no failover happened within 20 s.
   */
  killMaster(slot: number): Promise<RedisClusterFailover>;
  /**
   * Starts every node that `killMaster()` killed again on its port, empty: the cluster makes it a
   * replica of the node that took its slots. Resolves once it is in sync. Does nothing when no node
   * is down.
   * @throws Error when a node does not come back in sync within 20 s.
   */
  revive(): Promise<void>;
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

function runClusterCreate(redisCli: string, ports: readonly number[], replicas: number): Promise<void> {
  const args = ['--cluster', 'create', ...ports.map((port) => `${HOST}:${port}`)];
  args.push('--cluster-replicas', String(replicas), '--cluster-yes');
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
 * Starts a Redis Cluster of three masters on ephemeral ports of 127.0.0.1, for tests: `redis-server
 * --cluster-enabled yes` nodes, joined by `redis-cli --cluster create`, and resolves once every
 * node reports `cluster_state:ok` (and, with `replicas: 1`, every replica is in sync). It always
 * starts its own nodes (`REDIS_URL` is not used). Expect it to take 1 to 5 s: `redis-cli` checks
 * once a second whether the nodes agree on the slots.
 *
 * With `replicas: 1`, six nodes: each master has a replica, and a master that
 * {@link RedisClusterHandle.killMaster} kills fails over to it in about 2 s
 * (`cluster-node-timeout` 1000 ms).
 *
 * Each node's cluster bus gets a free port of its own (`--cluster-port`), rather than the default
 * port + 10000, which is past 65535 for many ephemeral ports. The nodes die with the test process,
 * as servers of `startRedisServer` do; `close()` it in `afterAll`.
 *
 * @param options - `replicas`: replicas per master, 0 (the default) or 1.
 * @throws RedisServerMissingError when `redis-server` or `redis-cli` is not on `PATH` (code
 * `REDIS_SERVER_MISSING`).
 * @throws Error when a node does not start, `redis-cli --cluster create` fails (its output is in the
 * message), or the cluster is not ok within 10 s; the nodes started are stopped first.
 * @example
 * ```ts
 * const cluster = await startRedisCluster({ replicas: 1 });
 * const client = new Cluster(cluster.nodes);
 * await client.set('key', 'value');
 * await cluster.killMaster(Number(await client.cluster('KEYSLOT', 'key'))); // its replica takes over
 * await client.quit();
 * await cluster.close();
 * ```
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const replicas = options.replicas ?? 0;
  if (replicas !== 0 && replicas !== 1) throw new Error('startRedisCluster: replicas must be 0 or 1');
  const executables = await findExecutables({ cluster: true });
  const redisCli = executables.redisCli as string;
  const dir = await makeTempDir();
  /** Each node's arguments, by port: a revived node starts again with its own. */
  const argsByPort = new Map<number, string[]>();
  const nodeTimeout = replicas > 0 ? NODE_TIMEOUT_MS.withReplicas : NODE_TIMEOUT_MS.withoutReplicas;
  const started = await Promise.allSettled(
    Array.from({ length: MASTERS * (1 + replicas) }, () =>
      startOnFreePort(executables, dir, 2, ([port, busPort]) => {
        const args = [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          String(nodeTimeout),
          '--cluster-port',
          String(busPort),
          // A replica takes over however long it was cut off; a resync after a revive starts at once.
          '--cluster-replica-validity-factor',
          '0',
          '--repl-diskless-sync-delay',
          '0',
        ];
        argsByPort.set(port!, args);
        return args;
      }),
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
  let roles: ClusterNodeLine[];
  try {
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const ports = servers.map((server) => server.port);
    await runClusterCreate(redisCli, ports, replicas);
    await waitForClusterOk(ports);
    if (replicas > 0) await waitFor('every replica in sync', () => replicasInSync(ports, replicas));
    roles = await clusterNodes(ports[0]!);
  } catch (error) {
    await stopAll();
    throw error;
  }
  let closed: Promise<void> | undefined;
  const run = serialize();
  const address = (port: number): RedisClusterNode => Object.freeze({ host: HOST, port });
  const masterPorts = roles.filter((node) => node.master).map((node) => node.port);
  const replicaPorts = roles.filter((node) => !node.master).map((node) => node.port);
  const ensureOpen = (method: string): void => {
    if (closed) throw new Error(`RedisClusterHandle.${method}: the handle is closed`);
  };
  const checkSlot = (method: string, slot: number): void => {
    if (!Number.isInteger(slot) || slot < 0 || slot > 16383)
      throw new Error(`RedisClusterHandle.${method}: no slot ${slot}`);
  };
  const livePorts = (): number[] => servers.filter((server) => server.running).map((server) => server.port);
  return Object.freeze({
    nodes: Object.freeze(masterPorts.map(address)),
    replicas: Object.freeze(replicaPorts.map(address)),
    migrateSlot: (slot: number, to: number, migration = {}) =>
      run(async () => {
        ensureOpen('migrateSlot');
        checkSlot('migrateSlot', slot);
        if (masterPorts[to] === undefined) throw new Error(`RedisClusterHandle.migrateSlot: no node ${to}`);
        return migrateSlot(redisCli, masterPorts, slot, to, migration);
      }),
    killMaster: (slot: number) =>
      run(async () => {
        ensureOpen('killMaster');
        checkSlot('killMaster', slot);
        if (replicas === 0) throw new Error('RedisClusterHandle.killMaster: the cluster has no replicas');
        const killed = await slotOwner(livePorts()[0]!, slot);
        await servers.find((server) => server.port === killed)!.kill(SERVER_TIMEOUT_MS);
        const promoted = await waitFor('the failover after the kill', async () => {
          const up = livePorts();
          const owners = await Promise.all(up.map((port) => slotOwner(port, slot)));
          const owner = owners[0];
          const agreed = owner !== killed && owners.every((port) => port === owner);
          if (!agreed || !(await everyNodeOk(up))) return undefined;
          return owner;
        });
        return Object.freeze({ killed: address(killed), promoted: address(promoted!) });
      }),
    revive: () =>
      run(async () => {
        ensureOpen('revive');
        for (const [index, server] of servers.entries()) {
          if (server.running) continue;
          servers[index] = await RedisProcess.start({
            redisServer: executables.redisServer,
            setpriv: executables.setpriv,
            port: server.port,
            dir,
            extraArgs: argsByPort.get(server.port),
            readyTimeoutMs: SERVER_TIMEOUT_MS,
          });
        }
        await waitFor('the revived nodes in sync', async () => {
          const up = livePorts();
          return (
            (await everyNodeOk(up)) &&
            (await replicasInSync(up, replicas)) &&
            (await writesReachReplicas(redisCli, up))
          );
        });
      }),
    close: () => (closed ??= run(stopAll)),
  });
}

/** One line of `CLUSTER NODES`: a node's port, role, health and slots. */
interface ClusterNodeLine {
  readonly id: string;
  readonly port: number;
  readonly master: boolean;
  /** Flagged `fail` or `fail?` by the node asked. */
  readonly failing: boolean;
  /** The id of its master, for a replica. */
  readonly masterId: string | undefined;
  /** Slot ranges, `[from, until]`, without the slots being migrated or imported. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

/** What the node at `port` knows of the cluster (`CLUSTER NODES`, one text, rather than nested arrays). */
async function clusterNodes(port: number): Promise<ClusterNodeLine[]> {
  const text = (await nodeCommand(port, ['CLUSTER', 'NODES'])) ?? '';
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id = '', address = '', flags = '', masterId = '-', , , , , ...slots] = line.trim().split(' ');
      const flagList = flags.split(',');
      return {
        id,
        port: Number(address.split('@')[0]?.split(':').pop()),
        master: flagList.includes('master'),
        failing: flagList.includes('fail') || flagList.includes('fail?'),
        masterId: masterId === '-' ? undefined : masterId,
        ranges: slots
          .filter((range) => !range.startsWith('[')) // a slot being migrated or imported
          .map((range) => {
            const [from, until = from] = range.split('-').map(Number);
            return [from!, until!] as const;
          }),
      };
    });
}

/** The port of the master holding `slot`, as the node at `askPort` sees it. */
async function slotOwner(askPort: number, slot: number): Promise<number> {
  const owner = (await clusterNodes(askPort)).find(
    (node) => node.master && node.ranges.some(([from, until]) => slot >= from && slot <= until),
  );
  if (owner === undefined) throw new Error(`RedisClusterHandle: no node holds slot ${slot}`);
  return owner.port;
}

/** Whether every node in `ports` reports `cluster_state:ok` and sees none of the others failing. */
async function everyNodeOk(ports: readonly number[]): Promise<boolean> {
  const views = await Promise.all(
    ports.map(async (port) => ({ info: await clusterInfo(port), nodes: await clusterNodes(port) })),
  );
  return views.every(
    ({ info, nodes }) =>
      /^cluster_state:ok\r?$/m.test(info) &&
      nodes.filter((node) => ports.includes(node.port)).every((node) => !node.failing),
  );
}

/**
 * Whether every node among `ports` is a master with `replicas` replicas online or a replica linked
 * to its master and done syncing, and there are as many masters as at the start. (A revived node
 * first takes itself for the master it was, until the cluster tells it otherwise.)
 */
async function replicasInSync(ports: readonly number[], replicas: number): Promise<boolean> {
  const replications = await Promise.all(ports.map((port) => info(port, 'replication')));
  const masters = replications.filter((replication) => infoField(replication, 'role') === 'master');
  return (
    masters.length === MASTERS &&
    masters.every((replication) => onlineReplicas(replication) === replicas) &&
    replications.every(
      (replication) =>
        infoField(replication, 'role') === 'master' ||
        (infoField(replication, 'master_link_status') === 'up' &&
          infoField(replication, 'master_sync_in_progress') === '0'),
    )
  );
}

/**
 * Whether a write on each master now reaches its replica (a key in one of its slots): a replica the
 * master counts online may still be loading what it was sent.
 */
async function writesReachReplicas(redisCli: string, ports: readonly number[]): Promise<boolean> {
  const nodes = await clusterNodes(ports[0]!);
  const masters = nodes.filter((node) => node.master && ports.includes(node.port) && node.ranges.length > 0);
  const acknowledged = await Promise.all(
    masters.map(async (master) => {
      // Redis says which slot a name hashes to: try names until one is the master's.
      for (let i = 0; i < 100_000; i += 1) {
        const key = `tessera-harness:probe:${i}`;
        const slot = Number(await nodeCommand(master.port, ['CLUSTER', 'KEYSLOT', key]));
        if (!master.ranges.some(([from, until]) => slot >= from && slot <= until)) continue;
        return writeReachesReplica(redisCli, master.port, key);
      }
      throw new Error(`no key name hashes to a slot of the master on ${master.port}`);
    }),
  );
  return acknowledged.every(Boolean);
}

/** Polls `check` until it returns a value, or throws after {@link FAILOVER_TIMEOUT_MS} saying `what`. */
function waitFor<T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> {
  return pollUntil('RedisClusterHandle', what, FAILOVER_TIMEOUT_MS, check);
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
    const child = execFile(
      redisCli,
      ['-h', HOST, '-p', String(port), ...args],
      { timeout: 5_000 },
      (error, stdout) => {
        if (error) reject(error);
        else resolve(stdout.split('\n').filter((line) => line !== ''));
      },
    );
    child.stdin?.end(); // the command is in the arguments: nothing to read
  });
}

/** See {@link RedisClusterHandle.migrateSlot}. */
async function migrateSlot(
  redisCli: string,
  ports: readonly number[],
  slot: number,
  to: number,
  options: SlotMigrationOptions,
): Promise<number> {
  const from = ports.indexOf(await slotOwner(ports[0]!, slot));
  if (from === -1) throw new Error(`RedisClusterHandle.migrateSlot: slot ${slot} is on a promoted replica`);
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
