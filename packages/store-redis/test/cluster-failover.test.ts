/**
 * A fleet of managers on a real Redis Cluster with a replica per master, against the real
 * authorization server with rotating refresh tokens: the master holding the key's slot is
 * SIGKILLed in the middle of a fleet refresh (the lock held, the rotated set answered but not yet
 * written). Its replica takes over; the expiry is still one refresh, every caller gets the new
 * token, and the next refresh presents the rotated refresh token (no `invalid_grant`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Cluster } from 'ioredis';
import { Client, TokenManager, TokenStoreError } from '@tessera/core';
import type { TesseraError, TokenStore } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { startRedisCluster, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, TestServer } from '@tessera/testing';

let server: TestServer;
let cluster: RedisClusterHandle;
let client: Client;
const connections: Cluster[] = [];
const managers: TokenManager[] = [];
const stores: RedisTokenStore[] = [];

beforeAll(async () => {
  [server, cluster] = await Promise.all([
    startTestServer({ rotateRefreshTokens: true }),
    startRedisCluster({ replicas: 1 }),
  ]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all(stores.map((s) => s.close()));
  for (const connection of connections) connection.disconnect();
  await Promise.all([server?.close(), cluster?.close()]);
});

/** Holds the next token set write of any store it wraps, until `open()`. */
class WriteGate {
  armed = false;
  #reached!: () => void;
  #open!: () => void;
  /** Resolves when a write is being held. */
  readonly reached = new Promise<void>((resolve) => (this.#reached = resolve));
  readonly #opened = new Promise<void>((resolve) => (this.#open = resolve));

  open(): void {
    this.#open();
  }

  /** `store`, its `setIfVersion` held by the gate once armed (everything else passes through). */
  wrap(store: RedisTokenStore): TokenStore {
    return new Proxy(store, {
      get: (target, property) => {
        if (property === 'setIfVersion')
          return async (...args: Parameters<RedisTokenStore['setIfVersion']>) => {
            if (this.armed) {
              this.armed = false;
              this.#reached();
              await this.#opened;
            }
            return target.setIfVersion(...args);
          };
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

function connection(): Cluster {
  const made = new Cluster(
    cluster.nodes.map((n) => ({ host: n.host, port: n.port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  made.on('error', () => undefined);
  connections.push(made);
  return made;
}

/**
 * A manager with a Cluster connection and a store of its own, as another process would have; its
 * writes and locks wait for the replica.
 */
function managerFor(prefix: string, gate: WriteGate): { manager: TokenManager; store: RedisTokenStore } {
  const store = new RedisTokenStore({
    client: connection(),
    keyPrefix: prefix,
    commandTimeoutMs: 2000,
    waitForReplicas: { replicas: 1, timeoutMs: 500 },
  });
  stores.push(store);
  const manager = new TokenManager({
    client,
    store: gate.wrap(store),
    namespace: '',
    retry: { minDelayMs: 10, maxDelayMs: 50 },
  });
  managers.push(manager);
  return { manager, store };
}

describe('RedisTokenStore when a Cluster master fails over', () => {
  it("4 managers, the key's master SIGKILLed mid-refresh: one refresh, every caller gets the new token, nothing lost", async () => {
    const prefix = `f-${randomUUID()}:`;
    const gate = new WriteGate();
    const fleet = Array.from({ length: 4 }, () => managerFor(prefix, gate));
    const failures: TesseraError[] = [];
    const storeFailures: TesseraError[] = [];
    let cleared = 0;
    for (const { manager } of fleet) {
      manager.on('refresh.failed', ({ error }) => failures.push(error));
      manager.on('token.cleared', () => (cleared += 1));
      manager.on('store.failed', ({ error }) => storeFailures.push(error));
    }
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    await fleet[0]!.manager.storeTokens(issued as never);
    const slot = Number(await connection().cluster('KEYSLOT', `${prefix}{default}:data`));

    /** The stored set written back with its access token expired, seen so by every manager. */
    const expire = async (): Promise<string> => {
      const current = (await fleet[0]!.store.get('default'))!;
      await fleet[0]!.store.set('default', { ...current, expiresAt: Math.floor(Date.now() / 1000) - 1 });
      for (const { manager } of fleet) {
        for (
          let seen = await manager.getTokens();
          seen?.accessToken !== current.accessToken || (seen.expiresAt ?? 0) * 1000 > Date.now();
          seen = await manager.getTokens()
        ) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      return current.accessToken;
    };
    /** 4 managers × 50 callers at once on the expired key: the tokens they got, and the requests. */
    const wave = async (
      duringIt?: () => Promise<void>,
    ): Promise<{ tokens: Set<string>; requests: number }> => {
      const before = server.stats().token;
      const calls = Promise.all(
        fleet.flatMap(({ manager }) => Array.from({ length: 50 }, () => manager.getValidAccessToken())),
      );
      await duringIt?.();
      const tokens = new Set(await calls);
      return { tokens, requests: server.stats().token - before };
    };

    const expired = await expire();
    gate.armed = true;
    const { tokens, requests } = await wave(async () => {
      await gate.reached; // the refresh answered (the grant rotated), its write held, the lock held
      const { killed, promoted } = await cluster.killMaster(slot);
      expect(promoted.port).not.toBe(killed.port);
      gate.open();
    });
    expect(requests).toBe(1);
    expect(tokens.size).toBe(1);
    expect(tokens.has(expired)).toBe(false);
    expect(failures).toEqual([]);
    expect(cleared).toBe(0);
    // Reported, typed: the promoted master has no replica to acknowledge the write and the locks
    // (WAIT), which the managers got past with the token set the holder wrote.
    expect(storeFailures.length).toBeGreaterThan(0);
    for (const error of storeFailures) expect(error).toBeInstanceOf(TokenStoreError);

    // The killed node back as the promoted one's replica: the next expiry is one refresh, with the
    // rotated refresh token (a lost one would be invalid_grant, and the grant revoked).
    await cluster.revive();
    const rotated = (await fleet[0]!.store.get('default'))!;
    expect(rotated.accessToken).toBe([...tokens][0]);
    await expire();
    const next = await wave();
    expect(next.requests).toBe(1);
    expect(next.tokens.size).toBe(1);
    expect(failures).toEqual([]);
    expect(cleared).toBe(0);
  }, 60_000);
});
