/**
 * The resource server's side: one object that verifies any access token it receives. RFC 9068 JWT
 * access tokens are checked locally against the issuer's keys; anything else is introspected
 * (RFC 7662, or RFC 9701 JWT responses). Decisions are cached under SHA-256 of the token, one
 * decision is in flight per token however many requests carry it, and evicted tokens are refused
 * at once. DPoP-bound tokens need a valid proof for the request (RFC 9449 §4.3, §7).
 */
import { hash as oneShotHash } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors } from 'jose';
import type { JWTPayload } from 'jose';
import type { Client } from '../client.js';
import { ConfigurationError, TesseraError, TokenStoreError, TokenVerificationError } from '../errors.js';
import type { VerificationFailureReason } from '../errors.js';
import type { TokenVerifierEvents } from '../events.js';
import { CLIENT_INTERNALS } from '../internal/client-internals.js';
import { withDeadline } from '../internal/deadline.js';
import { deepFreeze } from '../internal/freeze.js';
import { fetchKeySet } from '../internal/jwks.js';
import { isEncryptedJwt, unverifiedClaims, verifyJwt } from '../internal/jwt.js';
import { parseOptions } from '../internal/options.js';
import { REVOKED_TOKENS } from '../internal/revocation-feed.js';
import { traceVerify, urlWithoutQuery } from '../internal/tracing.js';
import { logEvent, TOKEN_VERIFIER_LINES } from '../internal/event-log.js';
import { errorFields, Log } from '../internal/log.js';
import type { VerifyTraceContext } from '../diagnostics.js';
import type { RevocationFeed } from '../internal/revocation-feed.js';
import { SafeEventEmitter } from '../internal/safe-emitter.js';
import type { IntrospectionResponse } from '../types.js';
import { verificationError } from './challenge.js';
import type { AttemptScheme, ChallengeSettings, Failure } from './challenge.js';
import { DPOP_ALGORITHMS, DPoPProofChecker, ProofFailure, randomNonceSecret } from './dpop-proof.js';
import { IssuerKeySet, KEY_SET_TIMINGS, KeyFailure } from './key-set.js';
import { CredentialsError, readCredentials } from './request-credentials.js';
import type { BearerMethod, VerifiableRequest } from './request-credentials.js';
import { MemoryVerificationCache, assertVerificationCache } from './verification-cache.js';
import { verifierOptionsSchema } from './options.js';
import type { TokenVerifierOptions, VerificationCacheSettings, VerifyOptions } from './options.js';
import type {
  CachedVerification,
  CacheEviction,
  VerificationCache,
  VerifiedToken,
} from './verification-cache.js';

/** The algorithms a JWT access token may be signed with by default: asymmetric only (RFC 8725 §3.1). */
const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];
/** The longest `introspectionBearer` may take to hand over its token. */
const BEARER_DEADLINE_MS = 10_000;
/** The longest a JWKS fetch (with its retries) may take. */
const JWKS_DEADLINE_MS = 5000;
/** A longer token is refused before it is hashed or parsed (no real one comes near it). */
const MAX_TOKEN_LENGTH = 16_384;
/** Claims every RFC 9068 §2.2 access token has. */
const REQUIRED_CLAIMS = ['iss', 'exp', 'aud', 'sub', 'client_id', 'iat', 'jti'];
/** How long `evictSubject()` keeps refusing the subject's older JWTs (they carry no revocation state). */
const SUBJECT_REVOCATION_SECONDS = 24 * 60 * 60;

/** The well-known URL of a resource's protected resource metadata (RFC 9728 §3.1). */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname.replace(/\/$/, '');
  return `${url.origin}/.well-known/oauth-protected-resource${path}${url.search}`;
}

/**
 * Verifies the access tokens a resource server receives, whatever their kind (see the module
 * comment). Every failure is a {@link TokenVerificationError} carrying the status to answer and a
 * ready `WWW-Authenticate`; when nothing can decide (keys or introspection unreachable) it is 503
 * `unavailable`, never 401, so well-behaved clients do not refresh into an outage.
 *
 * Not checked: what the claims mean for your API beyond scopes (roles, tenants: read `claims`), an
 * encrypted (JWE) access token (routed to introspection), RFC 8705 certificate binding.
 *
 * @see RFC 9068 §4, RFC 7662 §2, RFC 9449 §4.3 and §7, RFC 6750 §3
 * @example
 * ```ts
 * const verifier = new TokenVerifier({ client, audience: 'https://api.example' });
 * const auth = await verifier.verifyRequest({ method: req.method, url: fullUrl, headers: req.headers });
 * auth.subject; auth.scopes; // 'user-1', ['orders:read']
 * ```
 */
