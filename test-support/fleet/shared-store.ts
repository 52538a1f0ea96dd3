/** What the processes of a fleet share, and how each opens it (worker.ts, describe-fleet.ts). */
import type { TokenStore } from '@tessera/core';

/**
 * The shared store: a Redis (standalone, Sentinel or Cluster) under a key prefix, or a directory
 * with its encryption key (base64url).
 */
export type SharedStore =
  | { kind: 'redis'; url: string; keyPrefix: string }
  | {
      kind: 'redis-sentinel';
      sentinels: Array<{ host: string; port: number }>;
      name: string;
      keyPrefix: string;
    }
  | {
      kind: 'redis-cluster';
      nodes: Array<{ host: string; port: number }>;
      keyPrefix: string;
      /** The store's `waitForReplicas` (a Cluster has no default: it may have no replicas). */
      waitForReplicas?: { replicas: number; timeoutMs: number };
    }
  | { kind: 'file'; directory: string; encryptionKey: string };

/** The store the fleet shares (each kind's package is loaded only by its own fleet test). */
export async function openStore(shared: SharedStore): Promise<TokenStore & { close(): Promise<void> }> {
  if (shared.kind === 'redis') {
    const { RedisTokenStore } = await import('@tessera/store-redis');
    return new RedisTokenStore({ url: shared.url, keyPrefix: shared.keyPrefix });
  }
  if (shared.kind === 'redis-sentinel') {
    const { RedisTokenStore } = await import('@tessera/store-redis');
    const { sentinels, name, keyPrefix } = shared;
    return new RedisTokenStore({ sentinels, name, keyPrefix }); // waits for the replica by default
  }
  if (shared.kind === 'redis-cluster') {
    const [{ RedisTokenStore }, { Cluster }] = await Promise.all([
      import('@tessera/store-redis'),
      import('ioredis'),
    ]);
    const connection = new Cluster(shared.nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
    connection.on('error', () => undefined); // a node going away is what the Cluster tests do
    const store = new RedisTokenStore({
      client: connection,
      keyPrefix: shared.keyPrefix,
      commandTimeoutMs: 2000,
      ...(shared.waitForReplicas === undefined ? {} : { waitForReplicas: shared.waitForReplicas }),
    });
    // The caller's client is the caller's to close: closing the store closes its connection too.
    const close = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        await close();
        connection.disconnect();
      },
    });
  }
  const { FileTokenStore } = await import('@tessera/store-file');
  return new FileTokenStore({ directory: shared.directory, encryptionKey: shared.encryptionKey });
}
