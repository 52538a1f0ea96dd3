import type { AxiosInstance } from 'axios';
import type { JWK } from 'jose';
import type { DPoPHandle } from './dpop.js';

/**
 * Extra request parameters. An array value becomes a repeated form field
 * (RFC 8707: `resource=a&resource=b`); `undefined` and empty strings are left out.
 */
export type Parameters = URLSearchParams | Record<string, string | readonly string[] | undefined>;

/**
 * Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery §3), snake_case as on the
 * wire. Members this SDK does not model are kept.
 */
export interface ServerMetadata {
  issuer: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  jwks_uri?: string;
  registration_endpoint?: string;
  scopes_supported?: string[];
  response_types_supported?: string[];
  grant_types_supported?: string[];
  token_endpoint_auth_methods_supported?: string[];
  token_endpoint_auth_signing_alg_values_supported?: string[];
  revocation_endpoint?: string;
  revocation_endpoint_auth_methods_supported?: string[];
  introspection_endpoint?: string;
  introspection_endpoint_auth_methods_supported?: string[];
  introspection_signing_alg_values_supported?: string[];
  introspection_encryption_alg_values_supported?: string[];
  introspection_encryption_enc_values_supported?: string[];
  code_challenge_methods_supported?: string[];
  device_authorization_endpoint?: string;
  backchannel_authentication_endpoint?: string;
  backchannel_token_delivery_modes_supported?: string[];
  backchannel_user_code_parameter_supported?: boolean;
  dpop_signing_alg_values_supported?: string[];
  mtls_endpoint_aliases?: Record<string, string>;
  tls_client_certificate_bound_access_tokens?: boolean;
  pushed_authorization_request_endpoint?: string;
  authorization_response_iss_parameter_supported?: boolean;
  userinfo_endpoint?: string;
  end_session_endpoint?: string;
  id_token_signing_alg_values_supported?: string[];
  subject_types_supported?: string[];
  [other: string]: unknown;
}

/** How the client authenticates at the token, introspection and revocation endpoints. */
export type ClientAuthMethod =
  | 'client_secret_basic'
  | 'client_secret_post'
  | 'client_secret_jwt'
  | 'private_key_jwt'
  | 'tls_client_auth'
  | 'self_signed_tls_client_auth'
  | 'none';

/** The client's registration, snake_case as registered at the server. */
export interface ClientMetadata {
  client_id: string;
  client_secret?: string;
  /** When absent, chosen from the server's `token_endpoint_auth_methods_supported`. */
  token_endpoint_auth_method?: ClientAuthMethod;
  /** `alg` of `client_secret_jwt` / `private_key_jwt` assertions. */
  token_endpoint_auth_signing_alg?: string;
  /** Expected `alg` of ID Tokens. @default 'RS256' */
  id_token_signed_response_alg?: string;
  /** When set, introspection asks for signed JWT responses (RFC 9701) and verifies them. */
  introspection_signed_response_alg?: string;
  [other: string]: unknown;
}

/** Options of a {@link Client}: transport, credentials that are not metadata, and tolerances. */
export interface ClientOptions {
  /** The private key of `private_key_jwt` (a `CryptoKey` or a private JWK; its `kid` is sent). */
  privateKey?: CryptoKey | JWK;
  /** Per-request timeout in milliseconds, covering connect, headers and body. @default 10_000 */
  timeoutMs?: number;
  /**
   * Bounded retries with jittered exponential backoff, only for what is safe to repeat: network
   * failures and 5xx for discovery, JWKS, introspection and revocation; for grants only a refused
   * connection (nothing was sent) or 429/503 with `Retry-After` (the server did not process it).
   * A `Retry-After` longer than `maxDelayMs` is not waited for: the error is thrown instead.
   * @default { retries: 2, minDelayMs: 100, maxDelayMs: 10_000 }
   */
  retry?: { retries?: number; minDelayMs?: number; maxDelayMs?: number };
  /** Larger response bodies are refused with `ResponseError` `INVALID_RESPONSE`. @default 1_048_576 */
  maxResponseBytes?: number;
  /** Leeway for `exp`, `iat` and `nbf` checks, in seconds. @default 30 */
  clockToleranceSeconds?: number;
  /** Allow `http://` to hosts other than loopback. @default false */
  allowInsecureRequests?: boolean;
  /** Client certificate for `tls_client_auth` / `self_signed_tls_client_auth`, and a CA to trust. */
  tls?: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer };
  /** Bring your own axios instance (its interceptors run; redirects stay off). */
  axios?: AxiosInstance;
  /** Extra headers on every request (e.g. a `User-Agent`). */
  headers?: Record<string, string>;
  /**
   * How `client_secret_basic` encodes the credentials: `'rfc6749'` form-encodes id and secret before
   * base64 (RFC 6749 §2.3.1, the default); `'raw'` is for servers that do not decode.
   * @default 'rfc6749'
   */
  basicAuthEncoding?: 'rfc6749' | 'raw';
  /**
   * The `aud` of `client_secret_jwt` / `private_key_jwt` assertions: the issuer (always a single
   * string, per the 2025 OpenID Connect errata) or, for legacy servers, the endpoint's URL.
   * @default 'issuer'
   */
  clientAssertionAudience?: 'issuer' | 'endpoint';
}