export class TokenVerifier extends SafeEventEmitter<TokenVerifierEvents> {
  readonly #issuers: (issuer: string) => Client | undefined;
  /** One key set per issuer and `jwks_uri` (not per Client object: a resolver may make new ones). */
  readonly #keySets = new Map<string, IssuerKeySet>();
  /**
   * Mixed into every cache key, so verifiers with other settings (issuers, audience, kinds,
   * algorithms) sharing one cache never take each other's results.
   */
  readonly #namespace: string;
  readonly #introspector: Client | undefined;
  readonly #audience: readonly string[] | undefined;
  readonly #accept: ReadonlySet<'jwt' | 'introspection'>;
  readonly #requiredScopes: readonly string[];
  readonly #algorithms: readonly string[];
  readonly #toleranceSeconds: number;
  /**
   * Results, evictions and DPoP proofs. With `cache: false` an in-memory one still keeps evictions
   * and proofs (forgetting them would let revoked tokens and replays in), but no results.
   */
  readonly #cache: VerificationCache;
  readonly #cachesResults: boolean;
  readonly #ownsCache: boolean;
  readonly #maxTtlSeconds: number;
  readonly #negativeTtlSeconds: number;
  readonly #cacheTimeoutMs: number;
  readonly #dpop: DPoPProofChecker | undefined;
  readonly #dpopRequired: boolean;
  readonly #challenges: ChallengeSettings;
  readonly #bearerMethods: readonly BearerMethod[];
  readonly #introspectionBearer: (() => string | Promise<string>) | undefined;
  readonly #now: () => number;
  /** The `logger` option's log, or the first issuer's client's. */
  readonly #log: Log;
  /** Whether events are logged (a logger was given): `token.verified` is then always built. */
  readonly #logsEvents: boolean;
  readonly #inFlight = new Map<string, Promise<CachedVerification>>();
  /** The result with its scheme, made once per cached result. */
  readonly #presented = new WeakMap<object, { Bearer?: VerifiedToken; DPoP?: VerifiedToken }>();
  readonly #unsubscribe: Array<() => void> = [];
  /** Bumped by every eviction: a decision started before one is not cached. */
  #generation = 0;

