import type { JWK } from 'jose';

/**
 * Options of {@link startTestServer}.
 */
export interface TestServerOptions {
  /**
   * Lifetime of access tokens (user flows and client credentials), in seconds.
   * @default 300
   */
  accessTokenTtlSeconds?: number;
  /**
   * Lifetime of each refresh token, in seconds. A rotated refresh token gets a fresh lifetime.
   * @default 86400
   */
  refreshTokenTtlSeconds?: number;
  /**
   * Format of issued access tokens. `'jwt'` issues RFC 9068 JWT access tokens (`typ: at+jwt`), signed
   * RS256 with the server's keys and audienced to {@link TestServer.apiResource}. JWT access tokens
   * cannot be introspected or revoked at this server (it answers `unsupported_token_type`).
   * @default 'opaque'
   * @see RFC 9068
   */
  accessTokenFormat?: 'opaque' | 'jwt';
  /**
   * Whether every refresh returns a new refresh token and consumes the presented one. Presenting a
   * consumed refresh token again fails with `invalid_grant` and revokes the whole grant.
   * @default true
   */
  rotateRefreshTokens?: boolean;
  /**
   * Whether every DPoP proof must carry a server-issued nonce. When `true`, a proof without one is
   * answered with HTTP 400 `use_dpop_nonce` and a `DPoP-Nonce` header.
   * @default false
   * @see RFC 9449 §8
   */
  requireDPoPNonce?: boolean;
  /**
   * The `interval` (seconds) the device authorization and CIBA endpoints return. By default they
   * return none, as oidc-provider does, and a client then waits 5 s between polls (RFC 8628 §3.2,
   * CIBA §7.3); `0` lets tests poll without waiting. The server never answers `slow_down`.
   * @default undefined
   */
  pollIntervalSeconds?: number;
  /**
   * Serve oidc-provider's development sign-in and consent pages (`devInteractions`: any username
   * and password sign in), so that a person can approve a device authorization in a browser, as
   * `tessera dev-server` does. Tests approve with {@link TestServer.approveDevice} instead.
   * Development only: oidc-provider prints a warning when it is on.
   * @default false
   */
  browserSignIn?: boolean;
  /**
   * TCP port to listen on, on 127.0.0.1. `0` picks a free ephemeral port.
   * @default 0
   */
  port?: number;
}

/**
 * Metadata of a client registered at the test server, in the shape a test hands to the `Client`
 * constructor of `@tessera/core` (snake_case, as registered).
 */
export interface TestClient {
  /** The client identifier. */
  client_id: string;
  /** The client secret, for the `client_secret_*` methods. */
  client_secret?: string;
  /** How the client authenticates at the token, introspection, revocation and other endpoints. */
  token_endpoint_auth_method:
    'client_secret_basic' | 'client_secret_post' | 'client_secret_jwt' | 'private_key_jwt' | 'none';
  /** Any further registered metadata, e.g. `introspection_signed_response_alg`. */
  [other: string]: unknown;
}

/**
 * The clients registered at every test server, one per client authentication method. Each may use the
 * grant types `client_credentials`, `refresh_token`, `authorization_code`,
 * `urn:ietf:params:oauth:grant-type:device_code` and `urn:openid:params:grant-type:ciba` (poll mode).
 */
export interface TestClients {
  /**
   * `client_secret_basic`. Its secret contains characters that must be form-encoded before Basic
   * encoding (space, `+`, `/`, `:`, `%`, `~`, `&`, `=`), so RFC 6749 §2.3.1 is really exercised.
   */
  readonly basic: TestClient;
  /** `client_secret_post`. */
  readonly post: TestClient;
  /** `client_secret_jwt` with HS256 (`token_endpoint_auth_signing_alg: 'HS256'`). */
  readonly secretJwt: TestClient;
  /**
   * `private_key_jwt` with ES256 (`token_endpoint_auth_signing_alg: 'ES256'`). `privateJwk` is the
   * private key (with `kid` and `alg`) a test hands to the `Client`; the server knows its public half.
   */
  readonly privateKeyJwt: TestClient & {
    /** The client's private key, a JWK with `kid` and `alg`: hand it to the `Client` as `privateKey`. */
    readonly privateJwk: JWK;
  };
  /**
   * `client_secret_basic` with `introspection_signed_response_alg: 'RS256'`: asked with
   * `Accept: application/token-introspection+jwt`, introspection answers with a signed JWT.
   * @see RFC 9701
   */
  readonly jwtIntrospection: TestClient;
  /** A public client (`none`): sends only its `client_id`. */
  readonly public: TestClient;
  /**
   * An admin client (`client_secret_basic`) allowed OA4MP's token-info grant
   * (`urn:oa4mp:params:oauth:grant-type:token-info`): `client.tokenInfo({ access_token })` lists
   * every token the server holds for that token's user, across clients.
   */
  readonly admin: TestClient;
}

