import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  type JWK,
} from 'jose';
import { startTestServer, type TestClient, type TestServer } from '@tessera/testing';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const CIBA = 'urn:openid:params:grant-type:ciba';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

interface HttpResult {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

interface Discovery {
  issuer: string;
  token_endpoint: string;
  introspection_endpoint: string;
  revocation_endpoint: string;
  device_authorization_endpoint: string;
  backchannel_authentication_endpoint: string;
  jwks_uri: string;
  [other: string]: unknown;
}

/** RFC 6749 §2.3.1: form-encode id and secret, then Base64 of "id:secret". */
function basicAuthorization(client: TestClient): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  const credentials = `${encode(client.client_id)}:${encode(client.client_secret ?? '')}`;
  return `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`;
}

async function clientAssertion(client: TestClient, audience: string): Promise<string> {
  const jwt = new SignJWT({})
    .setIssuer(client.client_id)
    .setSubject(client.client_id)
    .setAudience(audience)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('1m');
  if (client.token_endpoint_auth_method === 'client_secret_jwt') {
    return jwt.setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(client.client_secret));
  }
  const jwk = client.privateJwk as JWK;
  return jwt.setProtectedHeader({ alg: jwk.alg!, kid: jwk.kid }).sign(await importJWK(jwk, jwk.alg));
}

/** Authentication of one request as `client`, by its registered method. */
async function authenticate(
  client: TestClient,
  audience: string,
): Promise<{ headers: Record<string, string>; fields: Record<string, string> }> {
  switch (client.token_endpoint_auth_method) {
    case 'client_secret_basic':
      return { headers: { authorization: basicAuthorization(client) }, fields: {} };
    case 'client_secret_post':
      return { headers: {}, fields: { client_id: client.client_id, client_secret: client.client_secret! } };
    case 'client_secret_jwt':
    case 'private_key_jwt':
      return {
        headers: {},
        fields: {
          client_id: client.client_id,
          client_assertion_type: JWT_BEARER,
          client_assertion: await clientAssertion(client, audience),
        },
      };
    case 'none':
      return { headers: {}, fields: { client_id: client.client_id } };
  }
}

async function postForm(
  url: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(fields),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : {} };
}

