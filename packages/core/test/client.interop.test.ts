/**
 * Servers that read the RFCs differently: `client_secret_basic` credentials taken raw instead of
 * form-decoded (RFC 6749 §2.3.1), client assertions whose `aud` must be the endpoint's URL, grant
 * types published in the wrong metadata member. Local node:http servers play them (oidc-provider
 * reads the RFCs as written, which is the case the other tests cover).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { jwtVerify } from 'jose';
import { Client, OAuthError, ResponseError } from '@tessera/core';
import type { ClientOptions, ServerMetadata } from '@tessera/core';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, RecordedRequest } from './support/fake-server.js';
import { rejection } from './support/test-helpers.js';

const CLIENT_ID = 'svc.billing';
/** Form-encoding changes it (RFC 6749 Appendix B): `:`, `/`, `+`, space, `é`, `&`, `=`. A raw reading splits at the first colon, so the id has none. */
const SECRET = 'pa:ss/wo+rd é&=x';

let server: FakeServer;
let metadata: ServerMetadata;
beforeAll(async () => {
  server = await startFakeServer();
  metadata = {
    issuer: server.url,
    token_endpoint: `${server.url}/token`,
    introspection_endpoint: `${server.url}/introspect`,
    revocation_endpoint: `${server.url}/revoke`,
  };
});
afterAll(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
});

/** The id and secret of a Basic header, read raw (no form-decoding), as some servers do. */
function rawBasic(request: RecordedRequest): [string, string] | undefined {
  const header = request.headers.authorization;
  if (header?.startsWith('Basic ') !== true) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return [decoded.slice(0, colon), decoded.slice(colon + 1)];
}

type Refusal = 'invalid_client' | 'bare 401' | 'bare 403';

