/**
 * @tessera/store-redis: a Redis {@link TokenStore} and a Redis {@link VerificationCache} for fleets
 * of processes.
 */
export { RedisTokenStore } from './redis-token-store.js';
export type { RedisTokenStoreOptions, ReplicaWait, SentinelAddress } from './redis-token-store.js';
export { RedisVerificationCache } from './redis-verification-cache.js';
export type { RedisVerificationCacheOptions } from './redis-verification-cache.js';
