import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import axios from 'axios';
import { Client, ConfigurationError, OAuthError, ResponseError, TransportError } from '@tessera/core';
import { rejection } from './support/test-helpers.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

const SECRET = 'p@ss+w/rd:%~ é';
const REFRESH_TOKEN = 'rt-very-secret-refresh-token';

let server: FakeServer;
const parked: Array<() => void> = [];

beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(async () => {
  for (const release of parked) release();
  await server.close();
});

let route = 0;
let transportOptions: ConstructorParameters<typeof Client>[2] = {};
/** A client whose token endpoint is a fresh path answered by `handler`. */
function clientFor(handler: Handler, options: ConstructorParameters<typeof Client>[2] = {}) {
  const path = `/token-${++route}`;
  server.on(path, handler);
  const client = new Client(
    { issuer: server.url, token_endpoint: `${server.url}${path}` },
    { client_id: 'c1', client_secret: SECRET, token_endpoint_auth_method: 'client_secret_basic' },
    { retry: { minDelayMs: 1, maxDelayMs: 1000 }, ...transportOptions, ...options },
  );
  return { client, requests: () => server.requestsTo(path) };
}

function expectNoSecrets(error: unknown) {
  const texts = [String((error as Error).message), JSON.stringify(error), inspect(error, { depth: 5 })];
  for (const text of texts) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(REFRESH_TOKEN);
    expect(text).not.toContain(Buffer.from(SECRET).toString('base64').slice(0, 8));
  }
}

