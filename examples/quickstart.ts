/**
 * Quickstart: a TokenManager against a real authorization server, printing its events as they
 * happen. Run it with `pnpm demo`.
 *
 * 1. A service token (client credentials) is acquired on first use and then served from the cache.
 * 2. A user's tokens (from a device sign-in) are stored; the background scheduler refreshes them
 *    before they expire, with a rotating refresh token.
 * 3. The user's token is introspected, then revoked: the manager clears the key.
 *
 * Tokens live 6 seconds here so that a refresh happens while you watch.
 */
import { Client, TokenManager, TokenManagerError } from '@tessera/core';
import type { TesseraError, TokenManagerEvents } from '@tessera/core';
import { startTestServer } from '@tessera/testing';

const started = Date.now();
const elapsed = () => `+${((Date.now() - started) / 1000).toFixed(2)}s`.padStart(7);
const say = (text: string) => console.log(`${elapsed()}  ${text}`);

const server = await startTestServer({ accessTokenTtlSeconds: 6 });
say(`authorization server (oidc-provider) at ${server.issuer}`);

const client = await Client.discover(server.issuer, server.clients.basic);
const manager = new TokenManager({
  client,
  grant: { type: 'client_credentials', parameters: { scope: 'api:read' } },
  refreshSkewSeconds: 2,
  autoRefresh: { aheadSeconds: 2 },
});

// Every event, as it happens. Payloads never contain token values, so they are safe to log.
const events: Array<keyof TokenManagerEvents> = [
  'token.acquired',
  'token.stored',
  'token.refreshed',
  'refresh.failed',
  'token.expired',
  'token.introspected',
  'token.revoked',
  'token.cleared',
  'store.failed',
];
for (const name of events) {
  manager.on(name, ((payload: Record<string, unknown>) => {
    const fields = Object.entries(payload)
      .map(
        ([k, v]) =>
          `${k}=${k === 'expiresAt' ? new Date(Number(v) * 1000).toISOString().slice(11, 19) : k === 'results' || k === 'error' ? JSON.stringify(v) : String(v)}`,
      )
      .join(' ');
    say(`  event ${name.padEnd(18)} ${fields}`);
  }) as never);
}

try {
  say('service: getValidAccessToken() twice (the second comes from the cache)');
  await manager.getValidAccessToken();
  await manager.getValidAccessToken();

  say('user alice signs in (device flow), and her tokens are stored under the key "alice"');
  const alice = manager.for('alice');
  await alice.storeTokens(
    (await server.issueUserTokens('basic', {
      accountId: 'alice',
      scope: 'openid offline_access api:read',
    })) as never,
  );

  // A handle never runs the manager's grant: a user who has not signed in has no tokens.
  const bob = await manager
    .for('bob')
    .getValidAccessToken()
    .catch((error: TesseraError) => error);
  say(
    `bob has not signed in: ${bob instanceof TokenManagerError ? `${bob.code} (${bob.message})` : 'a token?!'}`,
  );

  say('waiting for the background refresh (tokens live 6 s, refreshed about 2 s before expiry)...');
  await new Promise<void>((resolve) => manager.once('token.refreshed', () => resolve()));

  say("introspecting alice's current access token");
  await alice.introspectToken();

  say("revoking alice's tokens (refresh token first, then access token)");
  await alice.revokeTokens();
  say(
    `alice's tokens after revocation: ${(await alice.getTokens()) === undefined ? 'none' : 'still there?!'}`,
  );
  say('done.');
} finally {
  await manager.close();
  await server.close();
}
