import { CLIENT_INTERNALS, type ClientInternals } from './internal/client-internals.js';
import { tokenInfoListing } from './token-info.js';
import type { TokenInfoListing, TokenInfoOptions } from './token-info.js';
import type { JWTVerifyGetKey } from 'jose';
import { z } from 'zod';
import { wellKnownUrls } from './discovery.js';
import { DPoPHandle } from './dpop.js';
import type { TesseraError } from './errors.js';
import { ConfigurationError, OAuthError, ResponseError, TransportError, withHint } from './errors.js';
import { ClientAuthenticator } from './internal/client-auth.js';
import type { AuthReading } from './internal/client-auth.js';
import { appendParameters } from './internal/form.js';
import { HttpTransport, parseRetryAfter, transportOptions } from './internal/http.js';
import type { HttpRequest, HttpResponse, RetryPolicy } from './internal/http.js';
import { validateIdToken } from './internal/id-token.js';
import { verifyJwt } from './internal/jwt.js';
import { remoteKeySet } from './internal/jwks.js';
import { clientOptionsSchema, parseOptions } from './internal/options.js';
import { CallSecrets } from './internal/redact.js';
import { deepFreeze } from './internal/freeze.js';
import { normalizeTokenType } from './internal/token-type.js';
import { errorFromResponse, jsonObject, mediaType, tryJson } from './internal/response.js';
import type { ResponseContext } from './internal/response.js';
import { sleep } from './internal/sleep.js';
import {
  backchannelAuthenticationResponseSchema,
  deviceAuthorizationResponseSchema,
  introspectionResponseSchema,
  parseWith,
  tokenInfoResponseSchema,
  serverMetadataSchema,
  tokenResponseSchema,
} from './internal/schemas.js';
import { toTokenResponse } from './token-response.js';
import { findChallenge } from './www-authenticate.js';
import type {
  BackchannelAuthenticationResponse,
  Capability,
  ClientAuthMethod,
  ClientMetadata,
  ClientOptions,
  DeviceAuthorizationResponse,
  GrantOptions,
  IntrospectionOptions,
  IntrospectionResponse,
  Parameters,
  PollOptions,
  RequestOptions,
  ServerMetadata,
  TokenEndpointResponse,
  TokenResponse,
} from './types.js';

type EndpointName =
  | 'token_endpoint'
  | 'introspection_endpoint'
  | 'revocation_endpoint'
  | 'device_authorization_endpoint'
  | 'backchannel_authentication_endpoint';

const LABELS: Record<EndpointName, string> = {
  token_endpoint: 'token endpoint',
  introspection_endpoint: 'introspection endpoint',
  revocation_endpoint: 'revocation endpoint',
  device_authorization_endpoint: 'device authorization endpoint',
  backchannel_authentication_endpoint: 'backchannel authentication endpoint',
};

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const CIBA = 'urn:openid:params:grant-type:ciba';
/** RFC 8628 §3.2 and CIBA Core §7.3: the interval when the server gives none. */
const DEFAULT_POLL_INTERVAL_SECONDS = 5;
const CIBA_HINTS = ['login_hint', 'id_token_hint', 'login_hint_token'] as const;

/**
 * Where a device / CIBA response keeps when it arrived (epoch ms), for the polling deadline: a
 * non-enumerable symbol property of the response itself (JSON and spreading do not see it).
 */
const ARRIVED_AT = Symbol('tessera.arrivedAt');

/** Form fields whose values are credentials: kept out of every error text. */
const SECRET_FIELDS: readonly string[] = [
  'token',
  'refresh_token',
  'client_secret',
  'client_assertion',
  'assertion',
  'subject_token',
  'actor_token',
  'code',
  'device_code',
  'auth_req_id',
  'user_code',
  'password',
  'code_verifier',
  'access_token',
];

/** OA4MP's admin token listing grant (RFC 6749 §4.5 extension grant). */
const TOKEN_INFO = 'urn:oa4mp:params:oauth:grant-type:token-info';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_INTROSPECTION_TYPE = 'application/token-introspection+jwt';
const JWT_INTROSPECTION_MAX_AGE_SECONDS = 300;

/** RFC 9701 §5: the RFC 7662 members are inside `token_introspection`, never at the top level. */
const jwtIntrospectionSchema = z.looseObject({ token_introspection: introspectionResponseSchema });

/** `grant_types_supported` default when the server does not publish it (RFC 8414 §2). */
const DEFAULT_GRANT_TYPES = ['authorization_code', 'implicit'];

/** How `Client.#post` sends a form. */
interface PostOptions {
  policy: RetryPolicy;
  signal: AbortSignal | undefined;
  bearer?: string | undefined;
  accept?: string;
  dpop?: DPoPHandle | undefined;
  secrets: CallSecrets;
  /** `GET` puts the form in the query instead (OA4MP's token-info grant allows it). */
  method?: 'GET' | 'POST';
}

/** The request of `headers` and `body`, recorded in `options.secrets` as it goes out. */
function finishRequest(
  url: string,
  headers: Record<string, string>,
  body: URLSearchParams,
  options: PostOptions,
): HttpRequest {
  if (options.method === 'GET') {
    delete headers['content-type'];
    const query = body.toString();
    // The query holds what a form would: recorded as a body, so its secrets are redacted.
    options.secrets.sent({ headers, body: query });
    return { method: 'GET', url: `${url}${url.includes('?') ? '&' : '?'}${query}`, headers };
  }
  const request: HttpRequest = { method: 'POST', url, headers, body: body.toString() };
  options.secrets.sent(request);
  return request;
}

