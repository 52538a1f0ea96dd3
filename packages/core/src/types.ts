import type { AxiosInstance } from 'axios';
import type { JWK } from 'jose';
import type { DPoPHandle } from './dpop.js';
import type { Logger } from './logger.js';

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
  /**
   * The server's Issuer Identifier (RFC 8414 §2); `Client.discover` requires it to be identical to the
   * issuer asked for (RFC 8414 §3.3).
   */
  issuer: string;
  /** The authorization endpoint's URL, where the user is sent to sign in (RFC 8414 §2). */
  authorization_endpoint?: string;
  /** The token endpoint's URL (RFC 8414 §2). */
  token_endpoint?: string;
  /** URL of the server's JSON Web Key Set, the keys that verify its signatures (RFC 8414 §2). */
  jwks_uri?: string;
  /** URL of the dynamic client registration endpoint (RFC 8414 §2). */
  registration_endpoint?: string;
  /** Scope values the server supports (RFC 8414 §2). */
  scopes_supported?: string[];
  /** `response_type` values the server supports (RFC 8414 §2). */
  response_types_supported?: string[];
  /** Grant types the server supports (RFC 8414 §2); when absent, `authorization_code` and `implicit`. */
  grant_types_supported?: string[];
  /** Client authentication methods the token endpoint accepts (RFC 8414 §2). */
  token_endpoint_auth_methods_supported?: string[];
  /** `alg` values accepted for `client_secret_jwt` / `private_key_jwt` assertions (RFC 8414 §2). */
  token_endpoint_auth_signing_alg_values_supported?: string[];
  /** The revocation endpoint's URL (RFC 8414 §2). */
  revocation_endpoint?: string;
  /** Client authentication methods the revocation endpoint accepts (RFC 8414 §2). */
  revocation_endpoint_auth_methods_supported?: string[];
  /** The introspection endpoint's URL (RFC 8414 §2). */
  introspection_endpoint?: string;
  /** Client authentication methods the introspection endpoint accepts (RFC 8414 §2). */
  introspection_endpoint_auth_methods_supported?: string[];
  /** `alg` values the server can sign JWT introspection responses with (RFC 9701). */
  introspection_signing_alg_values_supported?: string[];
  /** JWE `alg` values the server can encrypt JWT introspection responses with (RFC 9701). */
  introspection_encryption_alg_values_supported?: string[];
  /** JWE `enc` values the server can encrypt JWT introspection responses with (RFC 9701). */
  introspection_encryption_enc_values_supported?: string[];
  /** PKCE `code_challenge_method` values the server supports, e.g. `S256` (RFC 8414 §2). */
  code_challenge_methods_supported?: string[];
  /** The device authorization endpoint's URL (RFC 8628 §4). */
  device_authorization_endpoint?: string;
  /** The CIBA backchannel authentication endpoint's URL (CIBA Core §4). */
  backchannel_authentication_endpoint?: string;
  /** CIBA token delivery modes the server supports: `poll`, `ping` and/or `push` (CIBA Core §4). */
  backchannel_token_delivery_modes_supported?: string[];
  /** Whether the server accepts a `user_code` in CIBA requests (CIBA Core §4); absent means no. */
  backchannel_user_code_parameter_supported?: boolean;
  /** `alg` values the server accepts for DPoP proofs (RFC 9449 §5.1). */
  dpop_signing_alg_values_supported?: string[];
  /** Endpoint URLs for mutual-TLS requests, by metadata name, overriding the plain ones (RFC 8705 §5). */
  mtls_endpoint_aliases?: Record<string, string>;
  /** Whether the server binds access tokens to the client's TLS certificate (RFC 8705 §3.3). */
  tls_client_certificate_bound_access_tokens?: boolean;
  /** The pushed authorization request (PAR) endpoint's URL (RFC 9126 §5). */
  pushed_authorization_request_endpoint?: string;
  /** Whether authorization responses carry the `iss` parameter (RFC 9207 §3). */
  authorization_response_iss_parameter_supported?: boolean;
  /** The UserInfo endpoint's URL (OpenID Connect Discovery §3). */
  userinfo_endpoint?: string;
  /** URL to send the user to for signing out (OpenID Connect RP-Initiated Logout §2.1). */
  end_session_endpoint?: string;
  /** `alg` values the server can sign ID Tokens with (OpenID Connect Discovery §3). */
  id_token_signing_alg_values_supported?: string[];
  /** Subject identifier types supported: `public` and/or `pairwise` (OpenID Connect Discovery §3). */
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
  /** The client identifier issued by the server (RFC 6749 §2.2). */
  client_id: string;
  /**
   * The client secret (RFC 6749 §2.3.1); never printed by the SDK's errors (messages, fields or
   * inspect output).
   */
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
  retry?: {
    /** How many times a request that is safe to repeat is retried. @default 2 */
    retries?: number;
    /** The first backoff delay, in milliseconds; it doubles per retry, with jitter. @default 100 */
    minDelayMs?: number;
    /** The longest backoff delay and `Retry-After` waited for, in milliseconds. @default 10_000 */
    maxDelayMs?: number;
  };
  /** Larger response bodies are refused with `ResponseError` `INVALID_RESPONSE`. @default 1_048_576 */
  maxResponseBytes?: number;
  /** Leeway for `exp`, `iat` and `nbf` checks, in seconds. @default 30 */
  clockToleranceSeconds?: number;
  /** Allow `http://` to hosts other than loopback. @default false */
  allowInsecureRequests?: boolean;
  /** Client certificate for `tls_client_auth` / `self_signed_tls_client_auth`, and a CA to trust. */
  tls?: {
    /** The PEM client certificate (chain) presented to the server. */
    cert?: string | Buffer;
    /** The PEM private key of `cert`. */
    key?: string | Buffer;
    /** PEM CA certificate(s) to trust for the server's certificate. */
    ca?: string | Buffer;
  };
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
  /**
   * Where to log (pino-style; see {@link Logger}): a debug line per HTTP attempt (endpoint, method,
   * URL without query, status or error code, duration, attempt) and per retry. A `TokenManager` or
   * `TokenVerifier` built on this client logs here too unless given a logger of its own.
   * @default silent
   */
  logger?: Logger;
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
  /**
   * Identifies the request when polling the token endpoint (CIBA Core §7.3); a credential, kept out
   * of the SDK's errors.
   */
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
  /** The access token to send to resource servers (RFC 6749 §5.1). */
  readonly access_token: string;
  /** Normalised: `'Bearer'`, `'DPoP'` or `'N_A'` (RFC 8693), whatever case the server sent. */
  readonly token_type: string;
  /** Seconds; a numeric string from the server is turned into a number. */
  readonly expires_in?: number;
  /** Gets new access tokens with the refresh token grant (RFC 6749 §5.1, §6). */
  readonly refresh_token?: string;
  /** The scope granted, space-separated; servers may omit it when it is the one requested (RFC 6749 §5.1). */
  readonly scope?: string;
  /** The ID Token, a JWT (OpenID Connect Core §3.1.3.3); validated before the response is returned. */
  readonly id_token?: string;
  /** RFC 8693 token exchange. */
  readonly issued_token_type?: string;
  readonly [other: string]: unknown;
}

