import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type JWK } from 'jose';
import type { TestClient } from '../test-server-types.js';

/** What a request carries to authenticate a client: headers and form fields. */
export interface ClientAuthentication {
  headers: Record<string, string>;
  fields: Record<string, string>;
}

const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B). */
function formEncode(value: string): string {
  return encodeURIComponent(value).replace(/%20/g, '+');
}

function requireSecret(client: TestClient): string {
  if (typeof client.client_secret !== 'string' || !client.client_secret) {
    throw new TypeError(`client ${client.client_id} has no client_secret`);
  }
  return client.client_secret;
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
    return jwt.setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(requireSecret(client)));
  }
  const privateJwk = client.privateJwk as JWK | undefined;
  if (!privateJwk?.alg) {
    throw new TypeError(`client ${client.client_id} has no privateJwk with an alg`);
  }
  const key = await importJWK(privateJwk, privateJwk.alg);
  return jwt.setProtectedHeader({ alg: privateJwk.alg, kid: privateJwk.kid }).sign(key);
}

/**
 * Builds the client authentication of one request for a test client, by its registered
 * `token_endpoint_auth_method`. JWT assertions are audienced to the issuer identifier.
 */
export async function authenticateClient(client: TestClient, issuer: string): Promise<ClientAuthentication> {
  switch (client.token_endpoint_auth_method) {
    case 'client_secret_basic': {
      const credentials = `${formEncode(client.client_id)}:${formEncode(requireSecret(client))}`;
      return {
        headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
        fields: {},
      };
    }
    case 'client_secret_post':
      return { headers: {}, fields: { client_id: client.client_id, client_secret: requireSecret(client) } };
    case 'client_secret_jwt':
    case 'private_key_jwt':
      return {
        headers: {},
        fields: {
          client_id: client.client_id,
          client_assertion_type: JWT_BEARER_ASSERTION_TYPE,
          client_assertion: await clientAssertion(client, issuer),
        },
      };
    case 'none':
      return { headers: {}, fields: { client_id: client.client_id } };
    default:
      throw new TypeError(
        `unsupported token_endpoint_auth_method ${String(client.token_endpoint_auth_method)}`,
      );
  }
}
