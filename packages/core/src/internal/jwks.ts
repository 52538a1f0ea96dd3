/**
 * The server's JWKS, fetched through our transport (timeouts, size limit, https rules, mTLS agent)
 * but cached and rotated by jose: an unknown `kid` triggers one refetch, at most once per cooldown
 * (OpenID Connect Core §10.1.1).
 */
import { createRemoteJWKSet, customFetch } from 'jose';
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { ConfigurationError } from '../errors.js';
import type { HttpTransport } from './http.js';
import { Redactor } from './redact.js';
import { errorFromResponse, jsonObject } from './response.js';
import { parseWith } from './schemas.js';

/** How long an unknown `kid` must wait before another JWKS refetch. */
const COOLDOWN_MS = 30_000;
/** How long a fetched key set is used before it is fetched again. */
const MAX_AGE_MS = 10 * 60_000;

/** A jose key resolver for `jwks_uri`, created on first use. */
export function remoteKeySet(transport: HttpTransport, jwksUri: string | undefined): JWTVerifyGetKey {
  let keySet: JWTVerifyGetKey | undefined;
  return (header, token) => {
    if (keySet === undefined) {
      if (jwksUri === undefined) {
        throw new ConfigurationError(
          'UNSUPPORTED',
          'server metadata has no jwks_uri to verify signatures with',
        );
      }
      transport.assertUrl(jwksUri, 'jwks_uri');
      keySet = createRemoteJWKSet(new URL(jwksUri), {
        cooldownDuration: COOLDOWN_MS,
        cacheMaxAge: MAX_AGE_MS,
        timeoutDuration: 60_000, // our transport enforces the real timeout
        [customFetch]: async (url, init) => {
          const response = await getJwks(transport, url, init.signal);
          return new Response(new Uint8Array(response.body), { status: 200 });
        },
      });
    }
    return keySet(header, token);
  };
}

const ENDPOINT = 'jwks_uri';

async function getJwks(transport: HttpTransport, url: string, signal: AbortSignal | undefined | null) {
  const response = await transport.send({
    endpoint: ENDPOINT,
    policy: 'idempotent',
    signal: signal ?? undefined,
    build: () => ({ method: 'GET', url, headers: { accept: 'application/json' } }),
  });
  if (response.status !== 200)
    throw errorFromResponse(response, { endpoint: ENDPOINT, secrets: { redactor: Redactor.NONE } });
  return response;
}

/** RFC 7517 §5: a JWK Set; each key needs at least a `kty` (§4.1). */
const jwksSchema = z.looseObject({
  keys: z.array(z.looseObject({ kty: z.string().min(1) }), { error: 'must be an array of JWKs' }),
});

/**
 * Fetches and validates `jwks_uri` through our transport, for callers that keep the key set
 * themselves (the resource server's verifier: stale-if-error, its own cooldowns).
 *
 * @throws ResponseError (not 200, not a JWK Set), TransportError.
 */
export async function fetchKeySet(
  transport: HttpTransport,
  url: string,
  signal?: AbortSignal,
): Promise<JSONWebKeySet> {
  transport.assertUrl(url, ENDPOINT);
  const response = await getJwks(transport, url, signal);
  const context = { endpoint: ENDPOINT, secrets: { redactor: Redactor.NONE } };
  return parseWith(jwksSchema, jsonObject(response, context, 'keys'), {
    endpoint: ENDPOINT,
    status: 200,
  }) as JSONWebKeySet;
}
