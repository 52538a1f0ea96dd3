import { inspect } from 'node:util';
import { normalizeTokenType } from './internal/token-type.js';
import type { TokenEndpointResponse } from './types.js';

/**
 * What stores keep for one key: the tokens of one grant, camelCase, immutable. Serializable as
 * JSON (stores write it as is); `util.inspect` shows `[redacted]` instead of token values.
 */
export interface TokenSet {
  /** The access token. */
  readonly accessToken: string;
  /** `'Bearer'`, `'DPoP'`, ... as normalised by the Client. */
  readonly tokenType: string;
  /** When the access token expires, epoch seconds; absent when the server did not say. */
  readonly expiresAt?: number;
  /** The refresh token, when the server issued one (kept across refreshes that send none). */
  readonly refreshToken?: string;
  /** The ID Token, as validated by the Client when it arrived. */
  readonly idToken?: string;
  /** The scope of the access token (space-separated). */
  readonly scope?: string;
  /** RFC 7638 thumbprint of the DPoP key the tokens are bound to. */
  readonly dpopJkt?: string;
  /** Other members of the token response, e.g. `issued_token_type`. */
  readonly extra?: Readonly<Record<string, unknown>>;
  /**
   * The issuer the tokens came from and the `client_id` they were issued to, recorded by the
   * TokenManager that obtained or stored them: a manager never uses a set of another issuer or client.
   */
  readonly issuer?: string;
  /** The `client_id` the tokens were issued to (see {@link TokenSet.issuer}). */
  readonly clientId?: string;
}

const KNOWN = new Set(['access_token', 'token_type', 'expires_in', 'refresh_token', 'id_token', 'scope']);
const SECRET_FIELDS = new Set(['accessToken', 'refreshToken', 'idToken']);

/**
 * The token set of a token endpoint response (the one place snake_case becomes camelCase).
 * A response without `refresh_token` keeps the previous one (RFC 6749 §6); without `scope`, the
 * previous or requested scope; without `id_token`, the previous one (OIDC Core §12.2).
 *
 * @param response - the token endpoint's answer.
 * @param options - `requestedAtMs`: when the request was sent (expiry counts from then, the safe
 *   side); the `previous` set of the key; the scope asked for; the DPoP key's thumbprint; the origin.
 */
export function tokenSetFromResponse(
  response: TokenEndpointResponse,
  options: {
    requestedAtMs: number;
    previous?: TokenSet | undefined;
    requestedScope?: string | undefined;
    dpopJkt?: string | undefined;
    /** Who obtained the tokens (see {@link TokenSet.issuer}). */
    origin?: { issuer: string; clientId: string } | undefined;
  },
): TokenSet {
  const { previous } = options;
  const extra: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(response)) if (!KNOWN.has(name)) extra[name] = value;
  const refreshToken = response.refresh_token ?? previous?.refreshToken;
  const idToken = response.id_token ?? previous?.idToken;
  const scope = response.scope ?? options.requestedScope ?? previous?.scope;
  return freezeTokenSet({
    accessToken: response.access_token,
    // As the Client normalises it, also for token responses that did not come through one.
    tokenType: normalizeTokenType(response.token_type) ?? response.token_type,
    ...(response.expires_in === undefined
      ? {}
      : { expiresAt: Math.floor(options.requestedAtMs / 1000) + response.expires_in }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(idToken === undefined ? {} : { idToken }),
    ...(scope === undefined ? {} : { scope }),
    ...(options.dpopJkt === undefined ? {} : { dpopJkt: options.dpopJkt }),
    ...(Object.keys(extra).length === 0 ? {} : { extra }),
    ...(options.origin === undefined
      ? {}
      : { issuer: options.origin.issuer, clientId: options.origin.clientId }),
  });
}

/**
 * A frozen copy of a token set whose `util.inspect` output hides the token values. The inspect hook
 * is a non-enumerable symbol, so JSON and spreading see only the data.
 */
export function freezeTokenSet(tokens: TokenSet): TokenSet {
  const copy: Record<string, unknown> = { ...tokens };
  if (tokens.extra !== undefined) copy.extra = Object.freeze({ ...tokens.extra });
  Object.defineProperty(copy, inspect.custom, {
    value: (_depth: number, options: object) =>
      `TokenSet ${inspect(Object.fromEntries(Object.entries(copy).map(([k, v]) => [k, SECRET_FIELDS.has(k) ? '[redacted]' : v])), options)}`,
  });
  return Object.freeze(copy) as unknown as TokenSet;
}
