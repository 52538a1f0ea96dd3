// The same packages loaded with require() (Node's require of ES modules, 20.19 and later).
const { Client, TokenManager } = require('@tessera/core');
const { FileTokenStore } = require('@tessera/store-file');
const { RedisTokenStore } = require('@tessera/store-redis');
const { startTestServer } = require('@tessera/testing');

(async () => {
  const server = await startTestServer();
  try {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const manager = new TokenManager({ client, grant: 'client_credentials' });
    const accessToken = await manager.getValidAccessToken();
    if (!accessToken) throw new Error('no token acquired');
    await manager.close();
    console.log(`require ok: ${typeof RedisTokenStore}, ${typeof FileTokenStore}`);
  } finally {
    await server.close();
  }
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
