/**
 * The server's JWKS, fetched through our transport (timeouts, size limit, https rules, mTLS agent)
 * but cached and rotated by jose: an unknown `kid` triggers one refetch, at most once per cooldown
 * (OpenID Connect Core §10.1.1).
 */
import { createRemoteJWKSet, customFetch } from 'jose';
import type { JWTVerifyGetKey } from 'jose';
import { ConfigurationError } from '../errors.js';
import type { HttpTransport } from './http.js';
import { Redactor } from './redact.js';
import { errorFromResponse } from './response.js';

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
          const endpoint = 'jwks_uri';
          const response = await transport.send({
            endpoint,
            policy: 'idempotent',
            signal: init.signal,
            build: () => ({ method: 'GET', url, headers: { accept: 'application/json' } }),
          });
          if (response.status !== 200)
            throw errorFromResponse(response, { endpoint, secrets: { redactor: Redactor.NONE } });
          return new Response(new Uint8Array(response.body), { status: 200 });
        },
      });
    }
    return keySet(header, token);
  };
}
