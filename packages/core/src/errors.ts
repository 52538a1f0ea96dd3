import { inspect } from 'node:util';

/** Machine-readable codes carried by every {@link TesseraError}. */
export type TesseraErrorCode =
  | 'OAUTH_ERROR'
  | 'INVALID_RESPONSE'
  | 'HTTP_ERROR'
  | 'NETWORK_ERROR'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'INVALID_ID_TOKEN'
  | 'STORE_ERROR'
  | 'INVALID_CONFIGURATION'
  | 'UNSUPPORTED'
  | 'NO_TOKENS'
  | 'CLOSED'
  | 'INTERNAL';

/**
 * Base class of every error Tessera throws. Branch on `code` (stable) or on the subclass; the
 * message is for humans and may change.
 *
 * Messages never contain tokens, secrets or keys: they name the endpoint, the field and the HTTP
 * status. `toJSON()` and `util.inspect()` show the same safe fields, and the `cause` (the
 * lower-level error, never a raw axios error carrying request headers) only by name and message.
 */
export class TesseraError extends Error {
  /** Stable machine-readable code. */
  readonly code: TesseraErrorCode;

  /**
   * Made by the subclasses; branch on `code` when catching.
   *
   * @param code - the stable code.
   * @param message - for humans: names the endpoint, the field or the operation, never a secret.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(code: TesseraErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }

  /** The fields that are safe to log. */
  toJSON(): Record<string, unknown> {
    const json: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [key, value] of Object.entries(this)) {
      if (key !== 'code' && value !== undefined) json[key] = value;
    }
    return json;
  }

  /** `util.inspect` (and so `console.log`) shows the safe fields, the stack and the cause's summary. */
  [inspect.custom](
    _depth: number,
    options: { stylize?: unknown },
    inspectFn: typeof inspect = inspect,
  ): string {
    const { name: _name, message: _message, ...fields } = this.toJSON();
    const cause = this.cause instanceof Error ? ` [cause: ${this.cause.name}: ${this.cause.message}]` : '';
    const stack = (this.stack ?? `${this.name}: ${this.message}`).split('\n');
    stack[0] = `${this.name} [${this.code}]: ${this.message}${cause}`;
    const extra = Object.keys(fields).length > 1 ? ` ${inspectFn(fields, { ...options, depth: 2 })}` : '';
    return `${stack.join('\n')}${extra}`;
  }
}

/** What {@link OAuthError} carries from the server's RFC 6749 §5.2 error body. */
export interface OAuthErrorFields {
  /** The server's error code, e.g. `'invalid_grant'` (RFC 6749 §5.2). */
  error: string;
  /** The server's human-readable description, redacted of anything the request sent. */
  error_description?: string;
  /** A URI of a page about the error, as the server sent it. */
  error_uri?: string;
  /**
   * HTTP status of the response (a 200 carrying `error` keeps 200). `0` when the client decided
   * itself, e.g. `expired_token` when a device code ran out while polling.
   */
  status: number;
  /** The `WWW-Authenticate` response header, when present (RFC 6750 §3, RFC 6749 §5.2). */
  wwwAuthenticate?: string;
  /** Which endpoint answered, e.g. `'token endpoint'`. */
  endpoint: string;
  /** What to do about it, when the SDK knows more than the server said. */
  hint?: string;
}

/**
 * The authorization server answered with an OAuth error (RFC 6749 §5.2): `err.error` is the
 * server's code, e.g. `'invalid_grant'`, `'invalid_client'`.
 *
 * @see RFC 6749 §5.2
 * @example
 * ```ts
 * try { await client.refreshTokenGrant(rt); }
 * catch (err) { if (err instanceof OAuthError && err.error === 'invalid_grant') reauthenticate(); }
 * ```
 */