/** The name of one of the {@link TestClients}. */
export type TestClientName = keyof TestClients;

/**
 * Counts of requests that reached each endpoint (any method but `OPTIONS`). Requests made by the
 * server's own helpers, such as {@link TestServer.issueUserTokens}, are not counted.
 */
export interface TestServerStats {
  /** Token endpoint (every grant type). */
  token: number;
  /** Introspection endpoint. */
  introspection: number;
  /** Revocation endpoint. */
  revocation: number;
  /** Device authorization endpoint. */
  deviceAuthorization: number;
  /** Backchannel (CIBA) authentication endpoint. */
  backchannelAuthentication: number;
  /** Either discovery document (`openid-configuration` or `oauth-authorization-server`). */
  discovery: number;
  /** JWKS endpoint. */
  jwks: number;
}

/** A successful token endpoint response body, as the server sent it. */
export type TestTokenEndpointResponse = Record<string, unknown> & {
  /** The access token. */
  access_token: string;
  /** The refresh token, when the grant issues one (`offline_access`). */
  refresh_token?: string;
  /** The ID Token, for an `openid` scope. */
  id_token?: string;
  /** The access token's lifetime, in seconds. */
  expires_in?: number;
  /** `Bearer` or `DPoP`. */
  token_type: string;
  /** The granted scope, space-separated. */
  scope?: string;
};

/**
 * A running test authorization server: a real oidc-provider, in-process, on 127.0.0.1.
 */
export interface TestServer {
  /** The issuer identifier, e.g. `http://127.0.0.1:54321` (no trailing slash). */
  readonly issuer: string;
  /**
   * The resource indicator (RFC 8707) of the test API. With `accessTokenFormat: 'jwt'` it is the
   * default resource and the `aud` of every access token. Any other absolute URI is accepted as a
   * `resource` too, with the scopes `api:read api:write`.
   */
  readonly apiResource: string;
  /** The registered clients, one per client authentication method. */
  readonly clients: TestClients;
  /** Counts of requests that reached each endpoint since start or the last {@link resetStats}. */
  stats(): TestServerStats;
  /** Sets every count of {@link stats} back to zero. */
  resetStats(): void;
  /**
   * Approves a pending device authorization as the end user would, by its `user_code` (any case,
   * with or without the dash).
   * @param options.accountId - the end user, default `'alice'`.
   * @param options.scope - the scope granted, default the scope requested.
   * @throws Error when no pending device authorization has that user code.
   */
  approveDevice(userCode: string, options?: { accountId?: string; scope?: string }): Promise<void>;
  /**
   * Denies a pending device authorization; the next poll fails with `access_denied`.
   * @throws Error when no pending device authorization has that user code.
   */
  denyDevice(userCode: string): Promise<void>;
  /**
   * Approves a pending CIBA (poll mode) request by its `auth_req_id`, for the scope it requested.
   * @param options.accountId - the end user, default the one the `login_hint` named.
   * @throws Error when no pending request has that id.
   */
  approveBackchannel(authReqId: string, options?: { accountId?: string }): Promise<void>;
  /**
   * Denies a pending CIBA request; the next poll fails with `access_denied`.
   * @throws Error when no pending request has that id.
   */
  denyBackchannel(authReqId: string): Promise<void>;
  /**
   * Issues a user token set to a client by running the device authorization grant end to end over
   * HTTP (initiate, approve, poll), so refresh tests have a real refresh token.
   * @param client - one of {@link clients} by name, or the metadata of a client registered here.
   * @param options.scope - default `'openid offline_access profile email api:read'`; a refresh token
   *   is issued when it contains `offline_access`, an ID token when it contains `openid`.
   * @param options.accountId - the end user, default `'alice'`.
   * @returns the token endpoint's JSON body.
   * @throws Error with the server's `error` when a step fails.
   */
  issueUserTokens(
    client: TestClientName | TestClient,
    options?: { scope?: string; accountId?: string },
  ): Promise<TestTokenEndpointResponse>;
  /**
   * Stops the server: stops listening and destroys every open (keep-alive) connection. Idempotent;
   * nothing of the server is left running afterwards.
   */
  close(): Promise<void>;
}
