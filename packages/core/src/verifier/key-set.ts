/**
 * One issuer's signing keys, for verifying JWT access tokens (RFC 9068 §4). Kept here rather than
 * by jose's remote key set because availability, not the signature check, is how a resource server
 * fails in production:
 *
 * - a set is fresh for `freshMs`; after that it is refreshed in the background while the old one
 *   keeps verifying, for up to `staleIfErrorMs` more if the refreshes fail (last known good);
 * - an unknown `kid` refetches at once, at most once per `cooldownMs` (OpenID Connect Core
 *   §10.1.1: a new `kid` is how a rotation shows);
 * - after a failed fetch nothing is fetched for `penaltyMs`, so an outage is not made worse;
 * - fetches are single-flight: a thousand tokens with a new `kid` make one request.
 *
 * Key selection is jose's local key set: `kid`, a `kty` (and curve) that suits the token's `alg`,
 * the JWK's own `alg` and `use: "sig"` when present (RFC 8414 §2 requires `use` when both kinds are
 * published), `key_ops` allowing `verify`. `jku`, `x5u` and `jwk` headers are never followed
 * (RFC 8725 §3.10): keys come from the issuer's `jwks_uri` only.
 */
import { createLocalJWKSet, errors as joseErrors } from 'jose';
import type {
  CompactJWSHeaderParameters as JWSHeaderParameters,
  FlattenedJWSInput,
  JSONWebKeySet,
  JWTVerifyGetKey,
} from 'jose';

/** Why no key could be had: the verifier turns it into its error. */
export class KeyFailure extends Error {
  constructor(
    readonly reason: 'unknown_kid' | 'unavailable' | 'signature',
    message: string,
    readonly retryAfterSeconds?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** How long keys are trusted and fetched (milliseconds). */
export interface KeySetTimings {
  freshMs: number;
  staleIfErrorMs: number;
  cooldownMs: number;
  penaltyMs: number;
}

/** The defaults (see the module comment). */
export const KEY_SET_TIMINGS: KeySetTimings = {
  freshMs: 10 * 60_000,
  staleIfErrorMs: 60 * 60_000,
  cooldownMs: 30_000,
  penaltyMs: 10_000,
};

interface FetchedSet {
  select: JWTVerifyGetKey;
  fetchedAtMs: number;
}

/** One issuer's `jwks_uri`, fetched through `load` (see the module comment). */
export class IssuerKeySet {
  readonly #load: () => Promise<JSONWebKeySet>;
  readonly #now: () => number;
  readonly #timings: KeySetTimings;
  #set: FetchedSet | undefined;
  #inFlight: Promise<void> | undefined;
  #penaltyUntilMs = 0;
  #lastError: unknown;

  constructor(load: () => Promise<JSONWebKeySet>, now: () => number, timings: KeySetTimings) {
    this.#load = load;
    this.#now = now;
    this.#timings = timings;
  }

  /** The verification key for a token's header, for `jwtVerify`; throws {@link KeyFailure}. */
  readonly getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> => {
    const nowMs = this.#now();
    let set = this.#set;
    const ageMs = set === undefined ? Number.POSITIVE_INFINITY : nowMs - set.fetchedAtMs;
    if (set === undefined || ageMs > this.#timings.freshMs + this.#timings.staleIfErrorMs) {
      // Nothing usable: wait for a fetch.
      await this.#refresh(nowMs);
      set = this.#set!;
    } else if (ageMs > this.#timings.freshMs && nowMs >= this.#penaltyUntilMs) {
      // Stale but usable: refresh in the background, verify with what we have.
      this.#refresh(nowMs).catch(() => undefined);
    }
    try {
      return await select(set, header, token);
    } catch (error) {
      if (!(error instanceof KeyFailure && error.reason === 'unknown_kid')) throw error;
    }
    // Unknown kid: a rotation, if the set is older than the cooldown; otherwise a bad token.
    if (this.#now() - this.#set!.fetchedAtMs < this.#timings.cooldownMs) {
      throw new KeyFailure('unknown_kid', `no key in the issuer's JWKS has kid ${describeKid(header)}`);
    }
    await this.#refresh(this.#now());
    return select(this.#set!, header, token);
  };

  /** Single-flight fetch; fails at once (unavailable) during the penalty after a failure. */
  #refresh(nowMs: number): Promise<void> {
    if (this.#inFlight !== undefined) return this.#inFlight;
    if (nowMs < this.#penaltyUntilMs) return Promise.reject(this.#unavailable(nowMs));
    this.#inFlight = (async () => {
      try {
        const jwks = await this.#load();
        this.#set = { select: createLocalJWKSet(jwks), fetchedAtMs: this.#now() };
        this.#lastError = undefined;
      } catch (error) {
        this.#lastError = error;
        this.#penaltyUntilMs = this.#now() + this.#timings.penaltyMs;
        // A usable stale set carries on; without one the caller cannot be answered.
        throw this.#unavailable(this.#now());
      } finally {
        this.#inFlight = undefined;
      }
    })();
    return this.#inFlight;
  }

  #unavailable(nowMs: number): KeyFailure {
    const waitSeconds = Math.ceil(Math.max(1, this.#penaltyUntilMs - nowMs) / 1000);
    const why = this.#lastError instanceof Error ? `: ${this.#lastError.message}` : '';
    return new KeyFailure('unavailable', `the issuer's JWKS could not be fetched${why}`, waitSeconds, {
      cause: this.#lastError,
    });
  }
}

async function select(
  set: FetchedSet,
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
): Promise<CryptoKey> {
  try {
    return (await set.select(header, token)) as CryptoKey;
  } catch (error) {
    if (error instanceof joseErrors.JWKSNoMatchingKey) {
      throw new KeyFailure('unknown_kid', `no key in the issuer's JWKS has kid ${describeKid(header)}`);
    }
    if (error instanceof joseErrors.JWKSMultipleMatchingKeys) {
      throw new KeyFailure('signature', 'the token has no kid and several of the issuer keys match its alg');
    }
    throw new KeyFailure('signature', 'the issuer key for the token could not be used', undefined, {
      cause: error,
    });
  }
}

function describeKid(header: JWSHeaderParameters): string {
  return typeof header.kid === 'string' ? JSON.stringify(header.kid.slice(0, 64)) : '(none)';
}
