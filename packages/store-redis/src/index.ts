/**
 * @tessera/store-redis: a Redis {@link TokenStore} for fleets of processes.
 */
export { RedisTokenStore } from './redis-token-store.js';
export type { RedisTokenStoreOptions } from './redis-token-store.js';
