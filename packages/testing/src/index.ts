/**
 * `@tessera/testing`: test helpers for Tessera and for its users' own tests.
 *
 * @packageDocumentation
 */
export { startTestServer } from './test-server.js';
export type {
  TestClient,
  TestClientName,
  TestClients,
  TestServer,
  TestServerOptions,
  TestServerStats,
  TestTokenEndpointResponse,
} from './test-server-types.js';
export { describeTokenStore } from './describe-token-store.js';
export type { TestRunner, TokenStoreCapability, TokenStoreSuiteOptions } from './describe-token-store.js';
export { createFakeClock } from './fake-clock.js';
export type { FakeClock } from './fake-clock.js';
export { RedisServerMissingError, startRedisServer } from './redis-server.js';
export type { RedisExecutable, RedisServerHandle, RedisServerOptions } from './redis-server.js';
export { startRedisCluster } from './redis-cluster.js';
export type {
  RedisClusterFailover,
  RedisClusterHandle,
  RedisClusterNode,
  RedisClusterOptions,
  SlotMigrationOptions,
} from './redis-cluster.js';
export { startRedisSentinel } from './redis-sentinel.js';
export type { RedisAddress, RedisSentinelHandle } from './redis-sentinel.js';