describe.each<[string, () => ConstructorParameters<typeof Client>[2]]>([
  ['node:http (the default)', () => ({})],
  ['a caller-supplied axios instance', () => ({ axios: axios.create() })],
])('over %s', (_transport, transport) => {
  beforeAll(() => {
    transportOptions = transport();
  });

  describe('successful responses (RFC 6749 §5.1)', () => {
    it.each([['bearer'], ['BEARER'], ['Bearer']])(
      'accepts token_type %s and normalises it to Bearer',
      async (tokenType) => {
        const { client } = clientFor((_r, res) =>
          json(res, 200, { access_token: 'a', token_type: tokenType }),
        );
        await expect(client.clientCredentialsGrant()).resolves.toMatchObject({ token_type: 'Bearer' });
      },
    );

    it('accepts expires_in as a numeric string', async () => {
      const { client } = clientFor((_r, res) =>
        json(res, 200, { access_token: 'a', token_type: 'Bearer', expires_in: '3600' }),
      );
      const tokens = await client.clientCredentialsGrant();
      expect(tokens.expires_in).toBe(3600);
      expect(tokens.expiresIn()).toBeGreaterThanOrEqual(3599);
    });

    it('leaves expiry unknown when expires_in is missing', async () => {
      const { client } = clientFor((_r, res) => json(res, 200, { access_token: 'a', token_type: 'Bearer' }));
      const tokens = await client.clientCredentialsGrant();
      expect(tokens.expires_in).toBeUndefined();
      expect(tokens.expiresIn()).toBeUndefined();
    });

    it('keeps unknown members, hides helpers from JSON and tokens from util.inspect', async () => {
      const wire = {
        access_token: 'at-secret-1',
        token_type: 'Bearer',
        expires_in: 60,
        refresh_token: REFRESH_TOKEN,
        ext_field: { a: 1 },
      };
      const { client } = clientFor((_r, res) => json(res, 200, wire));
      const tokens = await client.clientCredentialsGrant();
      expect(tokens.ext_field).toEqual({ a: 1 });
      expect(JSON.parse(JSON.stringify(tokens))).toEqual(wire);
      expect(Object.keys(tokens)).not.toContain('claims');
      expect(Object.isFrozen(tokens)).toBe(true);
      const shown = inspect(tokens);
      expect(shown).not.toContain('at-secret-1');
      expect(shown).not.toContain(REFRESH_TOKEN);
      expect(shown).toContain('ext_field');
    });

    it('sends array parameters as repeated form fields, in order, and leaves out empty ones', async () => {
      const { client, requests } = clientFor((_r, res) =>
        json(res, 200, { access_token: 'a', token_type: 'Bearer' }),
      );
      await client.clientCredentialsGrant({
        resource: ['https://a.example/', 'https://b.example/'],
        scope: '',
        audience: undefined,
      });
      const form = requests()[0]!.form;
      expect(form.getAll('resource')).toEqual(['https://a.example/', 'https://b.example/']);
      expect(form.has('scope')).toBe(false);
      expect(form.has('audience')).toBe(false);
    });

    it('sends refresh_token with grant_type refresh_token', async () => {
      const { client, requests } = clientFor((_r, res) =>
        json(res, 200, { access_token: 'a', token_type: 'Bearer' }),
      );
      await client.refreshTokenGrant(REFRESH_TOKEN, { scope: 'a' });
      const form = requests()[0]!.form;
      expect(Object.fromEntries(form)).toEqual({
        grant_type: 'refresh_token',
        refresh_token: REFRESH_TOKEN,
        scope: 'a',
      });
    });

    it('sends a token exchange with N_A token type and issued_token_type back (RFC 8693)', async () => {
      const { client, requests } = clientFor((_r, res) =>
        json(res, 200, {
          access_token: 'id-token-like',
          token_type: 'N_A',
          issued_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        }),
      );
      const tokens = await client.genericGrantRequest('urn:ietf:params:oauth:grant-type:token-exchange', {
        subject_token: 'subj',
        subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        audience: ['svc-a', 'svc-b'],
      });
      expect(tokens).toMatchObject({
        token_type: 'N_A',
        issued_token_type: 'urn:ietf:params:oauth:token-type:id_token',
      });
      expect(requests()[0]!.form.getAll('audience')).toEqual(['svc-a', 'svc-b']);
    });
  });

  describe('bad input is refused before any request', () => {
    it.each<[string, Record<string, string | string[]>]>([
      ['no subject_token_type', { subject_token: 's' }],
      [
        'actor_token without actor_token_type',
        { subject_token: 's', subject_token_type: 't', actor_token: 'a' },
      ],
      [
        'actor_token_type without actor_token',
        { subject_token: 's', subject_token_type: 't', actor_token_type: 't' },
      ],
    ])('token exchange with %s', async (_name, parameters) => {
      const { client, requests } = clientFor((_r, res) => json(res, 200, {}));
      const error = await rejection(
        client.genericGrantRequest('urn:ietf:params:oauth:grant-type:token-exchange', parameters),
      );
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(requests()).toHaveLength(0);
    });

    it.each([['https://api.example/#frag'], ['not a uri']])('resource %s', async (resource) => {
      const { client, requests } = clientFor((_r, res) => json(res, 200, {}));
      const error = await rejection(client.clientCredentialsGrant({ resource }));
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(requests()).toHaveLength(0);
    });

    it('an empty refresh token', async () => {
      const { client } = clientFor((_r, res) => json(res, 200, {}));
      expect(await rejection(client.refreshTokenGrant(''))).toBeInstanceOf(ConfigurationError);
    });
  });

  describe('malformed and error responses become typed errors', () => {
    it.each<[string, unknown, string]>([
      ['no access_token', { token_type: 'Bearer', expires_in: 60 }, 'access_token'],
      ['access_token not a string', { access_token: 42, token_type: 'Bearer' }, 'access_token'],
      ['no token_type', { access_token: 'a' }, 'token_type'],
      ['negative expires_in', { access_token: 'a', token_type: 'Bearer', expires_in: -5 }, 'expires_in'],
      [
        'non-numeric expires_in',
        { access_token: 'a', token_type: 'Bearer', expires_in: 'abc' },
        'expires_in',
      ],
      ['unknown token_type', { access_token: 'a', token_type: 'mac' }, 'token_type'],
    ])('200 with %s → ResponseError INVALID_RESPONSE naming the field', async (_name, body, field) => {
      const { client } = clientFor((_r, res) => json(res, 200, body));
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toBeInstanceOf(ResponseError);
      expect(error).toMatchObject({
        code: 'INVALID_RESPONSE',
        field,
        endpoint: 'token endpoint',
        status: 200,
      });
      expect(error.message).toContain('token endpoint response');
      expect(error.message).toContain(field);
    });

    it('200 with a body that is not JSON', async () => {
      const { client } = clientFor((_r, res) =>
        raw(res, 200, 'access_token=a&token_type=bearer', {
          'content-type': 'application/x-www-form-urlencoded',
        }),
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        code: 'INVALID_RESPONSE',
        status: 200,
      });
    });

    it('200 with an error member is an OAuthError', async () => {
      const { client } = clientFor((_r, res) =>
        json(res, 200, { error: 'bad_verification_code', error_description: 'The code is wrong' }),
      );
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({ error: 'bad_verification_code', status: 200 });
    });

    it('400 invalid_grant on refresh is an OAuthError with the server fields, sent once', async () => {
      const { client, requests } = clientFor((_r, res) =>
        json(res, 400, {
          error: 'invalid_grant',
          error_description: 'grant request is invalid',
          error_uri: 'https://as/doc',
        }),
      );
      const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
      expect(error).toBeInstanceOf(OAuthError);
      expect(error).toMatchObject({
        error: 'invalid_grant',
        error_description: 'grant request is invalid',
        error_uri: 'https://as/doc',
        status: 400,
      });
      expect(requests()).toHaveLength(1);
      expectNoSecrets(error);
    });

    it('401 invalid_client keeps the WWW-Authenticate header', async () => {
      const { client } = clientFor((_r, res) =>
        json(res, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="as"' }),
      );
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toMatchObject({
        code: 'OAUTH_ERROR',
        error: 'invalid_client',
        status: 401,
        wwwAuthenticate: 'Basic realm="as"',
      });
      expectNoSecrets(error);
    });

    it('502 with an HTML body → HTTP_ERROR with status and text', async () => {
      const html = '<html><body><h1>502 Bad Gateway</h1></body></html>';
      const { client, requests } = clientFor((_r, res) =>
        raw(res, 502, html, { 'content-type': 'text/html' }),
      );
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toBeInstanceOf(ResponseError);
      expect(error).toMatchObject({ code: 'HTTP_ERROR', status: 502, body: html });
      expect(requests()).toHaveLength(1); // a grant is not retried on 5xx: the server may have used it
    });

    it('500 with an Edlink {"$error": ...} body → HTTP_ERROR whose message carries the text', async () => {
      const { client } = clientFor((_r, res) => json(res, 500, { $error: 'Integration is not active.' }));
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toMatchObject({
        code: 'HTTP_ERROR',
        status: 500,
        providerError: { message: 'Integration is not active.' },
      });
      expect(error.message).toContain('Integration is not active.');
    });

    it('Edlink {"$errors": [...]} with $request → code and request id', async () => {
      const { client } = clientFor((_r, res) =>
        json(res, 400, {
          $request: 'r1',
          $errors: [
            { code: 'BAD_REQUEST', message: 'x' },
            { code: 'OTHER', message: 'y' },
          ],
        }),
      );
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toMatchObject({
        providerError: { code: 'BAD_REQUEST', message: 'x; y', requestId: 'r1' },
      });
    });

    it('an error body that echoes a secret has it redacted', async () => {
      const { client } = clientFor((r, res) =>
        json(res, 400, {
          error: 'invalid_grant',
          error_description: `bad token ${r.form.get('refresh_token')}`,
        }),
      );
      const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
      expect((error as OAuthError).error_description).toBe('bad token [redacted]');
      expectNoSecrets(error);
    });

    it('a 3xx is not followed', async () => {
      const { client, requests } = clientFor((_r, res) =>
        raw(res, 302, '', { location: `${server.url}/elsewhere` }),
      );
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toMatchObject({ code: 'HTTP_ERROR', status: 302 });
      expect(requests()).toHaveLength(1);
      expect(server.requestsTo('/elsewhere')).toHaveLength(0);
    });
  });

  describe('transport limits', () => {
    it('refuses a body over maxResponseBytes', async () => {
      const { client } = clientFor(
        (_r, res) => json(res, 200, { access_token: 'a'.repeat(5000), token_type: 'Bearer' }),
        { maxResponseBytes: 1024 },
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        code: 'INVALID_RESPONSE',
        status: 200,
      });
    });

    it('refuses a chunked body that grows over maxResponseBytes', async () => {
      const { client } = clientFor(
        (_r, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"access_token":"');
          res.write('a'.repeat(2048));
          res.end('","token_type":"Bearer"}');
        },
        { maxResponseBytes: 1024 },
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'INVALID_RESPONSE' });
    });

    it('a server that never answers → TransportError TIMEOUT', async () => {
      const { client } = clientFor(() => new Promise<void>((resolve) => parked.push(resolve)), {
        timeoutMs: 200,
      });
      const error = await rejection(client.clientCredentialsGrant());
      expect(error).toBeInstanceOf(TransportError);
      expect(error.code).toBe('TIMEOUT');
    });

    it('a body that stalls half-way → TIMEOUT', async () => {
      const { client } = clientFor(
        (_r, res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"access_token":');
          return new Promise<void>((resolve) => parked.push(resolve));
        },
        { timeoutMs: 200 },
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'TIMEOUT' });
    });

    it('an aborted signal → ABORTED', async () => {
      const { client } = clientFor(() => new Promise<void>((resolve) => parked.push(resolve)));
      const controller = new AbortController();
      const pending = client.clientCredentialsGrant(undefined, { signal: controller.signal });
      setTimeout(() => controller.abort(), 20);
      expect(await rejection(pending)).toMatchObject({ code: 'ABORTED' });
    });

    it('a connection reset → NETWORK_ERROR, and a refresh is not replayed', async () => {
      const { client, requests } = clientFor((_r, res) => {
        res.socket?.destroy();
      });
      const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
      expect(error).toMatchObject({ code: 'NETWORK_ERROR', systemCode: 'ECONNRESET' });
      expect(requests()).toHaveLength(1);
      expectNoSecrets(error);
    });

    it('a refused connection → NETWORK_ERROR ECONNREFUSED', async () => {
      const client = new Client(
        { issuer: 'http://127.0.0.1:1', token_endpoint: 'http://127.0.0.1:1/token' },
        { client_id: 'c', client_secret: 's', token_endpoint_auth_method: 'client_secret_post' },
        { retry: { retries: 1, minDelayMs: 1 } },
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        code: 'NETWORK_ERROR',
        systemCode: 'ECONNREFUSED',
      });
    });

    it.each([[429], [503]])('%s with Retry-After is retried, then succeeds', async (status) => {
      let calls = 0;
      const { client, requests } = clientFor((_r, res) => {
        calls += 1;
        if (calls === 1) json(res, status, { error: 'temporarily_unavailable' }, { 'retry-after': '0' });
        else json(res, 200, { access_token: 'a', token_type: 'Bearer' });
      });
      await expect(client.clientCredentialsGrant()).resolves.toMatchObject({ access_token: 'a' });
      expect(requests()).toHaveLength(2);
    });

    it('429 with a Retry-After longer than maxDelayMs is not waited for', async () => {
      const { client, requests } = clientFor((_r, res) =>
        json(res, 429, { error: 'slow_down' }, { 'retry-after': '3600' }),
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        error: 'slow_down',
        status: 429,
      });
      expect(requests()).toHaveLength(1);
    });

    it('retries are bounded', async () => {
      const { client, requests } = clientFor((_r, res) => json(res, 503, {}, { 'retry-after': '0' }), {
        retry: { retries: 2, minDelayMs: 1 },
      });
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        code: 'HTTP_ERROR',
        status: 503,
      });
      expect(requests()).toHaveLength(3);
    });

    it('refuses http:// to a non-loopback host unless allowInsecureRequests', () => {
      const build = (allowInsecureRequests: boolean) =>
        new Client(
          { issuer: 'http://as.example', token_endpoint: 'http://as.example/token' },
          { client_id: 'c', token_endpoint_auth_method: 'none' },
          { allowInsecureRequests },
        );
      expect(() => build(false)).toThrow(ConfigurationError);
      expect(() => build(true)).not.toThrow();
    });

    it('a missing endpoint is ConfigurationError UNSUPPORTED', async () => {
      const client = new Client(
        { issuer: server.url },
        { client_id: 'c', token_endpoint_auth_method: 'none' },
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({ code: 'UNSUPPORTED' });
    });
  });
});