/**
 * The OAuth 2.0 / OpenID Connect protocol client: discovery, client authentication, grants,
 * introspection and revocation. Stateless: no caching of tokens, no timers (the JWKS, which the
 * server publishes for everyone, is the one thing it caches). Every response is validated before a
 * call resolves; every failure is a {@link TesseraError}.
 *
 * @example
 * ```ts
 * const client = await Client.discover('https://as.example.com', {
 *   client_id: 'svc', client_secret: process.env.CLIENT_SECRET,
 * });
 * const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
 * ```
 */
export class Client {
  readonly #server: Readonly<ServerMetadata>;
  /** The grant types the server advertises, read leniently (see `supports`). */
  readonly #grantTypes: ReadonlySet<string>;
  readonly #metadata: Readonly<ClientMetadata>;
  readonly #transport: HttpTransport;
  readonly #auth: ClientAuthenticator;
  readonly #keySet: JWTVerifyGetKey;
  readonly #toleranceSeconds: number;
  readonly #mtls: boolean;

  /**
   * Fetches the server's metadata from its well-known locations (RFC 8414 §3, OpenID Connect
   * Discovery §4; see {@link wellKnownUrls} for the order) and returns a client for it. The first
   * document whose `issuer` is identical to `issuer` (no normalisation, a trailing slash counts)
   * is used.
   *
   * @throws ResponseError `HTTP_ERROR` when no location answers 200; `INVALID_RESPONSE` when a
   *   document is malformed or its issuer differs. TransportError on network failure.
   * @see RFC 8414 §3.3
   */
  static async discover(
    issuer: string | URL,
    metadata: ClientMetadata,
    options: ClientOptions = {},
  ): Promise<Client> {
    if (!(typeof issuer === 'string' && issuer !== '') && !(issuer instanceof URL)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'Client.discover needs the issuer, a URL or a non-empty string',
      );
    }
    checkClientArguments(metadata, options);
    const expected = typeof issuer === 'string' ? issuer : issuer.href;
    const transport = new HttpTransport(transportOptions(options));
    const secrets = new CallSecrets([], transport.secrets);
    // Report the most telling failure: a document that was found but unusable beats a 404.
    let notFound: TesseraError | undefined;
    let unusable: TesseraError | undefined;
    try {
      for (const url of wellKnownUrls(expected)) {
        const endpoint = 'discovery endpoint';
        const response = await transport.send({
          endpoint,
          policy: 'idempotent',
          build: () => ({ method: 'GET', url, headers: { accept: 'application/json' } }),
        });
        if (response.status !== 200) {
          const error = new ResponseError(
            'HTTP_ERROR',
            `${endpoint} ${url} responded with HTTP ${response.status}`,
            {
              endpoint,
              status: response.status,
            },
          );
          if (response.status === 404) notFound = error;
          else unusable ??= error;
          continue;
        }
        let document: ServerMetadata;
        try {
          const context = { endpoint, secrets };
          document = parseWith(serverMetadataSchema, jsonObject(response, context, 'issuer'), {
            endpoint,
            status: 200,
          }) as ServerMetadata;
        } catch (error) {
          unusable ??= error as TesseraError;
          continue;
        }
        if (document.issuer !== expected) {
          unusable ??= new ResponseError(
            'INVALID_RESPONSE',
            `discovery endpoint response: issuer ${document.issuer} is not the expected ${expected} (RFC 8414 §3.3)`,
            { endpoint, status: 200, field: 'issuer' },
          );
          continue;
        }
        return new Client(document, metadata, options);
      }
    } catch (error) {
      throw secrets.redactor.redactError(error);
    } finally {
      transport.close();
    }
    throw secrets.redactor.redactError((unusable ?? notFound)!);
  }

  /**
   * A client for a server whose metadata you already have.
   *
   * @throws ConfigurationError `INVALID_CONFIGURATION` for unusable metadata: no `client_id`, an
   *   endpoint that is not https (except loopback, or with `allowInsecureRequests`), or no client
   *   authentication method that both sides support.
   */
  constructor(server: ServerMetadata, metadata: ClientMetadata, options: ClientOptions = {}) {
    checkClientArguments(metadata, options);
    let parsed: ServerMetadata;
    try {
      parsed = parseWith(serverMetadataSchema, server, {
        endpoint: 'server metadata',
        status: 0,
      }) as ServerMetadata;
    } catch (error) {
      throw new ConfigurationError('INVALID_CONFIGURATION', (error as Error).message, { cause: error });
    }
    this.#transport = new HttpTransport(transportOptions(options));
    for (const [name, value] of Object.entries(parsed)) {
      if ((name.endsWith('_endpoint') || name === 'jwks_uri') && typeof value === 'string') {
        this.#transport.assertUrl(value, name);
      }
    }
    for (const [name, value] of Object.entries(parsed.mtls_endpoint_aliases ?? {})) {
      this.#transport.assertUrl(value, `mtls_endpoint_aliases.${name}`);
    }
    try {
      this.#server = deepFreeze(structuredClone(parsed));
    } catch (cause) {
      // e.g. metadata nested so deep that copying it overflows the stack
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'server metadata must be plain JSON data of reasonable depth',
        { cause },
      );
    }
    this.#grantTypes = advertisedGrantTypes(this.#server);
    this.#metadata = Object.freeze({ ...metadata });
    this.#auth = new ClientAuthenticator(this.#server, this.#metadata, options);
    this.#toleranceSeconds = options.clockToleranceSeconds ?? 30;
    this.#mtls =
      this.#auth.method === 'tls_client_auth' ||
      this.#auth.method === 'self_signed_tls_client_auth' ||
      (options.tls?.cert !== undefined && this.#server.tls_client_certificate_bound_access_tokens === true);
    this.#keySet = remoteKeySet(this.#transport, this.#server.jwks_uri);
  }

  /** The transport and tolerance, for this package's verifier only. @internal */
  get [CLIENT_INTERNALS](): ClientInternals {
    return { transport: this.#transport, toleranceSeconds: this.#toleranceSeconds };
  }

  /** The server's metadata (RFC 8414 / OpenID Connect Discovery fields, snake_case), frozen. */
  serverMetadata(): Readonly<ServerMetadata> {
    return this.#server;
  }

  /** The registered `client_id`. */
  get clientId(): string {
    return this.#metadata.client_id;
  }

  /** The client authentication method in use (registered, or chosen from the server's list). */
  get authMethod(): ClientAuthMethod {
    return this.#auth.method;
  }

  /**
   * Whether the server advertises a capability in its metadata. It informs, it never forbids: no
   * request is refused because of it (servers leave things out of their metadata that they do).
   * Grant types are read leniently, as servers publish them: in `grant_types_supported`, and also
   * in a non-standard `grant_types` member or among `response_types_supported` (as some do), by
   * their short names too (`device_code`, `token-exchange`).
   */
  supports(capability: Capability): boolean {
    const s = this.#server;
    const grants = this.#grantTypes;
    switch (capability) {
      case 'introspection':
        return s.introspection_endpoint !== undefined;
      case 'revocation':
        return s.revocation_endpoint !== undefined;
      case 'device_authorization':
        return s.device_authorization_endpoint !== undefined;
      case 'backchannel_authentication':
        return (
          s.backchannel_authentication_endpoint !== undefined &&
          (s.backchannel_token_delivery_modes_supported?.includes('poll') ?? true)
        );
      case 'dpop':
        return (s.dpop_signing_alg_values_supported?.length ?? 0) > 0;
      case 'jwt_introspection':
        return (
          s.introspection_endpoint !== undefined &&
          (s.introspection_signing_alg_values_supported?.length ?? 0) > 0
        );
      case 'client_credentials':
        return grants.has('client_credentials');
      case 'refresh_token':
        return grants.has('refresh_token');
      case 'token_exchange':
        return grants.has(TOKEN_EXCHANGE);
      case 'jwt_bearer':
        return grants.has('urn:ietf:params:oauth:grant-type:jwt-bearer');
      case 'mtls':
        return s.mtls_endpoint_aliases !== undefined || s.tls_client_certificate_bound_access_tokens === true;
      case 'pushed_authorization_requests':
        return s.pushed_authorization_request_endpoint !== undefined;
      default:
        return false;
    }
  }

  /**
   * Client credentials grant (RFC 6749 §4.4): a token for the client itself.
   *
   * @param parameters e.g. `{ scope: 'api:read', resource: ['https://a', 'https://b'] }`
   * @throws OAuthError the server's error (`invalid_client`, `invalid_scope`, ...).
   * @throws ResponseError a malformed response. TransportError, IdTokenError.
   * @see RFC 6749 §4.4.2
   */
  clientCredentialsGrant(parameters?: Parameters, options?: GrantOptions): Promise<TokenResponse> {
    return this.#grant('client_credentials', parameters, options);
  }

  /**
   * Refresh token grant (RFC 6749 §6). A response without `refresh_token` means the old one stays
   * valid; with one, the old one must be discarded (rotation). Never retried after an unknown
   * outcome: the server may already have rotated the token.
   *
   * @throws OAuthError `invalid_grant` when the refresh token is expired, revoked or reused.
   * @see RFC 6749 §6, RFC 9700 §4.14
   */
  refreshTokenGrant(
    refreshToken: string,
    parameters?: Parameters,
    options?: GrantOptions,
  ): Promise<TokenResponse> {
    if (typeof refreshToken !== 'string' || refreshToken === '') {
      return Promise.reject(
        new ConfigurationError('INVALID_CONFIGURATION', 'refreshTokenGrant needs a refresh token'),
      );
    }
    return this.#grant('refresh_token', parameters, options, { refresh_token: refreshToken });
  }

  /**
   * Any grant by its `grant_type` (RFC 6749 §4.5): token exchange (RFC 8693), jwt-bearer
   * (RFC 7523 §2.1), saml2-bearer (RFC 7522), or a custom one. Array parameters become repeated
   * fields (`resource`, `audience`).
   *
   * @throws ConfigurationError before any request, for a token exchange without `subject_token`
   *   and `subject_token_type`, or with `actor_token` and `actor_token_type` not both present.
   * @see RFC 8693 §2.1
   */
  genericGrantRequest(
    grantType: string,
    parameters: Parameters,
    options?: GrantOptions,
  ): Promise<TokenResponse> {
    if (typeof grantType !== 'string' || grantType === '') {
      return Promise.reject(
        new ConfigurationError('INVALID_CONFIGURATION', 'genericGrantRequest needs a grant type'),
      );
    }
    return this.#grant(grantType, parameters, options);
  }

  /**
   * Token introspection (RFC 7662). An inactive token is not an error: the result is exactly
   * `{ active: false }`. With `jwtResponse` (or a registered `introspection_signed_response_alg`)
   * the response must be a signed JWT (RFC 9701), verified with the server's JWKS.
   *
   * @param parameters e.g. `{ token_type_hint: 'access_token' }`
   * @throws ConfigurationError `UNSUPPORTED` when the server has no introspection endpoint.
   * @throws OAuthError (e.g. `invalid_client`, never turned into "inactive"), ResponseError
   *   (including provider errors such as Edlink's `{"$error": ...}`), TransportError.
   * @see RFC 7662 §2, RFC 9701 §5
   */
  async tokenIntrospection(
    token: string,
    parameters?: Parameters,
    options: IntrospectionOptions = {},
  ): Promise<IntrospectionResponse> {
    requireToken(token, 'tokenIntrospection');
    const jwt = options.jwtResponse ?? this.#metadata.introspection_signed_response_alg !== undefined;
    const form = new URLSearchParams();
    appendParameters(form, parameters);
    form.set('token', token);
    return this.#redacting((secrets) => this.#introspect(form, jwt, options, secrets));
  }

  async #introspect(
    form: URLSearchParams,
    jwt: boolean,
    options: IntrospectionOptions,
    secrets: CallSecrets,
  ): Promise<IntrospectionResponse> {
    const { response, context } = await this.#post('introspection_endpoint', form, {
      policy: 'idempotent',
      signal: options.signal,
      bearer: options.bearer,
      accept: jwt ? JWT_INTROSPECTION_TYPE : 'application/json',
      secrets,
    });
    if (response.status < 200 || response.status > 299) throw errorFromResponse(response, context);
    let body: unknown;
    if (mediaType(response) === JWT_INTROSPECTION_TYPE) {
      body = await this.#verifyIntrospectionJwt(response, context);
    } else if (jwt) {
      throw new ResponseError(
        'INVALID_RESPONSE',
        `${context.endpoint} response: expected a signed ${JWT_INTROSPECTION_TYPE} response (RFC 9701), got ${mediaType(response) || 'no content type'}`,
        { endpoint: context.endpoint, status: response.status, field: 'content-type' },
      );
    } else {
      body = jsonObject(response, context, 'active');
    }
    const result = parseWith(introspectionResponseSchema, body, { ...context, status: response.status });
    // RFC 7662 §2.2: nothing but `active` may be read from an inactive response.
    if (!result.active) return Object.freeze({ active: false });
    return Object.freeze(result) as IntrospectionResponse;
  }

  /**
   * OA4MP's admin token listing: every token the user holding `token` has, by client and
   * transaction (the `urn:oa4mp:params:oauth:grant-type:token-info` extension grant at the token
   * endpoint, with the client's Basic credentials: an admin client with the `list_users`
   * permission). The listing holds live credentials; its `util.inspect` and JSON output show
   * `[redacted]` for token values. Never retried after a 500 (OA4MP's answers to a bad token).
   *
   * @param token - exactly one of `access_token` and `refresh_token`: a valid token of the user.
   * @throws ConfigurationError `INVALID_CONFIGURATION` without exactly one token, or for a client
   *   that does not use `client_secret_basic`; `UNSUPPORTED` without a token endpoint.
   * @throws OAuthError the server's error, as JSON or in OA4MP's `error="..."` line format.
   * @throws ResponseError a listing of the wrong shape (the failing field named). TransportError.
   * @example
   * ```ts
   * const listing = await admin.tokenInfo({ access_token: usersToken });
   * for (const { clientId, transactions } of listing.clients) console.log(clientId, transactions.length);
   * ```
   */
  async tokenInfo(
    token: { access_token: string } | { refresh_token: string },
    options: TokenInfoOptions = {},
  ): Promise<TokenInfoListing> {
    const given = (['access_token', 'refresh_token'] as const).filter(
      (name) => (token as Record<string, unknown> | null)?.[name] !== undefined,
    );
    const value = given.length === 1 ? (token as Record<string, unknown>)[given[0]!] : undefined;
    if (given.length !== 1 || typeof value !== 'string' || value === '') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'tokenInfo needs exactly one of access_token and refresh_token, a non-empty string',
      );
    }
    if (this.#auth.method !== 'client_secret_basic') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `tokenInfo authenticates with the admin client's Basic credentials: the client must use client_secret_basic, not ${this.#auth.method}`,
      );
    }
    if (options.method !== undefined && options.method !== 'POST' && options.method !== 'GET') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        "tokenInfo option method must be 'POST' or 'GET'",
      );
    }
    const form = new URLSearchParams({ grant_type: TOKEN_INFO, [given[0]!]: value });
    return this.#redacting(async (secrets) => {
      const { response, context } = await this.#post('token_endpoint', form, {
        policy: 'unprocessed', // a 500 here is OA4MP refusing the token: asking again changes nothing
        signal: options.signal,
        secrets,
        method: options.method ?? 'POST',
      });
      if (response.status !== 200) throw errorFromResponse(response, context);
      const body = jsonObject(response, context, 'clients');
      return tokenInfoListing(parseWith(tokenInfoResponseSchema, body, { ...context, status: 200 }));
    });
  }

  /**
   * Token revocation (RFC 7009). A 200 for an unknown or already revoked token is success
   * (§2.2); the response body is ignored. 503 with `Retry-After` is retried within the retry
   * budget, and then thrown: the token was not revoked.
   *
   * @param parameters e.g. `{ token_type_hint: 'refresh_token' }`
   * @throws ConfigurationError `UNSUPPORTED` when the server has no revocation endpoint.
   * @throws OAuthError (`unsupported_token_type`, `invalid_client`), ResponseError, TransportError.
   * @see RFC 7009 §2
   */
  async tokenRevocation(token: string, parameters?: Parameters, options: RequestOptions = {}): Promise<void> {
    requireToken(token, 'tokenRevocation');
    const form = new URLSearchParams();
    appendParameters(form, parameters);
    form.set('token', token);
    await this.#redacting(async (secrets) => {
      const { response, context } = await this.#post('revocation_endpoint', form, {
        policy: 'idempotent',
        signal: options.signal,
        secrets,
      });
      if (response.status < 200 || response.status > 299) throw errorFromResponse(response, context);
    });
  }

  /**
   * Starts the device authorization grant (RFC 8628 §3.1): show `user_code` and
   * `verification_uri` (or a QR code of `verification_uri_complete`) to the user, then call
   * {@link pollDeviceAuthorizationGrant}. To bind the tokens to a DPoP key, pass
   * `{ dpop_jkt: await handle.thumbprint() }` where the server supports it.
   *
   * @throws ConfigurationError `UNSUPPORTED` when the server has no device authorization endpoint.
   * @see RFC 8628 §3.2
   */
  async initiateDeviceAuthorization(
    parameters?: Parameters,
    options: RequestOptions = {},
  ): Promise<DeviceAuthorizationResponse> {
    const form = new URLSearchParams();
    appendParameters(form, parameters);
    return this.#initiate(
      'device_authorization_endpoint',
      form,
      deviceAuthorizationResponseSchema,
      'device_code',
      options,
    );
  }

  /**
   * Polls until the user approves or denies the device (RFC 8628 §3.4-§3.5). The first poll goes
   * out at once; then `interval` seconds (default 5) pass between polls, `slow_down` adds 5 s for
   * every later poll, and 429/503 with `Retry-After` waits that long. `onPending` reports each wait.
   *
   * @throws OAuthError `access_denied` (the user refused), `expired_token` (the code expired; also
   *   decided locally, with `status` 0, when `expires_in` runs out), or any other server error.
   * @throws TransportError `ABORTED` as soon as `options.signal` aborts.
   * @example
   * ```ts
   * const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access' });
   * console.log(`Go to ${device.verification_uri} and enter ${device.user_code}`);
   * const tokens = await client.pollDeviceAuthorizationGrant(device);
   * ```
   */
  pollDeviceAuthorizationGrant(
    response: DeviceAuthorizationResponse,
    parameters?: Parameters,
    options: PollOptions = {},
  ): Promise<TokenResponse> {
    return this.#poll(
      DEVICE_CODE,
      { device_code: response?.device_code },
      response,
      parameters,
      options,
      'device code',
    );
  }

  /**
   * Starts a CIBA authentication request in poll mode (CIBA Core §7.1): the user approves on their
   * own device. Exactly one of `login_hint`, `id_token_hint` and `login_hint_token` is required;
   * `openid` is added to `scope` when missing (CIBA Core §7.1 requires it). `binding_message`,
   * `user_code` and `requested_expiry` are sent when given.
   *
   * @throws ConfigurationError `INVALID_CONFIGURATION` before any request: not exactly one hint, a
   *   `requested_expiry` that is not a positive integer, or a public client (CIBA Core §4).
   * @throws ConfigurationError `UNSUPPORTED` when the server has no backchannel endpoint.
   * @throws OAuthError e.g. `unknown_user_id`, `missing_user_code`, `access_denied`.
   * @see CIBA Core §7
   */
  async initiateBackchannelAuthentication(
    parameters: Parameters,
    options: RequestOptions = {},
  ): Promise<BackchannelAuthenticationResponse> {
    const form = new URLSearchParams();
    appendParameters(form, parameters);
    const hints = CIBA_HINTS.filter((hint) => form.has(hint));
    if (hints.length !== 1) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `a CIBA request needs exactly one of login_hint, id_token_hint and login_hint_token (got ${hints.length === 0 ? 'none' : hints.join(', ')})`,
      );
    }
    const expiry = form.get('requested_expiry');
    if (expiry !== null && !/^[1-9]\d*$/.test(expiry)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'requested_expiry must be a positive integer of seconds',
      );
    }
    if (this.#auth.method === 'none') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'CIBA needs a confidential client (CIBA Core §4)',
      );
    }
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    if (!scopes.includes('openid')) form.set('scope', ['openid', ...scopes].join(' '));
    return this.#initiate(
      'backchannel_authentication_endpoint',
      form,
      backchannelAuthenticationResponseSchema,
      'auth_req_id',
      options,
    );
  }

  /**
   * Polls until the user approves or denies the CIBA request (CIBA Core §10.1, §11), with the
   * same schedule and errors as {@link pollDeviceAuthorizationGrant}; the ID Token is validated
   * (without a nonce, which CIBA does not have).
   *
   * @see CIBA Core §10.1
   */
  pollBackchannelAuthenticationGrant(
    response: BackchannelAuthenticationResponse,
    parameters?: Parameters,
    options: PollOptions = {},
  ): Promise<TokenResponse> {
    return this.#poll(
      CIBA,
      { auth_req_id: response?.auth_req_id },
      response,
      parameters,
      options,
      'authentication request',
    );
  }

  /**
   * A DPoP handle for a key pair (RFC 9449): pass it as `{ DPoP: handle }` to any grant, and use it
   * for proofs to resource servers.
   *
   * @throws ConfigurationError when the key is not an asymmetric signing key, or its algorithm is
   *   not in the server's `dpop_signing_alg_values_supported`.
   */
  getDPoPHandle(keyPair: CryptoKeyPair): DPoPHandle {
    return new DPoPHandle(keyPair, this.#server.dpop_signing_alg_values_supported);
  }

  /** Starts a polling flow: POSTs the request and returns the frozen answer, remembering its arrival. */
  async #initiate<T extends object>(
    name: 'device_authorization_endpoint' | 'backchannel_authentication_endpoint',
    form: URLSearchParams,
    schema: z.ZodType<unknown>,
    expectedMember: string,
    options: RequestOptions,
  ): Promise<T> {
    return this.#redacting(async (secrets) => {
      const { response, context } = await this.#post(name, form, {
        policy: 'unprocessed',
        signal: options.signal,
        secrets,
      });
      if (response.status < 200 || response.status > 299) throw errorFromResponse(response, context);
      const json = jsonObject(response, context, expectedMember);
      secrets.add(json.device_code, json.auth_req_id); // credentials of the flow, if the answer is refused
      const body = parseWith(schema, json, { ...context, status: response.status });
      return arrived(body as T, response.receivedAt);
    });
  }

  #poll(
    grantType: string,
    fixed: Record<string, string | undefined>,
    response: { expires_in: number; interval?: number },
    parameters: Parameters | undefined,
    options: PollOptions,
    what: string,
  ): Promise<TokenResponse> {
    const [name, value] = Object.entries(fixed)[0]!;
    if (typeof value !== 'string' || value === '') {
      return Promise.reject(
        new ConfigurationError('INVALID_CONFIGURATION', `polling needs the response with its ${name}`),
      );
    }
    const form = grantForm(grantType, parameters, { [name]: value });
    const arrivedAt = (response as { [ARRIVED_AT]?: number })[ARRIVED_AT] ?? Date.now();
    const interval = response.interval ?? DEFAULT_POLL_INTERVAL_SECONDS;
    return this.#redacting((secrets) =>
      this.#pollGrant(form, interval, arrivedAt + response.expires_in * 1000, options, what, secrets),
    );
  }

  async #grant(
    grantType: string,
    parameters: Parameters | undefined,
    options: GrantOptions = {},
    fixed: Record<string, string> = {},
  ): Promise<TokenResponse> {
    const form = grantForm(grantType, parameters, fixed);
    return this.#redacting(async (secrets) => {
      const { response, context } = await this.#post('token_endpoint', form, {
        policy: 'unprocessed',
        signal: options.signal,
        dpop: options.DPoP,
        secrets,
      });
      return this.#tokenResult(response, context, form, options, secrets);
    });
  }

  /**
   * Polls the token endpoint (RFC 8628 §3.4-§3.5, CIBA Core §10-§11): the first poll at once, then
   * one every `interval` seconds; `authorization_pending` goes on, `slow_down` adds 5 s to this
   * and every later wait, 429/503 with `Retry-After` waits that long (at least the interval), a
   * timeout doubles the interval; any other error ends polling. Polling stops with `expired_token`
   * before a poll that would come after `expiresAtMs`, and at once when `signal` aborts.
   */
  async #pollGrant(
    form: URLSearchParams,
    intervalSeconds: number,
    expiresAtMs: number,
    options: PollOptions,
    what: string,
    secrets: CallSecrets,
  ): Promise<TokenResponse> {
    let interval = intervalSeconds;
    for (;;) {
      let wait = interval;
      try {
        const { response, context } = await this.#post('token_endpoint', form, {
          policy: 'none',
          signal: options.signal,
          dpop: options.DPoP,
          secrets,
        });
        const retryAfter =
          response.status === 429 || response.status === 503
            ? parseRetryAfter(response.headers['retry-after'])
            : undefined;
        const error =
          response.status >= 200 && response.status <= 299 ? undefined : errorFromResponse(response, context);
        const pending =
          error instanceof OAuthError &&
          (error.error === 'authorization_pending' || error.error === 'slow_down');
        if (retryAfter !== undefined && !pending) {
          wait = Math.max(interval, retryAfter / 1000);
        } else {
          if (error !== undefined) throw error;
          return await this.#tokenResult(response, context, form, options, secrets);
        }
      } catch (error) {
        if (error instanceof OAuthError && error.error === 'slow_down') {
          interval += 5; // RFC 8628 §3.5: for this and all later polls
        } else if (error instanceof TransportError && error.code === 'TIMEOUT') {
          interval *= 2; // RFC 8628 §3.5: back off on connection timeouts
        } else if (!(error instanceof OAuthError && error.error === 'authorization_pending')) {
          throw error;
        }
        wait = interval;
      }
      if (Date.now() + wait * 1000 >= expiresAtMs) {
        throw new OAuthError({
          error: 'expired_token',
          error_description: `the ${what} expired before it was approved`,
          status: 0,
          endpoint: LABELS.token_endpoint,
        });
      }
      options.onPending?.({ interval: wait, expiresAt: Math.floor(expiresAtMs / 1000) });
      await sleep(wait * 1000, options.signal, LABELS.token_endpoint);
    }
  }

  /** Validates a token endpoint response, or throws the error it carries. */
  async #tokenResult(
    response: HttpResponse,
    context: ResponseContext,
    form: URLSearchParams,
    options: GrantOptions,
    secrets: CallSecrets,
  ): Promise<TokenResponse> {
    if (response.status < 200 || response.status > 299) {
      const error = errorFromResponse(response, context);
      const refreshingWithDPoP = options.DPoP !== undefined && form.get('grant_type') === 'refresh_token';
      if (
        refreshingWithDPoP &&
        error instanceof OAuthError &&
        (error.error === 'invalid_grant' || error.error === 'invalid_dpop_proof')
      ) {
        throw withHint(
          error,
          'a DPoP-bound refresh token must be refreshed with the same DPoP key it was issued to (RFC 9449 §5)',
        );
      }
      throw error;
    }
    const json = jsonObject(response, context, 'access_token');
    // Tokens of an answer that is about to be refused are still live: keep them out of the error.
    secrets.add(json.access_token, json.refresh_token, json.id_token);
    const wire = parseWith(tokenResponseSchema, json, { ...context, status: response.status });
    const tokenType = normalizeTokenType(wire.token_type);
    if (tokenType === undefined) {
      throw new ResponseError(
        'INVALID_RESPONSE',
        `${context.endpoint} response: token_type ${wire.token_type} is not supported (RFC 6749 §7.1)`,
        { endpoint: context.endpoint, status: response.status, field: 'token_type' },
      );
    }
    const tokens = { ...wire, token_type: tokenType } as TokenEndpointResponse;
    const claims =
      tokens.id_token === undefined
        ? undefined
        : await validateIdToken(
            tokens.id_token,
            {
              issuer: this.#server.issuer,
              clientId: this.#metadata.client_id,
              clientSecret: this.#metadata.client_secret,
              alg: this.#metadata.id_token_signed_response_alg ?? 'RS256',
              toleranceSeconds: this.#toleranceSeconds,
              keySet: this.#keySet,
            },
            { accessToken: tokens.access_token, nonce: options.nonce, maxAgeSeconds: options.maxAgeSeconds },
          );
    return toTokenResponse(tokens, response.receivedAt, claims);
  }

  /**
   * Runs one protocol call; whatever it throws leaves it with every secret of its requests (a
   * bearer token too: it is in the `Authorization` header) redacted, in every form and every field
   * (see `Redactor`).
   */
  async #redacting<T>(call: (secrets: CallSecrets) => Promise<T>): Promise<T> {
    const secrets = new CallSecrets(SECRET_FIELDS, [...this.#auth.secrets, ...this.#transport.secrets]);
    try {
      return await call(secrets);
    } catch (error) {
      throw secrets.redactor.redactError(error);
    }
  }

  /**
   * POSTs a form to an endpoint with client (or bearer) authentication and, when given, a DPoP
   * proof; all built anew for each attempt, and each recorded in `secrets`. A `use_dpop_nonce`
   * answer is retried exactly once with the nonce the server sent (RFC 9449 §8); a second one is
   * returned as it is. A refused client authentication is retried once in the method's other
   * reading where the options leave it open (see `ClientAuthenticator`): safe, since a refused
   * authentication issued nothing; the reading that worked is kept.
   */
  async #post(
    name: EndpointName,
    form: URLSearchParams,
    options: PostOptions,
  ): Promise<{ response: HttpResponse; context: ResponseContext }> {
    const url = this.#endpoint(name);
    const { dpop, secrets } = options;
    const context: ResponseContext = { endpoint: LABELS[name], secrets };
    const auth = this.#auth;
    let nonceRetried = false;
    const first = auth.reading;
    let reading: AuthReading = first;
    for (;;) {
      const attemptReading = reading;
      const response = await this.#transport.send({
        endpoint: context.endpoint,
        policy: options.policy,
        signal: options.signal,
        build: () => this.#request(url, form, options, attemptReading),
      });
      if (dpop !== undefined) {
        const nonceChanged = dpop.learnNonce(url, response.headers['dpop-nonce']);
        if (!nonceRetried && nonceChanged && isUseDPoPNonce(response)) {
          nonceRetried = true;
          continue;
        }
      }
      if (options.bearer !== undefined) return { response, context };
      const refused = isRefusedAuthentication(response);
      const other = auth.otherThan(first);
      if (attemptReading !== first) {
        if (refused) context.hint = auth.bothTried;
        else if (isAuthenticated(response)) auth.adopt(attemptReading);
      } else if (refused && other !== undefined) {
        reading = other;
        continue;
      }
      return { response, context };
    }
  }

  /**
   * One attempt's request: the form with the client's credentials (or the bearer token) and, when
   * given, a DPoP proof, recorded in `secrets` as it goes out. Built synchronously unless a client
   * assertion or a proof has to be signed.
   */
  #request(
    url: string,
    form: URLSearchParams,
    options: PostOptions,
    reading: AuthReading,
  ): HttpRequest | Promise<HttpRequest> {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
      accept: options.accept ?? 'application/json',
    };
    const body = new URLSearchParams(form);
    let applied: Promise<void> | undefined;
    if (options.bearer === undefined) applied = this.#auth.apply(url, headers, body, reading);
    else headers.authorization = `Bearer ${options.bearer}`;
    const { dpop } = options;
    if (applied === undefined && dpop === undefined) return finishRequest(url, headers, body, options);
    return (async () => {
      await applied;
      if (dpop !== undefined) headers.dpop = await dpop.proof(options.method ?? 'POST', url);
      return finishRequest(url, headers, body, options);
    })();
  }

  /** The endpoint's URL; its mTLS alias when the client uses mutual TLS (RFC 8705 §5). */
  #endpoint(name: EndpointName): string {
    const alias = this.#mtls ? this.#server.mtls_endpoint_aliases?.[name] : undefined;
    const url = alias ?? this.#server[name];
    if (url === undefined) {
      throw new ConfigurationError('UNSUPPORTED', `the server's metadata has no ${name}`);
    }
    return url;
  }

  async #verifyIntrospectionJwt(response: HttpResponse, context: ResponseContext): Promise<unknown> {
    const alg = this.#metadata.introspection_signed_response_alg ?? 'RS256';
    const fail = (field: string, message: string, cause?: unknown): ResponseError =>
      new ResponseError(
        'INVALID_RESPONSE',
        `${context.endpoint} response: JWT ${message} (RFC 9701)`,
        { endpoint: context.endpoint, status: response.status, field },
        { cause },
      );
    const jwt = response.body.toString('utf8').trim();
    const payload = await verifyJwt(
      jwt,
      this.#keySet,
      {
        algorithm: alg,
        issuer: this.#server.issuer,
        audience: this.#metadata.client_id,
        typ: 'token-introspection+jwt',
        clockTolerance: this.#toleranceSeconds,
        maxTokenAge: JWT_INTROSPECTION_MAX_AGE_SECONDS, // jose adds clockTolerance itself
        requiredClaims: ['iss', 'aud', 'iat'],
        // RFC 9701 §5: name what was expected and what came, so a misconfiguration is found at once.
        described: {
          aud: `this client's client_id ${JSON.stringify(this.#metadata.client_id)}`,
          iss: JSON.stringify(this.#server.issuer),
        },
      },
      fail,
    );
    return parseWith(jwtIntrospectionSchema, payload, { ...context, status: response.status })
      .token_introspection;
  }
}

