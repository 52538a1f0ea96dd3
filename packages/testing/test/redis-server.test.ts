import { existsSync } from 'node:fs';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect as connectTcp } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import {
  RedisServerMissingError,
  startRedisCluster,
  startRedisServer,
  type RedisClusterHandle,
  type RedisServerHandle,
} from '@tessera/testing';
import { findExecutable } from '../src/internal/find-executable.js';

/** A client that never retries or queues, so a command against a stopped server fails at once. */
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  maxRetriesPerRequest: 0,
  enableOfflineQueue: false,
  retryStrategy: () => null,
  connectTimeout: 2_000,
};

const clients: Array<Redis | Cluster> = [];
const handles: Array<RedisServerHandle | RedisClusterHandle> = [];

/** A connected client; errors it emits are expected here, so they are swallowed, not logged. */
async function connect(url: string): Promise<Redis> {
  const client = new Redis(url, FAIL_FAST);
  client.on('error', () => undefined);
  clients.push(client);
  await client.connect();
  return client;
}

/** Resolves with the error code of a plain TCP connection to the port: `ECONNREFUSED` once it is closed. */
function tcpConnectError(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connectTcp({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
  });
}

async function ownServer(): Promise<RedisServerHandle> {
  const server = await startRedisServer({ useEnv: false });
  handles.push(server);
  return server;
}

/** Runs `body` with environment variables set (`undefined` deletes one), then restores them. */
async function withEnv(vars: Record<string, string | undefined>, body: () => Promise<void>): Promise<void> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [name, value] of Object.entries(values)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(vars);
  try {
    await body();
  } finally {
    apply(saved);
  }
}

afterAll(async () => {
  // disconnect() of a client that already lost its server leaves a 2 s timer: skip those.
  for (const client of clients) if (client.status !== 'end') client.disconnect();
  await Promise.all(handles.map((handle) => handle.close()));
});

describe('startRedisServer', () => {
  let server: RedisServerHandle;

  beforeAll(async () => {
    server = await ownServer();
  });

  it('starts a managed server on an ephemeral port of 127.0.0.1', () => {
    expect(server).toMatchObject({
      host: '127.0.0.1',
      managed: true,
      url: `redis://127.0.0.1:${server.port}`,
    });
    expect(server.port).toBeGreaterThan(0);
    expect(Object.isFrozen(server)).toBe(true);
  });

  it('answers SET and GET', async () => {
    const client = await connect(server.url);
    await client.set('greeting', 'hello');
    await expect(client.get('greeting')).resolves.toBe('hello');
    await expect(client.config('GET', 'save')).resolves.toEqual(['save', '']);
    await expect(client.config('GET', 'appendonly')).resolves.toEqual(['appendonly', 'no']);
  });

  it('stop() closes the port, so commands fail at once; start() comes back empty on the same port', async () => {
    const before = await connect(server.url);
    await before.set('survives', 'no');
    const { port } = server;

    await server.stop();
    await expect(before.get('survives')).rejects.toThrow();
    await expect(tcpConnectError(port)).resolves.toBe('ECONNREFUSED');
    await expect(connect(server.url)).rejects.toThrow();
    await server.stop(); // already stopped: nothing to do

    await server.start();
    expect(server.port).toBe(port);
    const after = await connect(server.url);
    await expect(after.get('survives')).resolves.toBeNull();
    await after.set('new', 'value');
    await expect(after.get('new')).resolves.toBe('value');
    await server.start(); // already running: nothing to do
    await expect(after.ping()).resolves.toBe('PONG');
  });

  it('kill() crashes the server; start() brings it back on the same port', async () => {
    const before = await connect(server.url);
    await before.set('crash', 'soon');

    await server.kill();
    await expect(before.get('crash')).rejects.toThrow();
    await expect(tcpConnectError(server.port)).resolves.toBe('ECONNREFUSED');
    await expect(connect(server.url)).rejects.toThrow();

    await server.start();
    const after = await connect(server.url);
    await expect(after.get('crash')).resolves.toBeNull();
    await after.set('crash', 'again');
    await expect(after.get('crash')).resolves.toBe('again');
  });

  it('close() is idempotent, removes the temporary directory and ends the handle', async () => {
    const closing = await ownServer();
    const client = await connect(closing.url);
    const [, dir] = (await client.config('GET', 'dir')) as [string, string];
    expect(existsSync(dir)).toBe(true);

    await Promise.all([closing.close(), closing.close()]);
    await closing.close();
    expect(existsSync(dir)).toBe(false);
    await expect(tcpConnectError(closing.port)).resolves.toBe('ECONNREFUSED');
    await expect(closing.start()).rejects.toThrow(/closed/);
    await expect(closing.stop()).rejects.toThrow(/closed/);
  });

  it('uses the server at REDIS_URL, which it does not manage, unless useEnv is false', async () => {
    await withEnv({ REDIS_URL: server.url }, async () => {
      const external = await startRedisServer();
      expect(external).toMatchObject({
        host: '127.0.0.1',
        port: server.port,
        url: server.url,
        managed: false,
      });
      await expect(external.stop()).rejects.toThrow(/not started by this harness/);
      await expect(external.kill()).rejects.toThrow(/not started by this harness/);
      await expect(external.start()).rejects.toThrow(/not started by this harness/);
      await external.close();
      await expect((await connect(server.url)).ping()).resolves.toBe('PONG');

      const own = await ownServer();
      expect(own.managed).toBe(true);
      expect(own.port).not.toBe(server.port);
    });
  });

  it('rejects when the server at REDIS_URL does not answer', async () => {
    const gone = await ownServer();
    await gone.close();
    await withEnv({ REDIS_URL: gone.url }, async () => {
      await expect(startRedisServer()).rejects.toThrow(/REDIS_URL .* is not reachable/);
    });
  });
});