export class OAuthError extends TesseraError {
  declare readonly code: 'OAUTH_ERROR';
  /** The server's error code, e.g. `'invalid_grant'`, `'invalid_client'`, `'slow_down'` (RFC 6749 §5.2). */
  readonly error: string;
  /** The server's description, redacted of anything the request sent. */
  readonly error_description?: string;
  /** A URI of a page about the error, as the server sent it. */
  readonly error_uri?: string;
  /** HTTP status of the answer; `0` when the client decided itself (no request was sent). */
  readonly status: number;
  /** The `WWW-Authenticate` response header, when the server sent one (RFC 6750 §3). */
  readonly wwwAuthenticate?: string;
  /** Which endpoint answered, e.g. `'token endpoint'`. */
  readonly endpoint: string;
  /** What to do about it, when the SDK knows more than the server said (also in the message). */
  readonly hint?: string;

  /**
   * Made by the Client from a server's error answer.
   *
   * @param fields - what the server sent, and where.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(fields: OAuthErrorFields, options?: { cause?: unknown }) {
    const description = fields.error_description ? `: ${fields.error_description}` : '';
    const hint = fields.hint ? ` (${fields.hint})` : '';
    const origin =
      fields.status === 0
        ? `${fields.error} (decided by the client, no request sent)`
        : `${fields.endpoint} returned ${fields.error} (HTTP ${fields.status})`;
    super('OAUTH_ERROR', `${origin}${description}${hint}`, options);
    this.error = fields.error;
    this.status = fields.status;
    this.endpoint = fields.endpoint;
    if (fields.error_description !== undefined) this.error_description = fields.error_description;
    if (fields.error_uri !== undefined) this.error_uri = fields.error_uri;
    if (fields.wwwAuthenticate !== undefined) this.wwwAuthenticate = fields.wwwAuthenticate;
    if (fields.hint !== undefined) this.hint = fields.hint;
  }
}

/** The same OAuth error, with a hint of what the SDK knows beyond what the server said. @internal */
export function withHint(error: OAuthError, hint: string): OAuthError {
  return new OAuthError(
    {
      error: error.error,
      status: error.status,
      endpoint: error.endpoint,
      ...(error.error_description === undefined ? {} : { error_description: error.error_description }),
      ...(error.error_uri === undefined ? {} : { error_uri: error.error_uri }),
      ...(error.wwwAuthenticate === undefined ? {} : { wwwAuthenticate: error.wwwAuthenticate }),
      hint,
    },
    error.cause === undefined ? undefined : { cause: error.cause },
  );
}

/** What {@link ResponseError} carries. */
export interface ResponseErrorFields {
  /** Which endpoint answered, e.g. `'introspection endpoint'`. */
  endpoint: string;
  /** HTTP status of the answer. */
  status: number;
  /** The response body as text, truncated, with every secret of the request removed. */
  body?: string;
  /** For schema failures: the dotted path of the failing field, e.g. `'expires_in'`. */
  field?: string;
  /**
   * A provider's non-standard error, e.g. Edlink's `{"$error": "..."}` or
   * `{"$errors": [{ code, message }]}` (Edlink).
   */
  providerError?: {
    /** The provider's error text. */
    message: string;
    /** The provider's error code, when it gave one. */
    code?: string;
    /** The provider's request id, for its support. */
    requestId?: string;
  };
}

/**
 * The server's response was not what the protocol requires: not JSON, the wrong shape
 * (`INVALID_RESPONSE`), or an HTTP error without an RFC 6749 error body (`HTTP_ERROR`, e.g. an HTML
 * 502 from a proxy, or a provider's own error envelope, whose text is in the message).
 */
export class ResponseError extends TesseraError {
  declare readonly code: 'INVALID_RESPONSE' | 'HTTP_ERROR';
  /** Which endpoint answered, e.g. `'token endpoint'`. */
  readonly endpoint: string;
  /** HTTP status of the answer. */
  readonly status: number;
  /** The response body as text, truncated, with every secret of the request removed. */
  readonly body?: string;
  /** For a response of the wrong shape: the dotted path of the failing member, e.g. `'expires_in'`. */
  readonly field?: string;
  /** A provider's non-standard error envelope (e.g. Edlink's `$error`), its text also in the message. */
  readonly providerError?: ResponseErrorFields['providerError'];

