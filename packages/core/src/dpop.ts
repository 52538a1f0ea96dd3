/**
 * DPoP: Demonstrating Proof of Possession (RFC 9449). A handle holds one key pair, makes a fresh
 * proof for every request, and remembers the latest nonce of every server it talks to.
 */
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { ConfigurationError } from './errors.js';
import { jwsAlgorithmOf } from './internal/algorithms.js';
import { findChallenge } from './www-authenticate.js';

/** Response headers as fetch (`Headers`) or axios / node:http (a plain object) give them. */
export type ResponseHeaders =
  Headers | Readonly<Record<string, string | readonly string[] | number | undefined | null>>;

/** Algorithms {@link randomDPoPKeyPair} can generate keys for. */
export type DPoPAlgorithm = 'ES256' | 'EdDSA' | 'PS256' | 'RS256';

/** At most this many servers' nonces are remembered; the oldest is forgotten first. */
const MAX_NONCES = 256;

/**
 * A new key pair for DPoP proofs. The private key is not extractable unless asked for, so it can be
 * used but never exported (RFC 9449 §11.3 advice).
 *
 * @param alg - @default 'ES256'
 * @example
 * ```ts
 * const dpop = client.getDPoPHandle(await randomDPoPKeyPair());
 * const tokens = await client.clientCredentialsGrant({}, { DPoP: dpop });
 * tokens.token_type; // 'DPoP'
 * ```
 */
export function randomDPoPKeyPair(
  alg: DPoPAlgorithm = 'ES256',
  options: { extractable?: boolean } = {},
): Promise<CryptoKeyPair> {
  return generateKeyPair(alg, { extractable: options.extractable ?? false });
}

/** What a proof is for. */
export interface DPoPProofOptions {
  /** The access token being presented to a resource server; its hash becomes `ath` (§4.2). */
  accessToken?: string;
  /** A nonce to use instead of the remembered one for the URL's origin. */
  nonce?: string;
}

/**
 * A DPoP key in use: makes proofs (`typ: dpop+jwt`, the public `jwk`, a fresh `jti`, `htm`,
 * `htu`, `iat`, and `nonce`/`ath` when they apply) and keeps the latest `DPoP-Nonce` per origin.
 * Get one from `client.getDPoPHandle(keyPair)`.
 *
 * @see RFC 9449 §4
 */
export class DPoPHandle {
  /** The JWS algorithm of the proofs, e.g. `'ES256'`. */
  readonly alg: string;
  readonly #privateKey: CryptoKey;
  readonly #publicJwk: Promise<JWK>;
  readonly #thumbprint: Promise<string>;
  readonly #nonces = new Map<string, string>();

  /** @internal Use `client.getDPoPHandle(keyPair)`. */
  constructor(keyPair: CryptoKeyPair, supportedAlgs?: readonly string[]) {
    if (keyPair?.privateKey?.type !== 'private' || keyPair.publicKey?.type !== 'public') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'a DPoP key pair needs a private and a public CryptoKey',
      );
    }
    this.alg = algorithmOf(keyPair.privateKey);
    if (supportedAlgs !== undefined && supportedAlgs.length > 0 && !supportedAlgs.includes(this.alg)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `the server accepts DPoP proofs signed with ${supportedAlgs.join(', ')}, not ${this.alg} (RFC 9449 §5.1)`,
      );
    }
    this.#privateKey = keyPair.privateKey;
    this.#publicJwk = exportJWK(keyPair.publicKey).then(publicMembers);
    this.#thumbprint = this.#publicJwk.then((jwk) => calculateJwkThumbprint(jwk, 'sha256'));
    // Surface a failure on first use, not as an unhandled rejection now.
    this.#thumbprint.catch(() => undefined);
  }

  /**
   * The key's JWK SHA-256 thumbprint (RFC 7638): the `cnf.jkt` of tokens bound to it, and the
   * value of `dpop_jkt` (RFC 9449 §10).
   */
  thumbprint(): Promise<string> {
    return this.#thumbprint;
  }

  /** The public key as a JWK (no private members). */
  async publicJwk(): Promise<JWK> {
    return { ...(await this.#publicJwk) };
  }

  /**
   * A new proof for one HTTP request. `htu` is the URL without query, fragment or userinfo; the
   * remembered nonce of the URL's origin is included.
   *
   * @see RFC 9449 §4.2
   */
  async proof(method: string, url: string | URL, options: DPoPProofOptions = {}): Promise<string> {
    const target = new URL(url);
    const nonce = options.nonce ?? this.#nonces.get(target.origin);
    const claims: Record<string, string> = {
      htm: method.toUpperCase(),
      htu: `${target.origin}${target.pathname}`,
    };
    if (nonce !== undefined) claims.nonce = nonce;
    if (options.accessToken !== undefined) claims.ath = accessTokenHash(options.accessToken);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: this.alg, typ: 'dpop+jwt', jwk: await this.#publicJwk })
      .setJti(randomUUID())
      .setIssuedAt()
      .sign(this.#privateKey);
  }

  /** The latest nonce a server at this URL's origin gave, if any. */
  nonce(url: string | URL): string | undefined {
    return this.#nonces.get(new URL(url).origin);
  }

  /**
   * Remembers a `DPoP-Nonce` response header for the URL's origin (RFC 9449 §8.2, §9): any
   * response may carry a fresh one. Returns whether the nonce changed.
   */
  learnNonce(url: string | URL, nonce: string | null | undefined): boolean {
    if (nonce === undefined || nonce === null || nonce === '') return false;
    const origin = new URL(url).origin;
    const previous = this.#nonces.get(origin);
    this.#nonces.delete(origin);
    this.#nonces.set(origin, nonce);
    if (this.#nonces.size > MAX_NONCES) this.#nonces.delete(this.#nonces.keys().next().value!);
    return previous !== nonce;
  }

  /**
   * Learns from a resource server's response to a DPoP request (RFC 9449 §9): remembers its
   * `DPoP-Nonce`, and returns `true` when the response is a `use_dpop_nonce` challenge (401 with
   * `WWW-Authenticate: DPoP error="use_dpop_nonce"`) that brought a new nonce, so the request
   * should be sent once more with a new proof. Retry at most once per request.
   */
  learnFromResponse(url: string | URL, response: { status: number; headers: ResponseHeaders }): boolean {
    const changed = this.learnNonce(url, headerValue(response.headers, 'dpop-nonce'));
    if (response.status !== 401 || !changed) return false;
    return (
      findChallenge(headerValue(response.headers, 'www-authenticate'), 'DPoP')?.parameters.error ===
      'use_dpop_nonce'
    );
  }
}

/** One header's value, whatever the shape of the headers. */
function headerValue(headers: ResponseHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const record = headers as Record<string, unknown>;
  const key = Object.keys(record).find((k) => k.toLowerCase() === name);
  const value = key === undefined ? undefined : record[key];
  if (Array.isArray(value)) return value.join(', ');
  return value === undefined || value === null ? undefined : String(value);
}

/** `ath`: base64url of the SHA-256 of the ASCII access token (RFC 9449 §4.2). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

function publicMembers(jwk: JWK): JWK {
  const { kty, crv, x, y, n, e } = jwk;
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y, n, e }).filter(([, v]) => v !== undefined),
  ) as JWK;
}

function algorithmOf(key: CryptoKey): string {
  const alg = jwsAlgorithmOf(key);
  if (alg !== undefined) return alg;
  throw new ConfigurationError(
    'INVALID_CONFIGURATION',
    `a DPoP key must be asymmetric and signing (got ${key.algorithm.name})`,
  );
}