/** Options of one request. */
export interface RequestOptions {
  /** Aborting rejects with `TransportError` `ABORTED`. */
  signal?: AbortSignal;
}

/** Options of a grant request. */
export interface GrantOptions extends RequestOptions {
  /**
   * Send a DPoP proof made with this handle (RFC 9449 §5); a `use_dpop_nonce` answer is retried
   * once with the server's nonce. A DPoP-bound refresh token must be refreshed with the same key.
   */
  DPoP?: DPoPHandle;
  /** Validate the `nonce` of a returned ID Token against this value (OpenID Connect Core §3.1.3.7). */
  nonce?: string;
  /** Validate `auth_time` of a returned ID Token against this `max_age`, in seconds. */
  maxAgeSeconds?: number;
}

/** What a polling grant reports before each wait. */
export interface PollState {
  /** Seconds until the next poll. */
  interval: number;
  /** When the device code or CIBA request expires, epoch seconds. */
  expiresAt: number;
}

/** Options of the polling grants (device authorization, CIBA). */
export interface PollOptions extends GrantOptions {
  /** Called before each wait, e.g. to show a countdown. */
  onPending?: (state: PollState) => void;
}

/** A device authorization response (RFC 8628 §3.2), extra members kept. */
export interface DeviceAuthorizationResponse {
  /** Secret: never show it to the user. */
  readonly device_code: string;
  /** Show this to the user. */
  readonly user_code: string;
  /** Where the user goes (`verification_url`, as some servers spell it, is accepted). */
  readonly verification_uri: string;
  /** The URI with the user code in it, for a QR code or a link. */
  readonly verification_uri_complete?: string;
  /** Seconds the codes are valid. */
  readonly expires_in: number;
  /** Minimum seconds between polls. @default 5 */
  readonly interval?: number;
  readonly [other: string]: unknown;
}

/** A CIBA authentication request acknowledgement (CIBA Core §7.3), extra members kept. */
export interface BackchannelAuthenticationResponse {
  readonly auth_req_id: string;
  /** Seconds the request is valid. */
  readonly expires_in: number;
  /** Minimum seconds between polls. @default 5 */
  readonly interval?: number;
  readonly [other: string]: unknown;
}

/** Options of {@link Client.tokenIntrospection}. */
export interface IntrospectionOptions extends RequestOptions {
  /** Authenticate with this bearer token instead of client authentication (RFC 7662 §2.1). */
  bearer?: string;
  /**
   * Ask for a signed JWT response (RFC 9701) and refuse a plain JSON one.
   * @default true when the client registered `introspection_signed_response_alg`
   */
  jwtResponse?: boolean;
}

/** Server features {@link Client.supports} can tell about. */
export type Capability =
  | 'introspection'
  | 'revocation'
  | 'device_authorization'
  | 'backchannel_authentication'
  | 'dpop'
  | 'jwt_introspection'
  | 'client_credentials'
  | 'refresh_token'
  | 'token_exchange'
  | 'jwt_bearer'
  | 'mtls'
  | 'pushed_authorization_requests';

/** A successful token endpoint response (RFC 6749 §5.1), snake_case, extra members kept. */
export interface TokenEndpointResponse {
  readonly access_token: string;
  /** Normalised: `'Bearer'`, `'DPoP'` or `'N_A'` (RFC 8693), whatever case the server sent. */
  readonly token_type: string;
  /** Seconds; a numeric string from the server is turned into a number. */
  readonly expires_in?: number;
  readonly refresh_token?: string;
  readonly scope?: string;
  readonly id_token?: string;
  /** RFC 8693 token exchange. */
  readonly issued_token_type?: string;
  readonly [other: string]: unknown;
}

/** Claims of a validated ID Token. */
export interface IDTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  auth_time?: number;
  nonce?: string;
  azp?: string;
  acr?: string;
  amr?: string[];
  at_hash?: string;
  [claim: string]: unknown;
}

/**
 * A token endpoint response with helpers. The helpers are non-enumerable: `JSON.stringify` gives
 * back the wire fields.
 */
export type TokenResponse = TokenEndpointResponse & {
  /** Claims of the validated `id_token`, if the response had one. */
  claims(): IDTokenClaims | undefined;
  /** Seconds the access token has left, counted from when the response arrived. */
  expiresIn(): number | undefined;
};

/** An introspection response (RFC 7662 §2.2); for `active: false` nothing else is exposed. */
export interface IntrospectionResponse {
  readonly active: boolean;
  readonly scope?: string;
  readonly client_id?: string;
  readonly username?: string;
  readonly token_type?: string;
  readonly exp?: number;
  readonly iat?: number;
  readonly nbf?: number;
  readonly sub?: string;
  readonly aud?: string | string[];
  readonly iss?: string;
  readonly jti?: string;
  readonly cnf?: { readonly jkt?: string; readonly 'x5t#S256'?: string; readonly [other: string]: unknown };
  readonly [other: string]: unknown;
}