  /**
   * Made by the Client from an answer the protocol does not allow.
   *
   * @param code - `INVALID_RESPONSE` (a 2xx the protocol does not allow) or `HTTP_ERROR`.
   * @param message - names the endpoint, the status and the field.
   * @param fields - where, what status, and what was wrong.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(
    code: 'INVALID_RESPONSE' | 'HTTP_ERROR',
    message: string,
    fields: ResponseErrorFields,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.endpoint = fields.endpoint;
    this.status = fields.status;
    if (fields.body !== undefined) this.body = fields.body;
    if (fields.field !== undefined) this.field = fields.field;
    if (fields.providerError !== undefined) this.providerError = fields.providerError;
  }
}

/**
 * The request did not get a response: a network failure (`NETWORK_ERROR`), no answer within
 * `timeoutMs` (`TIMEOUT`), or the caller's `AbortSignal` fired (`ABORTED`).
 */
export class TransportError extends TesseraError {
  declare readonly code: 'NETWORK_ERROR' | 'TIMEOUT' | 'ABORTED';
  /** Which endpoint the request was for, e.g. `'token endpoint'`. */
  readonly endpoint: string;
  /** The system error code where there is one, e.g. `'ECONNREFUSED'`. */
  readonly systemCode?: string;
  /**
   * Set by a TokenManager on a refresh that was sent but whose answer was lost: the server may have
   * rotated the refresh token, and the grant may be lost (RFC 6749 §10.4).
   */
  readonly outcomeUnknown?: true;

  /**
   * Made by the transport when a request got no answer.
   *
   * @param code - `NETWORK_ERROR`, `TIMEOUT` or `ABORTED`.
   * @param message - names the endpoint and what happened.
   * @param fields - the endpoint, the system error code, and whether the outcome is unknown.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(
    code: 'NETWORK_ERROR' | 'TIMEOUT' | 'ABORTED',
    message: string,
    fields: { endpoint: string; systemCode?: string; outcomeUnknown?: true },
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.endpoint = fields.endpoint;
    if (fields.systemCode !== undefined) this.systemCode = fields.systemCode;
    if (fields.outcomeUnknown === true) this.outcomeUnknown = true;
  }
}

/**
 * An ID Token failed validation (OpenID Connect Core §3.1.3.7): `check` names the failed rule,
 * e.g. `'iss'`, `'aud'`, `'signature'`.
 */
export class IdTokenError extends TesseraError {
  declare readonly code: 'INVALID_ID_TOKEN';
  /**
   * The rule that failed: a claim (`'iss'`, `'aud'`, `'azp'`, `'exp'`, `'iat'`, `'nonce'`,
   * `'auth_time'`, `'at_hash'`), or `'alg'`, `'signature'`, `'format'`, `'decrypt'`.
   */
  readonly check: string;

  /**
   * Made by the Client when an ID Token fails a check.
   *
   * @param check - the rule that failed.
   * @param message - what was wrong, after `id_token `.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(check: string, message: string, options?: { cause?: unknown }) {
    super('INVALID_ID_TOKEN', `id_token ${message}`, options);
    this.check = check;
  }
}

/** The store operation a {@link TokenStoreError} is about. */
export type TokenStoreOperation = 'get' | 'set' | 'delete' | 'lock' | 'subscribe' | 'close';

/** A token store failed; the store never pretends a key is empty. */
export class TokenStoreError extends TesseraError {
  declare readonly code: 'STORE_ERROR';
  /** The store operation that failed. */
  readonly operation: TokenStoreOperation;

