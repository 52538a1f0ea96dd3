import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import { Client, OAuthError, ResponseError } from '@tessera/core';
import { rejection } from './support/test-helpers.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

const TOKEN = 'opaque-access-token-value-123';

let server: FakeServer;
beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(() => server.close());

let route = 0;
function clientFor(handler: Handler, clientMetadata: Record<string, unknown> = {}) {
  const path = `/ep-${++route}`;
  server.on(path, handler);
  const client = new Client(
    {
      issuer: server.url,
      introspection_endpoint: `${server.url}${path}`,
      revocation_endpoint: `${server.url}${path}`,
    },
    {
      client_id: 'rs',
      client_secret: 'rs-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      ...clientMetadata,
    },
    { retry: { minDelayMs: 1 } },
  );
  return { client, requests: () => server.requestsTo(path) };
}

function expectTokenHidden(error: unknown) {
  for (const text of [(error as Error).message, JSON.stringify(error), inspect(error, { depth: 5 })]) {
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain('rs-secret');
  }
}

describe('tokenIntrospection (RFC 7662)', () => {
  it('POSTs a form with token and the hint only when given, with Basic auth', async () => {
    const { client, requests } = clientFor((_r, res) => json(res, 200, { active: true }));
    await client.tokenIntrospection(TOKEN);
    await client.tokenIntrospection(TOKEN, { token_type_hint: 'refresh_token' });
    const [first, second] = requests();
    expect(first!.method).toBe('POST');
    expect(Object.fromEntries(first!.form)).toEqual({ token: TOKEN });
    expect(Object.fromEntries(second!.form)).toEqual({ token: TOKEN, token_type_hint: 'refresh_token' });
    expect(first!.headers.authorization).toMatch(/^Basic /);
  });

  it('authenticates with a bearer token instead when asked', async () => {
    const { client, requests } = clientFor((_r, res) => json(res, 200, { active: true }));
    await client.tokenIntrospection(TOKEN, undefined, { bearer: 'rs-access-token' });
    expect(requests()[0]!.headers.authorization).toBe('Bearer rs-access-token');
    expect(requests()[0]!.form.has('client_id')).toBe(false);
  });

  it('exposes nothing but active:false for an inactive token', async () => {
    const { client } = clientFor((_r, res) => json(res, 200, { active: false, scope: 'x', sub: 'leak' }));
    await expect(client.tokenIntrospection(TOKEN)).resolves.toStrictEqual({ active: false });
  });

  it('normalises numeric strings, scope arrays and keeps extra members', async () => {
    const { client } = clientFor((_r, res) =>
      json(res, 200, {
        active: true,
        exp: '1700000000',
        scope: ['a', 'b'],
        aud: ['x', 'y'],
        cnf: { jkt: 'j' },
        realm: 'r',
      }),
    );
    const result = await client.tokenIntrospection(TOKEN);
    expect(result).toMatchObject({
      active: true,
      exp: 1700000000,
      scope: 'a b',
      aud: ['x', 'y'],
      cnf: { jkt: 'j' },
      realm: 'r',
    });
    expect(Object.isFrozen(result)).toBe(true);
  });

  it.each<[string, number, unknown, Record<string, unknown>]>([
    [
      '401 invalid_client is an OAuthError, not inactive',
      401,
      { error: 'invalid_client' },
      { error: 'invalid_client', status: 401 },
    ],
    [
      '200 without active names the field',
      200,
      { scope: 'a' },
      { code: 'INVALID_RESPONSE', field: 'active' },
    ],
    [
      'active as a string names the field',
      200,
      { active: 'true' },
      { code: 'INVALID_RESPONSE', field: 'active' },
    ],
  ])('%s', async (_name, status, body, expected) => {
    const { client } = clientFor((_r, res) => json(res, status, body));
    const error = await rejection(client.tokenIntrospection(TOKEN));
    expect(error).toMatchObject(expected);
    expectTokenHidden(error);
  });

  it('200 with a body that is not JSON is INVALID_RESPONSE', async () => {
    const { client } = clientFor((_r, res) => raw(res, 200, 'active', { 'content-type': 'text/plain' }));
    expect(await rejection(client.tokenIntrospection(TOKEN))).toMatchObject({ code: 'INVALID_RESPONSE' });
  });

  it('retries a 503 (introspection is safe to repeat)', async () => {
    let calls = 0;
    const { client, requests } = clientFor((_r, res) =>
      ++calls === 1 ? raw(res, 503, 'busy') : json(res, 200, { active: true }),
    );
    await expect(client.tokenIntrospection(TOKEN)).resolves.toMatchObject({ active: true });
    expect(requests()).toHaveLength(2);
  });

  describe('Edlink', () => {
    it.each<[string, number, unknown, Record<string, unknown>]>([
      [
        '400 {"$error"} with the token echoed',
        400,
        { $error: `Invalid token ${TOKEN}.` },
        { code: 'HTTP_ERROR', status: 400, providerError: { message: 'Invalid token [redacted].' } },
      ],
      ['401 {"$error"}', 401, { $error: 'Invalid client credentials.' }, { code: 'HTTP_ERROR', status: 401 }],
      [
        '{"$errors"} with $request',
        400,
        { $request: 'r1', $errors: [{ code: 'BAD_REQUEST', message: 'x' }] },
        { providerError: { code: 'BAD_REQUEST', requestId: 'r1', message: 'x' } },
      ],
      ['HTML 502', 502, '<html>Bad Gateway</html>', { code: 'HTTP_ERROR', status: 502 }],
    ])('%s → ResponseError, not inactive', async (_name, status, body, expected) => {
      const { client } = clientFor((_r, res) =>
        typeof body === 'string'
          ? raw(res, status, body, { 'content-type': 'text/html' })
          : json(res, status, body),
      );
      const error = await rejection(client.tokenIntrospection(TOKEN, { token_type_hint: 'access_token' }));
      expect(error).toBeInstanceOf(ResponseError);
      expect(error).toMatchObject(expected);
      expectTokenHidden(error);
    });

    it('unwraps a {"$data": {...}} envelope', async () => {
      const { client } = clientFor((_r, res) =>
        json(res, 200, { $request: 'r', $data: { active: true, scope: 'openid' } }),
      );
      await expect(client.tokenIntrospection(TOKEN)).resolves.toMatchObject({
        active: true,
        scope: 'openid',
      });
    });

    it('the standard error shape is still an OAuthError', async () => {
      const { client } = clientFor((_r, res) => json(res, 401, { error: 'invalid_client' }));
      expect(await rejection(client.tokenIntrospection(TOKEN))).toBeInstanceOf(OAuthError);
    });
  });
});

