/**
 * Device authorization grant (RFC 8628), as a CLI or a TV app would run it.
 *
 * Starts the embedded test authorization server, asks it for a device code, shows the user where to
 * go and what to type, counts down while polling, and prints the ID Token's claims once approved.
 *
 *   pnpm tsx examples/device-flow.ts                  # you approve or deny in this terminal
 *   pnpm tsx examples/device-flow.ts --auto-approve   # approves itself (used as a CI smoke test)
 */
import { createInterface } from 'node:readline/promises';
import { Client, OAuthError, TesseraError } from '@tessera/core';
import type { PollState } from '@tessera/core';
import { startTestServer } from '@tessera/testing';

const autoApprove = process.argv.includes('--auto-approve');
const server = await startTestServer({ pollIntervalSeconds: autoApprove ? 1 : 3 });
const abort = new AbortController();
process.once('SIGINT', () => abort.abort());

try {
  // A device app is a public client: it cannot keep a secret.
  const client = await Client.discover(server.issuer, server.clients.public);
  const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access profile email' });

  console.log('To sign in, open');
  console.log(`    ${device.verification_uri}`);
  console.log(`and enter the code  ${device.user_code}`);
  if (device.verification_uri_complete) console.log(`(or open ${device.verification_uri_complete})`);
  console.log();

  // The test server has no login page: approving happens here, as the user would in a browser.
  let polls = 0;
  const approveAfterTwoPolls = () => {
    polls += 1;
    if (polls === 2) void server.approveDevice(device.user_code, { accountId: 'alice' });
  };
  if (!autoApprove) void askTheUser(device.user_code);

  const countdown = ({ interval, expiresAt }: PollState) => {
    const left = Math.max(0, expiresAt - Math.floor(Date.now() / 1000));
    const minutes = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
    console.log(`  waiting for approval: next check in ${interval} s, the code expires in ${minutes}`);
    if (autoApprove) approveAfterTwoPolls();
  };

  const tokens = await client.pollDeviceAuthorizationGrant(device, undefined, {
    onPending: countdown,
    signal: abort.signal,
  });
  const claims = tokens.claims();
  console.log('\nApproved. The ID Token was validated; its claims:');
  for (const name of ['iss', 'sub', 'aud', 'name', 'email', 'auth_time', 'exp'] as const) {
    if (claims?.[name] !== undefined) console.log(`  ${name.padEnd(10)} ${String(claims[name])}`);
  }
  console.log(`\nAccess token: ${tokens.token_type}, expires in ${tokens.expiresIn()} s`);
  console.log(`Refresh token: ${tokens.refresh_token ? 'issued (offline_access)' : 'none'}`);
} catch (error) {
  if (error instanceof OAuthError && error.error === 'access_denied')
    console.log('\nThe user denied the request.');
  else if (error instanceof OAuthError && error.error === 'expired_token')
    console.log('\nThe code expired; start again.');
  else if (error instanceof TesseraError && error.code === 'ABORTED') console.log('\nCancelled.');
  else {
    console.error(error instanceof TesseraError ? `${error.name} [${error.code}]: ${error.message}` : error);
    process.exitCode = 1;
  }
} finally {
  await server.close();
  process.exit();
}

async function askTheUser(userCode: string): Promise<void> {
  const terminal = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await terminal.question(`(Acting as the user) approve ${userCode} as alice? [y/n] `);
  terminal.close();
  if (answer.trim().toLowerCase().startsWith('y'))
    await server.approveDevice(userCode, { accountId: 'alice' });
  else await server.denyDevice(userCode);
}