  /**
   * Made by stores (use {@link TokenStoreError.from} in an adapter to translate a driver's error).
   *
   * @param operation - the store operation that failed.
   * @param message - names the store and what failed, never a token value.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(operation: TokenStoreOperation, message: string, options?: { cause?: unknown }) {
    super('STORE_ERROR', message, options);
    this.operation = operation;
  }

  /**
   * The translator every store adapter uses, ours and users': whatever a driver threw becomes a
   * `TokenStoreError` of `operation` (one already is stays as it is). The message names the store
   * and the driver's message (or is `options.message`); the cause keeps only the driver error's
   * name, message and `code`, never the error itself, which may carry connection options,
   * passwords or the value being written.
   *
   * @example
   * ```ts
   * async get(key) {
   *   try { return await this.db.read(key); }
   *   catch (error) { throw TokenStoreError.from('get', error, { store: 'sqlite token store' }); }
   * }
   * ```
   */
  static from(
    operation: TokenStoreOperation,
    cause: unknown,
    options: { store?: string; message?: string } = {},
  ): TokenStoreError {
    if (cause instanceof TokenStoreError) return cause;
    const what = options.store ?? 'token store';
    const text = cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : 'unknown error';
    return new TokenStoreError(operation, options.message ?? `${what} ${operation} failed: ${text}`, {
      cause: errorSummary(cause),
    });
  }
}

/**
 * A plain copy of an error for a `cause`: name, message and a string `code` only (a driver's or
 * axios's error can hold request headers, bodies and connection options). @internal
 */
export function errorSummary(error: unknown): Error | undefined {
  if (!(error instanceof Error)) return undefined;
  const copy = new Error(error.message);
  copy.name = error.name;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') Object.defineProperty(copy, 'code', { value: code, enumerable: true });
  return copy;
}

/**
 * The client is configured in a way that cannot work (`INVALID_CONFIGURATION`), or the server lacks
 * what a call needs, e.g. an introspection endpoint (`UNSUPPORTED`).
 */
export class ConfigurationError extends TesseraError {
  declare readonly code: 'INVALID_CONFIGURATION' | 'UNSUPPORTED';

  /**
   * Made when options or the server's metadata cannot work.
   *
   * @param code - `INVALID_CONFIGURATION` (names the option) or `UNSUPPORTED` (names what is missing).
   * @param message - which option or server capability, and what it must be.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(code: 'INVALID_CONFIGURATION' | 'UNSUPPORTED', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * A TokenManager cannot do what was asked: the key has no tokens and no grant to get some
 * (`NO_TOKENS`: the user must sign in, and the tokens be stored with `storeTokens()`), or the
 * manager was closed (`CLOSED`).
 */
export class TokenManagerError extends TesseraError {
  declare readonly code: 'NO_TOKENS' | 'CLOSED';
  /** The key the call was for. */
  readonly key: string;

  /**
   * Made by a TokenManager.
   *
   * @param code - `NO_TOKENS` or `CLOSED`.
   * @param message - what to do, e.g. which method stores tokens.
   * @param fields - the key the call was for.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(
    code: 'NO_TOKENS' | 'CLOSED',
    message: string,
    fields: { key: string },
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.key = fields.key;
  }
}

/**
 * Something failed that Tessera did not expect (`INTERNAL`): a bug of ours, or of code it calls
 * back (a grant's parameters function, a store). The original is the `cause`; please report it.
 */
export class InternalError extends TesseraError {
  declare readonly code: 'INTERNAL';