/** POSTs `fields` to `url`, authenticated as `client` (assertions audienced to the issuer). */
async function postAs(
  server: TestServer,
  client: TestClient,
  url: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<HttpResult> {
  const auth = await authenticate(client, server.issuer);
  return postForm(url, { ...fields, ...auth.fields }, { ...headers, ...auth.headers });
}

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function discover(server: TestServer): Promise<Discovery> {
  return (await getJson(`${server.issuer}/.well-known/openid-configuration`)).body as Discovery;
}

async function dpopProof(keyPair: CryptoKeyPair, htu: string, nonce?: string): Promise<string> {
  return new SignJWT({ htm: 'POST', htu, ...(nonce ? { nonce } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(keyPair.publicKey) })
    .setIssuedAt()
    .setJti(randomUUID())
    .sign(keyPair.privateKey);
}

// oidc-provider prints its notices through console.*; the test server must stay silent.
const consoleSpies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((method) =>
  jest.spyOn(console, method),
);

afterAll(() => {
  for (const spy of consoleSpies) {
    expect(spy).not.toHaveBeenCalled();
    spy.mockRestore();
  }
});

describe('startTestServer() with default options', () => {
  let server: TestServer;
  let discovery: Discovery;

  beforeAll(async () => {
    server = await startTestServer();
    discovery = await discover(server);
  });

  afterAll(() => server.close());

  describe('discovery', () => {
    it('has a loopback issuer without a trailing slash', () => {
      expect(server.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(discovery.issuer).toBe(server.issuer);
    });

    it('serves the same document at /.well-known/oauth-authorization-server (RFC 8414)', async () => {
      const oauth = await getJson(`${server.issuer}/.well-known/oauth-authorization-server`);
      expect(oauth.status).toBe(200);
      expect(oauth.body).toEqual(discovery);
    });

    it('advertises every endpoint and capability the SDK uses', () => {
      expect(discovery).toMatchObject({
        token_endpoint: `${server.issuer}/token`,
        introspection_endpoint: expect.any(String),
        revocation_endpoint: expect.any(String),
        device_authorization_endpoint: expect.any(String),
        backchannel_authentication_endpoint: expect.any(String),
        backchannel_token_delivery_modes_supported: ['poll'],
        jwks_uri: expect.any(String),
        introspection_signing_alg_values_supported: expect.arrayContaining(['RS256']),
        dpop_signing_alg_values_supported: expect.arrayContaining(['ES256', 'RS256']),
        token_endpoint_auth_methods_supported: expect.arrayContaining([
          'client_secret_basic',
          'client_secret_post',
          'client_secret_jwt',
          'private_key_jwt',
          'none',
        ]),
        scopes_supported: expect.arrayContaining(['openid', 'offline_access', 'api:read', 'api:write']),
      });
      expect(discovery.grant_types_supported).toEqual(
        expect.arrayContaining([
          'client_credentials',
          'refresh_token',
          'authorization_code',
          DEVICE_CODE,
          CIBA,
        ]),
      );
    });

    it('publishes RS256 and ES256 public signing keys', async () => {
      const { body } = await getJson(discovery.jwks_uri);
      const keys = body.keys as JWK[];
      expect(keys.map((key) => key.alg).sort()).toEqual(['ES256', 'RS256']);
      for (const key of keys) {
        expect(key.kid).toEqual(expect.any(String));
        expect(key.d).toBeUndefined();
      }
    });
  });

  describe('client_credentials', () => {
    it('has a basic client whose secret needs form-encoding', () => {
      const secret = server.clients.basic.client_secret!;
      expect(encodeURIComponent(secret)).not.toBe(secret);
      for (const char of [' ', '+', '/', ':', '%']) expect(secret).toContain(char);
    });

    it('authenticates client_secret_basic with form-encoded credentials (RFC 6749 §2.3.1)', async () => {
      const { status, body } = await postAs(server, server.clients.basic, discovery.token_endpoint, {
        grant_type: 'client_credentials',
        scope: 'api:read',
      });
      expect(status).toBe(200);
      expect(body).toEqual({
        access_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'api:read',
      });
    });

    it('rejects Basic credentials that were not form-encoded', async () => {
      const { basic } = server.clients;
      const raw = Buffer.from(`${basic.client_id}:${basic.client_secret}`).toString('base64');
      const { status, body } = await postForm(
        discovery.token_endpoint,
        { grant_type: 'client_credentials' },
        { authorization: `Basic ${raw}` },
      );
      expect(status).toBeGreaterThanOrEqual(400);
      expect(['invalid_request', 'invalid_client']).toContain(body.error);
    });

    it.each(['post', 'secretJwt', 'privateKeyJwt'] as const)('authenticates the %s client', async (name) => {
      const { status, body } = await postAs(server, server.clients[name], discovery.token_endpoint, {
        grant_type: 'client_credentials',
        scope: 'api:read api:write',
      });
      expect(status).toBe(200);
      expect(body).toMatchObject({ token_type: 'Bearer', scope: 'api:read api:write' });
    });

    it('answers a wrong secret with 401 invalid_client', async () => {
      const wrong = { ...server.clients.post, client_secret: 'wrong' };
      const { status, body } = await postAs(server, wrong, discovery.token_endpoint, {
        grant_type: 'client_credentials',
      });
      expect(status).toBe(401);
      expect(body.error).toBe('invalid_client');
    });
  });

  describe('introspection and revocation', () => {
    it('reports a token active, then inactive after its client revoked it', async () => {
      const { basic, post } = server.clients;
      const issued = await postAs(server, basic, discovery.token_endpoint, {
        grant_type: 'client_credentials',
        scope: 'api:read',
      });
      const token = issued.body.access_token as string;

      const asOwner = await postAs(server, basic, discovery.introspection_endpoint, { token });
      expect(asOwner.status).toBe(200);
      expect(asOwner.body).toMatchObject({
        active: true,
        client_id: basic.client_id,
        scope: 'api:read',
        token_type: 'Bearer',
        iss: server.issuer,
      });

      // A resource server is usually another (confidential) client.
      const asResourceServer = await postAs(server, post, discovery.introspection_endpoint, { token });
      expect(asResourceServer.body).toMatchObject({ active: true, client_id: basic.client_id });

      const revoked = await postAs(server, basic, discovery.revocation_endpoint, {
        token,
        token_type_hint: 'access_token',
      });
      expect(revoked.status).toBe(200);

      const after = await postAs(server, post, discovery.introspection_endpoint, { token });
      expect(after.body).toEqual({ active: false });
    });

    it('answers a JWT (RFC 9701) to the jwtIntrospection client asking for one', async () => {
      const client = server.clients.jwtIntrospection;
      const issued = await postAs(server, client, discovery.token_endpoint, {
        grant_type: 'client_credentials',
      });
      const response = await fetch(discovery.introspection_endpoint, {
        method: 'POST',
        headers: {
          authorization: basicAuthorization(client),
          accept: 'application/token-introspection+jwt',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token: issued.body.access_token as string }),
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/token-introspection\+jwt/);
      const { payload, protectedHeader } = await jwtVerify(
        await response.text(),
        createRemoteJWKSet(new URL(discovery.jwks_uri)),
        { issuer: server.issuer, audience: client.client_id },
      );
      expect(protectedHeader.alg).toBe('RS256');
      expect(payload.token_introspection).toMatchObject({ active: true, client_id: client.client_id });
    });
  });

  describe('device authorization grant', () => {
    async function initiate(client: TestClient, scope: string) {
      const { status, body } = await postAs(server, client, discovery.device_authorization_endpoint, {
        scope,
      });
      expect(status).toBe(200);
      return body as { device_code: string; user_code: string; expires_in: number; verification_uri: string };
    }

    const poll = (client: TestClient, deviceCode: string) =>
      postAs(server, client, discovery.token_endpoint, { grant_type: DEVICE_CODE, device_code: deviceCode });

    it('is pending, then issues tokens once the user approved', async () => {
      const client = server.clients.public;
      const authorization = await initiate(client, 'openid offline_access profile email');
      expect(authorization.expires_in).toBe(600);
      expect(authorization).not.toHaveProperty('interval'); // oidc-provider sends none by default

      const pending = await poll(client, authorization.device_code);
      expect(pending.status).toBe(400);
      expect(pending.body.error).toBe('authorization_pending');

      // Any case, with or without the dash, as a user would type it.
      await server.approveDevice(authorization.user_code.toLowerCase().replace('-', ''), {
        accountId: 'carol',
      });

      const { status, body } = await poll(client, authorization.device_code);
      expect(status).toBe(200);
      expect(body).toMatchObject({
        access_token: expect.any(String),
        refresh_token: expect.any(String),
        id_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: 300,
      });
      expect(decodeJwt(body.id_token as string)).toMatchObject({
        iss: server.issuer,
        aud: client.client_id,
        sub: 'carol',
        email: 'carol@example.com',
        name: 'Carol',
      });

      const again = await poll(client, authorization.device_code);
      expect(again.body.error).toBe('invalid_grant');
    });

    it('fails with access_denied once the user denied', async () => {
      const client = server.clients.basic;
      const authorization = await initiate(client, 'openid');
      await server.denyDevice(authorization.user_code);
      const { status, body } = await poll(client, authorization.device_code);
      expect(status).toBe(400);
      expect(body.error).toBe('access_denied');
    });

    it('refuses to approve an unknown or already decided user code', async () => {
      await expect(server.approveDevice('BCDF-GHJK')).rejects.toThrow(/no pending device authorization/);
      const authorization = await initiate(server.clients.post, 'openid');
      await server.denyDevice(authorization.user_code);
      await expect(server.approveDevice(authorization.user_code)).rejects.toThrow(/already/);
    });
  });

  describe('CIBA (poll mode)', () => {
    async function initiate(fields: Record<string, string>) {
      return postAs(server, server.clients.post, discovery.backchannel_authentication_endpoint, fields);
    }

    const poll = (authReqId: string) =>
      postAs(server, server.clients.post, discovery.token_endpoint, {
        grant_type: CIBA,
        auth_req_id: authReqId,
      });

    it('is pending, then issues tokens for the hinted user once approved', async () => {
      const started = await initiate({
        scope: 'openid offline_access email',
        login_hint: 'bob',
        binding_message: 'W4SCT',
        user_code: '1234',
      });
      expect(started.status).toBe(200);
      expect(started.body).toEqual({ auth_req_id: expect.any(String), expires_in: 600 });
      const authReqId = started.body.auth_req_id as string;

      const pending = await poll(authReqId);
      expect(pending.status).toBe(400);
      expect(pending.body.error).toBe('authorization_pending');

      await server.approveBackchannel(authReqId);
      const { status, body } = await poll(authReqId);
      expect(status).toBe(200);
      expect(body).toMatchObject({ refresh_token: expect.any(String), id_token: expect.any(String) });
      expect(decodeJwt(body.id_token as string)).toMatchObject({ sub: 'bob', email: 'bob@example.com' });
    });

    it('fails with access_denied once the user denied', async () => {
      const started = await initiate({ scope: 'openid', login_hint: 'bob' });
      await server.denyBackchannel(started.body.auth_req_id as string);
      const { status, body } = await poll(started.body.auth_req_id as string);
      expect(status).toBe(400);
      expect(body.error).toBe('access_denied');
    });

    it('honours requested_expiry', async () => {
      const started = await initiate({ scope: 'openid', login_hint: 'bob', requested_expiry: '30' });
      expect(started.body.expires_in).toBe(30);
    });

    it.each([
      [
        { scope: 'openid', login_hint: 'bob', binding_message: 'not a valid binding message' },
        'invalid_binding_message',
      ],
      [{ scope: 'openid', login_hint: 'bob', user_code: 'no spaces allowed' }, 'invalid_user_code'],
      [{ scope: 'openid' }, 'invalid_request'],
    ])('rejects %j with %s', async (fields, error) => {
      const { status, body } = await initiate(fields);
      expect(status).toBe(400);
      expect(body.error).toBe(error);
    });
  });

  describe('refresh tokens', () => {
    it('issueUserTokens() returns a real user token set', async () => {
      const tokens = await server.issueUserTokens('basic');
      expect(tokens).toMatchObject({
        access_token: expect.any(String),
        refresh_token: expect.any(String),
        id_token: expect.any(String),
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'openid offline_access profile email api:read',
      });
      expect(decodeJwt(tokens.id_token!)).toMatchObject({ sub: 'alice', name: 'Alice' });
    });

    it('issues no refresh token without offline_access', async () => {
      const tokens = await server.issueUserTokens(server.clients.post, {
        scope: 'openid',
        accountId: 'dave',
      });
      expect(tokens.refresh_token).toBeUndefined();
      expect(decodeJwt(tokens.id_token!).sub).toBe('dave');
    });

    it.each(['basic', 'post', 'secretJwt', 'privateKeyJwt', 'jwtIntrospection', 'public'] as const)(
      'rotates the %s client refresh token; the old one then fails with invalid_grant',
      async (name) => {
        const client = server.clients[name];
        const initial = await server.issueUserTokens(name);
        const refresh = (refreshToken: string) =>
          postAs(server, client, discovery.token_endpoint, {
            grant_type: 'refresh_token',
            refresh_token: refreshToken,
          });

        const refreshed = await refresh(initial.refresh_token!);
        expect(refreshed.status).toBe(200);
        expect(refreshed.body.refresh_token).toEqual(expect.any(String));
        expect(refreshed.body.refresh_token).not.toBe(initial.refresh_token);
        expect(refreshed.body.access_token).not.toBe(initial.access_token);

        const replayed = await refresh(initial.refresh_token!);
        expect(replayed.status).toBe(400);
        expect(replayed.body.error).toBe('invalid_grant');
      },
    );

    it('refuses a revoked refresh token', async () => {
      const { basic } = server.clients;
      const tokens = await server.issueUserTokens(basic);
      const revoked = await postAs(server, basic, discovery.revocation_endpoint, {
        token: tokens.refresh_token!,
        token_type_hint: 'refresh_token',
      });
      expect(revoked.status).toBe(200);
      const introspected = await postAs(server, basic, discovery.introspection_endpoint, {
        token: tokens.refresh_token!,
      });
      expect(introspected.body).toEqual({ active: false });
      const { status, body } = await postAs(server, basic, discovery.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
      });
      expect(status).toBe(400);
      expect(body.error).toBe('invalid_grant');
    });
  });

  describe('stats()', () => {
    it('counts requests per endpoint, not those of issueUserTokens()', async () => {
      const { basic } = server.clients;
      const user = await server.issueUserTokens('basic');
      server.resetStats();
      expect(server.stats()).toEqual({
        token: 0,
        introspection: 0,
        revocation: 0,
        deviceAuthorization: 0,
        backchannelAuthentication: 0,
        discovery: 0,
        jwks: 0,
      });

      await getJson(`${server.issuer}/.well-known/openid-configuration`);
      await getJson(`${server.issuer}/.well-known/oauth-authorization-server`);
      await getJson(discovery.jwks_uri);
      const issued = await postAs(server, basic, discovery.token_endpoint, {
        grant_type: 'client_credentials',
      });
      await postAs(server, basic, discovery.token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: user.refresh_token!,
      });
      await postAs(server, basic, discovery.introspection_endpoint, {
        token: issued.body.access_token as string,
      });
      await postAs(server, basic, discovery.revocation_endpoint, {
        token: issued.body.access_token as string,
      });
      await postAs(server, basic, discovery.device_authorization_endpoint, { scope: 'openid' });
      await postAs(server, basic, discovery.backchannel_authentication_endpoint, {
        scope: 'openid',
        login_hint: 'bob',
      });

      expect(server.stats()).toEqual({
        token: 2,
        introspection: 1,
        revocation: 1,
        deviceAuthorization: 1,
        backchannelAuthentication: 1,
        discovery: 2,
        jwks: 1,
      });
    });

    it('hands out copies', () => {
      const stats = server.stats();
      stats.token = 1_000;
      expect(server.stats().token).not.toBe(1_000);
    });
  });
});

describe('startTestServer({ requireDPoPNonce: true })', () => {
  let server: TestServer;
  let discovery: Discovery;

  beforeAll(async () => {
    server = await startTestServer({ requireDPoPNonce: true });
    discovery = await discover(server);
  });

  afterAll(() => server.close());

  it('answers a proof without nonce with use_dpop_nonce and a DPoP-Nonce, then binds the token', async () => {
    const keyPair = await generateKeyPair('ES256');
    const { basic } = server.clients;
    const request = async (nonce?: string) =>
      postAs(
        server,
        basic,
        discovery.token_endpoint,
        { grant_type: 'client_credentials' },
        { dpop: await dpopProof(keyPair, discovery.token_endpoint, nonce) },
      );

    const challenged = await request();
    expect(challenged.status).toBe(400);
    expect(challenged.body.error).toBe('use_dpop_nonce');
    const nonce = challenged.headers.get('dpop-nonce');
    expect(nonce).toEqual(expect.any(String));

    const { status, body } = await request(nonce!);
    expect(status).toBe(200);
    expect(body.token_type).toBe('DPoP');

    const introspected = await postAs(server, basic, discovery.introspection_endpoint, {
      token: body.access_token as string,
    });
    expect(introspected.body).toMatchObject({
      active: true,
      token_type: 'DPoP',
      cnf: { jkt: expect.any(String) },
    });
  });

  it('still issues Bearer tokens to requests without DPoP', async () => {
    const { status, body } = await postAs(server, server.clients.post, discovery.token_endpoint, {
      grant_type: 'client_credentials',
    });
    expect(status).toBe(200);
    expect(body.token_type).toBe('Bearer');
  });
});

describe("startTestServer({ accessTokenFormat: 'jwt' })", () => {
  let server: TestServer;
  let discovery: Discovery;

  beforeAll(async () => {
    server = await startTestServer({ accessTokenFormat: 'jwt', accessTokenTtlSeconds: 120 });
    discovery = await discover(server);
  });

  afterAll(() => server.close());

  it('issues RFC 9068 JWT access tokens signed with the server keys', async () => {
    const { basic } = server.clients;
    const { status, body } = await postAs(server, basic, discovery.token_endpoint, {
      grant_type: 'client_credentials',
      scope: 'api:read',
    });
    expect(status).toBe(200);
    expect(body).toMatchObject({ expires_in: 120, scope: 'api:read' });
    const token = body.access_token as string;
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: 'at+jwt', alg: 'RS256' });
    const { payload } = await jwtVerify(token, createRemoteJWKSet(new URL(discovery.jwks_uri)), {
      issuer: server.issuer,
      audience: server.apiResource,
      typ: 'at+jwt',
    });
    expect(payload).toMatchObject({ client_id: basic.client_id, scope: 'api:read' });
    expect(payload.exp! - payload.iat!).toBe(120);
  });

  it('issues JWT access tokens in user flows too, and refreshes them', async () => {
    const tokens = await server.issueUserTokens('post');
    expect(decodeJwt(tokens.access_token)).toMatchObject({
      sub: 'alice',
      aud: server.apiResource,
      scope: 'api:read',
    });
    const refreshed = await postAs(server, server.clients.post, discovery.token_endpoint, {
      grant_type: 'refresh_token',
      refresh_token: tokens.refresh_token!,
    });
    expect(refreshed.status).toBe(200);
    expect(decodeJwt(refreshed.body.access_token as string)).toMatchObject({ sub: 'alice' });
  });
  it('issues JWT access tokens to approved CIBA requests', async () => {
    const { post } = server.clients;
    const started = await postAs(server, post, discovery.backchannel_authentication_endpoint, {
      scope: 'openid api:write',
      login_hint: 'erin',
    });
    await server.approveBackchannel(started.body.auth_req_id as string);
    const { status, body } = await postAs(server, post, discovery.token_endpoint, {
      grant_type: CIBA,
      auth_req_id: started.body.auth_req_id as string,
    });
    expect(status).toBe(200);
    expect(decodeJwt(body.access_token as string)).toMatchObject({
      sub: 'erin',
      aud: server.apiResource,
      scope: 'api:write',
    });
  });
});