/** Grant types by the short names servers also use for them. */
const GRANT_ALIASES = new Map([
  ['device_code', 'urn:ietf:params:oauth:grant-type:device_code'],
  ['token-exchange', TOKEN_EXCHANGE],
  ['token_exchange', TOKEN_EXCHANGE],
  ['jwt-bearer', 'urn:ietf:params:oauth:grant-type:jwt-bearer'],
  ['jwt_bearer', 'urn:ietf:params:oauth:grant-type:jwt-bearer'],
  ['ciba', 'urn:openid:params:grant-type:ciba'],
]);

/** Grant names that are never a response type, so finding one among the response types means a grant. */
const GRANT_NAMES = new Set([
  'client_credentials',
  'refresh_token',
  'password',
  'authorization_code',
  ...GRANT_ALIASES.keys(),
]);

/**
 * The grant types a server advertises: `grant_types_supported` (RFC 8414 §2, with its default when
 * absent), and, for servers that put them elsewhere, a non-standard `grant_types` member and grant
 * names found among `response_types_supported`; short names also as their URNs.
 */
function advertisedGrantTypes(server: Readonly<ServerMetadata>): Set<string> {
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  const nonStandard = strings((server as Record<string, unknown>).grant_types);
  const listed = server.grant_types_supported ?? (nonStandard.length > 0 ? [] : DEFAULT_GRANT_TYPES);
  const fromResponseTypes = strings(server.response_types_supported).filter(
    (v) => GRANT_NAMES.has(v) || v.startsWith('urn:'),
  );
  const grants = new Set<string>();
  for (const grant of [...listed, ...nonStandard, ...fromResponseTypes]) {
    grants.add(grant);
    const urn = GRANT_ALIASES.get(grant);
    if (urn !== undefined) grants.add(urn);
  }
  return grants;
}

