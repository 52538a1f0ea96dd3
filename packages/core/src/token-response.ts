import { inspect } from 'node:util';
import type { IDTokenClaims, TokenEndpointResponse, TokenResponse } from './types.js';

const SECRET_MEMBERS = new Set(['access_token', 'refresh_token', 'id_token']);
const HELPERS = new Set(['claims', 'expiresIn']);

/**
 * A validated token endpoint response: the wire members as own enumerable properties (so
 * `JSON.stringify` gives them back), the helpers on the prototype, frozen. Its `util.inspect` view
 * shows `[redacted]` for token values so a stray `console.log` does not leak them.
 */
class ValidatedTokenResponse {
  readonly #claims: IDTokenClaims | undefined;
  readonly #receivedAt: number;
  readonly #expiresInSeconds: number | undefined;

  constructor(wire: TokenEndpointResponse, receivedAt: number, claims: IDTokenClaims | undefined) {
    for (const key of Object.keys(wire)) {
      // A server member named like a helper must not shadow it.
      if (!HELPERS.has(key)) (this as Record<string, unknown>)[key] = wire[key];
    }
    this.#claims = claims === undefined ? undefined : Object.freeze({ ...claims });
    this.#receivedAt = receivedAt;
    this.#expiresInSeconds = wire.expires_in;
    Object.freeze(this);
  }

  claims(): IDTokenClaims | undefined {
    return this.#claims;
  }

  expiresIn(): number | undefined {
    if (this.#expiresInSeconds === undefined) return undefined;
    return Math.max(0, Math.floor(this.#expiresInSeconds - (Date.now() - this.#receivedAt) / 1000));
  }

  [inspect.custom](_depth: number, options: object): string {
    const shown = Object.fromEntries(
      Object.entries(this).map(([k, v]) => [k, SECRET_MEMBERS.has(k) ? '[redacted]' : v]),
    );
    return `TokenResponse ${inspect(shown, options)}`;
  }
}

/** Wraps a validated wire response with `claims()` and `expiresIn()`. */
export function toTokenResponse(
  wire: TokenEndpointResponse,
  receivedAt: number,
  claims: IDTokenClaims | undefined,
): TokenResponse {
  return new ValidatedTokenResponse(wire, receivedAt, claims) as unknown as TokenResponse;
}
