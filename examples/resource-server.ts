/**
 * A resource server: an Express API that accepts only valid access tokens, called by a client
 * service with a TokenManager. Run it with `pnpm example examples/resource-server.ts`; it makes a
 * few requests to itself and exits.
 *
 * - `requireToken(verifier, { scopes })` guards `GET /orders`: a JWT access token (RFC 9068) is
 *   checked locally with the issuer's keys, fetched once; an opaque one would be introspected.
 * - A request without a token gets 401 and a challenge pointing at the protected resource metadata
 *   (RFC 9728), which `protectedResourceMetadata()` serves, so clients find the issuer themselves.
 * - A token evicted with `verifier.evict(token)` is refused at once, although its signature is good; the client's
 *   `manager.fetch()` answers the 401 by getting a new token and retrying once.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { Client, TokenManager, TokenVerifier, protectedResourceMetadata, requireToken } from '@tessera/core';
import type { AuthenticatedRequest } from '@tessera/core';
import { startTestServer } from '@tessera/testing';

// The authorization server: in production, your issuer's URL. It issues JWT access tokens for the
// API's resource indicator (its `aud`).
const authorizationServer = await startTestServer({ accessTokenFormat: 'jwt' });
const resource = authorizationServer.apiResource;

// --- the API (resource server) -----------------------------------------------------------------
const apiClient = await Client.discover(authorizationServer.issuer, authorizationServer.clients.post);
const verifier = new TokenVerifier({ client: apiClient, resource });
verifier.on('token.verified', ({ kind, clientId, cached }) =>
  console.log(`  api: token.verified kind=${kind} clientId=${clientId} cached=${cached}`),
);
verifier.on('token.rejected', ({ reason, status }) =>
  console.log(`  api: token.rejected reason=${reason} status=${status}`),
);
verifier.on('cache.evicted', ({ by, origin }) =>
  console.log(`  api: cache.evicted by=${by} origin=${origin}`),
);

const api = express();
api.use(protectedResourceMetadata(verifier, { scopesSupported: ['api:read'], resourceName: 'Orders API' }));
api.get('/orders', requireToken(verifier, { scopes: ['api:read'] }), (req, res) => {
  const { auth } = req as unknown as AuthenticatedRequest;
  res.json({ orders: [{ id: 'o-1' }], for: auth.clientId });
});
const apiServer = api.listen(0, '127.0.0.1');
await new Promise((resolve) => apiServer.once('listening', resolve));
const apiUrl = `http://127.0.0.1:${(apiServer.address() as AddressInfo).port}`;
console.log(`API listening at ${apiUrl}, resource ${resource}`);

// --- the client service ------------------------------------------------------------------------
const client = await Client.discover(authorizationServer.issuer, authorizationServer.clients.basic);
const manager = new TokenManager({
  client,
  grant: { type: 'client_credentials', parameters: { scope: 'api:read', resource } },
});
manager.on('token.acquired', () => console.log('  client: token.acquired'));

const show = async (label: string, response: Response) => {
  const challenge = response.headers.get('www-authenticate');
  console.log(`${label} -> ${response.status} ${await response.text()}`);
  if (challenge !== null) console.log(`  WWW-Authenticate: ${challenge}`);
};

await show('GET /orders without a token', await fetch(`${apiUrl}/orders`));
const metadata = await fetch(`${apiUrl}/.well-known/oauth-protected-resource`);
console.log(`GET /.well-known/oauth-protected-resource -> ${metadata.status} ${await metadata.text()}`);

await show('GET /orders with the managed token', await manager.fetch(`${apiUrl}/orders`));
await show('GET /orders again (verified from the cache)', await manager.fetch(`${apiUrl}/orders`));

// The client's access is withdrawn (an administrator's action, a leaked token). A JWT carries its own
// validity, and this issuer cannot revoke one (RFC 9068 tokens are checked without asking it), so
// the API evicts it: refused from now on, on every instance sharing the verifier's cache.
const revoked = await manager.getValidAccessToken();
await verifier.evict(revoked);
await show(
  'GET /orders with the revoked token',
  await fetch(`${apiUrl}/orders`, { headers: { authorization: `Bearer ${revoked}` } }),
);
// The client's fetch gets the 401, renews its token once, and retries.
await show('GET /orders through manager.fetch()', await manager.fetch(`${apiUrl}/orders`));

await new Promise((resolve) => apiServer.close(resolve));
await manager.close();
await verifier.close();
await authorizationServer.close();
console.log('done.');
