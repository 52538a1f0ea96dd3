// A user's program, typechecked under `nodenext` and `bundler` and run as ESM, against the packed
// tarballs installed from a fresh project (scripts/package-test.mjs).
import {
  Client,
  ConfigurationError,
  MemoryTokenStore,
  TokenManager,
  TokenStoreError,
  TokenVerificationError,
  TokenVerifier,
} from '@tessera/core';
import type {
  TokenManagerEvents,
  TokenSet,
  TokenStore,
  VerificationCache,
  VerifiedToken,
} from '@tessera/core';
import { instrumentTessera } from '@tessera/opentelemetry';
import { FileTokenStore } from '@tessera/store-file';
import { RedisTokenStore, RedisVerificationCache } from '@tessera/store-redis';
import { createFakeClock, startTestServer } from '@tessera/testing';
import type { TokenStoreSuiteOptions } from '@tessera/testing';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The newest ioredis's client fits the store's option type (the peer range covers it).
const redis = new Redis({ lazyConnect: true });
const redisStore: TokenStore = new RedisTokenStore({ client: redis });
const suiteOptions: TokenStoreSuiteOptions<RedisTokenStore> = {
  capabilities: ['lock', 'subscribe', 'versioned'],
  breakStore: (store) => store.close(),
};

// With the API's no-op providers (no SDK installed): it loads, subscribes and unsubscribes.
const uninstrument: () => void = instrumentTessera();
const server = await startTestServer();
const events: Array<keyof TokenManagerEvents> = [];
try {
  const client = await Client.discover(server.issuer, server.clients.basic);
  const manager = new TokenManager({ client, store: new MemoryTokenStore(), grant: 'client_credentials' });
  // The file store, encrypted, in a fresh directory: a second manager reads what it stores.
  const directory = await mkdtemp(join(tmpdir(), 'tessera-consumer-'));
  const fileStore = new FileTokenStore({
    directory: join(directory, 'tokens'),
    encryptionKey: randomBytes(32),
  });
  const writer = new TokenManager({ client, store: fileStore, grant: 'client_credentials' });
  const stored = await writer.getValidAccessToken();
  await writer.close();
  const reader = new TokenManager({ client, store: fileStore, grant: 'client_credentials' });
  if ((await reader.getValidAccessToken()) !== stored) throw new Error('the file store lost the token');
  await reader.close();
  await fileStore.close();
  await rm(directory, { recursive: true });
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
  // The resource server's side: the token just acquired, introspected once, then from the cache.
  const sharedCache: VerificationCache = new RedisVerificationCache({ client: redis });
  if (typeof sharedCache.markUsed !== 'function') throw new Error('not a VerificationCache');
  const verifier = new TokenVerifier({ client, accept: ['introspection'] });
  const verified: VerifiedToken = await verifier.verify(accessToken);
  if (verified.kind !== 'introspection' || (await verifier.verify(accessToken)) !== verified) {
    throw new Error('the verifier did not verify, or did not cache');
  }
  try {
    await verifier.verify('not-a-token');
    throw new Error('a bad token was accepted');
  } catch (error) {
    if (!(error instanceof TokenVerificationError) || error.status !== 401) throw error;
  }
  await verifier.close();
  await manager.close();
  console.log(
    `esm ok: ${events.join(',')}; ${typeof createFakeClock}; ${TokenStoreError.name}; ${suiteOptions.capabilities?.length}`,
  );
} finally {
  await server.close();
  await redisStore.close?.();
  redis.disconnect();
  uninstrument();
}
