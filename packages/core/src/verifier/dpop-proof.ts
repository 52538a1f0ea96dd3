/**
 * DPoP at the resource server (RFC 9449 §4.3, §7, §9, §11.1): checks a proof against the request
 * it came with and the token it binds, as a chain of named steps, cheapest first, the replay record
 * last (so refused proofs never fill it).
 *
 * Not checked here: the token itself (the verifier does that first), and anything the proof says
 * beyond the members below (unknown members are ignored, RFC 9449 §4.2).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { EmbeddedJWK, calculateJwkThumbprint, decodeProtectedHeader, jwtVerify } from 'jose';
import type { JWK } from 'jose';
import { accessTokenHash } from '../dpop.js';
import { jwtNestsTooDeep } from '../internal/jwt.js';

/** Why a proof was refused: `dpop_proof` (invalid_dpop_proof), `dpop_binding`, `dpop_nonce`. */
export class ProofFailure extends Error {
  constructor(
    readonly reason: 'dpop_proof' | 'dpop_binding' | 'dpop_nonce' | 'unavailable',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The asymmetric algorithms a proof may use (RFC 9449 §4.2: never `none` or a MAC). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'PS256', 'PS384', 'PS512', 'RS256', 'EdDSA'];

/** A proof longer than this is refused before parsing. */
const MAX_PROOF_LENGTH = 8192;
/** A `jti` longer than this is refused (RFC 9449 §11.1: bounded replay memory). */
const MAX_JTI_LENGTH = 256;
/** JWK members of a private key (RFC 7518 §6): a proof's `jwk` must have none. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
/** How long a server nonce lives; the current and the previous one are accepted (RFC 9449 §8). */
const NONCE_SLOT_MS = 5 * 60_000;

/** What a proof is checked against. */
export interface ProofContext {
  proof: string;
  method: string;
  url: string;
  accessToken: string;
  /** The token's `cnf.jkt` (RFC 9449 §6). */
  boundKey: string;
}

/** Settings of {@link DPoPProofChecker}. */
export interface ProofCheckerSettings {
  algorithms: readonly string[];
  maxAgeSeconds: number;
  /** How far in the future an `iat` may be (the proof's clock running ahead). */
  futureSeconds: number;
  /** The server-nonce secret, or `undefined` without nonces. */
  nonceSecret: Uint8Array | undefined;
  now: () => number;
  /** Records a proof's hash for `ttlSeconds`; `false` for a replay. */
  markUsed: (key: string, ttlSeconds: number) => boolean | Promise<boolean>;
}

/** Checks proofs (see the module comment). */
export class DPoPProofChecker {
  readonly #settings: ProofCheckerSettings;

  constructor(settings: ProofCheckerSettings) {
    this.#settings = settings;
  }

  /** Whether server nonces are on. */
  get usesNonces(): boolean {
    return this.#settings.nonceSecret !== undefined;
  }

