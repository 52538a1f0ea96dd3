/**
 * Testing a service that uses Tessera, with jest (ESM): the README's example, as it runs. The same
 * test under vitest and node:test is in examples/testing/.
 */
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { Client, TokenManager } from '@tessera/core';
import { createFakeClock, startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({ accessTokenTtlSeconds: 300 }); // a real oidc-provider, on loopback
});
afterAll(() => server.close());

it('gets a new token once the old one has expired, and none before', async () => {
  const clock = createFakeClock(); // the manager's time moves only when the test moves it
  const client = await Client.discover(server.issuer, server.clients.basic);
  const manager = new TokenManager({ client, grant: 'client_credentials', now: clock.now });
  const acquired: number[] = [];
  manager.on('token.acquired', ({ expiresAt }) => acquired.push(expiresAt!));

  const first = await manager.getValidAccessToken();
  clock.advance(200_000); // 100 s left: still served from the cache
  expect(await manager.getValidAccessToken()).toBe(first);
  clock.advance(101_000); // expired
  const second = await manager.getValidAccessToken();

  expect(second).not.toBe(first);
  expect(acquired).toHaveLength(2);
  await manager.close();
});