  /**
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming a bad option (e.g. both or neither of
   *   `client` and `issuers`, an `algorithms` list with a MAC, no audience while JWTs are accepted).
   */
  constructor(options: TokenVerifierOptions) {
    super();
    parseOptions(verifierOptionsSchema, options, 'TokenVerifier');
    if ((options.client === undefined) === (options.issuers === undefined)) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'TokenVerifier needs exactly one of the options client and issuers',
      );
    }
    const list =
      options.client !== undefined
        ? [options.client]
        : Array.isArray(options.issuers)
          ? (options.issuers as Client[])
          : [];
    if (list.length > 0) {
      const byIssuer = new Map(list.map((client) => [client.serverMetadata().issuer, client]));
      this.#issuers = (issuer) => byIssuer.get(issuer);
    } else {
      const resolve = options.issuers as (issuer: string) => Client | undefined;
      this.#issuers = (issuer) => {
        const client = resolve(issuer);
        // The resolver selects; a client for another issuer would let that issuer vouch for this one.
        return client !== undefined && client.serverMetadata().issuer === issuer ? client : undefined;
      };
    }
    this.issuers = Object.freeze(list.map((client) => client.serverMetadata().issuer));
    // An opaque token says nothing of its issuer: it goes to one issuer only, never to the others.
    const opaque = options.opaqueTokenIssuer ?? options.client;
    this.#introspector = opaque?.supports('introspection') === true ? opaque : undefined;
    const audience = options.audience ?? options.resource;
    this.#audience =
      audience === undefined ? undefined : typeof audience === 'string' ? [audience] : [...audience];
    this.#accept = new Set(options.accept ?? ['jwt', 'introspection']);
    if (this.#accept.has('jwt') && this.#audience === undefined) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        "TokenVerifier option audience is required to accept JWT access tokens (RFC 9068 §4); set it, or accept: ['introspection']",
      );
    }
    this.#requiredScopes = [...(options.requiredScopes ?? [])];
    this.#algorithms = [...(options.algorithms ?? JWT_ALGORITHMS)];
    this.#toleranceSeconds =
      options.clockToleranceSeconds ?? list[0]?.[CLIENT_INTERNALS].toleranceSeconds ?? 30;
    this.#now = options.now ?? Date.now;
    this.#log = Log.to(
      options.logger ?? list[0]?.[CLIENT_INTERNALS].transport.log.logger,
      'tessera.token-verifier',
    );
    this.#logsEvents = this.#log.logger !== undefined;

    const cache = options.cache;
    const settings: VerificationCacheSettings =
      cache === false || cache === undefined || isVerificationCache(cache) ? {} : cache;
    // A cache given as such, or as `store`, must have every method the verifier calls.
    if (isVerificationCache(cache)) assertVerificationCache(cache);
    if (settings.store !== undefined) assertVerificationCache(settings.store);
    this.#maxTtlSeconds = settings.maxTtlSeconds ?? 300;
    this.#negativeTtlSeconds = settings.negativeTtlSeconds ?? 10;
    this.#cacheTimeoutMs = settings.timeoutMs ?? 1000;
    this.#cachesResults = cache !== false;
    if (isVerificationCache(cache)) {
      this.#cache = cache;
      this.#ownsCache = false;
    } else {
      this.#cache =
        settings.store ??
        new MemoryVerificationCache({
          now: this.#now,
          ...(settings.maxEntries === undefined ? {} : { maxEntries: settings.maxEntries }),
        });
      this.#ownsCache = settings.store === undefined;
    }
    const cacheOfProofs = this.#cache;

    const dpop = options.dpop ?? {};
    this.#dpopRequired = dpop !== false && dpop.required === true;
    if (dpop !== false) {
      const nonce = dpop.nonce;
      this.#dpop = new DPoPProofChecker({
        algorithms: dpop.algorithms ?? DPOP_ALGORITHMS,
        maxAgeSeconds: dpop.maxAgeSeconds ?? 300,
        futureSeconds: dpop.futureSeconds ?? 30,
        nonceSecret:
          nonce === true
            ? randomNonceSecret()
            : nonce === undefined || nonce === false
              ? undefined
              : nonce.secret,
        now: this.#now,
        markUsed: (key, ttl) => this.#bounded(cacheOfProofs.markUsed(key, ttl), 'set'),
      });
    }
    this.#challenges = {
      realm: options.realm ?? 'api',
      resourceMetadata:
        options.resource === undefined ? undefined : protectedResourceMetadataUrl(options.resource),
      bearer: !this.#dpopRequired,
      dpopAlgorithms: dpop === false ? undefined : (dpop.algorithms ?? DPOP_ALGORITHMS),
    };
    this.#bearerMethods = options.bearerMethods ?? ['header'];
    this.#introspectionBearer = options.introspectionBearer;
    this.resource = options.resource;

    this.#namespace = `${oneShotHash(
      'sha256',
      JSON.stringify([
        Array.isArray(options.issuers) || options.client !== undefined
          ? [...this.issuers].sort()
          : 'resolver',
        [...(this.#audience ?? [])].sort(),
        [...this.#accept].sort(),
        [...this.#algorithms].sort(),
        this.#introspector?.serverMetadata().issuer,
        this.#introspector?.clientId,
      ]),
      'base64url',
    ).slice(0, 16)}.`;

    const evictions = this.#cache.subscribe?.((eviction) => this.#evictedElsewhere(eviction));
    if (evictions !== undefined) this.#unsubscribe.push(evictions);
    const manager = options.tokenManager as RevocationFeed | undefined;
    if (manager !== undefined) {
      this.#unsubscribe.push(
        manager[REVOKED_TOKENS]((token) => {
          this.evict(token, 'token-manager').catch(() => undefined);
        }),
      );
    }
  }

  /** This API's resource identifier (RFC 9728 §1.2), as configured. */
  readonly resource: string | undefined;

  /** The issuer identifiers of the listed clients (empty with a resolver): RFC 9728 `authorization_servers`. */
  readonly issuers: readonly string[];

  /** The settings a protected-resource metadata document is built from (RFC 9728 §2). @internal */
  describe(): {
    dpopAlgorithms: readonly string[] | undefined;
    dpopRequired: boolean;
    bearerMethods: readonly BearerMethod[];
  } {
    return {
      dpopAlgorithms: this.#challenges.dpopAlgorithms,
      dpopRequired: this.#dpopRequired,
      bearerMethods: this.#bearerMethods,
    };
  }

  /** The `DPoP-Nonce` responses should carry now (RFC 9449 §9), when server nonces are on. */
  dpopNonce(): string | undefined {
    return this.#dpop?.currentNonce();
  }

  /**
   * Verifies one access token. With a DPoP-bound token, `method`, `url` and `dpopProof` are
   * checked too (RFC 9449 §4.3).
   *
   * @throws TokenVerificationError `invalid_token` (401), `insufficient_scope` (403),
   *   `invalid_dpop_proof` / `use_dpop_nonce` (401), or `temporarily_unavailable` (503, reason
   *   `unavailable`, with `retryAfterSeconds`).
   */
  verify(token: string, options: VerifyOptions = {}): Promise<VerifiedToken> {
    const scheme = options.scheme ?? (options.dpopProof === undefined ? 'Bearer' : 'DPoP');
    return traceVerify(scheme, (trace) => this.#verify(token, options, scheme, trace));
  }

  async #verify(
    token: string,
    options: VerifyOptions,
    scheme: 'Bearer' | 'DPoP',
    trace: VerifyTraceContext | undefined,
  ): Promise<VerifiedToken> {
    /** Whether the cache decided; unknown until it was asked (a malformed token never is). */
    let cached: boolean | undefined;
    try {
      if (typeof token !== 'string' || token === '') {
        throw this.#fail({ reason: 'missing', description: 'an access token is required', scheme: 'none' });
      }
      if (token.length > MAX_TOKEN_LENGTH) {
        throw this.#fail({ reason: 'malformed', description: 'the access token is too long', scheme });
      }
      const hash = this.#hashOf(token);
      // Taken before the read: an eviction from here on keeps this decision out of the cache.
      const generation = this.#generation;
      let entry: CachedVerification | undefined;
      let found: ReturnType<VerificationCache['get']>;
      try {
        found = this.#cache.get(hash);
      } catch (error) {
        throw TokenStoreError.from('get', error, { store: 'verification cache' });
      }
      entry = isPromise(found) ? await this.#bounded(found, 'get') : found;
      cached = entry !== undefined;
      entry ??= await this.#decideOnce(token, hash, scheme, generation);
      const result = this.#accepted(entry, scheme, options);
      if (result.cnf?.jkt !== undefined || scheme === 'DPoP' || this.#dpopRequired) {
        await this.#checkBinding(result, token, scheme, options);
      }
      if (trace !== undefined) Object.assign(trace, { kind: result.kind, cached, outcome: 'verified' });
      if (this.#logsEvents || this.listenerCount('token.verified') > 0) {
        this.#report(
          'token.verified',
          {
            kind: result.kind,
            scheme,
            issuer: result.issuer,
            ...(result.subject === undefined ? {} : { subject: result.subject }),
            ...(result.clientId === undefined ? {} : { clientId: result.clientId }),
            cached,
          },
          token,
        );
      }
      return result;
    } catch (error) {
      const failure = this.#asVerificationError(error, scheme);
      if (trace !== undefined) {
        Object.assign(trace, {
          ...(cached === undefined ? {} : { cached }),
          outcome: 'rejected',
          reason: failure.reason,
          status: failure.status,
        });
      }
      this.#report(
        'token.rejected',
        { reason: failure.reason, status: failure.status, error: failure },
        typeof token === 'string' && token !== '' ? token : undefined,
      );
      throw failure;
    }
  }

  /**
   * Reads the token from a request (`Authorization: Bearer|DPoP` and `DPoP`, RFC 6750 §2.1,
   * RFC 9449 §7.1; the query or form body only when `bearerMethods` allows) and verifies it.
   *
   * @throws TokenVerificationError as {@link TokenVerifier.verify}; no token is `missing` (401
   *   without error details), two ways of sending one `request` (400 `invalid_request`).
   */
  async verifyRequest(request: VerifiableRequest): Promise<VerifiedToken> {
    let credentials;
    try {
      credentials = readCredentials(request, this.#bearerMethods);
    } catch (error) {
      const failure = this.#asVerificationError(error, 'both');
      this.#report('token.rejected', { reason: failure.reason, status: failure.status, error: failure });
      throw failure;
    }
    return this.verify(credentials.token, {
      method: request.method,
      url: request.url,
      scheme: credentials.scheme,
      ...(credentials.proof === undefined ? {} : { dpopProof: credentials.proof }),
      ...(request.scopes === undefined ? {} : { scopes: request.scopes }),
    });
  }

  /**
   * Forgets what was decided about `token` and refuses it from now on: a JWT until it expires (its
   * signature would otherwise let it in again); an opaque token is introspected again. With a
   * shared cache, every instance forgets it.
   *
   * @throws TokenStoreError when the cache cannot be reached (the eviction did not happen).
   */
  async evict(token: string, origin: 'local' | 'token-manager' = 'local'): Promise<void> {
    const hash = this.#hashOf(token);
    this.#generation++;
    this.#inFlight.delete(hash);
    const exp = unverifiedClaims(token)?.exp;
    const ttlSeconds =
      typeof exp === 'number' ? Math.ceil(exp + this.#toleranceSeconds - this.#now() / 1000) : 0;
    if (ttlSeconds > 0) await this.#bounded(this.#cache.set(hash, { status: 'revoked' }, ttlSeconds), 'set');
    else await this.#bounded(this.#cache.delete(hash), 'delete');
    this.#report('cache.evicted', { by: 'token', origin });
  }

  /**
   * Forgets every result for `subject` and refuses its tokens issued until now: JWTs for a day (or
   * until they expire), opaque tokens are introspected again. With a shared cache, on every instance.
   *
   * @throws TokenStoreError when the cache cannot be reached.
   */
  async evictSubject(subject: string): Promise<void> {
    this.#generation++;
    this.#inFlight.clear();
    await this.#bounded(
      this.#cache.revokeSubject(subject, Math.floor(this.#now() / 1000), SUBJECT_REVOCATION_SECONDS),
      'delete',
    );
    this.#report('cache.evicted', { by: 'subject', origin: 'local' });
  }

  /** Emits `event` and logs its line (internal/event-log.ts), with `token`'s fingerprint. */
  #report<E extends keyof TokenVerifierEvents>(
    event: E,
    payload: Parameters<TokenVerifierEvents[E]>[0],
    token?: string,
  ): void {
    (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
    logEvent(this.#log, TOKEN_VERIFIER_LINES, event, payload as never, token);
  }

  /** Stops listening for evictions and revocations, and releases the cache the verifier made. */
  async close(): Promise<void> {
    for (const unsubscribe of this.#unsubscribe.splice(0)) unsubscribe();
    if (this.#ownsCache) (this.#cache as MemoryVerificationCache).clear();
  }

  // ---- deciding -------------------------------------------------------------------------------

  /** One decision in flight per token; cached when no eviction happened meanwhile. */
  #decideOnce(
    token: string,
    hash: string,
    scheme: 'Bearer' | 'DPoP',
    generation: number,
  ): Promise<CachedVerification> {
    let pending = this.#inFlight.get(hash);
    if (pending === undefined) {
      pending = this.#decide(token, scheme).then(async (entry) => {
        const ttl = this.#ttlOf(entry);
        if (this.#cachesResults && ttl > 0 && generation === this.#generation) {
          // A cache that cannot store is not a reason to refuse a token verified just now.
          await this.#bounded(this.#cache.set(hash, entry, ttl), 'set').catch(() => undefined);
        }
        return entry;
      });
      const settle = (): void => {
        if (this.#inFlight.get(hash) === pending) this.#inFlight.delete(hash);
      };
      pending.then(settle, settle);
      this.#inFlight.set(hash, pending);
    }
    return pending;
  }

  /** The cache key of a token: this verifier's namespace and the SHA-256 of the token (never the token). */
  #hashOf(token: string): string {
    return this.#namespace + oneShotHash('sha256', token, 'base64url');
  }

  #ttlOf(entry: CachedVerification): number {
    if (entry.status !== 'active') return entry.status === 'inactive' ? this.#negativeTtlSeconds : 0;
    const exp = entry.token.expiresAt;
    const untilExp = exp === undefined ? Number.POSITIVE_INFINITY : exp - this.#now() / 1000;
    return Math.min(this.#maxTtlSeconds, Math.floor(untilExp));
  }

  async #decide(token: string, scheme: 'Bearer' | 'DPoP'): Promise<CachedVerification> {
    const classified = classify(token);
    const { kind } = classified;
    if (classified.kind === 'jws' && this.#accept.has('jwt')) {
      return this.#verifyJwt(token, classified.header, scheme);
    }
    if (this.#accept.has('introspection')) return this.#introspect(token, kind, scheme);
    throw this.#fail({
      reason: 'malformed',
      description:
        kind === 'jwe' ? 'encrypted access tokens are not accepted' : 'the access token is not a JWT',
      scheme,
    });
  }

  async #verifyJwt(
    token: string,
    header: ReturnType<typeof decodeProtectedHeader>,
    scheme: AttemptScheme,
  ): Promise<CachedVerification> {
    // RFC 9068 §4 (and §5: this is what tells an access token from an ID Token).
    const typ =
      typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
    if (typ !== 'at+jwt') {
      throw this.#fail({
        reason: 'malformed',
        description: 'the token typ is not at+jwt (RFC 9068 §4)',
        scheme,
      });
    }
    const iss = unverifiedClaims(token)?.iss;
    // Only to pick a configured issuer: nothing is fetched for one that is not (RFC 9068 §4).
    const client = typeof iss === 'string' ? this.#issuers(iss) : undefined;
    if (client === undefined) {
      throw this.#fail({ reason: 'issuer', description: 'the token issuer is not trusted here', scheme });
    }
    const keySet = this.#keySetOf(client);
    const nowMs = this.#now();
    const payload = await verifyJwt(
      token,
      (protectedHeader, jws) =>
        keySet.getKey(protectedHeader, jws).catch((error: unknown) => {
          throw error instanceof KeyFailure
            ? this.#fail({
                reason: error.reason,
                description: JWT_DESCRIPTIONS[error.reason]!,
                scheme,
                cause: error,
                ...(error.retryAfterSeconds === undefined
                  ? {}
                  : { retryAfterSeconds: error.retryAfterSeconds }),
              })
            : error;
        }),
      {
        algorithm: this.#algorithms,
        issuer: client.serverMetadata().issuer,
        audience: [...this.#audience!],
        typ: 'at+jwt',
        clockTolerance: this.#toleranceSeconds,
        currentDate: new Date(nowMs),
        requiredClaims: REQUIRED_CLAIMS,
      },
      (check, message, cause) => {
        // a claim that is missing or not a number is a malformed token, not an expired one
        const reason =
          cause instanceof joseErrors.JWTClaimValidationFailed && cause.reason !== 'check_failed'
            ? 'malformed'
            : jwtReason(check);
        // The challenge says only what failed, never what the token holds (its kid, alg, claims):
        // the detail is in the cause, for logs.
        return this.#fail({
          reason,
          description: JWT_DESCRIPTIONS[reason]!,
          scheme,
          cause: new Error(`the token ${message}`, { cause }),
        });
      },
    );
    for (const claim of ['sub', 'client_id', 'jti'] as const) {
      if (typeof payload[claim] !== 'string' || payload[claim] === '') {
        throw this.#fail({
          reason: 'malformed',
          description: `the token ${claim} must be a non-empty string`,
          scheme,
        });
      }
    }
    if (typeof payload.iat !== 'number' || payload.iat > nowMs / 1000 + this.#toleranceSeconds) {
      throw this.#fail({ reason: 'expired', description: 'the token iat is in the future', scheme });
    }
    await this.#assertSubjectNotRevoked(payload.sub!, payload.iat, scheme);
    return activeEntry('jwt', client.serverMetadata().issuer, payload);
  }

  async #introspect(
    token: string,
    kind: 'jws' | 'jwe' | 'opaque',
    scheme: AttemptScheme,
  ): Promise<CachedVerification> {
    // A JWT names its issuer: it is introspected there (never sent to another issuer). An opaque
    // token says nothing of itself, and goes to the first issuer that can introspect.
    const iss = kind === 'jws' ? unverifiedClaims(token)?.iss : undefined;
    const named = typeof iss === 'string' ? this.#issuers(iss) : undefined;
    if (kind === 'jws' && named === undefined) {
      throw this.#fail({ reason: 'issuer', description: 'the token issuer is not trusted here', scheme });
    }
    const client =
      named?.supports('introspection') === true
        ? named
        : named === undefined
          ? this.#introspector
          : undefined;
    if (client === undefined) {
      throw this.#fail({
        reason: 'malformed',
        description: 'the token is not a JWT access token, and no issuer here can introspect it',
        scheme,
      });
    }
    let response: IntrospectionResponse;
    try {
      // The caller's function is bounded too: a verification never hangs on it.
      const bearer =
        this.#introspectionBearer === undefined
          ? undefined
          : await withDeadline(
              Promise.resolve().then(this.#introspectionBearer),
              BEARER_DEADLINE_MS,
              () => new Error(`introspectionBearer did not answer within ${BEARER_DEADLINE_MS} ms`),
            );
      response = await client.tokenIntrospection(
        token,
        { token_type_hint: 'access_token' },
        bearer === undefined ? {} : { bearer },
      );
    } catch (error) {
      // Down, slow, refusing our credentials, or answering nonsense: not the caller's fault (503).
      throw this.#fail({
        reason: 'unavailable',
        description: 'token introspection is unavailable',
        scheme,
        cause: error,
      });
    }
    if (!response.active) return { status: 'inactive' };
    const issuer = client.serverMetadata().issuer;
    if (response.iss !== undefined && response.iss !== issuer) {
      throw this.#fail({
        reason: 'issuer',
        description: 'the introspected token is from another issuer',
        scheme,
      });
    }
    const nowSeconds = this.#now() / 1000;
    if (response.exp !== undefined && response.exp + this.#toleranceSeconds <= nowSeconds)
      return { status: 'inactive' };
    if (response.sub !== undefined) {
      await this.#assertSubjectNotRevoked(response.sub, response.iat, scheme);
    }
    return activeEntry('introspection', issuer, response as unknown as JWTPayload);
  }

  async #assertSubjectNotRevoked(
    subject: string,
    issuedAt: number | undefined,
    scheme: AttemptScheme,
  ): Promise<void> {
    if (issuedAt === undefined) return;
    let found: ReturnType<VerificationCache['subjectRevokedAt']>;
    try {
      found = this.#cache.subjectRevokedAt(subject);
    } catch (error) {
      throw TokenStoreError.from('get', error, { store: 'verification cache' });
    }
    const revokedAt = isPromise(found) ? await this.#bounded(found, 'get') : found;
    // With the clock tolerance: an issuer whose clock runs ahead must not slip older tokens past.
    if (revokedAt !== undefined && issuedAt <= revokedAt + this.#toleranceSeconds) {
      throw this.#fail({ reason: 'inactive', description: 'the token was revoked', scheme });
    }
  }

  #keySetOf(client: Client): IssuerKeySet {
    const uri = client.serverMetadata().jwks_uri;
    const id = `${client.serverMetadata().issuer}\n${uri ?? ''}`;
    let keySet = this.#keySets.get(id);
    if (keySet === undefined) {
      const { transport } = client[CLIENT_INTERNALS];
      keySet = new IssuerKeySet(
        () => {
          if (uri === undefined) {
            return Promise.reject(
              new ConfigurationError('UNSUPPORTED', "the issuer's metadata has no jwks_uri"),
            );
          }
          // Its own deadline, retries included: waiting callers are held by it (a 503 beats a hang).
          const fields = { issuer: client.serverMetadata().issuer, url: urlWithoutQuery(uri) };
          return fetchKeySet(transport, uri, AbortSignal.timeout(JWKS_DEADLINE_MS)).then(
            (jwks) => {
              this.#log.write('debug', { ...fields, keys: jwks.keys.length }, "fetched the issuer's JWKS");
              return jwks;
            },
            (error: unknown) => {
              this.#log.write(
                'warn',
                { ...fields, ...errorFields(error) },
                "fetching the issuer's JWKS failed: JWTs are verified with the last good keys for up to an hour, then answered 503",
              );
              throw error;
            },
          );
        },
        this.#now,
        KEY_SET_TIMINGS,
      );
      this.#keySets.set(id, keySet);
    }
    return keySet;
  }

  // ---- per request ----------------------------------------------------------------------------

  /** The decision applied to this call: still valid, for us, with the scopes asked for. */
  #accepted(entry: CachedVerification, scheme: 'Bearer' | 'DPoP', options: VerifyOptions): VerifiedToken {
    if (entry.status !== 'active') {
      const description = entry.status === 'revoked' ? 'the token was revoked' : 'the token is not active';
      throw this.#fail({ reason: 'inactive', description, scheme });
    }
    const token = entry.token;
    if (!this.#accept.has(token.kind)) {
      throw this.#fail({
        reason: 'malformed',
        description: 'this kind of token is not accepted here',
        scheme,
      });
    }
    // The same leeway as a fresh check (a cached result itself lives only until `exp`).
    if (token.expiresAt !== undefined && (token.expiresAt + this.#toleranceSeconds) * 1000 <= this.#now()) {
      throw this.#fail({ reason: 'expired', description: 'the token has expired', scheme });
    }
    // Checked on every use: a shared cache may hold results of verifiers with other settings.
    if (this.#issuers(token.issuer) === undefined) {
      throw this.#fail({ reason: 'issuer', description: 'the token issuer is not trusted here', scheme });
    }
    if (this.#audience !== undefined && !audienceMatches(token.claims.aud, this.#audience, token.kind)) {
      throw this.#fail({
        reason: 'audience',
        description: 'the token is not meant for this resource',
        scheme,
      });
    }
    const needed =
      options.scopes === undefined ? this.#requiredScopes : [...this.#requiredScopes, ...options.scopes];
    if (needed.length > 0) {
      const missing = needed.filter((scope) => !token.scopes.includes(scope));
      if (missing.length > 0) {
        throw this.#fail({
          reason: 'scope',
          description: 'the token lacks a required scope',
          scheme,
          scope: needed,
        });
      }
    }
    let presented = this.#presented.get(token);
    if (presented === undefined) this.#presented.set(token, (presented = {}));
    return (presented[scheme] ??= Object.freeze({ ...token, scheme }));
  }

  async #checkBinding(
    result: VerifiedToken,
    token: string,
    scheme: 'Bearer' | 'DPoP',
    options: VerifyOptions,
  ): Promise<void> {
    const jkt = result.cnf?.jkt;
    if (jkt === undefined) {
      if (scheme === 'DPoP') {
        throw this.#fail({ reason: 'dpop_binding', description: 'the token is not DPoP-bound', scheme });
      }
      if (this.#dpopRequired) {
        throw this.#fail({
          reason: 'dpop_binding',
          description: 'a DPoP-bound token is required',
          scheme: 'DPoP',
        });
      }
      return;
    }
    // RFC 9449 §7.2: a bound token must not be accepted as a Bearer token.
    if (this.#dpop === undefined) {
      throw this.#fail({
        reason: 'dpop_binding',
        description: 'DPoP-bound tokens are not accepted here',
        scheme,
      });
    }
    if (scheme !== 'DPoP') {
      throw this.#fail({
        reason: 'dpop_binding',
        description: 'the token is DPoP-bound: send it with the DPoP scheme',
        scheme,
      });
    }
    if (options.dpopProof === undefined) {
      throw this.#fail({ reason: 'dpop_proof', description: 'a DPoP proof is required', scheme });
    }
    if (options.method === undefined || options.url === undefined) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'TokenVerifier.verify needs method and url to check a DPoP proof',
      );
    }
    await this.#dpop.check({
      proof: options.dpopProof,
      method: options.method,
      url: options.url,
      accessToken: token,
      boundKey: jkt,
    });
  }

  // ---- failures -------------------------------------------------------------------------------

  #fail(failure: Failure): TokenVerificationError {
    const nonce = this.#dpop?.currentNonce();
    return verificationError(
      this.#challenges,
      nonce === undefined ? failure : { ...failure, dpopNonce: nonce },
    );
  }

  #asVerificationError(error: unknown, scheme: AttemptScheme): TokenVerificationError {
    if (error instanceof TokenVerificationError) return error;
    if (error instanceof ProofFailure) {
      return this.#fail({
        reason: error.reason,
        description: error.message,
        scheme: 'DPoP',
        cause: error.cause,
      });
    }
    if (error instanceof CredentialsError) {
      return this.#fail({ reason: error.reason, description: error.message, scheme: error.scheme });
    }
    if (error instanceof ConfigurationError) throw error;
    if (error instanceof TokenStoreError) {
      return this.#fail({
        reason: 'unavailable',
        description: 'the verification cache is unavailable',
        scheme,
        cause: error,
        retryAfterSeconds: 1,
      });
    }
    const description =
      error instanceof TesseraError ? 'the token could not be verified' : 'the token is malformed';
    return this.#fail({
      reason: error instanceof TesseraError ? 'unavailable' : 'malformed',
      description,
      scheme,
      cause: error,
    });
  }

  /** A cache call bounded by `timeoutMs`; its failure is a `TokenStoreError`. */
  async #bounded<T>(value: T | Promise<T>, operation: 'get' | 'set' | 'delete'): Promise<T> {
    if (!isPromise(value)) return value;
    try {
      return await withDeadline(
        value,
        this.#cacheTimeoutMs,
        () =>
          new TokenStoreError(
            operation,
            `the verification cache did not answer within ${this.#cacheTimeoutMs} ms`,
          ),
      );
    } catch (error) {
      throw TokenStoreError.from(operation, error, { store: 'verification cache' });
    }
  }

  #evictedElsewhere(eviction: CacheEviction): void {
    this.#generation++;
    if ('hash' in eviction) this.#inFlight.delete(eviction.hash);
    else this.#inFlight.clear();
    this.#report('cache.evicted', { by: 'hash' in eviction ? 'token' : 'subject', origin: 'remote' });
  }
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}