describe('tokenRevocation (RFC 7009)', () => {
  it.each<[string, string, Record<string, string>]>([
    ['an empty body', '', {}],
    ['{}', '{}', { 'content-type': 'application/json' }],
    ['OK as text', 'OK', { 'content-type': 'text/plain' }],
    ['an HTML page', '<html></html>', { 'content-type': 'text/html' }],
  ])('200 with %s is success (the body is ignored, §2.2)', async (_name, body, headers) => {
    const { client, requests } = clientFor((_r, res) => raw(res, 200, body, headers));
    await expect(
      client.tokenRevocation(TOKEN, { token_type_hint: 'refresh_token' }),
    ).resolves.toBeUndefined();
    expect(Object.fromEntries(requests()[0]!.form)).toEqual({
      token: TOKEN,
      token_type_hint: 'refresh_token',
    });
  });

  it('400 unsupported_token_type is an OAuthError', async () => {
    const { client } = clientFor((_r, res) => json(res, 400, { error: 'unsupported_token_type' }));
    const error = await rejection(client.tokenRevocation(TOKEN, { token_type_hint: 'access_token' }));
    expect(error).toMatchObject({ code: 'OAUTH_ERROR', error: 'unsupported_token_type', status: 400 });
    expectTokenHidden(error);
  });

  it('503 with Retry-After is retried once, then succeeds', async () => {
    let calls = 0;
    const { client, requests } = clientFor((_r, res) =>
      ++calls === 1 ? raw(res, 503, '', { 'retry-after': '0' }) : raw(res, 200, ''),
    );
    await client.tokenRevocation(TOKEN);
    expect(requests()).toHaveLength(2);
  });

  it('503 every time ends in HTTP_ERROR: the token was not revoked', async () => {
    const { client, requests } = clientFor((_r, res) => raw(res, 503, '', { 'retry-after': '0' }));
    expect(await rejection(client.tokenRevocation(TOKEN))).toMatchObject({ code: 'HTTP_ERROR', status: 503 });
    expect(requests()).toHaveLength(3);
  });

  it('a server without a revocation endpoint is UNSUPPORTED', async () => {
    const client = new Client({ issuer: server.url }, { client_id: 'c', token_endpoint_auth_method: 'none' });
    expect(client.supports('revocation')).toBe(false);
    expect(await rejection(client.tokenRevocation(TOKEN))).toMatchObject({ code: 'UNSUPPORTED' });
  });
});
