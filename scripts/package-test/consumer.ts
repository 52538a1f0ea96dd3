// A user's program, typechecked under `nodenext` and `bundler` and run as ESM, against the packed
// tarballs installed from a fresh project (scripts/package-test.mjs).
import { Client, ConfigurationError, MemoryTokenStore, TokenManager, TokenStoreError } from '@tessera/core';
import type { TokenManagerEvents, TokenSet, TokenStore } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import { createFakeClock, startTestServer } from '@tessera/testing';
import type { TokenStoreSuiteOptions } from '@tessera/testing';
import { Redis } from 'ioredis';

// The newest ioredis's client fits the store's option type (the peer range covers it).
const redis = new Redis({ lazyConnect: true });
const redisStore: TokenStore = new RedisTokenStore({ client: redis });
const suiteOptions: TokenStoreSuiteOptions<RedisTokenStore> = {
  capabilities: ['lock', 'subscribe', 'versioned'],
  breakStore: (store) => store.close(),
};

const server = await startTestServer();
const events: Array<keyof TokenManagerEvents> = [];
try {
  const client = await Client.discover(server.issuer, server.clients.basic);
  const manager = new TokenManager({ client, store: new MemoryTokenStore(), grant: 'client_credentials' });
  manager.on('token.acquired', () => events.push('token.acquired'));
  const accessToken: string = await manager.getValidAccessToken();
  const tokens: TokenSet | undefined = await manager.getTokens();
  if (accessToken.length === 0 || tokens?.accessToken !== accessToken || events.length !== 1) {
    throw new Error('no token acquired');
  }
  try {
    new TokenManager({ client, refreshSkewSeconds: -1 });
    throw new Error('a bad option was accepted');
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error;
  }
  await manager.close();
  console.log(
    `esm ok: ${events.join(',')}; ${typeof createFakeClock}; ${TokenStoreError.name}; ${suiteOptions.capabilities?.length}`,
  );
} finally {
  await server.close();
  await redisStore.close?.();
  redis.disconnect();
}
