import { inspect } from 'node:util';
import type { IDTokenClaims, TokenEndpointResponse, TokenResponse } from './types.js';

const SECRET_MEMBERS = new Set(['access_token', 'refresh_token', 'id_token']);

/**
 * Wraps a validated wire response: frozen, with non-enumerable `claims()` and `expiresIn()`, and
 * an `util.inspect` view that shows `[redacted]` for token values so a stray `console.log` does
 * not leak them. `JSON.stringify` still gives back the wire fields.
 */
export function toTokenResponse(
  wire: TokenEndpointResponse,
  receivedAt: number,
  claims: IDTokenClaims | undefined,
): TokenResponse {
  const response: Record<string, unknown> = { ...wire };
  const frozenClaims = claims === undefined ? undefined : Object.freeze({ ...claims });
  const expiresInSeconds = wire.expires_in;
  Object.defineProperties(response, {
    claims: { value: (): IDTokenClaims | undefined => frozenClaims },
    expiresIn: {
      value: (): number | undefined =>
        expiresInSeconds === undefined
          ? undefined
          : Math.max(0, Math.floor(expiresInSeconds - (Date.now() - receivedAt) / 1000)),
    },
    [inspect.custom]: {
      value: (_depth: number, options: object): string => {
        const shown = Object.fromEntries(
          Object.entries(response).map(([k, v]) => [k, SECRET_MEMBERS.has(k) ? '[redacted]' : v]),
        );
        return `TokenResponse ${inspect(shown, options)}`;
      },
    },
  });
  return Object.freeze(response) as TokenResponse;
}
