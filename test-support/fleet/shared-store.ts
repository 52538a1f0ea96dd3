/** What the processes of a fleet share, and how each opens it (worker.ts, describe-fleet.ts). */
import type { TokenStore } from '@tessera/core';

/**
 * The shared store: a Redis (standalone, or Sentinel) under a key prefix, or a directory with its
 * encryption key (base64url).
 */
export type SharedStore =
  | { kind: 'redis'; url: string; keyPrefix: string }
  | {
      kind: 'redis-sentinel';
      sentinels: Array<{ host: string; port: number }>;
      name: string;
      keyPrefix: string;
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
  const { FileTokenStore } = await import('@tessera/store-file');
  return new FileTokenStore({ directory: shared.directory, encryptionKey: shared.encryptionKey });
}
