/**
 * Where a {@link TokenVerifier} keeps what it decided: results by SHA-256 of the token (never the
 * token), evicted tokens and subjects, and the DPoP proofs it has seen (RFC 9449 §11.1). The
 * in-memory default is {@link MemoryVerificationCache}; `RedisVerificationCache` in
 * `@tessera/store-redis` shares all of it across a fleet.
 */
import { ConfigurationError, TokenStoreError } from '../errors.js';
import { parseOptions, positiveNumber } from '../internal/options.js';
import { z } from 'zod';

/** What a {@link TokenVerifier} found a token to be; never holds the token itself. */
export interface VerifiedToken {
  /** How it was verified: a JWT access token checked locally (RFC 9068), or introspection (RFC 7662). */
  readonly kind: 'jwt' | 'introspection';
  /** How it was presented: `Bearer` (RFC 6750) or `DPoP` (RFC 9449 §7.1). */
  readonly scheme: 'Bearer' | 'DPoP';
  /** The issuer that vouches for it. */
  readonly issuer: string;
  /** The JWT's claims, or the introspection response's members (frozen). */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The granted scopes, from `scope` (space-separated, RFC 6749 §3.3). */
  readonly scopes: readonly string[];
  /** `sub`: whom the token is about (unique per issuer). */
  readonly subject?: string;
  /** `client_id`: the client the token was issued to (RFC 8693 §4.3). */
  readonly clientId?: string;
  /** `exp`, epoch seconds. */
  readonly expiresAt?: number;
  /** The key binding (`cnf`, RFC 7800): `jkt` for DPoP (RFC 9449 §6). */
  readonly cnf?: Readonly<{
    /** The RFC 7638 thumbprint of the DPoP key the token is bound to. */
    jkt?: string;
    [member: string]: unknown;
  }>;
}

/**
 * A cached decision. `active` holds the result (without the scheme, which belongs to a request);
 * `inactive`: introspection said so; `revoked`: the token was evicted and stays refused until it
 * expires (a JWT would otherwise verify again from its signature alone).
 */
export type CachedVerification = ActiveVerification | RefusedVerification;

/** A cached acceptance: the result without its scheme. */
export interface ActiveVerification {
  /** Accepted. */
  readonly status: 'active';
  /** What the token was found to be. */
  readonly token: Omit<VerifiedToken, 'scheme'>;
}

/** A cached refusal: introspection said `inactive`, or the token was evicted (`revoked`). */
export interface RefusedVerification {
  /** Why it is refused. */
  readonly status: 'inactive' | 'revoked';
}

/** An eviction another instance made, delivered by {@link VerificationCache.subscribe}. */
export type CacheEviction =
  | {
      /** The evicted token's hash. */
      readonly hash: string;
    }
  | {
      /** The evicted subject (as the cache knows it: a shared cache may hand a hash of it). */
      readonly subject: string;
    };

/**
 * The storage of a {@link TokenVerifier}'s decisions. Every key is a hash (base64url SHA-256), never
 * a token; a subject is the `sub` claim. Methods may answer synchronously (an in-memory cache: no
 * promise on the hot path) or with a promise. A method that throws or rejects makes the verifier
 * answer `unavailable`: a failure is never taken for "not cached" where that would let a token in.
 */
export interface VerificationCache {
  /** The decision cached under `hash`, or `undefined`. */
  get(hash: string): CachedVerification | undefined | Promise<CachedVerification | undefined>;
  /** Caches `entry` under `hash` for `ttlSeconds`; an `active` entry is indexed by its subject. */
  set(hash: string, entry: CachedVerification, ttlSeconds: number): void | Promise<void>;
  /** Forgets `hash` (here and, for a shared cache, on every instance). */
  delete(hash: string): void | Promise<void>;
  /**
   * Forgets every entry of `subject`, and remembers for `ttlSeconds` that its tokens issued up to
   * now (epoch seconds `revokedAt`) are revoked.
   */
  revokeSubject(subject: string, revokedAt: number, ttlSeconds: number): void | Promise<void>;
  /** When `subject`'s tokens were last revoked (epoch seconds), or `undefined`. */
  subjectRevokedAt(subject: string): number | undefined | Promise<number | undefined>;
  /**
   * Records `key` (a DPoP proof's hash) for `ttlSeconds`: `true` the first time, `false` when it was
   * already recorded (a replay). Atomic across a shared cache.
   */
  markUsed(key: string, ttlSeconds: number): boolean | Promise<boolean>;
  /** Evictions made elsewhere (by another instance of a shared cache); returns the unsubscribe. */
  subscribe?(listener: (eviction: CacheEviction) => void): () => void;
  /** Releases what the cache holds (connections, timers). */
  close?(): void | Promise<void>;
}