  /** The nonce a response should carry now (RFC 9449 §9), or `undefined` without nonces. */
  currentNonce(): string | undefined {
    const secret = this.#settings.nonceSecret;
    return secret === undefined
      ? undefined
      : nonceFor(secret, Math.floor(this.#settings.now() / NONCE_SLOT_MS));
  }

  /** Throws {@link ProofFailure} unless the proof is good for this request and token. */
  async check(context: ProofContext): Promise<void> {
    const { proof } = context;
    const s = this.#settings;
    // §4.3 step 1: one DPoP header. Node joins repeated headers with ", "; a JWS has no comma.
    if (proof.includes(',')) throw new ProofFailure('dpop_proof', 'more than one DPoP header');
    if (proof.length > MAX_PROOF_LENGTH) throw new ProofFailure('dpop_proof', 'the DPoP proof is too long');
    if (proof.split('.').length !== 3 || jwtNestsTooDeep(proof)) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof is not a compact JWS');
    }
    let header: ReturnType<typeof decodeProtectedHeader>;
    try {
      header = decodeProtectedHeader(proof);
    } catch (cause) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof header is not valid JSON', { cause });
    }
    // §4.3 steps 4-5 and §11.5: typ, an asymmetric alg we accept, a public jwk.
    if (typeof header.typ !== 'string' || header.typ.toLowerCase() !== 'dpop+jwt') {
      throw new ProofFailure('dpop_proof', 'the DPoP proof typ is not dpop+jwt');
    }
    if (typeof header.alg !== 'string' || !s.algorithms.includes(header.alg)) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof alg is not one this resource accepts');
    }
    const jwk = header.jwk as JWK | undefined;
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof has no jwk header');
    }
    if (PRIVATE_MEMBERS.some((member) => member in jwk)) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof jwk holds a private key');
    }
    // §4.3 step 6: the signature, with the embedded key.
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...s.algorithms] }));
    } catch (cause) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof signature does not verify', { cause });
    }
    // §4.2: the members.
    const { jti, htm, htu, iat, ath, nonce } = payload;
    if (typeof jti !== 'string' || jti === '' || jti.length > MAX_JTI_LENGTH) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof jti is missing or too long');
    }
    if (typeof htm !== 'string' || typeof htu !== 'string' || typeof iat !== 'number') {
      throw new ProofFailure('dpop_proof', 'the DPoP proof lacks htm, htu or iat');
    }
    // §4.3 step 8: methods are case-sensitive (RFC 9110 §9.1).
    if (htm !== context.method)
      throw new ProofFailure('dpop_proof', 'the DPoP proof htm is not the request method');
    // §4.3 step 9: the URI without query and fragment, after RFC 3986 §6.2.2-§6.2.3 normalisation.
    const target = normalizeHtu(context.url);
    if (target === undefined || normalizeHtu(htu) !== target) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof htu is not the request URL');
    }
    // §4.3 step 10 and §9: the server nonce, when on.
    const nowMs = s.now();
    if (s.nonceSecret !== undefined && !this.#validNonce(nonce, nowMs)) {
      throw new ProofFailure('dpop_nonce', 'the resource requires a fresh DPoP nonce');
    }
    // §4.3 step 11 and §11.1: created within the window.
    const nowSeconds = nowMs / 1000;
    if (iat < nowSeconds - s.maxAgeSeconds || iat > nowSeconds + s.futureSeconds) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof iat is outside the accepted window');
    }
    // §4.3 step 12 and §7.1: the token hash, then the key binding (RFC 7638 thumbprint).
    if (typeof ath !== 'string' || !sameText(ath, accessTokenHash(context.accessToken))) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof ath is not the hash of the access token');
    }
    let thumbprint: string;
    try {
      thumbprint = await calculateJwkThumbprint(jwk, 'sha256');
    } catch (cause) {
      throw new ProofFailure('dpop_proof', 'the DPoP proof jwk is not a usable key', { cause });
    }
    if (!sameText(thumbprint, context.boundKey)) {
      throw new ProofFailure('dpop_binding', 'Invalid DPoP key binding');
    }
    // §11.1: each proof once, remembered for as long as it would be accepted. The key includes the
    // proof key, so one client's jti never blocks another's.
    const replayKey = createHash('sha256').update(`${thumbprint}\n${target}\n${jti}`).digest('base64url');
    const ttlSeconds = Math.max(1, Math.ceil(iat + s.maxAgeSeconds + s.futureSeconds - nowSeconds));
    let first: boolean;
    try {
      first = await s.markUsed(replayKey, ttlSeconds);
    } catch (cause) {
      throw new ProofFailure('unavailable', 'the DPoP replay cache could not be reached', { cause });
    }
    if (!first) throw new ProofFailure('dpop_proof', 'the DPoP proof was used before');
  }

  #validNonce(nonce: unknown, nowMs: number): boolean {
    if (typeof nonce !== 'string') return false;
    const slot = Math.floor(nowMs / NONCE_SLOT_MS);
    const secret = this.#settings.nonceSecret!;
    return sameText(nonce, nonceFor(secret, slot)) || sameText(nonce, nonceFor(secret, slot - 1));
  }
}

/** base64url(slot ‖ HMAC(secret, slot)): unpredictable, stateless, and the same on every instance. */
function nonceFor(secret: Uint8Array, slot: number): string {
  const slotBytes = Buffer.alloc(8);
  slotBytes.writeBigUInt64BE(BigInt(slot));
  const mac = createHmac('sha256', secret).update(slotBytes).digest().subarray(0, 16);
  return Buffer.concat([slotBytes, mac]).toString('base64url');
}

/** A random server-nonce secret, for one process. */
export function randomNonceSecret(): Uint8Array {
  return randomBytes(32);
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/**
 * The `htu` form of a URL (RFC 9449 §4.3): scheme and host lower-cased, default port dropped, dot
 * segments resolved (WHATWG URL does these), percent-encodings upper-cased and unreserved ones
 * decoded (RFC 3986 §6.2.2.1-§6.2.2.2), query and fragment dropped. `undefined` for what is not an
 * absolute http(s) URL, or a path starting with `//`.
 */
export function normalizeHtu(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return undefined;
  if (url.pathname.startsWith('//')) return undefined;
  const path = url.pathname.replace(/%([0-9a-fA-F]{2})/g, (_match, hex: string) => {
    const char = String.fromCharCode(Number.parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
  return `${url.protocol}//${url.host}${path}`;
}