describe('startTestServer({ rotateRefreshTokens: false })', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ rotateRefreshTokens: false, refreshTokenTtlSeconds: 600 });
  });

  afterAll(() => server.close());

  it('keeps the refresh token usable', async () => {
    const { token_endpoint } = await discover(server);
    const tokens = await server.issueUserTokens('basic');
    for (let i = 0; i < 2; i += 1) {
      const { status, body } = await postAs(server, server.clients.basic, token_endpoint, {
        grant_type: 'refresh_token',
        refresh_token: tokens.refresh_token!,
      });
      expect(status).toBe(200);
      expect(body.refresh_token ?? tokens.refresh_token).toBe(tokens.refresh_token);
    }
  });
});

describe('startTestServer({ pollIntervalSeconds: 0 })', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({ pollIntervalSeconds: 0 });
  });

  afterAll(() => server.close());

  it('returns the interval from the device authorization and CIBA endpoints', async () => {
    const discovery = await discover(server);
    const device = await postAs(server, server.clients.basic, discovery.device_authorization_endpoint, {
      scope: 'openid',
    });
    expect(device.body).toMatchObject({ device_code: expect.any(String), interval: 0 });
    const ciba = await postAs(server, server.clients.basic, discovery.backchannel_authentication_endpoint, {
      scope: 'openid',
      login_hint: 'bob',
    });
    expect(ciba.body).toMatchObject({ auth_req_id: expect.any(String), interval: 0 });
  });

  it('leaves error responses alone', async () => {
    const discovery = await discover(server);
    const { status, body } = await postAs(
      server,
      server.clients.basic,
      discovery.backchannel_authentication_endpoint,
      {
        scope: 'openid',
      },
    );
    expect(status).toBe(400);
    expect(body).not.toHaveProperty('interval');
  });
});

describe('TestServer.close()', () => {
  it('is idempotent and leaves nothing listening', async () => {
    const server = await startTestServer();
    const url = `${server.issuer}/.well-known/openid-configuration`;
    expect((await fetch(url)).status).toBe(200); // leaves a keep-alive connection open
    await Promise.all([server.close(), server.close()]);
    await server.close();
    await expect(fetch(url)).rejects.toThrow();
  });

  it('rejects with the listen error when the port is taken', async () => {
    const first = await startTestServer();
    try {
      const port = Number(new URL(first.issuer).port);
      await expect(startTestServer({ port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
  });

  it('rejects invalid options', async () => {
    await expect(startTestServer({ accessTokenTtlSeconds: 0 })).rejects.toThrow(RangeError);
    await expect(startTestServer({ port: 70_000 })).rejects.toThrow(RangeError);
    await expect(startTestServer({ pollIntervalSeconds: -1 })).rejects.toThrow(RangeError);
  });
});