/** Options of {@link MemoryVerificationCache}. */
export interface MemoryVerificationCacheOptions {
  /** At most this many results; the least recently used goes first (approximately: CLOCK). @default 10_000 */
  maxEntries?: number;
  /**
   * At most this many DPoP proofs remembered. A full replay cache refuses (the verifier answers
   * `unavailable`) rather than forget a proof still in its window, which would reopen replays.
   * @default 200_000
   */
  maxProofs?: number;
  /** The clock, epoch milliseconds (for tests). @default Date.now */
  now?: () => number;
}

const optionsSchema = z.looseObject(
  {
    maxEntries: positiveNumber.refine(Number.isInteger, 'must be a positive integer').optional(),
    maxProofs: positiveNumber.refine(Number.isInteger, 'must be a positive integer').optional(),
    now: z.custom<() => number>((v) => typeof v === 'function', 'must be a function').optional(),
  },
  { error: 'must be an object' },
);

const REVOKED: CachedVerification = Object.freeze({ status: 'revoked' });

interface Entry {
  value: CachedVerification;
  expiresAtMs: number;
  subject: string | undefined;
  /** Read since it was (re)inserted: spared once by the eviction (the CLOCK second chance). */
  used: boolean;
}

/**
 * The in-memory {@link VerificationCache}: a bounded (CLOCK, an approximate LRU) cache of results with a subject index, a bounded
 * map of revoked subjects, and a bounded replay cache of DPoP proofs. Entries expire by the
 * injected clock; nothing runs in the background (expired entries go when met or when room is
 * needed).
 *
 * @example
 * ```ts
 * const verifier = new TokenVerifier({ client, audience, cache: new MemoryVerificationCache({ maxEntries: 50_000 }) });
 * ```
 */
export class MemoryVerificationCache implements VerificationCache {
  readonly #maxEntries: number;
  readonly #maxProofs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  readonly #bySubject = new Map<string, Set<string>>();
  readonly #revokedSubjects = new Map<string, { at: number; expiresAtMs: number }>();
  /** Evicted tokens, apart from the LRU: traffic must never push a tombstone out. */
  readonly #tombstones = new Map<string, number>();
  readonly #proofs = new Map<string, number>();

  /**
   * @param options - sizes and the clock.
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming a bad option.
   */
  constructor(options: MemoryVerificationCacheOptions = {}) {
    parseOptions(optionsSchema, options, 'MemoryVerificationCache');
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#maxProofs = options.maxProofs ?? 200_000;
    this.#now = options.now ?? Date.now;
  }

  /** The number of cached results (expired ones not yet met included). */
  get size(): number {
    return this.#entries.size;
  }