  /**
   * Made when Tessera meets what it did not expect.
   *
   * @param message - what was being done.
   * @param options - `cause`: the unexpected error.
   */
  constructor(message: string, options?: { cause?: unknown }) {
    super('INTERNAL', message, options);
  }
}

/**
 * Why a {@link TokenVerifier} refused a token, for logs, metrics and branching (never sent to the
 * caller verbatim: the response carries only the RFC 6750 §3 `error`).
 *
 * - `missing`: no token was sent (or only with an unsupported scheme, e.g. `Basic`).
 * - `request`: the request was malformed, e.g. two ways of sending a token (400, RFC 6750 §3.1).
 * - `malformed`: not a usable token: bad JSON, wrong `typ`, a required claim missing (RFC 9068 §4).
 * - `signature`, `unknown_kid`: the signature does not verify, or no published key has the `kid`.
 * - `issuer`, `audience`, `expired`: the `iss`, `aud`, or `exp` / `nbf` / `iat` checks.
 * - `inactive`: introspection said inactive, or the token (or its subject) was evicted.
 * - `scope`: a required scope is missing (403 `insufficient_scope`).
 * - `dpop_proof`: the DPoP proof is invalid, replayed, too old, or for another request
 *   (`invalid_dpop_proof`); `dpop_binding`: the token's key binding does not match, or a bound token
 *   came as Bearer or an unbound one as DPoP (`invalid_token`); `dpop_nonce`: a fresh server nonce
 *   is needed (`use_dpop_nonce`, RFC 9449 §9).
 * - `unavailable`: nothing could decide (keys or introspection unreachable, the cache down): 503,
 *   not the caller's fault (RFC 9110 §15.6.4).
 */
export type VerificationFailureReason =
  | 'missing'
  | 'request'
  | 'malformed'
  | 'signature'
  | 'unknown_kid'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'inactive'
  | 'scope'
  | 'dpop_proof'
  | 'dpop_binding'
  | 'dpop_nonce'
  | 'unavailable';

/** What {@link TokenVerificationError} carries beyond {@link OAuthErrorFields}. */
export interface TokenVerificationErrorFields extends OAuthErrorFields {
  /** Why, for logs and metrics. */
  reason: VerificationFailureReason;
  /** The challenge to send: every `WWW-Authenticate` value (one per scheme, RFC 9110 §11.6.1). */
  wwwAuthenticate: string;
  /** For `unavailable`: seconds the caller should wait (`Retry-After`, RFC 9110 §10.2.3). */
  retryAfterSeconds?: number;
  /** For `dpop_nonce` (and with server nonces on): the `DPoP-Nonce` to send (RFC 9449 §9). */
  dpopNonce?: string;
}

/**
 * A {@link TokenVerifier} refused a token or could not decide. An {@link OAuthError} whose `error`
 * is what the response says (`invalid_token`, `insufficient_scope`, `invalid_dpop_proof`,
 * `use_dpop_nonce`, `invalid_request`, or `temporarily_unavailable`), whose `status` is the HTTP
 * status to answer (400, 401, 403 or 503), whose `wwwAuthenticate` is ready for the response
 * (RFC 6750 §3, RFC 9449 §7.1), and whose `reason` says why.
 *
 * @example
 * ```ts
 * try { req.auth = await verifier.verifyRequest(req); }
 * catch (err) {
 *   if (!(err instanceof TokenVerificationError)) throw err;
 *   res.setHeader('WWW-Authenticate', err.wwwAuthenticate);
 *   res.statusCode = err.status;
 * }
 * ```
 */
export class TokenVerificationError extends OAuthError {
  /** Why the token was refused (or could not be judged), for logs and metrics. */
  readonly reason: VerificationFailureReason;
  /** The `WWW-Authenticate` value to answer with. */
  declare readonly wwwAuthenticate: string;
  /** For `unavailable`: the `Retry-After` to send, in seconds. */
  readonly retryAfterSeconds?: number;
  /** The `DPoP-Nonce` to send, when the verifier uses server nonces. */
  readonly dpopNonce?: string;

  /**
   * Made by a TokenVerifier.
   *
   * @param fields - the response to give and why.
   * @param options - `cause`: the lower-level error (kept by name and message only in output).
   */
  constructor(fields: TokenVerificationErrorFields, options?: { cause?: unknown }) {
    const { reason, retryAfterSeconds, dpopNonce, ...oauth } = fields;
    super(oauth, options);
    this.reason = reason;
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
    if (dpopNonce !== undefined) this.dpopNonce = dpopNonce;
  }
}
