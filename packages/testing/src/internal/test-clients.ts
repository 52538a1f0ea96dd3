import { randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import type { TestClient, TestClients } from '../test-server-types.js';
import { generatePrivateJwk } from './signing-keys.js';

/** Grant types every test client may use. */
export const TEST_CLIENT_GRANT_TYPES = [
  'client_credentials',
  'refresh_token',
  'authorization_code',
  'urn:ietf:params:oauth:grant-type:device_code',
  'urn:openid:params:grant-type:ciba',
] as const;

/** OA4MP's admin token listing grant, which only the `admin` client may use. */
export const TOKEN_INFO_GRANT_TYPE = 'urn:oa4mp:params:oauth:grant-type:token-info';

/** The redirect URI registered for every test client (authorization code flow). */
export const TEST_CLIENT_REDIRECT_URI = 'http://127.0.0.1/callback';

/**
 * The `client_secret_basic` client's secret. oidc-provider only accepts printable ASCII (VSCHAR,
 * %x20-7E) in secrets, so it has no non-ASCII character; it has every character that changes under
 * form-encoding before Basic encoding (RFC 6749 §2.3.1): space, `+`, `/`, `:`, `%`, `&`, `=`, `?`, `#`,
 * `@`.
 */
const BASIC_CLIENT_SECRET = 'p@ss+w/rd:%~ &=?#1';

/** A fresh random client secret, long enough to be an HS256 key. */
function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The public members of a private JWK. */
function publicJwk(privateJwk: JWK): JWK {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, oth: _oth, ...publicMembers } = privateJwk;
  return publicMembers;
}

/** The registrations (server side) and the metadata handed to tests (client side). */
export interface TestClientSetup {
  registrations: ClientMetadata[];
  clients: TestClients;
}

/**
 * Creates the test server's clients, one per client authentication method, with fresh secrets and
 * keys. The returned client metadata objects are frozen.
 */
export async function createTestClients(): Promise<TestClientSetup> {
  const privateJwk = Object.freeze(await generatePrivateJwk('ES256'));

  const clients: TestClients = Object.freeze({
    basic: Object.freeze({
      client_id: 'basic-client',
      client_secret: BASIC_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
    }),
    post: Object.freeze({
      client_id: 'post-client',
      client_secret: randomSecret(),
      token_endpoint_auth_method: 'client_secret_post',
    }),
    secretJwt: Object.freeze({
      client_id: 'secret-jwt-client',
      client_secret: randomSecret(),
      token_endpoint_auth_method: 'client_secret_jwt',
      token_endpoint_auth_signing_alg: 'HS256',
    }),
    privateKeyJwt: Object.freeze({
      client_id: 'private-key-jwt-client',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      privateJwk,
    }),
    jwtIntrospection: Object.freeze({
      client_id: 'jwt-introspection-client',
      client_secret: randomSecret(),
      token_endpoint_auth_method: 'client_secret_basic',
      introspection_signed_response_alg: 'RS256',
    }),
    public: Object.freeze({
      client_id: 'public-client',
      token_endpoint_auth_method: 'none',
    }),
    admin: Object.freeze({
      client_id: 'admin-client',
      client_secret: randomSecret(),
      token_endpoint_auth_method: 'client_secret_basic',
    }),
  } satisfies TestClients);

  const registrations = Object.values(clients).map((client: TestClient): ClientMetadata => {
    const { privateJwk: clientPrivateJwk, ...metadata } = client;
    return {
      ...metadata,
      grant_types: [...TEST_CLIENT_GRANT_TYPES, ...(client === clients.admin ? [TOKEN_INFO_GRANT_TYPE] : [])],
      response_types: ['code'],
      redirect_uris: [TEST_CLIENT_REDIRECT_URI],
      backchannel_token_delivery_mode: 'poll',
      ...(clientPrivateJwk ? { jwks: { keys: [publicJwk(clientPrivateJwk as JWK)] } } : {}),
    } as ClientMetadata;
  });

  return { registrations, clients };
}
