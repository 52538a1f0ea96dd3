/**
 * requireToken() inside real express, fastifyRequireToken() inside real fastify, and the RFC 9728
 * metadata document, against a real authorization server issuing JWT access tokens.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import {
  Client,
  TokenVerifier,
  fastifyRequireToken,
  parseWwwAuthenticate,
  protectedResourceMetadata,
  randomDPoPKeyPair,
  requireToken,
} from '@tessera/core';
import type { AuthenticatedRequest } from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';

let as: TestServer;
let client: Client;
let verifier: TokenVerifier;
let expressUrl: string;
let httpServer: Server;
let fastify: FastifyInstance;
let fastifyUrl: string;

beforeAll(async () => {
  as = await startTestServer({ accessTokenFormat: 'jwt' });
  client = await Client.discover(as.issuer, as.clients.basic);
  verifier = new TokenVerifier({ client, resource: as.apiResource });

  const app = express();
  app.use(
    protectedResourceMetadata(verifier, {
      scopesSupported: ['api:read', 'api:write'],
      resourceName: 'Test API',
    }),
  );
  const api = express.Router();
  api.get(
    '/orders',
    requireToken(verifier, { scopes: ['api:read'], allowedHosts: ['127.0.0.1'] }),
    (req, res) => {
      res.json({ subject: (req as unknown as AuthenticatedRequest).auth.clientId });
    },
  );
  api.post(
    '/orders',
    requireToken(verifier, { scopes: ['api:write'], allowedHosts: ['127.0.0.1'] }),
    (_req, res) => {
      res.json({ ok: true });
    },
  );
  app.use('/api', api);
  httpServer = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  expressUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;

  fastify = Fastify();
  fastify.register(async (scope) => {
    scope.addHook(
      'onRequest',
      fastifyRequireToken(verifier, { scopes: ['api:read'], allowedHosts: ['127.0.0.1'] }),
    );
    scope.get('/orders', async (request) => ({
      subject: (request as unknown as { auth: { clientId: string } }).auth.clientId,
    }));
  });
  fastifyUrl = await fastify.listen({ port: 0, host: '127.0.0.1' });
});

afterAll(async () => {
  await fastify.close();
  await new Promise((resolve) => httpServer.close(resolve));
  await verifier.close();
  await as.close();
});

const token = async (scope = 'api:read') => (await client.clientCredentialsGrant({ scope })).access_token;

describe.each([
  ['express', () => `${expressUrl}/api/orders`],
  ['fastify', () => `${fastifyUrl}/orders`],
])('%s', (_name, url) => {
  it('lets a valid token through with req.auth set', async () => {
    const response = await fetch(url(), { headers: { authorization: `Bearer ${await token()}` } });
    expect(response.status).toBe(200);
    await expect(response.json()).resolves.toEqual({ subject: as.clients.basic.client_id });
  });

  it('answers no token with 401, a challenge without error, and resource_metadata', async () => {
    const response = await fetch(url());
    expect(response.status).toBe(401);
    const [bearer] = parseWwwAuthenticate(response.headers.get('www-authenticate'));
    expect(bearer!.parameters).toStrictEqual({
      realm: 'api',
      resource_metadata: 'https://api.tessera.test/.well-known/oauth-protected-resource',
    });
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as Record<string, unknown>;
    expect(Object.keys(body)).toEqual(['error_description']); // no error code without a token
  });

  it('answers a bad token with 401 invalid_token and a missing scope with 403', async () => {
    const bad = await fetch(url(), { headers: { authorization: 'Bearer not-a-valid-token' } });
    expect(bad.status).toBe(401);
    expect(parseWwwAuthenticate(bad.headers.get('www-authenticate'))[0]!.parameters.error).toBe(
      'invalid_token',
    );
    const weak = await fetch(url(), { headers: { authorization: `Bearer ${await token('api:write')}` } });
    expect(weak.status).toBe(403);
    const [bearer] = parseWwwAuthenticate(weak.headers.get('www-authenticate'));
    expect(bearer!.parameters).toMatchObject({ error: 'insufficient_scope', scope: 'api:read' });
  });

  it('accepts a DPoP-bound token with a proof for the URL the client addressed', async () => {
    const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: dpop });
    const target = url();
    const ok = await fetch(target, {
      headers: {
        authorization: `DPoP ${tokens.access_token}`,
        dpop: await dpop.proof('GET', target, { accessToken: tokens.access_token }),
      },
    });
    expect(ok.status).toBe(200);
    const asBearer = await fetch(target, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect(asBearer.status).toBe(401);
  });
});

describe('express specifics', () => {
  it('answers two Authorization headers with 400', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${expressUrl}/api/orders`,
        {
          headers: [
            ['authorization', 'Bearer a'],
            ['authorization', 'Bearer b'],
          ] as never,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it('uses the mounted path (originalUrl) for DPoP, and refuses a proof made for another route', async () => {
    const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: dpop });
    const response = await fetch(`${expressUrl}/api/orders`, {
      headers: {
        authorization: `DPoP ${tokens.access_token}`,
        dpop: await dpop.proof('GET', `${expressUrl}/orders`, { accessToken: tokens.access_token }),
      },
    });
    expect(response.status).toBe(401);
    expect(parseWwwAuthenticate(response.headers.get('www-authenticate'))[1]!.parameters.error).toBe(
      'invalid_dpop_proof',
    );
  });

  it('serves the protected resource metadata at the host root, without a token', async () => {
    const response = await fetch(`${expressUrl}/.well-known/oauth-protected-resource`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(response.headers.get('cache-control')).toBe('max-age=3600');
    const document = (await response.json()) as Record<string, unknown>;
    expect(document).toStrictEqual({
      resource: 'https://api.tessera.test',
      authorization_servers: [as.issuer],
      scopes_supported: ['api:read', 'api:write'],
      bearer_methods_supported: ['header'],
      resource_name: 'Test API',
      dpop_signing_alg_values_supported: expect.arrayContaining(['ES256']),
    });
    expect(
      (await fetch(`${expressUrl}/.well-known/oauth-protected-resource`, { method: 'POST' })).status,
    ).toBe(405);
  });

  it('answers 503 with Retry-After when the keys cannot be fetched', async () => {
    const broken = new Client(
      { issuer: as.issuer, jwks_uri: 'http://127.0.0.1:1/jwks' },
      { client_id: 'x', token_endpoint_auth_method: 'none' },
      { retry: { retries: 0 } },
    );
    const down = new TokenVerifier({ client: broken, audience: as.apiResource });
    const app = express();
    app.get('/x', requireToken(down, { allowedHosts: ['127.0.0.1'] }), (_req, res) => res.end('ok'));
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, {
        headers: { authorization: `Bearer ${await token()}` },
      });
      expect(response.status).toBe(503);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(
        parseWwwAuthenticate(response.headers.get('www-authenticate'))[0]!.parameters.error,
      ).toBeUndefined();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('the URL a DPoP proof must name, behind a proxy (RFC 9449 §4.3)', () => {
  let server: Server;
  let direct: string;
  const publicBase = 'https://api.example/v1';

  beforeAll(async () => {
    const app = express();
    app.get('/base/x', requireToken(verifier, { baseUrl: publicBase }), (_req, res) => res.end('ok'));
    app.get(
      '/trusting/x',
      requireToken(verifier, { trustProxy: true, allowedHosts: ['api.example', '127.0.0.1'] }),
      (_req, res) => res.end('ok'),
    );
    app.get('/plain/x', requireToken(verifier, { allowedHosts: ['127.0.0.1'] }), (_req, res) =>
      res.end('ok'),
    );
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    direct = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  async function call(path: string, proofUrl: string, headers: Record<string, string> = {}): Promise<number> {
    const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: dpop });
    const response = await fetch(`${direct}${path}`, {
      headers: {
        authorization: `DPoP ${tokens.access_token}`,
        dpop: await dpop.proof('GET', proofUrl, { accessToken: tokens.access_token }),
        ...headers,
      },
    });
    return response.status;
  }

  it('takes the public URL from baseUrl (a gateway that strips a prefix and ends TLS)', async () => {
    expect(await call('/base/x', `${publicBase}/base/x`)).toBe(200);
    expect(await call('/base/x', `${direct}/base/x`)).toBe(401);
  });

  it('reads X-Forwarded-Proto and -Host only with trustProxy', async () => {
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'api.example' };
    expect(await call('/trusting/x', 'https://api.example/trusting/x', forwarded)).toBe(200);
    expect(await call('/plain/x', 'https://api.example/plain/x', forwarded)).toBe(401);
    expect(await call('/plain/x', `${direct}/plain/x`, forwarded)).toBe(200);
  });
});

describe('server nonces through the middleware (RFC 9449 §9)', () => {
  it('answers a proof without a nonce with use_dpop_nonce and a DPoP-Nonce, then takes the retry, and sends the next nonce on 200', async () => {
    const nonceVerifier = new TokenVerifier({ client, resource: as.apiResource, dpop: { nonce: true } });
    const app = express();
    app.get('/x', requireToken(nonceVerifier, { allowedHosts: ['127.0.0.1'] }), (_req, res) => res.end('ok'));
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
      const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
      const tokens = await client.clientCredentialsGrant({ scope: 'api:read' }, { DPoP: dpop });
      const send = async () =>
        fetch(url, {
          headers: {
            authorization: `DPoP ${tokens.access_token}`,
            dpop: await dpop.proof('GET', url, { accessToken: tokens.access_token }),
          },
        });
      const first = await send();
      expect(first.status).toBe(401);
      expect(parseWwwAuthenticate(first.headers.get('www-authenticate'))[1]!.parameters.error).toBe(
        'use_dpop_nonce',
      );
      expect(dpop.learnFromResponse(url, first)).toBe(true);
      const second = await send();
      expect(second.status).toBe(200);
      expect(second.headers.get('dpop-nonce')).toEqual(expect.any(String));
      expect(second.headers.get('cache-control')).toBe('no-store');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