describe('RedisServerMissingError', () => {
  let emptyDir: string;

  beforeAll(async () => {
    emptyDir = await mkdtemp(join(tmpdir(), 'tessera-redis-path-'));
  });

  afterAll(async () => {
    await rm(emptyDir, { recursive: true, force: true });
  });

  it('says how to install redis-server when it is not on PATH', async () => {
    await withEnv({ PATH: emptyDir }, async () => {
      const error = await startRedisServer({ useEnv: false }).catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(RedisServerMissingError);
      expect(error).toMatchObject({
        name: 'RedisServerMissingError',
        code: 'REDIS_SERVER_MISSING',
        executable: 'redis-server',
      });
      const { message } = error as Error;
      expect(message).toContain('apt-get update && apt-get install -y redis-server');
      expect(message).toContain('brew install redis');
      expect(message).toContain('REDIS_URL');
    });
  });

  it('names redis-cli when the cluster needs it and only redis-server is on PATH', async () => {
    const redisServer = await findExecutable('redis-server', process.env.PATH);
    expect(redisServer).toBeDefined();
    const onlyServer = await mkdtemp(join(emptyDir, 'only-server-'));
    await symlink(redisServer as string, join(onlyServer, 'redis-server'));
    await withEnv({ PATH: onlyServer }, async () => {
      const error = await startRedisCluster().catch((thrown: unknown) => thrown);
      expect(error).toBeInstanceOf(RedisServerMissingError);
      expect(error).toMatchObject({ code: 'REDIS_SERVER_MISSING', executable: 'redis-cli' });
      expect((error as Error).message).toContain('apt-get update && apt-get install -y redis-server');
    });
  });
});

