/**
 * The protocol Client on its own, against a real authorization server.
 *
 * Starts the embedded test authorization server (oidc-provider, on a loopback port), discovers it,
 * gets a token with the client credentials grant, introspects it, revokes it, and introspects it
 * again to show that revocation took effect. Run it with `pnpm example examples/client-basics.ts`.
 */
import { createHash } from 'node:crypto';
import { Client, OAuthError, TesseraError } from '@tessera/core';
import { startTestServer } from '@tessera/testing';

/** A short, irreversible fingerprint: enough to tell tokens apart, never the token itself. */
const fingerprint = (token: string) =>
  `sha256:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;

let stepNumber = 0;
function step(title: string, details: Record<string, unknown> = {}): void {
  stepNumber += 1;
  console.log(`\n${stepNumber}. ${title}`);
  for (const [key, value] of Object.entries(details)) {
    console.log(`   ${key.padEnd(18)} ${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
}

const server = await startTestServer({ accessTokenTtlSeconds: 120 });
try {
  step('Started a local OAuth 2.0 / OpenID Connect authorization server', { issuer: server.issuer });

  const client = await Client.discover(server.issuer, server.clients.basic);
  const metadata = client.serverMetadata();
  step('Discovered its metadata (RFC 8414) and chose how to authenticate', {
    token_endpoint: metadata.token_endpoint,
    auth_method: client.authMethod,
    introspection: client.supports('introspection'),
    revocation: client.supports('revocation'),
    device_flow: client.supports('device_authorization'),
    dpop: client.supports('dpop'),
  });

  const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
  step('Got an access token with the client credentials grant (RFC 6749 §4.4)', {
    token: fingerprint(tokens.access_token),
    token_type: tokens.token_type,
    expires_in: `${tokens.expiresIn()} s`,
    scope: tokens.scope ?? '(as requested)',
  });

  const active = await client.tokenIntrospection(tokens.access_token, { token_type_hint: 'access_token' });
  step('Introspected it (RFC 7662): the server says it is active', {
    active: active.active,
    client_id: active.client_id,
    scope: active.scope,
    expires_at: active.exp === undefined ? 'unknown' : new Date(active.exp * 1000).toISOString(),
  });

  await client.tokenRevocation(tokens.access_token, { token_type_hint: 'access_token' });
  step('Revoked it (RFC 7009)');

  const revoked = await client.tokenIntrospection(tokens.access_token, { token_type_hint: 'access_token' });
  step('Introspected it again: revocation took effect', { active: revoked.active });

  try {
    await client.refreshTokenGrant('not-a-refresh-token');
  } catch (error) {
    if (!(error instanceof OAuthError)) throw error;
    step('A bad refresh token gives a typed OAuthError (no secrets in it)', {
      error: error.error,
      status: error.status,
      message: error.message,
    });
  }
  console.log('\nDone.');
} catch (error) {
  console.error(error instanceof TesseraError ? `${error.name} [${error.code}]: ${error.message}` : error);
  process.exitCode = 1;
} finally {
  await server.close();
}
