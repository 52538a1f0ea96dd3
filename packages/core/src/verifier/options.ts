/**
 * The options of a {@link TokenVerifier}: their types (what users read) and the schema that checks
 * them once, at construction (a bad one is a `ConfigurationError` naming it).
 */
import { z } from 'zod';
import type { Client } from '../client.js';
import { CLIENT_INTERNALS } from '../internal/client-internals.js';
import { fn, logger, nonEmptyString, nonNegativeNumber, positiveNumber } from '../internal/options.js';
import type { Logger } from '../logger.js';
import { REVOKED_TOKENS } from '../internal/revocation-feed.js';
import type { TokenManager } from '../token-manager.js';
import type { BearerMethod } from './request-credentials.js';
import type { VerificationCache } from './verification-cache.js';

/** Cache settings of a {@link TokenVerifier}. */
export interface VerificationCacheSettings {
  /** Results kept in the default in-memory cache. @default 10_000 */
  maxEntries?: number;
  /** The longest a result is trusted without asking again, in seconds. @default 300 */
  maxTtlSeconds?: number;
  /** How long an inactive result is remembered, in seconds. @default 10 */
  negativeTtlSeconds?: number;
  /** Where results are kept instead of the in-memory cache (e.g. `RedisVerificationCache`). */
  store?: VerificationCache;
  /** How long a call of the cache may take before the verifier answers `unavailable`. @default 1000 */
  timeoutMs?: number;
}

/** DPoP settings of a {@link TokenVerifier} (RFC 9449 §4.3, §7, §9, §11.1). */
export interface DPoPVerificationOptions {
  /** Refuse tokens that are not DPoP-bound (Bearer is then not offered). @default false */
  required?: boolean;
  /**
   * Require a server nonce in every proof (RFC 9449 §9). `true` uses a random secret of this
   * process; give the same `secret` to every instance of a fleet. @default false
   */
  nonce?:
    | boolean
    | {
        /** The HMAC secret of the nonces (32 random bytes), the same on every instance. */
        secret: Uint8Array;
      };
  /** How old a proof may be, in seconds (RFC 9449 §11.1). @default 300 */
  maxAgeSeconds?: number;
  /** How far ahead of our clock a proof's `iat` may be, in seconds. @default 30 */
  futureSeconds?: number;
  /** The proof algorithms accepted (asymmetric only). @default ES256, ES384, ES512, PS256, PS384, PS512, RS256, EdDSA */
  algorithms?: string[];
}