/**
 * The client metadata must be an object with a `client_id`; the options (when given) valid.
 * @throws ConfigurationError `INVALID_CONFIGURATION` naming what is wrong.
 */
function checkClientArguments(metadata: unknown, options: unknown): asserts options is ClientOptions {
  if (typeof metadata !== 'object' || metadata === null) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'client metadata must be an object with a client_id',
    );
  }
  const clientId = (metadata as { client_id?: unknown }).client_id;
  if (typeof clientId !== 'string' || clientId === '') {
    throw new ConfigurationError('INVALID_CONFIGURATION', 'client metadata needs a client_id');
  }
  parseOptions(clientOptionsSchema, options, 'Client');
}

/** The form of a grant: the caller's parameters, then the fixed ones and `grant_type`. */
function grantForm(
  grantType: string,
  parameters: Parameters | undefined,
  fixed: Record<string, string>,
): URLSearchParams {
  const form = new URLSearchParams();
  appendParameters(form, parameters);
  for (const [name, value] of Object.entries(fixed)) form.set(name, value);
  form.set('grant_type', grantType);
  if (grantType === TOKEN_EXCHANGE) checkTokenExchange(form);
  return form;
}

/**
 * The server refused the client's authentication: `invalid_client` with 400, 401 or 403 (RFC 6749
 * §5.2), or a bare 401 or 403 with no body, as some servers answer.
 */