describe('startRedisCluster', () => {
  let cluster: RedisClusterHandle;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    handles.push(cluster);
  }, 45_000);

  it('starts three masters on distinct ports of 127.0.0.1, each owning slots', async () => {
    expect(cluster.nodes).toHaveLength(3);
    expect(new Set(cluster.nodes.map((node) => node.port)).size).toBe(3);
    for (const node of cluster.nodes) {
      expect(node.host).toBe('127.0.0.1');
      const client = await connect(`redis://${node.host}:${node.port}`);
      const info = await client.cluster('INFO');
      expect(info).toMatch(/^cluster_state:ok\r$/m);
      expect(info).toMatch(/^cluster_known_nodes:3\r$/m);
      expect(info).toMatch(/^cluster_size:3\r$/m);
    }
  });

  it('serves an ioredis Cluster client: keys land on every node and read back', async () => {
    const client = new Cluster(
      cluster.nodes.map(({ host, port }) => ({ host, port })),
      { clusterRetryStrategy: () => null, redisOptions: { maxRetriesPerRequest: 0 } },
    );
    client.on('error', () => undefined);
    clients.push(client);
    const keys = Array.from({ length: 30 }, (_, i) => `tessera:key:${i}`);

    await Promise.all(keys.map((key) => client.set(key, `value of ${key}`)));

    const keysPerNode = await Promise.all(
      cluster.nodes.map(async ({ host, port }) => (await connect(`redis://${host}:${port}`)).dbsize()),
    );
    expect(keysPerNode.every((count) => count > 0)).toBe(true);
    expect(keysPerNode.reduce((sum, count) => sum + count, 0)).toBe(keys.length);
    await expect(Promise.all(keys.map((key) => client.get(key)))).resolves.toEqual(
      keys.map((key) => `value of ${key}`),
    );
  });

  it('migrateSlot() moves a slot and its keys a step at a time: ASK for moved keys mid-way, MOVED after', async () => {
    const client = new Cluster(
      cluster.nodes.map(({ host, port }) => ({ host, port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    client.on('error', () => undefined);
    clients.push(client);
    const keys = ['{moving}:a', '{moving}:b', '{moving}:c'];
    await Promise.all(keys.map((key) => client.set(key, `value of ${key}`)));
    const slot = Number(await client.cluster('KEYSLOT', keys[0]!));
    const ranges = (await client.cluster('SLOTS')) as unknown as Array<[number, number, [string, number]]>;
    const owner = ranges.find(([start, end]) => start <= slot && slot <= end)![2][1];
    const from = cluster.nodes.findIndex((node) => node.port === owner);
    const to = (from + 1) % cluster.nodes.length;
    const source = await connect(`redis://127.0.0.1:${owner}`);

    const redirects: string[][] = [];
    const returned = await cluster.migrateSlot(slot, to, {
      keysPerStep: 1,
      betweenSteps: async () => {
        // The source still owns the slot: a key it still has it answers, a moved one is ASKed for.
        const answers = await Promise.all(
          keys.map((key) =>
            source.get(key).then(
              () => 'here',
              (error: Error) => error.message.split(' ')[0]!,
            ),
          ),
        );
        redirects.push(answers);
      },
    });

    expect(returned).toBe(from);
    // One key a step (in whatever order Redis lists them): one more ASK after each step.
    expect(redirects.map((answers) => answers.filter((answer) => answer === 'ASK').length)).toEqual([
      1, 2, 3,
    ]);
    expect(redirects.flat().filter((answer) => answer !== 'ASK' && answer !== 'here')).toEqual([]);
    await expect(source.get(keys[0]!)).rejects.toThrow(/^MOVED /);
    await expect(Promise.all(keys.map((key) => client.get(key)))).resolves.toEqual(
      keys.map((key) => `value of ${key}`),
    );
    // Already there: nothing to do.
    let steps = 0;
    await expect(
      cluster.migrateSlot(slot, to, { betweenSteps: async () => void (steps += 1) }),
    ).resolves.toBe(to);
    expect(steps).toBe(0);
  });

  it('has no replicas, so killMaster() refuses', async () => {
    expect(cluster.replicas).toEqual([]);
    await expect(cluster.killMaster(0)).rejects.toThrow('the cluster has no replicas');
  });

  it('close() is idempotent', async () => {
    const ports = cluster.nodes.map((node) => node.port);
    await Promise.all([cluster.close(), cluster.close()]);
    await cluster.close();
    for (const port of ports) {
      await expect(tcpConnectError(port)).resolves.toBe('ECONNREFUSED');
    }
  });
});

describe('startRedisCluster({ replicas: 1 })', () => {
  let cluster: RedisClusterHandle;

  beforeAll(async () => {
    cluster = await startRedisCluster({ replicas: 1 });
    handles.push(cluster);
  }, 45_000);

  it('starts three masters with a replica each', async () => {
    expect(cluster.nodes).toHaveLength(3);
    expect(cluster.replicas).toHaveLength(3);
    const masters = new Set(cluster.nodes.map((node) => node.port));
    for (const replica of cluster.replicas) {
      expect(masters.has(replica.port)).toBe(false);
      const client = await connect(`redis://${replica.host}:${replica.port}`);
      const replication = await client.info('replication');
      expect(replication).toMatch(/^role:slave\r$/m);
      expect(masters.has(Number(/^master_port:(\d+)\r$/m.exec(replication)![1]))).toBe(true);
      expect(await client.cluster('INFO')).toMatch(/^cluster_known_nodes:6\r$/m);
    }
  });

  it("killMaster() fails the slot's master over to its replica, which keeps what was replicated; revive() brings the node back as its replica", async () => {
    const client = new Cluster(
      cluster.nodes.map(({ host, port }) => ({ host, port })),
      { redisOptions: { maxRetriesPerRequest: 1 } },
    );
    client.on('error', () => undefined);
    clients.push(client);
    await client.set('tessera:failover', 'kept');
    const slot = Number(await client.cluster('KEYSLOT', 'tessera:failover'));
    const replicated = await client.pipeline().exists('tessera:failover').wait(1, 1000).exec();
    expect(replicated?.[1]).toEqual([null, 1]);

    const { killed, promoted } = await cluster.killMaster(slot);
    expect(cluster.nodes.map((node) => node.port)).toContain(killed.port);
    expect(cluster.replicas.map((node) => node.port)).toContain(promoted.port);
    await expect(tcpConnectError(killed.port)).resolves.toBe('ECONNREFUSED');
    const direct = await connect(`redis://${promoted.host}:${promoted.port}`);
    expect(await direct.info('replication')).toMatch(/^role:master\r$/m);
    expect(await direct.get('tessera:failover')).toBe('kept');

    await cluster.revive();
    expect(await direct.info('replication')).toMatch(/^connected_slaves:1\r$/m);
    const revived = await connect(`redis://${killed.host}:${killed.port}`);
    expect(await revived.info('replication')).toMatch(new RegExp(`^master_port:${promoted.port}\r$`, 'm'));
    await cluster.revive(); // nothing is down: does nothing
  }, 45_000);
});
