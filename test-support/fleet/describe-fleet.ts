/**
 * The fleet tests every shared store runs (store-redis and store-file): 8 processes × 500
 * concurrent callers on one expired key refresh a rotating refresh token exactly once, and a
 * process killed while holding the refresh lock mid-refresh is taken over without losing anything.
 * Real processes (worker.ts), a real oidc-provider.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Client, TokenManager } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { openStore } from './shared-store.js';
import type { SharedStore } from './shared-store.js';
import type { WorkerConfig, WorkerMessage } from './worker.js';

const workerPath = fileURLToPath(new URL('./worker.ts', import.meta.url));
const repository = fileURLToPath(new URL('../..', import.meta.url));

export interface Worker {
  child: ChildProcess;
  ready: Promise<void>;
  done: Promise<Extract<WorkerMessage, { type: 'done' }>>;
  events: Array<{ name: string; payload: Record<string, unknown> }>;
}

/**
 * Forks one fleet process (worker.ts) with `config`; it is added to `children` until it exits, so the
 * caller can SIGKILL what is left in `afterAll`.
 */
export function startWorker(config: WorkerConfig, children: Set<ChildProcess>): Worker {
  const child = fork(workerPath, [JSON.stringify(config)], {
    cwd: repository,
    execArgv: ['--conditions=tessera-source', '--import', 'tsx'],
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const events: Worker['events'] = [];
  let onReady: () => void = () => undefined;
  let onDone: (m: Extract<WorkerMessage, { type: 'done' }>) => void = () => undefined;
  let onExit: (error: Error) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (onExit = reject)));
  const done = new Promise<Extract<WorkerMessage, { type: 'done' }>>((resolve) => (onDone = resolve));
  // A worker that dies before it is ready fails the test at once instead of leaving it waiting.
  child.once('exit', (code, signal) =>
    onExit(new Error(`a fleet worker exited (${code ?? signal}) before it was ready`)),
  );
  child.on('message', (message: WorkerMessage) => {
    if (message.type === 'ready') onReady();
    else if (message.type === 'event') events.push(message);
    else onDone(message);
  });
  return { child, ready, done, events };
}

/**
 * Stores a real, rotating user token set of `server`'s whose access token has already expired, under
 * `key` (in the managers' `namespace`, the default one unless given). Returns its refresh token.
 */
export async function seedExpiredTokens(
  server: TestServer,
  shared: SharedStore,
  key: string,
  namespace?: string,
): Promise<string> {
  const client = await Client.discover(server.issuer, server.clients.basic);
  const store = await openStore(shared);
  const manager = new TokenManager({ client, store, key, ...(namespace === undefined ? {} : { namespace }) });
  try {
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access api:read' });
    await manager.storeTokens({ ...issued, expires_in: 0 } as never);
    return issued.refresh_token!;
  } finally {
    await manager.close();
    await store.close();
  }
}

/**
 * Writes the set stored under the store key `storeKey` back with its access token expired, as time
 * passing would. Returns its refresh token.
 */
export async function expireStored(shared: SharedStore, storeKey: string): Promise<string> {
  const store = await openStore(shared);
  try {
    const current = (await store.get(storeKey))!;
    await store.set(storeKey, { ...current, expiresAt: Math.floor(Date.now() / 1000) - 1 });
    return current.refreshToken!;
  } finally {
    await store.close();
  }
}

/** One wave of a fleet on an expired key: how many processes, with how many callers each. */
export interface FleetWaveOptions {
  server: TestServer;
  store: SharedStore;
  key: string;
  /** The managers' `namespace` (`''`: the store key is `key` itself). */
  namespace?: string;
  processes: number;
  calls: number;
  /** Called once every process has been told to go, while their callers are waiting. */
  during?: () => Promise<void>;
}

/**
 * What a wave cost and got: token requests, `token.refreshed` events, distinct tokens, and
 * rejections and bad events.
 */
