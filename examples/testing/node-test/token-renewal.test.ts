// Testing a service that uses Tessera, with node:test (spawned by examples/test/examples.test.ts).
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { Client, TokenManager } from '@tessera/core';
import { createFakeClock, startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';

let server: TestServer;
before(async () => {
  server = await startTestServer({ accessTokenTtlSeconds: 300 }); // a real oidc-provider, on loopback
});
after(() => server.close());

it('gets a new token once the old one has expired, and none before', async () => {
  const clock = createFakeClock(); // the manager's time moves only when the test moves it
  const client = await Client.discover(server.issuer, server.clients.basic);
  const manager = new TokenManager({ client, grant: 'client_credentials', now: clock.now });
  const acquired: number[] = [];
  manager.on('token.acquired', ({ expiresAt }) => acquired.push(expiresAt!));

  const first = await manager.getValidAccessToken();
  clock.advance(200_000); // 100 s left: still served from the cache
  assert.equal(await manager.getValidAccessToken(), first);
  clock.advance(101_000); // expired
  const second = await manager.getValidAccessToken();

  assert.notEqual(second, first);
  assert.equal(acquired.length, 2);
  await manager.close();
});