/** Options of {@link TokenVerifier}. */
export interface TokenVerifierOptions {
  /** The issuer's client (its JWKS and introspection endpoint). One of `client` or `issuers`. */
  client?: Client;
  /**
   * Several issuers, each with its own keys and introspection endpoint: a list, or a function that
   * selects one by the token's (unverified) `iss` and must never create one for an unknown value.
   */
  issuers?: readonly Client[] | ((issuer: string) => Client | undefined);
  /**
   * The audience(s) a token must name in `aud` (compared exactly, RFC 9068 §4). Required for JWT
   * access tokens; checked on introspection answers that carry `aud`. @default `resource`
   */
  audience?: string | readonly string[];
  /**
   * This API's resource identifier (RFC 9728 §1.2): the default `audience`, and the source of the
   * `resource_metadata` every challenge carries (RFC 9728 §5.1).
   */
  resource?: string;
  /** Which kinds of token to accept. @default ['jwt', 'introspection'] */
  accept?: ReadonlyArray<'jwt' | 'introspection'>;
  /** Scopes every token must have (403 `insufficient_scope` otherwise). */
  requiredScopes?: readonly string[];
  /** The `alg` values a JWT access token may use (asymmetric only). @default RS, PS, ES families and EdDSA */
  algorithms?: readonly string[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. @default the first client's (30) */
  clockToleranceSeconds?: number;
  /** Cache settings, a {@link VerificationCache}, or `false` to cache no results (evictions and
   * DPoP proofs are still remembered, in memory). @default in memory: 10_000 entries, 300 s, 10 s
   */
  cache?: VerificationCacheSettings | VerificationCache | false;
  /** DPoP settings, or `false` to accept Bearer tokens only. @default DPoP-bound tokens accepted, not required */
  dpop?: DPoPVerificationOptions | false;
  /** Where `verifyRequest()` looks for a token (RFC 6750 §2). @default ['header'] */
  bearerMethods?: readonly BearerMethod[];
  /** The `realm` of challenges. @default 'api' */
  realm?: string;
  /**
   * Where opaque tokens are introspected when there are several `issuers` (an opaque token does not
   * say whose it is, and is never sent to the others). JWTs go to the issuer they name.
   * @default `client`; none with `issuers`
   */
  opaqueTokenIssuer?: Client;
  /** Authenticates introspection with a bearer token (RFC 7662 §2.1) instead of the client's credentials. */
  introspectionBearer?: () => string | Promise<string>;
  /** A TokenManager of this process: the access tokens it revokes are refused at once. */
  tokenManager?: TokenManager;
  /** The clock, epoch milliseconds (for tests). @default Date.now */
  now?: () => number;
  /**
   * Where to log (pino-style, see {@link Logger}): each verification at debug (a token only as its
   * fingerprint), a token that could not be judged (503) and a JWKS fetch that failed at warn.
   * @default the client's `logger` (of the first issuer), else silent
   */
  logger?: Logger;
}

/** What a verification is checked against, besides the token. */
export interface VerifyOptions {
  /** The request method, for DPoP (`htm`). */
  method?: string;
  /** The absolute URL the client requested, for DPoP (`htu`). */
  url?: string;
  /** The `DPoP` header's proof. */
  dpopProof?: string;
  /** How the token came. @default 'DPoP' with a proof, else 'Bearer' */
  scheme?: 'Bearer' | 'DPoP';
  /** Scopes this call needs, beyond `requiredScopes`. */
  scopes?: readonly string[];
}

const cacheSettingsSchema = z.looseObject({
  maxEntries: positiveNumber.refine(Number.isInteger, 'must be a positive integer').optional(),
  maxTtlSeconds: nonNegativeNumber.optional(),
  negativeTtlSeconds: nonNegativeNumber.optional(),
  timeoutMs: positiveNumber.optional(),
  store: z.unknown().optional(),
});

/** A VerificationCache instance is taken as it is, never read as settings. */
const verificationCache = z.custom<VerificationCache>(
  (v) => typeof (v as VerificationCache | null)?.get === 'function',
);

const clientLike = z.custom<Client>(
  (v) => typeof v === 'object' && v !== null && CLIENT_INTERNALS in v,
  'must be a Client',
);
const headerSafe = nonEmptyString.refine((v) => /^[\x20-\x7e]*$/.test(v), 'must be printable ASCII');
const asymmetric = z
  .array(nonEmptyString, { error: 'must be an array of alg names' })
  .min(1, 'must not be empty')
  .refine((list) => list.every((alg) => /^(RS|PS|ES)(256|384|512)$|^EdDSA$|^Ed25519$/.test(alg)), {
    message: 'must hold asymmetric algorithms only (RS*, PS*, ES*, EdDSA): never none or HS* (RFC 8725 §3.1)',
  });

export const verifierOptionsSchema = z.looseObject(
  {
    client: clientLike.optional(),
    issuers: z
      .union([z.array(clientLike).min(1, 'must not be empty'), fn], {
        error: 'must be a non-empty array of Clients or a function',
      })
      .optional(),
    audience: z
      .union([headerSafe, z.array(headerSafe).min(1)], {
        error: 'must be a string or a non-empty array of strings',
      })
      .optional(),
    resource: headerSafe
      .refine((v) => /^https?:\/\/[^#]+$/.test(v), 'must be an absolute http(s) URL without a fragment')
      .optional(),
    accept: z
      .array(z.enum(['jwt', 'introspection']), { error: "must be an array of 'jwt' and 'introspection'" })
      .min(1, 'must not be empty')
      .optional(),
    requiredScopes: z.array(nonEmptyString, { error: 'must be an array of strings' }).optional(),
    algorithms: asymmetric.optional(),
    clockToleranceSeconds: nonNegativeNumber.optional(),
    cache: z
      .union([z.literal(false), verificationCache, cacheSettingsSchema], {
        error: 'must be false, an object, or a VerificationCache',
      })
      .optional(),
    dpop: z
      .union(
        [
          z.literal(false),
          z.looseObject({
            required: z.boolean({ error: 'must be a boolean' }).optional(),
            nonce: z
              .union([z.boolean(), z.looseObject({ secret: z.instanceof(Uint8Array) })], {
                error: 'must be a boolean or { secret: Uint8Array }',
              })
              .optional(),
            maxAgeSeconds: positiveNumber.optional(),
            futureSeconds: nonNegativeNumber.optional(),
            algorithms: asymmetric.optional(),
          }),
        ],
        { error: 'must be false or an object' },
      )
      .optional(),
    bearerMethods: z
      .array(z.enum(['header', 'query', 'body']), {
        error: "must be an array of 'header', 'query' and 'body'",
      })
      .min(1, 'must not be empty')
      .optional(),
    realm: headerSafe.optional(),
    introspectionBearer: fn.optional(),
    opaqueTokenIssuer: clientLike.optional(),
    tokenManager: z
      .custom<object>(
        (v) => typeof v === 'object' && v !== null && REVOKED_TOKENS in v,
        'must be a TokenManager',
      )
      .optional(),
    now: fn.optional(),
    logger: logger.optional(),
  },
  { error: 'must be an object' },
);
