/**
 * A fleet of managers on a real Redis Cluster with a replica per master, against the real
 * authorization server with rotating refresh tokens: the master holding the key's slot is
 * SIGKILLed in the middle of a fleet refresh (the lock held, the rotated set answered but not yet
 * written). Its replica takes over; the expiry is still one refresh, every caller gets the new
 * token, and the next refresh presents the rotated refresh token (no `invalid_grant`).
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Client, TokenStoreError } from '@tessera/core';
import type { TokenStore } from '@tessera/core';
import type { RedisTokenStore } from '@tessera/store-redis';
import { startRedisCluster, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, TestServer } from '@tessera/testing';
import { ClusterManagers } from './fixtures/cluster-managers.js';

let server: TestServer;
let cluster: RedisClusterHandle;
let client: Client;
const fleets: ClusterManagers[] = [];

beforeAll(async () => {
  [server, cluster] = await Promise.all([
    startTestServer({ rotateRefreshTokens: true }),
    startRedisCluster({ replicas: 1 }),
  ]);
  client = await Client.discover(server.issuer, server.clients.basic, { retry: { retries: 0 } });
}, 60_000);
afterAll(async () => {
  await Promise.all(fleets.map((fleet) => fleet.close()));
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

describe('RedisTokenStore when a Cluster master fails over', () => {
  it("4 managers, the key's master SIGKILLed mid-refresh: one refresh, every caller gets the new token, nothing lost", async () => {
    const gate = new WriteGate();
    // Its writes and locks wait for the replica.
    const fleet = new ClusterManagers({
      cluster,
      server,
      client,
      keyPrefix: `f-${randomUUID()}:`,
      size: 4,
      store: { waitForReplicas: { replicas: 1, timeoutMs: 500 } },
      wrap: (store) => gate.wrap(store),
    });
    fleets.push(fleet);
    const issued = await server.issueUserTokens('basic', { scope: 'openid offline_access' });
    await fleet.members[0]!.manager.storeTokens(issued as never);
    const slot = await fleet.slot();

    const expired = await fleet.expire();
    gate.armed = true;
    const { tokens, requests } = await fleet.wave(50, async () => {
      await gate.reached; // the refresh answered (the grant rotated), its write held, the lock held
      const { killed, promoted } = await cluster.killMaster(slot);
      expect(promoted.port).not.toBe(killed.port);
      gate.open();
    });
    expect(requests).toBe(1);
    expect(tokens.size).toBe(1);
    expect(tokens.has(expired)).toBe(false);
    expect(fleet.failures).toEqual([]);
    expect(fleet.cleared).toBe(0);
    // Reported, typed: the promoted master has no replica to acknowledge the write and the locks
    // (WAIT), which the managers got past with the token set the holder wrote.
    expect(fleet.storeFailures.length).toBeGreaterThan(0);
    for (const error of fleet.storeFailures) expect(error).toBeInstanceOf(TokenStoreError);

    // The killed node back as the promoted one's replica: the next expiry is one refresh, with the
    // rotated refresh token (a lost one would be invalid_grant, and the grant revoked).
    await cluster.revive();
    const rotated = (await fleet.members[0]!.store.get('default'))!;
    expect(rotated.accessToken).toBe([...tokens][0]);
    await fleet.expire();
    const next = await fleet.wave(50);
    expect(next.requests).toBe(1);
    expect(next.tokens.size).toBe(1);
    expect(fleet.failures).toEqual([]);
    expect(fleet.cleared).toBe(0);
  }, 60_000);
});