  /** The decision cached under `hash`, or `undefined` (also once it expired). */
  get(hash: string): CachedVerification | undefined {
    if (this.#tombstones.size > 0 && this.#tombstoned(hash)) return REVOKED;
    const entry = this.#entries.get(hash);
    if (entry === undefined) return undefined;
    if (entry.expiresAtMs <= this.#now()) {
      this.#remove(hash, entry);
      return undefined;
    }
    // A hit only sets a flag: moving the entry to the end (delete + set) on every read makes V8's
    // Map rehash all the time once it is large (measured: 15 µs a read at 10,000 entries).
    entry.used = true;
    return entry.value;
  }

  /**
   * Caches `entry` under `hash` for `ttlSeconds` (nothing for a TTL of zero or less). A `revoked`
   * entry (a tombstone) is kept apart from the LRU and is never replaced by a result.
   *
   * @throws TokenStoreError for a tombstone when `maxEntries` live ones are kept already.
   */
  set(hash: string, entry: CachedVerification, ttlSeconds: number): void {
    if (entry.status === 'revoked') return this.#bury(hash, ttlSeconds);
    if (this.#tombstones.size > 0 && this.#tombstoned(hash)) return;
    const existing = this.#entries.get(hash);
    if (existing !== undefined) this.#remove(hash, existing);
    if (!(ttlSeconds > 0)) return;
    if (this.#entries.size >= this.#maxEntries) this.#evictOne();
    const subject = entry.status === 'active' ? entry.token.subject : undefined;
    this.#entries.set(hash, {
      value: entry,
      expiresAtMs: this.#now() + ttlSeconds * 1000,
      subject,
      used: false,
    });
    if (subject !== undefined) {
      let hashes = this.#bySubject.get(subject);
      if (hashes === undefined) this.#bySubject.set(subject, (hashes = new Set()));
      hashes.add(hash);
    }
  }

  /** Forgets the result under `hash` (a tombstone stays until it expires). */
  delete(hash: string): void {
    const entry = this.#entries.get(hash);
    if (entry !== undefined) this.#remove(hash, entry);
  }

  /**
   * Forgets `subject`'s entries and remembers the revocation for `ttlSeconds`.
   *
   * @throws TokenStoreError when `maxEntries` revocations, none expired, are remembered already.
   */
  revokeSubject(subject: string, revokedAt: number, ttlSeconds: number): void {
    for (const hash of this.#bySubject.get(subject) ?? []) this.delete(hash);
    const nowMs = this.#now();
    if (this.#revokedSubjects.size >= this.#maxEntries) {
      for (const [name, mark] of this.#revokedSubjects) {
        if (mark.expiresAtMs <= nowMs) this.#revokedSubjects.delete(name);
      }
      // Still full: refuse rather than forget a live mark (that would let its older JWTs in again).
      if (this.#revokedSubjects.size >= this.#maxEntries && !this.#revokedSubjects.has(subject)) {
        throw new TokenStoreError(
          'set',
          `the verification cache holds maxEntries (${this.#maxEntries}) subject revocations already; raise maxEntries`,
        );
      }
    }
    this.#revokedSubjects.delete(subject);
    this.#revokedSubjects.set(subject, { at: revokedAt, expiresAtMs: nowMs + ttlSeconds * 1000 });
  }

  /** When `subject` was last revoked (epoch seconds), or `undefined`. */
  subjectRevokedAt(subject: string): number | undefined {
    const mark = this.#revokedSubjects.get(subject);
    if (mark === undefined) return undefined;
    if (mark.expiresAtMs <= this.#now()) {
      this.#revokedSubjects.delete(subject);
      return undefined;
    }
    return mark.at;
  }

  /**
   * Records a proof: `true` the first time, `false` for a replay.
   *
   * @throws TokenStoreError when the replay cache is full of proofs still in their window.
   */
  markUsed(key: string, ttlSeconds: number): boolean {
    const nowMs = this.#now();
    const until = this.#proofs.get(key);
    if (until !== undefined && until > nowMs) return false;
    if (this.#proofs.size >= this.#maxProofs) {
      for (const [name, expiresAtMs] of this.#proofs) {
        if (expiresAtMs <= nowMs) this.#proofs.delete(name);
      }
      if (this.#proofs.size >= this.#maxProofs) {
        throw new TokenStoreError(
          'set',
          `the DPoP replay cache is full (maxProofs ${this.#maxProofs} proofs in their window); raise maxProofs or shorten dpop.maxAgeSeconds`,
        );
      }
    }
    this.#proofs.set(key, nowMs + ttlSeconds * 1000);
    return true;
  }

  /** Forgets everything. */
  clear(): void {
    this.#tombstones.clear();
    this.#entries.clear();
    this.#bySubject.clear();
    this.#revokedSubjects.clear();
    this.#proofs.clear();
  }

  /**
   * Makes room for one entry, least recently used first, approximately (CLOCK): from the oldest
   * insertion on, an entry read since it was inserted is moved to the end once, unread; the first
   * unread (or expired) one goes. Bounded: after a full lap the oldest goes whatever it is.
   */
  #evictOne(): void {
    const nowMs = this.#now();
    for (let spared = 0; spared < this.#entries.size; spared++) {
      const [hash, entry] = this.#entries.entries().next().value as [string, Entry];
      if (!entry.used || entry.expiresAtMs <= nowMs) {
        this.#remove(hash, entry);
        return;
      }
      entry.used = false;
      this.#entries.delete(hash);
      this.#entries.set(hash, entry);
    }
    const [hash, entry] = this.#entries.entries().next().value as [string, Entry];
    this.#remove(hash, entry);
  }

  #tombstoned(hash: string): boolean {
    const until = this.#tombstones.get(hash);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#tombstones.delete(hash);
    return false;
  }

  #bury(hash: string, ttlSeconds: number): void {
    const existing = this.#entries.get(hash);
    if (existing !== undefined) this.#remove(hash, existing);
    if (!(ttlSeconds > 0)) return;
    const nowMs = this.#now();
    if (this.#tombstones.size >= this.#maxEntries && !this.#tombstones.has(hash)) {
      for (const [name, until] of this.#tombstones) if (until <= nowMs) this.#tombstones.delete(name);
      if (this.#tombstones.size >= this.#maxEntries) {
        throw new TokenStoreError(
          'set',
          `the verification cache holds maxEntries (${this.#maxEntries}) evicted tokens already; raise maxEntries`,
        );
      }
    }
    this.#tombstones.set(hash, Math.max(this.#tombstones.get(hash) ?? 0, nowMs + ttlSeconds * 1000));
  }

  #remove(hash: string, entry: Entry): void {
    this.#entries.delete(hash);
    if (entry.subject === undefined) return;
    const hashes = this.#bySubject.get(entry.subject);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.#bySubject.delete(entry.subject);
  }
}

/** Checks that a caller's cache has the methods a verifier calls. @internal */
export function assertVerificationCache(cache: unknown): asserts cache is VerificationCache {
  const methods = ['get', 'set', 'delete', 'revokeSubject', 'subjectRevokedAt', 'markUsed'] as const;
  const missing = methods.filter(
    (name) => typeof (cache as Record<string, unknown> | null)?.[name] !== 'function',
  );
  if (missing.length > 0) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      `TokenVerifier option cache must be false, limits, or a VerificationCache (missing ${missing.join(', ')})`,
    );
  }
}
