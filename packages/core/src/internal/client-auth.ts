/**
 * Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3,
 * RFC 7523 §2.2, OpenID Connect Core §9, RFC 8705 §2).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT, importJWK } from 'jose';
import type { JWK } from 'jose';
import { ConfigurationError } from '../errors.js';
import type { ClientAuthMethod, ClientMetadata, ClientOptions, ServerMetadata } from '../types.js';
import { jwsAlgorithmOf, jwsAlgorithmOfJwk } from './algorithms.js';
import { formEncode } from './form.js';

const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_LIFETIME_SECONDS = 60;

/** The methods this SDK implements, in the order it prefers them when it has to choose. */
const PREFERENCE: readonly ClientAuthMethod[] = [
  'private_key_jwt',
  'tls_client_auth',
  'self_signed_tls_client_auth',
  'client_secret_basic',
  'client_secret_post',
  'client_secret_jwt',
  'none',
];

/** Whether the client has what the method needs. */
function canUse(method: ClientAuthMethod, metadata: ClientMetadata, options: ClientOptions): boolean {
  switch (method) {
    case 'client_secret_basic':
    case 'client_secret_post':
    case 'client_secret_jwt':
      return typeof metadata.client_secret === 'string' && metadata.client_secret !== '';
    case 'private_key_jwt':
      return options.privateKey !== undefined;
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
      return options.tls?.cert !== undefined && options.tls.key !== undefined;
    case 'none':
      return metadata.client_secret === undefined && options.privateKey === undefined;
  }
}

/**
 * The registered method, or else the first method the server lists in
 * `token_endpoint_auth_methods_supported` (default `client_secret_basic`, RFC 8414 §2) that the
 * client has credentials for.
 */
export function chooseAuthMethod(
  server: ServerMetadata,
  metadata: ClientMetadata,
  options: ClientOptions,
): ClientAuthMethod {
  const registered = metadata.token_endpoint_auth_method;
  if (registered !== undefined) {
    if (!PREFERENCE.includes(registered)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `token_endpoint_auth_method ${String(registered)} is not supported`,
      );
    }
    if (!canUse(registered, metadata, options)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `token_endpoint_auth_method ${registered} needs ${needs(registered)}`,
      );
    }
    return registered;
  }
  const supported = server.token_endpoint_auth_methods_supported ?? ['client_secret_basic'];
  const method = PREFERENCE.find((m) => supported.includes(m) && canUse(m, metadata, options));
  if (method === undefined) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      `no client authentication method both supported by the server (${supported.join(', ')}) and configured for client ${metadata.client_id}`,
    );
  }
  return method;
}

function needs(method: ClientAuthMethod): string {
  switch (method) {
    case 'client_secret_basic':
    case 'client_secret_post':
    case 'client_secret_jwt':
      return 'client_secret';
    case 'private_key_jwt':
      return 'options.privateKey';
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
      return 'options.tls.cert and options.tls.key';
    case 'none':
      return 'no client_secret and no privateKey';
  }
}

/**
 * The two readings of one method that servers disagree on: `client_secret_basic` with the
 * credentials form-encoded before base64 (RFC 6749 §2.3.1) or raw, and the `aud` of a
 * `client_secret_jwt` / `private_key_jwt` assertion, the issuer or the endpoint's URL.
 */
export type AuthReading = 'rfc6749' | 'raw' | 'issuer' | 'endpoint';

/**
 * Applies one client authentication method to a request (RFC 6749 §2.3: exactly one method).
 *
 * Where the options leave the reading open (`basicAuthEncoding`, `clientAssertionAudience` unset),
 * a refused authentication may be retried once in the other reading ({@link otherThan}), and the
 * one that worked is used from then on ({@link adopt}), as golang.org/x/oauth2 detects its auth style.
 * Requests carry the concrete reading they were built with, so concurrent ones cannot flip it back.
 */
