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