describe('hostile token responses found by the fuzz harness', () => {
  it.each([['__proto__'], ['constructor'], ['toString']])(
    'token_type %s is INVALID_RESPONSE (regression: Object.prototype came back as the type)',
    async (tokenType) => {
      const { client } = clientFor((_r, res) =>
        json(res, 200, { access_token: 'at-0123456789', token_type: tokenType }),
      );
      expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
        code: 'INVALID_RESPONSE',
        field: 'token_type',
      });
    },
  );

  it('expires_in of 400 digits is INVALID_RESPONSE (regression: it became Infinity)', async () => {
    const { client } = clientFor((_r, res) =>
      json(res, 200, { access_token: 'at', token_type: 'Bearer', expires_in: '9'.repeat(400) }),
    );
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
      code: 'INVALID_RESPONSE',
      field: 'expires_in',
    });
  });

  it('an id_token whose header nests 5,000 deep is INVALID_ID_TOKEN (regression: a raw RangeError)', async () => {
    const header = Buffer.from(`{"alg":${'['.repeat(5000)}${']'.repeat(5000)}}`).toString('base64url');
    const { client } = clientFor((_r, res) =>
      json(res, 200, { access_token: 'at', token_type: 'Bearer', id_token: `${header}.e30.` }),
    );
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
      code: 'INVALID_ID_TOKEN',
      check: 'format',
    });
  });

  it('an id_token whose alg is not a string is INVALID_ID_TOKEN alg', async () => {
    const header = Buffer.from('{"alg":["RS256"]}').toString('base64url');
    const { client } = clientFor((_r, res) =>
      json(res, 200, { access_token: 'at', token_type: 'Bearer', id_token: `${header}.e30.` }),
    );
    expect(await rejection(client.clientCredentialsGrant())).toMatchObject({
      code: 'INVALID_ID_TOKEN',
      check: 'alg',
    });
  });
});