export class ClientAuthenticator {
  readonly method: ClientAuthMethod;
  readonly #clientId: string;
  readonly #secret: string | undefined;
  readonly #issuer: string;
  /** The Basic header in each reading (the same string when encoding changes nothing). */
  readonly #basicHeaders: { rfc6749: string; raw: string } | undefined;
  #basic: 'rfc6749' | 'raw';
  #audience: 'issuer' | 'endpoint';
  /** Whether the reading may still change: the option was not set, and the readings differ. */
  readonly #open: boolean;
  readonly #alg: string | undefined;
  readonly #key: Promise<{ key: CryptoKey | Uint8Array; alg: string; kid?: string }> | undefined;

  constructor(server: ServerMetadata, metadata: ClientMetadata, options: ClientOptions) {
    this.method = chooseAuthMethod(server, metadata, options);
    this.#clientId = metadata.client_id;
    this.#secret = metadata.client_secret;
    this.#issuer = server.issuer;
    this.#audience = options.clientAssertionAudience ?? 'issuer';
    this.#basic = options.basicAuthEncoding ?? 'rfc6749';
    this.#alg = metadata.token_endpoint_auth_signing_alg;
    const basic = (id: string, secret: string) =>
      `Basic ${Buffer.from(`${id}:${secret}`, 'utf8').toString('base64')}`;
    if (this.method === 'client_secret_basic') {
      this.#basicHeaders = {
        rfc6749: basic(formEncode(this.#clientId), formEncode(this.#secret!)),
        raw: basic(this.#clientId, this.#secret!),
      };
    }
    this.#open =
      this.method === 'client_secret_basic'
        ? options.basicAuthEncoding === undefined && this.#basicHeaders!.rfc6749 !== this.#basicHeaders!.raw
        : (this.method === 'client_secret_jwt' || this.method === 'private_key_jwt') &&
          options.clientAssertionAudience === undefined;
    if (this.method === 'client_secret_jwt') {
      const alg =
        this.#alg ??
        server.token_endpoint_auth_signing_alg_values_supported?.find((a) => /^HS(256|384|512)$/.test(a)) ??
        'HS256';
      this.#key = Promise.resolve({ key: new TextEncoder().encode(this.#secret!), alg });
    } else if (this.method === 'private_key_jwt') {
      this.#key = privateSigningKey(options.privateKey!, this.#alg);
      this.#key.catch(() => undefined); // surfaced on first use
    }
  }

  /** The secrets this authenticator may put on the wire, for redaction. */
  get secrets(): string[] {
    return this.#secret === undefined ? [] : [this.#secret];
  }

  /** The reading requests are built with now. */
  get reading(): AuthReading {
    return this.method === 'client_secret_basic' ? this.#basic : this.#audience;
  }

  /** The reading worth one retry after `reading` was refused, if the options leave it open. */
  otherThan(reading: AuthReading): AuthReading | undefined {
    if (!this.#open) return undefined;
    return ({ rfc6749: 'raw', raw: 'rfc6749', issuer: 'endpoint', endpoint: 'issuer' } as const)[reading];
  }

  /** `reading` worked: use it from now on (the same call from concurrent requests changes nothing). */
  adopt(reading: AuthReading): void {
    if (!this.#open) return;
    if (this.method === 'client_secret_basic' && (reading === 'rfc6749' || reading === 'raw'))
      this.#basic = reading;
    else if (reading === 'issuer' || reading === 'endpoint') this.#audience = reading;
  }

  /** What was tried, for the error when both readings were refused. */
  get bothTried(): string {
    return this.method === 'client_secret_basic'
      ? 'client authentication was refused with the credentials both form-encoded (RFC 6749 §2.3.1) and raw: check client_id and client_secret, or set the Client option basicAuthEncoding, or token_endpoint_auth_method'
      : 'client authentication was refused with the assertion audience both the issuer and the endpoint URL: check the key or secret and the registration, or set the Client option clientAssertionAudience';
  }

  /**
   * Adds the credentials to `headers` / `form`. Synchronous for every method but the two assertion
   * methods, which build a fresh assertion for every call and return the promise of it.
   */
  apply(
    endpointUrl: string,
    headers: Record<string, string>,
    form: URLSearchParams,
    reading: AuthReading = this.reading,
  ): Promise<void> | undefined {
    switch (this.method) {
      case 'client_secret_basic':
        headers.authorization = this.#basicHeaders![reading === 'raw' ? 'raw' : 'rfc6749'];
        return undefined;
      case 'client_secret_post':
        form.set('client_id', this.#clientId);
        form.set('client_secret', this.#secret!);
        return undefined;
      case 'client_secret_jwt':
      case 'private_key_jwt':
        return this.#applyAssertion(endpointUrl, form, reading);
      case 'tls_client_auth':
      case 'self_signed_tls_client_auth':
      case 'none':
        // mTLS: the certificate is on the HTTPS agent (RFC 8705 §2); the client_id identifies us.
        form.set('client_id', this.#clientId);
        return undefined;
    }
  }

  /** A fresh client assertion (RFC 7523 §2.2) in `form`. */
  async #applyAssertion(endpointUrl: string, form: URLSearchParams, reading: AuthReading): Promise<void> {
    const { key, alg, kid } = await this.#key!;
    const now = Math.floor(Date.now() / 1000);
    // aud: the issuer as one string, never an array (OIDC Core §9 as updated in 2025, and RFC 7523 §3).
    const assertion = await new SignJWT({})
      .setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
      .setIssuer(this.#clientId)
      .setSubject(this.#clientId)
      .setAudience(reading === 'endpoint' ? endpointUrl : this.#issuer)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + ASSERTION_LIFETIME_SECONDS)
      .sign(key);
    form.set('client_id', this.#clientId);
    form.set('client_assertion_type', CLIENT_ASSERTION_TYPE);
    form.set('client_assertion', assertion);
  }
}

async function privateSigningKey(
  privateKey: CryptoKey | JWK,
  configuredAlg: string | undefined,
): Promise<{ key: CryptoKey | Uint8Array; alg: string; kid?: string }> {
  if (isCryptoKey(privateKey)) {
    if (privateKey.type !== 'private') {
      throw new ConfigurationError('INVALID_CONFIGURATION', 'privateKey must be a private key');
    }
    return { key: privateKey, alg: configuredAlg ?? algFromCryptoKey(privateKey) };
  }
  if (typeof privateKey.d !== 'string') {
    throw new ConfigurationError('INVALID_CONFIGURATION', 'privateKey JWK has no private part (d)');
  }
  const alg = configuredAlg ?? privateKey.alg ?? algFromJwk(privateKey);
  try {
    const key = await importJWK(privateKey, alg);
    return privateKey.kid === undefined ? { key, alg } : { key, alg, kid: privateKey.kid };
  } catch (cause) {
    throw new ConfigurationError('INVALID_CONFIGURATION', `privateKey JWK cannot be used with ${alg}`, {
      cause,
    });
  }
}

function isCryptoKey(key: unknown): key is CryptoKey {
  return typeof CryptoKey !== 'undefined' && key instanceof CryptoKey;
}

function algFromJwk(jwk: JWK): string {
  const alg = jwsAlgorithmOfJwk(jwk);
  if (alg !== undefined) return alg;
  throw new ConfigurationError(
    'INVALID_CONFIGURATION',
    `privateKey JWK of kty ${String(jwk.kty)}${jwk.crv === undefined ? '' : ` and crv ${jwk.crv}`} needs an explicit alg`,
  );
}

function algFromCryptoKey(key: CryptoKey): string {
  const alg = jwsAlgorithmOf(key);
  if (alg !== undefined) return alg;
  throw new ConfigurationError(
    'INVALID_CONFIGURATION',
    `privateKey of algorithm ${key.algorithm.name} needs an explicit token_endpoint_auth_signing_alg`,
  );
}