function refuse(response: Parameters<typeof json>[0], how: Refusal): void {
  if (how === 'invalid_client')
    json(response, 401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic realm="as"' });
  else raw(response, how === 'bare 401' ? 401 : 403, '');
}

/** Every endpoint of a server that accepts only the raw Basic credentials. */
function rawBasicServer(how: Refusal = 'invalid_client'): void {
  const authenticated = (request: RecordedRequest): boolean => {
    const credentials = rawBasic(request);
    return credentials?.[0] === CLIENT_ID && credentials[1] === SECRET;
  };
  server.on('/token', (request, response) =>
    authenticated(request)
      ? json(response, 200, { access_token: 'at', token_type: 'Bearer', expires_in: 60 })
      : refuse(response, how),
  );
  server.on('/introspect', (request, response) =>
    authenticated(request) ? json(response, 200, { active: false }) : refuse(response, how),
  );
  server.on('/revoke', (request, response) =>
    authenticated(request) ? raw(response, 200, '') : refuse(response, how),
  );
}

function basicClient(options: ClientOptions = {}, secret = SECRET): Client {
  return new Client(
    metadata,
    { client_id: CLIENT_ID, client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' },
    options,
  );
}

describe('client_secret_basic against a server that does not form-decode the credentials', () => {
  it.each<Refusal>(['invalid_client', 'bare 401', 'bare 403'])(
    'refused (%s) with the RFC 6749 encoding: retried once raw; raw from then on, at every endpoint',
    async (how) => {
      rawBasicServer(how);
      const client = basicClient();
      await expect(client.clientCredentialsGrant()).resolves.toMatchObject({ access_token: 'at' });
      expect(server.requestsTo('/token')).toHaveLength(2);
      const [standard, alternative] = server.requestsTo('/token').map((r) => r.headers.authorization);
      expect(standard).not.toBe(alternative);

      await client.clientCredentialsGrant();
      expect(server.requestsTo('/token')).toHaveLength(3);
      await expect(client.tokenIntrospection('some-token')).resolves.toEqual({ active: false });
      await client.tokenRevocation('some-token');
      expect(server.requestsTo('/introspect')).toHaveLength(1);
      expect(server.requestsTo('/revoke')).toHaveLength(1);
    },
  );

  it('requests refused at the same time all retry raw and agree on it (nothing flips back)', async () => {
    rawBasicServer();
    const client = basicClient();
    await Promise.all(Array.from({ length: 4 }, () => client.clientCredentialsGrant()));
    expect(server.requestsTo('/token')).toHaveLength(8);
    await Promise.all(Array.from({ length: 4 }, () => client.clientCredentialsGrant()));
    expect(server.requestsTo('/token')).toHaveLength(12);
  });

  it('a retry answered with a 5xx or 429 proves nothing: the reading is not adopted', async () => {
    let calls = 0;
    server.on('/token', (request, response) => {
      calls += 1;
      const credentials = rawBasic(request);
      if (credentials?.[1] !== SECRET) return json(response, 401, { error: 'invalid_client' });
      return calls <= 2
        ? json(response, 429, { error: 'slow_down' })
        : json(response, 200, { access_token: 'at', token_type: 'Bearer' });
    });
    const client = basicClient();
    await rejection(client.clientCredentialsGrant());
    await client.clientCredentialsGrant();
    expect(server.requestsTo('/token')).toHaveLength(4); // the standard reading first again, then raw
  });

  it('both refused: the error names what was tried and the options, and keeps the secret out', async () => {
    server.on('/token', (_request, response) =>
      json(response, 401, { error: 'invalid_client', error_description: 'unknown client' }),
    );
    const client = basicClient();
    const error = await rejection(client.clientCredentialsGrant());
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'invalid_client', status: 401 });
    expect((error as OAuthError).hint).toMatch(/form-encoded .* and raw/);
    expect(error.message).toContain('basicAuthEncoding');
    expect(error.message).toContain('token_endpoint_auth_method');
    expect(server.requestsTo('/token')).toHaveLength(2);
    const text = JSON.stringify(error) + error.message + String(error.stack);
    for (const form of [
      SECRET,
      encodeURIComponent(SECRET),
      Buffer.from(`${CLIENT_ID}:${SECRET}`).toString('base64'),
    ])
      expect(text).not.toContain(form);
    // Nothing worked, so nothing is remembered: the standard reading first again.
    await rejection(client.clientCredentialsGrant());
    expect(server.requestsTo('/token')).toHaveLength(4);
  });

  it('a bare 401 refused both ways says the same in an HTTP_ERROR', async () => {
    server.on('/token', (_request, response) => raw(response, 401, ''));
    const error = await rejection(basicClient().clientCredentialsGrant());
    expect(error).toBeInstanceOf(ResponseError);
    expect(error).toMatchObject({ code: 'HTTP_ERROR', status: 401 });
    expect(error.message).toContain('basicAuthEncoding');
  });

  it('an explicit basicAuthEncoding turns the fallback off', async () => {
    rawBasicServer();
    await expect(
      basicClient({ basicAuthEncoding: 'rfc6749' }).clientCredentialsGrant(),
    ).rejects.toMatchObject({ error: 'invalid_client' });
    expect(server.requestsTo('/token')).toHaveLength(1);
    await expect(basicClient({ basicAuthEncoding: 'raw' }).clientCredentialsGrant()).resolves.toMatchObject({
      access_token: 'at',
    });
    expect(server.requestsTo('/token')).toHaveLength(2);
  });

  it('no retry when the two readings are the same, or for anything but a refused authentication', async () => {
    server.on('/token', (_request, response) => json(response, 401, { error: 'invalid_client' }));
    await rejection(basicClient({}, 'plain-secret-0123').clientCredentialsGrant());
    expect(server.requestsTo('/token')).toHaveLength(1);
    server.on('/token', (_request, response) => json(response, 400, { error: 'invalid_grant' }));
    await expect(basicClient().refreshTokenGrant('rt')).rejects.toMatchObject({ error: 'invalid_grant' });
    server.on('/token', (_request, response) => raw(response, 400, ''));
    await rejection(basicClient().clientCredentialsGrant());
    expect(server.requestsTo('/token')).toHaveLength(3);
  });
});

