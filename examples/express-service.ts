/**
 * An Express service that calls another API with a managed token: one TokenManager for the whole
 * process, created at startup, closed at shutdown. Run it with
 * `pnpm example examples/express-service.ts`; it serves one request to itself and exits.
 *
 * - `GET /invoices` calls the downstream API through `manager.fetch()`: the token is attached,
 *   cached across requests, refreshed before it expires, and renewed once if the API answers 401.
 * - A failure to get a token becomes a 503 with the error's `code`, never its details (which the
 *   logs get, without token values).
 * - `/healthz` reports whether the manager could get a token lately, from its events.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { Client, TesseraError, TokenManager } from '@tessera/core';
import { startTestServer } from '@tessera/testing';

// The authorization server: in production, your issuer's URL and your client's credentials.
const authorizationServer = await startTestServer();
const client = await Client.discover(authorizationServer.issuer, authorizationServer.clients.basic);
const manager = new TokenManager({
  client,
  grant: { type: 'client_credentials', parameters: { scope: 'api:read' } },
  autoRefresh: true,
});

let lastFailure: { code: string; at: string } | undefined;
manager.on('token.acquired', ({ key, expiresAt }) =>
  console.log(`token.acquired key=${key} expiresAt=${expiresAt}`),
);
manager.on('refresh.failed', ({ key, error, retryInMs }) => {
  lastFailure = { code: error.code, at: new Date().toISOString() };
  console.warn(`refresh.failed key=${key} code=${error.code} retryInMs=${retryInMs}`);
});

// The downstream API (another service in production): it wants a bearer token.
const api = express();
api.get('/invoices', (req, res) => {
  if (!/^Bearer \S+$/.test(req.get('authorization') ?? '')) {
    res.status(401).set('www-authenticate', 'Bearer error="invalid_token"').end();
    return;
  }
  res.json([{ id: 'inv-1', amount: 42 }]);
});
const apiServer = api.listen(0, '127.0.0.1');
await new Promise((resolve) => apiServer.once('listening', resolve));
const apiUrl = `http://127.0.0.1:${(apiServer.address() as AddressInfo).port}`;

// This service.
const app = express();
app.get('/invoices', async (_req, res, next) => {
  try {
    const response = await manager.fetch(`${apiUrl}/invoices`);
    res.status(response.status).json(await response.json());
  } catch (error) {
    next(error);
  }
});
app.get('/healthz', (_req, res) => {
  res.status(lastFailure === undefined ? 200 : 503).json({ tokens: lastFailure ?? 'ok' });
});
// Tessera's errors carry a stable `code`; their messages hold no token or secret, so they are safe
// to log. The caller gets the code only.
app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
  if (error instanceof TesseraError) {
    console.error(`upstream token failure: ${error.code}: ${error.message}`);
    res.status(503).json({ error: 'upstream_unavailable', code: error.code });
    return;
  }
  res.status(500).json({ error: 'internal' });
});
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
console.log(`service listening at ${url}`);

// One request to ourselves, as a user of the service would make.
for (let i = 1; i <= 2; i++) {
  const response = await fetch(`${url}/invoices`);
  console.log(`GET /invoices #${i} -> ${response.status} ${JSON.stringify(await response.json())}`);
}
console.log(`GET /healthz -> ${(await fetch(`${url}/healthz`)).status}`);

// Shutdown: stop taking requests, then close the manager (it waits for a refresh in flight).
await new Promise((resolve) => server.close(resolve));
await new Promise((resolve) => apiServer.close(resolve));
await manager.close();
await authorizationServer.close();
console.log('done.');