export interface FleetWaveResult {
  requests: number;
  refreshed: number;
  fingerprints: number;
  bad: unknown[];
}

/**
 * `processes` fleet processes × `calls` concurrent callers at once on the expired `key`: the token
 * requests it cost (the server's stats are reset first), the refreshes the processes reported, the
 * distinct tokens the callers got, and every rejection, `refresh.failed` and `token.cleared`.
 */
export async function fleetWave(
  options: FleetWaveOptions,
  children: Set<ChildProcess>,
): Promise<FleetWaveResult> {
  const { server, store, key, namespace, processes, calls, during } = options;
  server.resetStats();
  const config: WorkerConfig = {
    issuer: server.issuer,
    client: server.clients.basic,
    store,
    key,
    calls,
    ...(namespace === undefined ? {} : { namespace }),
  };
  const workers = Array.from({ length: processes }, () => startWorker(config, children));
  await Promise.all(workers.map((w) => w.ready));
  for (const w of workers) w.child.send({ type: 'go' });
  await during?.();
  const results = await Promise.all(workers.map((w) => w.done));
  const events = workers.flatMap((w) => w.events);
  return {
    requests: server.stats().token,
    refreshed: events.filter((e) => e.name === 'token.refreshed').length,
    fingerprints: new Set(results.flatMap((r) => r.fingerprints)).size,
    bad: [
      ...results.flatMap((r) => r.rejected),
      ...events.filter((e) => e.name === 'refresh.failed' || e.name === 'token.cleared'),
    ],
  };
}

/**
 * Registers the fleet tests. `newStore` gives a fresh shared store (a key prefix, a directory) for
 * each test; it is called inside the tests, after the suite's own `beforeAll`.
 */
export function describeFleet(name: string, newStore: () => SharedStore): void {
  let server: TestServer;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    server = await startTestServer({ rotateRefreshTokens: true });
  }, 60_000);
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await server?.close();
  });

  describe(name, () => {
    it('8 processes × 500 concurrent callers on an expired key: exactly one refresh, no invalid_grant', async () => {
      const store = newStore();
      await seedExpiredTokens(server, store, 'shared');
      const wave = await fleetWave({ server, store, key: 'shared', processes: 8, calls: 500 }, children);
      expect(wave).toEqual({ requests: 1, refreshed: 1, fingerprints: 1, bad: [] });
    }, 90_000);

    it('a process killed while holding the lock mid-refresh: another takes over, no refresh token lost', async () => {
      const store = newStore();
      await seedExpiredTokens(server, store, 'shared');
      // A token endpoint that takes the request and never answers (nor forwards it).
      const held: http.ServerResponse[] = [];
      const blackhole = http.createServer((_req, res) => void held.push(res));
      await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
      const tokenEndpoint = `http://127.0.0.1:${(blackhole.address() as AddressInfo).port}/token`;
      const worker = startWorker(
        {
          issuer: server.issuer,
          client: server.clients.basic,
          store,
          key: 'shared',
          calls: 1,
          tokenEndpoint,
          lockTtlMs: 1500,
        },
        children,
      );
      await worker.ready;
      worker.child.send({ type: 'go' });
      while (held.length === 0) await new Promise((r) => setTimeout(r, 10));
      worker.child.kill('SIGKILL'); // dies holding the lock, mid-refresh
      server.resetStats();

      const client = await Client.discover(server.issuer, server.clients.basic);
      const survivorStore = await openStore(store);
      const survivor = new TokenManager({ client, store: survivorStore, key: 'shared' });
      const failures: unknown[] = [];
      survivor.on('refresh.failed', (e) => failures.push(e.error.code));
      await expect(survivor.getValidAccessToken()).resolves.toEqual(expect.any(String));
      expect(server.stats().token).toBe(1);
      expect(failures).toEqual([]);
      await survivor.close();
      await survivorStore.close();
      for (const res of held) res.destroy();
      blackhole.closeAllConnections();
      blackhole.close();
    }, 60_000);
  });
}