function isVerificationCache(value: unknown): value is VerificationCache {
  return typeof (value as VerificationCache | null)?.get === 'function';
}

/**
 * `jws` only when it has three segments and the first is a JSON object with a string `alg`: an
 * opaque token may hold dots (RFC 6749's example `Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU`).
 */
function classify(token: string): Classified {
  const parts = token.split('.');
  if (parts.length === 5) return { kind: isEncryptedJwt(token) ? 'jwe' : 'opaque' };
  if (parts.length !== 3 || !/^[A-Za-z0-9_-]+$/.test(parts[0]!)) return { kind: 'opaque' };
  try {
    const header = decodeProtectedHeader(token);
    return typeof header.alg === 'string' ? { kind: 'jws', header } : { kind: 'opaque' };
  } catch {
    return { kind: 'opaque' };
  }
}

/** What a token is, and its header when it is a JWS (decoded once). */
type Classified =
  { kind: 'jws'; header: ReturnType<typeof decodeProtectedHeader> } | { kind: 'jwe' | 'opaque' };

/** What a challenge says of a failed JWT check (fixed texts: nothing of the token is echoed). */
const JWT_DESCRIPTIONS: Record<string, string> = {
  signature: 'the token signature is invalid',
  unknown_kid: 'the token is signed with a key the issuer does not publish',
  unavailable: 'the issuer keys are unavailable',
  issuer: 'the token issuer is not trusted here',
  audience: 'the token is not meant for this resource',
  expired: 'the token has expired or is not yet valid',
  malformed: 'the token is not a valid RFC 9068 access token',
};

