/**
 * A fleet of processes sharing tokens through Redis: one refresh serves them all.
 *
 * Starts the embedded authorization server (rotating refresh tokens) and a Redis (its own
 * redis-server on an ephemeral port, or REDIS_URL), stores a user's already-expired tokens, then
 * starts N worker processes that each ask for a valid access token 100 times at once. Each worker
 * prints its events: exactly one of them refreshes; the others pick the new token up from Redis.
 *
 *   pnpm example examples/redis-fleet.ts [workers, default 4]
 */
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, TokenManager } from '@tessera/core';
import type { ClientMetadata } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisServer, startTestServer } from '@tessera/testing';

interface WorkerSetup {
  issuer: string;
  client: ClientMetadata;
  redisUrl: string;
  keyPrefix: string;
}

const KEY = 'user:alice';

if (process.argv[2] === '--worker') {
  await runWorker(JSON.parse(process.argv[3]!) as WorkerSetup, Number(process.argv[4]));
} else {
  await runFleet(Number(process.argv[2] ?? 4));
}

async function runFleet(workers: number): Promise<void> {
  const [server, redis] = await Promise.all([
    startTestServer({ rotateRefreshTokens: true }),
    startRedisServer(),
  ]);
  try {
    console.log(`authorization server ${server.issuer}, Redis ${redis.url}`);
    const setup: WorkerSetup = {
      issuer: server.issuer,
      client: server.clients.basic,
      redisUrl: redis.url,
      keyPrefix: `fleet-demo-${Date.now()}:`,
    };

    // Alice signed in earlier; her access token has just expired, her refresh token rotates on use.
    const store = new RedisTokenStore({ url: redis.url, keyPrefix: setup.keyPrefix });
    const seeder = new TokenManager({
      client: await Client.discover(server.issuer, server.clients.basic),
      store,
      key: KEY,
    });
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    await seeder.storeTokens({ ...issued, expires_in: 0 } as never);
    await seeder.close();
    await store.close();
    server.resetStats();
    console.log(
      `stored alice's expired tokens in Redis; starting ${workers} workers, 100 concurrent calls each\n`,
    );

    const self = fileURLToPath(import.meta.url);
    const exits = Array.from(
      { length: workers },
      (_, index) =>
        new Promise<number>((resolve) => {
          const child = fork(self, ['--worker', JSON.stringify(setup), String(index + 1)], {
            execArgv: ['--conditions=tessera-source', '--import', 'tsx'],
            env: { ...process.env, NODE_OPTIONS: '' },
          });
          child.once('exit', (code) => resolve(code ?? 1));
        }),
    );
    const codes = await Promise.all(exits);
    console.log(`\nrefresh requests the authorization server received: ${server.stats().token}`);
    if (codes.some((code) => code !== 0)) process.exitCode = 1;
  } finally {
    await Promise.all([server.close(), redis.close()]);
  }
}

async function runWorker(setup: WorkerSetup, index: number): Promise<void> {
  const say = (text: string) => console.log(`[worker ${index}] ${text}`);
  const client = await Client.discover(setup.issuer, setup.client);
  const store = new RedisTokenStore({ url: setup.redisUrl, keyPrefix: setup.keyPrefix });
  const manager = new TokenManager({ client, store, key: KEY });
  manager.on('token.refreshed', ({ key, rotated, durationMs }) =>
    say(`token.refreshed key=${key} rotated=${rotated} durationMs=${durationMs}`),
  );
  manager.on('refresh.failed', ({ key, error }) =>
    say(`refresh.failed key=${key} ${error.code} ${error.message}`),
  );
  manager.on('store.failed', ({ key, operation, error }) =>
    say(`store.failed key=${key} ${operation} ${error.message}`),
  );
  try {
    const tokens = await Promise.all(Array.from({ length: 100 }, () => manager.getValidAccessToken()));
    const distinct = new Set(tokens.map((t) => createHash('sha256').update(t).digest('hex').slice(0, 12)));
    say(`100 calls answered with ${distinct.size} token (sha256:${[...distinct].join(', ')})`);
  } finally {
    await manager.close();
    await store.close();
  }
}
