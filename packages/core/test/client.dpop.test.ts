/**
 * DPoP at the token endpoint (RFC 9449 §5, §8): against a scripted local server for the nonce
 * rules, and against the real test authorization server for binding and nonces end to end.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { Client, OAuthError, randomDPoPKeyPair } from '@tessera/core';
import type { DPoPHandle } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { rejection } from './support/test-helpers.js';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

describe('DPoP proofs and nonces at a scripted token endpoint', () => {
  let server: FakeServer;
  let script: Handler[] = [];
  let client: Client;
  let handle: DPoPHandle;
  const ok: Handler = (_r, res) => json(res, 200, { access_token: 'at', token_type: 'dpop', expires_in: 60 });
  const nonceChallenge =
    (nonce: string): Handler =>
    (_r, res) =>
      json(
        res,
        400,
        { error: 'use_dpop_nonce', error_description: 'nonce required' },
        { 'dpop-nonce': nonce },
      );

  beforeAll(async () => {
    server = await startFakeServer({ '/token': (req, res) => (script.shift() ?? ok)(req, res) });
    client = new Client(
      { issuer: server.url, token_endpoint: `${server.url}/token` },
      { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_basic' },
    );
    handle = client.getDPoPHandle(await randomDPoPKeyPair());
  });
  afterAll(() => server.close());

  const proofs = () => server.requestsTo('/token').map((r) => r.headers.dpop as string);

  it('sends a proof without ath on every token request and recognises token_type dpop', async () => {
    server.requests.length = 0;
    const tokens = await client.clientCredentialsGrant(undefined, { DPoP: handle });
    expect(tokens.token_type).toBe('DPoP');
    const [proof] = proofs();
    expect(decodeProtectedHeader(proof!)).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' });
    expect(decodeJwt(proof!)).toMatchObject({ htm: 'POST', htu: `${server.url}/token` });
    expect(decodeJwt(proof!).ath).toBeUndefined();
  });

  it('retries use_dpop_nonce exactly once with a new proof carrying the nonce', async () => {
    server.requests.length = 0;
    script = [nonceChallenge('n-1'), ok];
    await client.clientCredentialsGrant(undefined, { DPoP: handle });
    const [first, second] = proofs().map((p) => decodeJwt(p));
    expect(proofs()).toHaveLength(2);
    expect(second!.nonce).toBe('n-1');
    expect(second!.jti).not.toBe(first!.jti);
  });

  it('a second use_dpop_nonce in a row fails cleanly instead of looping', async () => {
    server.requests.length = 0;
    script = [nonceChallenge('n-2'), nonceChallenge('n-3'), ok];
    const error = await rejection(client.clientCredentialsGrant(undefined, { DPoP: handle }));
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'use_dpop_nonce' });
    expect(proofs()).toHaveLength(2);
    script = [];
  });

  it('learns a nonce from a 200 and uses it next time, for that origin only', async () => {
    server.requests.length = 0;
    script = [
      (_r, res) => json(res, 200, { access_token: 'at', token_type: 'DPoP' }, { 'dpop-nonce': 'fresh' }),
      ok,
    ];
    await client.clientCredentialsGrant(undefined, { DPoP: handle });
    await client.clientCredentialsGrant(undefined, { DPoP: handle });
    expect(decodeJwt(proofs()[1]!).nonce).toBe('fresh');
    expect(handle.nonce('https://rs.example/')).toBeUndefined();
  });

  it('a refused refresh with DPoP says the same key is needed', async () => {
    script = [
      (_r, res) => json(res, 400, { error: 'invalid_grant', error_description: 'grant request is invalid' }),
    ];
    const error = await rejection(client.refreshTokenGrant('rt', undefined, { DPoP: handle }));
    expect(error).toMatchObject({ error: 'invalid_grant', hint: expect.stringContaining('same DPoP key') });
    expect(error.message).toContain('same DPoP key');
  });
});

describe('DPoP against the real authorization server', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ requireDPoPNonce: true });
  });
  afterAll(() => server.close());

  it('binds a client credentials token to the key: introspection shows cnf.jkt = thumbprint', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    server.resetStats();
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: handle });
    expect(server.stats().token).toBe(2); // use_dpop_nonce, then the retry with the nonce
    expect(tokens.token_type).toBe('DPoP');
    const info = await client.tokenIntrospection(tokens.access_token);
    expect(info.cnf?.jkt).toBe(await handle.thumbprint());

    server.resetStats();
    await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: handle });
    expect(server.stats().token).toBe(1); // the nonce is remembered
  });

  it('refreshes a public client DPoP-bound token only with the same key', async () => {
    const client = await Client.discover(server.issuer, server.clients.public);
    const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access' });
    await server.approveDevice(device.user_code);
    const key = client.getDPoPHandle(await randomDPoPKeyPair());
    const tokens = await client.pollDeviceAuthorizationGrant(device, undefined, { DPoP: key });
    expect(tokens.token_type).toBe('DPoP');
    const other = client.getDPoPHandle(await randomDPoPKeyPair());
    const error = await rejection(
      client.refreshTokenGrant(tokens.refresh_token!, undefined, { DPoP: other }),
    );
    expect(error).toBeInstanceOf(OAuthError);
    expect((error as OAuthError).hint).toContain('same DPoP key');
    await expect(
      client.refreshTokenGrant(tokens.refresh_token!, undefined, { DPoP: key }),
    ).resolves.toMatchObject({
      token_type: 'DPoP',
    });
  });
});