/** Which reason a failed JWT check is. */
function jwtReason(check: string): VerificationFailureReason {
  switch (check) {
    case 'signature':
    case 'alg':
      return 'signature';
    case 'iss':
      return 'issuer';
    case 'aud':
      return 'audience';
    case 'exp':
    case 'nbf':
    case 'iat':
      return 'expired';
    default:
      return 'malformed';
  }
}

/** Whether `aud` names one of ours (exact strings, RFC 9068 §4); introspection may omit it. */
function audienceMatches(aud: unknown, audience: readonly string[], kind: 'jwt' | 'introspection'): boolean {
  if (aud === undefined) return kind === 'introspection';
  if (typeof aud === 'string') return audience.includes(aud);
  return Array.isArray(aud) && aud.some((value) => typeof value === 'string' && audience.includes(value));
}

/** `scope` as a list: a space-separated string (RFC 6749 §3.3), or an array some servers send. */
function scopesOf(claims: Record<string, unknown>): string[] {
  const { scope } = claims;
  if (typeof scope === 'string') return scope.split(' ').filter((item) => item !== '');
  if (Array.isArray(scope))
    return scope.filter((item): item is string => typeof item === 'string' && item !== '');
  return [];
}

function activeEntry(kind: 'jwt' | 'introspection', issuer: string, claims: JWTPayload): CachedVerification {
  const cnf = claims.cnf as Record<string, unknown> | undefined;
  const token: Omit<VerifiedToken, 'scheme'> = {
    kind,
    issuer,
    // The payload is ours alone (jose, or the zod parse of introspection, made it just now).
    claims: deepFreeze(claims) as Readonly<Record<string, unknown>>,
    scopes: Object.freeze(scopesOf(claims)),
    ...(typeof claims.sub === 'string' ? { subject: claims.sub } : {}),
    ...(typeof claims.client_id === 'string' ? { clientId: claims.client_id } : {}),
    ...(typeof claims.exp === 'number' ? { expiresAt: claims.exp } : {}),
    ...(typeof cnf === 'object' && cnf !== null ? { cnf } : {}),
  };
  return Object.freeze({ status: 'active', token: Object.freeze(token) });
}
