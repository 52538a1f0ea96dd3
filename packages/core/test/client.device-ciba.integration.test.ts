/**
 * Device authorization (RFC 8628) and CIBA poll mode against the real authorization server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Client, OAuthError } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { freezeDate, rejection } from './support/test-helpers.js';

let server: TestServer;
let client: Client;

beforeAll(async () => {
  // interval 0: the polls of these tests need no real waiting.
  server = await startTestServer({ pollIntervalSeconds: 0 });
  client = await Client.discover(server.issuer, server.clients.basic);
});
afterAll(() => server.close());
afterEach(() => {
  jest.useRealTimers();
});

describe('device authorization grant', () => {
  it('is approved by the user: tokens with a validated ID Token', async () => {
    const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access email' });
    expect(device.verification_uri).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(device.user_code).toBeTruthy();
    await server.approveDevice(device.user_code);
    const tokens = await client.pollDeviceAuthorizationGrant(device);
    expect(tokens.refresh_token).toBeDefined();
    expect(tokens.claims()).toMatchObject({
      sub: 'alice',
      iss: server.issuer,
      aud: server.clients.basic.client_id,
    });
  });

  it('keeps polling while pending, then succeeds once approved', async () => {
    const device = await client.initiateDeviceAuthorization({ scope: 'openid' });
    let waits = 0;
    const tokens = await client.pollDeviceAuthorizationGrant(device, undefined, {
      onPending: () => {
        waits += 1;
        if (waits === 2) void server.approveDevice(device.user_code);
      },
    });
    expect(waits).toBeGreaterThanOrEqual(2);
    expect(tokens.claims()?.sub).toBe('alice');
  });

  it('is denied by the user: OAuthError access_denied', async () => {
    const device = await client.initiateDeviceAuthorization({ scope: 'openid' });
    await server.denyDevice(device.user_code);
    const error = await rejection(client.pollDeviceAuthorizationGrant(device));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'access_denied' });
  });

  it('is left to expire: the server refuses the code and polling stops', async () => {
    const device = await client.initiateDeviceAuthorization({ scope: 'openid' });
    const start = Date.now();
    freezeDate(start);
    const error = await rejection(
      client.pollDeviceAuthorizationGrant({ ...device, expires_in: 24 * 3600 }, undefined, {
        // the user walks away: the server's clock passes the code's lifetime
        onPending: () => jest.setSystemTime(start + (device.expires_in + 60) * 1000),
      }),
    );
    // RFC 8628 says expired_token; oidc-provider's store has already dropped the code, so it
    // answers invalid_grant. Either ends polling with the server's error.
    expect(error).toBeInstanceOf(OAuthError);
    expect(['expired_token', 'invalid_grant']).toContain((error as OAuthError).error);
    expect(error).toMatchObject({ status: 400 });
  });

  it('is left to expire: the client stops at expires_in without asking the server', async () => {
    const device = await client.initiateDeviceAuthorization({ scope: 'openid' });
    server.resetStats();
    const error = await rejection(
      client.pollDeviceAuthorizationGrant({ ...device, interval: 5, expires_in: 3 }),
    );
    expect(error).toMatchObject({ error: 'expired_token', status: 0 });
    expect(server.stats().token).toBe(1);
  });
});

describe('CIBA poll mode', () => {
  it('is approved: tokens with an ID Token validated without a nonce', async () => {
    const request = await client.initiateBackchannelAuthentication({
      login_hint: 'bob',
      scope: 'openid offline_access',
      binding_message: 'W4SCT',
    });
    await server.approveBackchannel(request.auth_req_id);
    const tokens = await client.pollBackchannelAuthenticationGrant(request);
    expect(tokens.claims()).toMatchObject({ sub: 'bob', aud: server.clients.basic.client_id });
    expect(tokens.claims()?.nonce).toBeUndefined();
    expect(tokens.refresh_token).toBeDefined();
  });

  it('is denied: OAuthError access_denied', async () => {
    const request = await client.initiateBackchannelAuthentication({ login_hint: 'bob' });
    await server.denyBackchannel(request.auth_req_id);
    await expect(client.pollBackchannelAuthenticationGrant(request)).rejects.toMatchObject({
      error: 'access_denied',
    });
  });

  it('a server error at the backchannel endpoint is surfaced with its status', async () => {
    const error = await rejection(
      client.initiateBackchannelAuthentication({ login_hint: 'bob', binding_message: '!'.repeat(200) }),
    );
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'invalid_binding_message', status: 400 });
  });
});