/** Claims of a validated ID Token. */
export interface IDTokenClaims {
  /** Issuer Identifier of the ID Token's issuer (OpenID Connect Core §2). */
  iss: string;
  /** Subject identifier: the end-user, unique within the issuer (OpenID Connect Core §2). */
  sub: string;
  /** Audience(s) the ID Token is meant for, this client's `client_id` among them (OpenID Connect Core §2). */
  aud: string | string[];
  /** Expiration time, in seconds since the epoch (OpenID Connect Core §2). */
  exp: number;
  /** Time the ID Token was issued, in seconds since the epoch (OpenID Connect Core §2). */
  iat: number;
  /** Time the end-user authenticated, in seconds since the epoch (OpenID Connect Core §2). */
  auth_time?: number;
  /** The `nonce` of the authentication request, echoed to prevent replay (OpenID Connect Core §2). */
  nonce?: string;
  /** Authorized party: the `client_id` the ID Token was issued to (OpenID Connect Core §2). */
  azp?: string;
  /** Authentication Context Class Reference the authentication satisfied (OpenID Connect Core §2). */
  acr?: string;
  /** Authentication Methods References, e.g. `pwd`, `otp` (OpenID Connect Core §2). */
  amr?: string[];
  /**
   * Access token hash: the left half of the `access_token`'s hash, base64url (OpenID Connect Core
   * §3.1.3.6); checked when present.
   */
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
  /** Whether the token is active (RFC 7662 §2.2); the only member of an inactive answer. */
  readonly active: boolean;
  /** The token's scope, space-separated (RFC 7662 §2.2). */
  readonly scope?: string;
  /** The client the token was issued to (RFC 7662 §2.2). */
  readonly client_id?: string;
  /** Human-readable identifier of the resource owner who authorized the token (RFC 7662 §2.2). */
  readonly username?: string;
  /** Type of the token, e.g. `Bearer` or `DPoP` (RFC 7662 §2.2). */
  readonly token_type?: string;
  /** When the token expires, in seconds since the epoch (RFC 7662 §2.2). */
  readonly exp?: number;
  /** When the token was issued, in seconds since the epoch (RFC 7662 §2.2). */
  readonly iat?: number;
  /** When the token starts being valid, in seconds since the epoch (RFC 7662 §2.2). */
  readonly nbf?: number;
  /** Subject of the token, usually the resource owner's identifier (RFC 7662 §2.2). */
  readonly sub?: string;
  /** Audience(s) the token is intended for (RFC 7662 §2.2). */
  readonly aud?: string | string[];
  /** Issuer of the token (RFC 7662 §2.2). */
  readonly iss?: string;
  /** Unique identifier of the token (RFC 7662 §2.2). */
  readonly jti?: string;
  /** Confirmation of a sender-constrained token: the key it is bound to (RFC 9449 §6.2, RFC 8705 §3.2). */
  readonly cnf?: {
    /** RFC 9449 §6.1: the JWK SHA-256 thumbprint of the DPoP key the token is bound to. */
    readonly jkt?: string;
    /** RFC 8705 §3.1: the SHA-256 thumbprint of the client certificate the token is bound to. */
    readonly 'x5t#S256'?: string;
    readonly [other: string]: unknown;
  };
  readonly [other: string]: unknown;
}