function isRefusedAuthentication(response: HttpResponse): boolean {
  const { status } = response;
  if (status !== 400 && status !== 401 && status !== 403) return false;
  if (isUseDPoPNonce(response)) return false; // a DPoP challenge, not a refusal of the client
  if (status !== 400 && response.body.toString('utf8').trim() === '') return true;
  const body = tryJson(response.body) as { error?: unknown } | undefined;
  return typeof body === 'object' && body !== null && body.error === 'invalid_client';
}

/**
 * The server accepted the client's authentication: a 2xx, or an OAuth error about something else
 * (`invalid_grant`, `invalid_scope`, ...); a 5xx, a 429 or a DPoP challenge proves nothing.
 */
function isAuthenticated(response: HttpResponse): boolean {
  if (response.status >= 200 && response.status < 300) return true;
  if (response.status !== 400 && response.status !== 401 && response.status !== 403) return false;
  const body = tryJson(response.body) as { error?: unknown } | undefined;
  const error = typeof body === 'object' && body !== null ? body.error : undefined;
  return typeof error === 'string' && error !== 'invalid_client' && error !== 'use_dpop_nonce';
}

/** RFC 9449 §8 (authorization server) and §9 (`WWW-Authenticate: DPoP error="use_dpop_nonce"`). */
function isUseDPoPNonce(response: HttpResponse): boolean {
  if (response.status !== 400 && response.status !== 401) return false;
  if (findChallenge(response.headers['www-authenticate'], 'DPoP')?.parameters.error === 'use_dpop_nonce')
    return true;
  const body = tryJson(response.body) as { error?: unknown } | undefined;
  return typeof body === 'object' && body !== null && body.error === 'use_dpop_nonce';
}

function requireToken(token: unknown, method: string): void {
  if (typeof token !== 'string' || token === '') {
    throw new ConfigurationError('INVALID_CONFIGURATION', `${method} needs a token`);
  }
}

/** RFC 8693 §2.1: `subject_token` and its type are required; `actor_token_type` iff `actor_token`. */
function checkTokenExchange(form: URLSearchParams): void {
  const missing = ['subject_token', 'subject_token_type'].filter((name) => !form.has(name));
  if (missing.length > 0) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      `token exchange needs ${missing.join(' and ')} (RFC 8693 §2.1)`,
    );
  }
  if (form.has('actor_token') !== form.has('actor_token_type')) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'token exchange needs actor_token_type exactly when actor_token is sent (RFC 8693 §2.1)',
    );
  }
}

/** A frozen copy of a response that knows when it arrived. */
function arrived<T extends object>(body: T, receivedAt: number): T {
  const copy = { ...body };
  Object.defineProperty(copy, ARRIVED_AT, { value: receivedAt });
  return Object.freeze(copy);
}