describe('client assertions against a server that wants the endpoint URL as aud', () => {
  const secret = 'a-client-secret-of-32-bytes-at-least!!';

  beforeEach(() => {
    server.on('/token', async (request, response) => {
      try {
        const { payload } = await jwtVerify(
          request.form.get('client_assertion') ?? '',
          new TextEncoder().encode(secret),
          {
            audience: `${server.url}/token`,
            issuer: CLIENT_ID,
          },
        );
        expect(Array.isArray(payload.aud)).toBe(false);
        json(response, 200, { access_token: 'at', token_type: 'Bearer' });
      } catch {
        json(response, 401, { error: 'invalid_client' });
      }
    });
  });

  function jwtClient(options: ClientOptions = {}): Client {
    return new Client(
      metadata,
      { client_id: CLIENT_ID, client_secret: secret, token_endpoint_auth_method: 'client_secret_jwt' },
      options,
    );
  }

  it('refused with aud = issuer: retried once with aud = the endpoint URL, which is kept', async () => {
    const client = jwtClient();
    await expect(client.clientCredentialsGrant()).resolves.toMatchObject({ access_token: 'at' });
    await client.clientCredentialsGrant();
    expect(server.requestsTo('/token')).toHaveLength(3);
    const audiences = server
      .requestsTo('/token')
      .map(
        (r) =>
          JSON.parse(Buffer.from(r.form.get('client_assertion')!.split('.')[1]!, 'base64url').toString()).aud,
      );
    expect(audiences).toEqual([server.url, `${server.url}/token`, `${server.url}/token`]);
    // Each assertion is new (a server may refuse a replayed jti).
    expect(new Set(server.requestsTo('/token').map((r) => r.form.get('client_assertion'))).size).toBe(3);
  });

  it('an explicit clientAssertionAudience turns it off', async () => {
    await expect(
      jwtClient({ clientAssertionAudience: 'issuer' }).clientCredentialsGrant(),
    ).rejects.toMatchObject({ error: 'invalid_client' });
    expect(server.requestsTo('/token')).toHaveLength(1);
  });

  it('both refused: the error names clientAssertionAudience', async () => {
    server.on('/token', (_request, response) => json(response, 401, { error: 'invalid_client' }));
    const error = await rejection(jwtClient().clientCredentialsGrant());
    expect(error.message).toContain('clientAssertionAudience');
    expect(server.requestsTo('/token')).toHaveLength(2);
  });
});

describe('supports() reads grant types leniently', () => {
  const client = (extra: Record<string, unknown>): Client =>
    new Client(
      {
        issuer: 'https://as.example',
        token_endpoint: 'https://as.example/token',
        ...extra,
      } as ServerMetadata,
      { client_id: 'c', token_endpoint_auth_method: 'none' },
    );

  it.each<[string, Record<string, unknown>]>([
    [
      'grant_types_supported (RFC 8414)',
      {
        grant_types_supported: [
          'client_credentials',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:token-exchange',
        ],
      },
    ],
    [
      'a non-standard grant_types member',
      { grant_types: ['client_credentials', 'refresh_token', 'token-exchange'] },
    ],
    [
      'among response_types_supported',
      {
        response_types_supported: [
          'code',
          'token',
          'client_credentials',
          'refresh_token',
          'urn:ietf:params:oauth:grant-type:token-exchange',
        ],
      },
    ],
  ])('finds grants listed in %s', (_name, extra) => {
    const c = client(extra);
    expect(c.supports('client_credentials')).toBe(true);
    expect(c.supports('refresh_token')).toBe(true);
    expect(c.supports('token_exchange')).toBe(true);
    expect(c.supports('jwt_bearer')).toBe(false);
  });

  it('a response type is not taken for a grant; without any list, the RFC 8414 default', () => {
    expect(
      client({ response_types_supported: ['code', 'code id_token'] }).supports('client_credentials'),
    ).toBe(false);
    expect(client({}).supports('client_credentials')).toBe(false);
  });

  it('informs, never forbids: a grant the metadata does not list is still requested', async () => {
    server.on('/token', (_request, response) =>
      json(response, 200, { access_token: 'at', token_type: 'Bearer' }),
    );
    const c = new Client(
      { ...metadata, grant_types_supported: ['authorization_code'] },
      { client_id: 'c', client_secret: 's' },
    );
    expect(c.supports('client_credentials')).toBe(false);
    await expect(c.clientCredentialsGrant()).resolves.toMatchObject({ access_token: 'at' });
  });
});
