import { EventEmitter } from 'eventemitter3';
import { z } from 'zod';
import { decodeJwt } from 'jose';
import type { JWTPayload } from 'jose';
import type { Client } from './client.js';
import type { DPoPHandle } from './dpop.js';
import { ConfigurationError, IdTokenError, OAuthError, ResponseError, TesseraError, TokenStoreError, TransportError } from './errors.js';
import type { RevocationResult, TokenManagerEvents } from './events.js';
import { fetchWithTokens, tokenSources } from './http-integration.js';
import type { TokenSource } from './http-integration.js';
import { coarseNow, releaseCoarseClock, useCoarseClock } from './internal/coarse-clock.js';
import { NearCache } from './internal/near-cache.js';
import { fn, nonEmptyString, nonNegativeNumber, parseOptions, positiveNumber } from './internal/options.js';
import { RefreshScheduler } from './internal/refresh-scheduler.js';
import { MemoryTokenStore } from './memory-token-store.js';
import { tokenSetFromResponse } from './token-set.js';
import type { TokenSet } from './token-set.js';
import type { StoreLock, TokenStore } from './token-store.js';
import type { IntrospectionResponse, Parameters as RequestParameters, TokenEndpointResponse, TokenResponse } from './types.js';

/** How the manager gets a token for a key that has none (machine-to-machine). */
export type TokenGrant =
  | 'client_credentials'
  | { type: string; parameters?: RequestParameters | (() => RequestParameters | Promise<RequestParameters>) };

/** Options of a {@link TokenManager}. */
export interface TokenManagerOptions {
  /** The protocol client used for every grant, refresh, revocation and introspection. */
  client: Client;
  /** Where token sets live. @default a new MemoryTokenStore, closed by `close()` */
  store?: TokenStore;
  /** The key of the manager's own methods; `for(key)` gives the others. @default 'default' */
  key?: string;
  /**
   * With a grant, a missing or expiring token is acquired by running it (machine-to-machine).
   * Without one, tokens come from `storeTokens()` and are kept alive with their refresh token.
   */
  grant?: TokenGrant;
  /** A token with fewer seconds than this left is renewed before use. @default 60 */
  refreshSkewSeconds?: number;
  /**
   * Renew every key in the background before it expires, driven by one unref'd timer. `aheadSeconds`
   * (default: `refreshSkewSeconds`) is how early, plus a random jitter of up to 10% of the token's
   * remaining lifetime (at most 30 s) so a fleet does not refresh in lockstep.
   * @default false
   */
  autoRefresh?: boolean | { aheadSeconds?: number };
  /** Acquire and refresh with DPoP proofs from this handle; tokens bound to another key are not used. */
  dpop?: DPoPHandle;
  /** The clock, in epoch milliseconds (for tests). @default Date.now */
  now?: () => number;
  /**
   * Backoff after a transient failure (network, timeout, 5xx): doubling from `minDelayMs`, capped at
   * `maxDelayMs`, with jitter. @default { minDelayMs: 1000, maxDelayMs: 60_000 }
   */
  retry?: { minDelayMs?: number; maxDelayMs?: number };
  /** The store lock around a refresh, when the store has `lock`. @default { ttlMs: 30_000, waitMs: 30_000 } */
  lock?: { ttlMs?: number; waitMs?: number };
  /**
   * Every store call (`get`, `set`, `delete`; `lock` beyond its own `waitMs`) rejects with
   * `TokenStoreError` after this long, so a store that never answers cannot hang a caller.
   * @default 5000
   */
  storeTimeoutMs?: number;
}

const objectOf = (members: z.ZodRawShape) => z.looseObject(members, { error: 'must be an object' });

/** What the constructor accepts (see {@link TokenManagerOptions}). */
const optionsSchema = objectOf({
  client: z.custom<Client>(
    (v) => typeof v === 'object' && v !== null && typeof (v as Client).refreshTokenGrant === 'function',
    'is required and must be a Client',
  ),
  store: z
    .custom<TokenStore>(
      (v) => typeof v === 'object' && v !== null && ['get', 'set', 'delete'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
      'must be a TokenStore (an object with get, set and delete)',
    )
    .optional(),
  key: nonEmptyString.optional(),
  grant: z
    .union(
      [
        z.literal('client_credentials'),
        objectOf({
          type: nonEmptyString,
          parameters: z
            .union([
              z.instanceof(URLSearchParams),
              fn,
              z.record(z.string(), z.union([z.string(), z.array(z.string()), z.undefined()])),
            ])
            .optional(),
        }),
      ],
      { error: "must be 'client_credentials' or { type, parameters? } with parameters an object of strings, a URLSearchParams or a function" },
    )
    .optional(),
  refreshSkewSeconds: nonNegativeNumber.optional(),
  autoRefresh: z.union([z.boolean(), objectOf({ aheadSeconds: nonNegativeNumber.optional() })], { error: 'must be a boolean or { aheadSeconds }' }).optional(),
  dpop: z
    .custom<DPoPHandle>((v) => typeof v === 'object' && v !== null && typeof (v as DPoPHandle).proof === 'function', 'must be a DPoPHandle')
    .optional(),
  now: fn.optional(),
  retry: objectOf({ minDelayMs: positiveNumber.optional(), maxDelayMs: positiveNumber.optional() })
    .refine((r) => (r.minDelayMs ?? 1000) <= (r.maxDelayMs ?? 60_000), 'must have minDelayMs at most maxDelayMs')
    .optional(),
  lock: objectOf({ ttlMs: positiveNumber.optional(), waitMs: nonNegativeNumber.optional() }).optional(),
  storeTimeoutMs: positiveNumber.optional(),
});

/** The manager's token methods bound to one key. */
export interface TokenHandle {
  readonly key: string;
  getValidAccessToken(): Promise<string>;
  getTokens(): Promise<TokenSet | undefined>;
  refreshTokens(): Promise<TokenSet>;
  storeTokens(tokens: TokenEndpointResponse): Promise<TokenSet>;
  revokeTokens(): Promise<RevocationResult[]>;
  clearTokens(): Promise<void>;
  introspectToken(token?: string): Promise<IntrospectionResponse>;
  /** `fetch` with this key's token attached (see {@link TokenManager.fetch}). */
  fetch(input: string | URL, init?: RequestInit): Promise<Response>;
}

interface KeyState {
  /** The one acquisition or refresh in flight for the key. */
  flight?: Promise<TokenSet> | undefined;
  /** No automatic renewal attempt before this time (epoch ms), after a transient failure. */
  backoffUntil: number;
  failures: number;
  /** `expiresAt` of the token set `token.expired` was last emitted for. */
  expiredReported?: number;
}

/** How far beyond the coarse clock a cached token must still be fresh to skip the precise check. */
const HOT_PATH_MARGIN_MS = 1000;

/** Background renewals in flight at once; due keys beyond this wait in line. */
const MAX_BACKGROUND_RENEWALS = 32;

const TRANSIENT_OAUTH_ERRORS = new Set(['temporarily_unavailable', 'server_error']);

/**
 * Keeps a valid access token for each key: cached, refreshed before it expires, or newly acquired,
 * with one request for any number of concurrent callers, and typed events for everything that
 * happens. Works across processes with a store that has `lock` (refresh: lock, re-read, skip if
 * another process already refreshed, refresh, write, unlock).
 *
 * @example
 * ```ts
 * const manager = new TokenManager({ client, grant: 'client_credentials', autoRefresh: true });
 * manager.on('token.refreshed', ({ key, expiresAt }) => log.info({ key, expiresAt }, 'refreshed'));
 * const token = await manager.getValidAccessToken();
 * ```
 */
export class TokenManager extends EventEmitter<TokenManagerEvents> {
  readonly #client: Client;
  readonly #store: TokenStore;
  readonly #ownsStore: boolean;
  readonly #key: string;
  readonly #grant: TokenGrant | undefined;
  readonly #skewMs: number;
  readonly #aheadMs: number | undefined;
  readonly #dpop: DPoPHandle | undefined;
  #dpopJkt: string | undefined;
  readonly #dpopJktReady: Promise<string | undefined>;
  readonly #now: () => number;
  /** The hot path's clock: the coarse clock, unless a `now` was injected (tests use it exactly). */
  readonly #hotNow: (() => number) | undefined;
  readonly #minDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #lockTtlMs: number;
  readonly #lockWaitMs: number;
  readonly #storeTimeoutMs: number;
  readonly #states = new Map<string, KeyState>();
  /** Token sets known to match the store; only used when the store has a change feed. */
  readonly #cache: NearCache | undefined;
  /**
   * The last token set read or written per key, kept even when the near-cache entry is
   * invalidated: while the store is unavailable, a token that has not expired is still served.
   */
  readonly #lastSeen = new Map<string, TokenSet>();
  /** Bumped on every change notice of a key, so a read that raced with a change is not cached. */
  readonly #generations = new Map<string, number>();
  readonly #unsubscribe: (() => void) | undefined;
  readonly #scheduler: RefreshScheduler | undefined;
  /** Due keys waiting for a background renewal slot, read from `#backgroundHead` (no O(n) shift). */
  #backgroundQueue: string[] = [];
  #backgroundHead = 0;
  #backgroundActive = 0;
  #closed = false;

  constructor(options: TokenManagerOptions) {
    super();
    parseOptions(optionsSchema, options, 'TokenManager');
    this.#client = options.client;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryTokenStore();
    this.#key = options.key ?? 'default';
    this.#grant = options.grant;
    this.#skewMs = (options.refreshSkewSeconds ?? 60) * 1000;
    this.#now = options.now ?? Date.now;
    this.#hotNow = options.now === undefined ? coarseNow : undefined;
    this.#minDelayMs = options.retry?.minDelayMs ?? 1000;
    this.#maxDelayMs = options.retry?.maxDelayMs ?? 60_000;
    this.#lockTtlMs = options.lock?.ttlMs ?? 30_000;
    this.#lockWaitMs = options.lock?.waitMs ?? 30_000;
    this.#storeTimeoutMs = options.storeTimeoutMs ?? 5000;
    this.#dpop = options.dpop;
    this.#dpopJktReady = this.#dpop === undefined ? Promise.resolve(undefined) : this.#dpop.thumbprint();
    this.#dpopJktReady.then(
      (jkt) => (this.#dpopJkt = jkt),
      () => undefined, // surfaced where it is awaited
    );
    if (options.autoRefresh) {
      const ahead = typeof options.autoRefresh === 'object' ? options.autoRefresh.aheadSeconds : undefined;
      this.#aheadMs = ahead === undefined ? this.#skewMs : ahead * 1000;
      this.#scheduler = new RefreshScheduler(this.#now, (key) => this.#scheduledRenewal(key));
    }
    if (this.#store.subscribe !== undefined) {
      this.#cache = new NearCache((tokens) => this.#boundToUs(tokens), this.#skewMs);
      this.#unsubscribe = this.#subscribe(
        (key) => {
          this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
          this.#cache?.delete(key);
        },
        {
          // The feed may have missed changes (a reconnect): forget everything cached.
          onReset: () => {
            for (const key of this.#cache?.keys() ?? []) this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
            this.#cache?.clear();
          },
        },
      );
    }
    // Last: nothing above may throw once the process-wide clock counts this manager as a user.
    if (this.#hotNow !== undefined) useCoarseClock();
    tokenSources.set(this, this.#source(this.#key));
  }

  /** The store's change feed; a store whose `subscribe()` throws is a configuration error. */
  #subscribe(onChange: (key: string) => void, options: { onReset: () => void }): () => void {
    let unsubscribe: unknown;
    try {
      unsubscribe = this.#store.subscribe!(onChange, options);
    } catch (cause) {
      throw new ConfigurationError('INVALID_CONFIGURATION', `TokenManager option store: its subscribe() threw${cause instanceof Error ? `: ${cause.message}` : ''}`, { cause });
    }
    if (typeof unsubscribe !== 'function') {
      throw new ConfigurationError('INVALID_CONFIGURATION', 'TokenManager option store: its subscribe() must return an unsubscribe function');
    }
    return unsubscribe as () => void;
  }

  /** A valid access token for the default key: cached, refreshed or newly acquired as needed. */
  getValidAccessToken(): Promise<string> {
    return this.#validAccessToken(this.#key);
  }

  /** The default key's token set as stored (possibly expired), or `undefined`. */
  getTokens(): Promise<TokenSet | undefined> {
    return this.#getTokens(this.#key);
  }

  /** Refreshes (or re-acquires) now; joins a refresh already in progress. */
  refreshTokens(): Promise<TokenSet> {
    return this.#refreshTokens(this.#key);
  }

  /** Stores the tokens of a token response (from any flow) for the default key. */
  storeTokens(tokens: TokenEndpointResponse): Promise<TokenSet> {
    return this.#storeTokens(this.#key, tokens);
  }

  /**
   * Revokes the refresh token, then the access token (RFC 7009 §2, with `token_type_hint`), waits
   * for both to settle, and clears the key whatever the outcome.
   */
  revokeTokens(): Promise<RevocationResult[]> {
    return this.#revokeTokens(this.#key);
  }

  /** Forgets the default key's tokens (no request to the server). */
  clearTokens(): Promise<void> {
    return this.#clearTokens(this.#key, 'manual');
  }

  /** Introspects `token`, or the default key's access token (RFC 7662). */
  introspectToken(token?: string): Promise<IntrospectionResponse> {
    return this.#introspectToken(this.#key, token);
  }

  /**
   * `fetch` with the default key's token attached: `Authorization: Bearer …`, or `DPoP …` with a
   * proof carrying `ath`. A 401 `invalid_token` (or a 401 without an error) refreshes once and
   * retries once; a DPoP `use_dpop_nonce` challenge retries once with the nonce. A stream body,
   * which cannot be sent twice, is never retried.
   *
   * @throws the refresh's error, e.g. `OAuthError` `invalid_grant` (the key is then cleared).
   * @see RFC 6750 §3, RFC 9449 §7, §9
   */
  fetch(input: string | URL, init?: RequestInit): Promise<Response> {
    return fetchWithTokens(this.#source(this.#key), input, init);
  }

  /** The same methods, bound to another key (e.g. one per user or per audience). */
  for(key: string): TokenHandle {
    if (typeof key !== 'string' || key === '') throw new ConfigurationError('INVALID_CONFIGURATION', 'a token key must be a non-empty string');
    const source = this.#source(key);
    const handle: TokenHandle = {
      key,
      getValidAccessToken: () => this.#validAccessToken(key),
      getTokens: () => this.#getTokens(key),
      refreshTokens: () => this.#refreshTokens(key),
      storeTokens: (tokens) => this.#storeTokens(key, tokens),
      revokeTokens: () => this.#revokeTokens(key),
      clearTokens: () => this.#clearTokens(key, 'manual'),
      introspectToken: (token) => this.#introspectToken(key, token),
      fetch: (input, init) => fetchWithTokens(source, input, init),
    };
    tokenSources.set(handle, source);
    return Object.freeze(handle);
  }

  #source(key: string): TokenSource {
    return {
      current: () => this.#validTokenSet(key),
      renewAfterRejection: (sent) => this.#renewAfterRejection(key, sent),
      dpop: this.#dpop,
    };
  }

  /** The key of the manager's own methods. */
  get key(): string {
    return this.#key;
  }

  /** The DPoP handle tokens are bound to, if any. */
  get dpop(): DPoPHandle | undefined {
    return this.#dpop;
  }

  /** Stops the background timer and the change feed, and closes the store if the manager made it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#hotNow !== undefined) releaseCoarseClock();
    this.#scheduler?.close();
    this.#backgroundQueue = [];
    this.#backgroundHead = 0;
    this.#unsubscribe?.();
    this.#cache?.clear();
    if (this.#ownsStore) await this.#store.close?.();
  }

  // ---------------------------------------------------------------------------------------------

  #validAccessToken(key: string): Promise<string> {
    // Hot path: a fresh, correctly bound token from the near-cache, without an await.
    // The coarse clock may lag a tick (or a blocked event loop): a second of margin covers it.
    const cached = this.#cache?.fresh(key, this.#hotNow === undefined ? this.#now() : this.#hotNow() + HOT_PATH_MARGIN_MS);
    if (cached !== undefined) return Promise.resolve(cached);
    return this.#slowValidAccessToken(key);
  }

  async #slowValidAccessToken(key: string): Promise<string> {
    return (await this.#validTokenSet(key)).accessToken;
  }

  async #validTokenSet(key: string): Promise<TokenSet> {
    this.#assertOpen();
    await this.#dpopJktReady;
    let current: TokenSet | undefined;
    try {
      current = await this.#read(key);
    } catch (error) {
      const known = this.#lastSeen.get(key);
      if (error instanceof TokenStoreError && known !== undefined && this.#boundToUs(known) && !this.#isExpired(known)) return known;
      throw error;
    }
    const usable = current !== undefined && this.#boundToUs(current) ? current : undefined;
    if (usable !== undefined && this.#isFresh(usable)) {
      // Cached before the DPoP thumbprint was known? Re-evaluate, so the hot path finds it.
      if (this.#cache?.get(key) === usable) this.#cache.set(key, usable);
      return usable;
    }
    const state = this.#state(key);
    // After a transient failure, keep serving a token that has not expired instead of hammering.
    if (usable !== undefined && !this.#isExpired(usable) && this.#now() < state.backoffUntil) return usable;
    if (usable !== undefined && this.#isExpired(usable)) this.#reportExpired(key, usable);
    try {
      return await this.#renew(key, current);
    } catch (error) {
      if (usable !== undefined && !this.#isExpired(usable) && isTransient(error)) return usable;
      throw error;
    }
  }

  /**
   * specs/10 §3 "refresh if current is T": reuse a token another request already got; else renew,
   * or `undefined` when there is no way to (no refresh token and no grant): the 401 stands.
   */
  async #renewAfterRejection(key: string, sentAccessToken: string): Promise<TokenSet | undefined> {
    this.#assertOpen();
    await this.#dpopJktReady;
    const current = await this.#read(key, { bypassCache: true });
    if (current !== undefined && current.accessToken !== sentAccessToken && this.#boundToUs(current) && !this.#isExpired(current)) {
      return current;
    }
    const renewable = (current?.refreshToken !== undefined && this.#boundToUs(current)) || this.#grant !== undefined;
    if (!renewable) return undefined;
    const flight = this.#states.get(key)?.flight;
    if (flight !== undefined) return flight;
    return this.#renew(key, current);
  }

  async #getTokens(key: string): Promise<TokenSet | undefined> {
    this.#assertOpen();
    return this.#read(key);
  }

  async #refreshTokens(key: string): Promise<TokenSet> {
    this.#assertOpen();
    await this.#dpopJktReady;
    return this.#renew(key, await this.#read(key));
  }

  async #storeTokens(key: string, response: TokenEndpointResponse): Promise<TokenSet> {
    this.#assertOpen();
    if (typeof response?.access_token !== 'string' || typeof response.token_type !== 'string') {
      throw new ConfigurationError('INVALID_CONFIGURATION', 'storeTokens needs a token response with access_token and token_type');
    }
    const jkt = await this.#dpopJktReady;
    const helper = (response as Partial<TokenResponse>).expiresIn;
    const expiresIn = typeof helper === 'function' ? helper.call(response) : response.expires_in;
    const tokens = tokenSetFromResponse(
      { ...response, ...(expiresIn === undefined ? {} : { expires_in: expiresIn }) },
      { requestedAtMs: this.#now(), dpopJkt: response.token_type.toLowerCase() === 'dpop' ? jkt : undefined },
    );
    await this.#write(key, tokens);
    this.#schedule(key, tokens);
    this.#emitSafely('token.stored', { key, ...summary(tokens) });
    return tokens;
  }

  async #revokeTokens(key: string): Promise<RevocationResult[]> {
    this.#assertOpen();
    const current = await this.#read(key);
    const results: RevocationResult[] = [];
    if (current !== undefined) {
      // The refresh token first: revoking it also ends the grant's access tokens (RFC 7009 §2.1).
      const targets: Array<[string, 'refresh_token' | 'access_token']> = [];
      if (current.refreshToken !== undefined) targets.push([current.refreshToken, 'refresh_token']);
      targets.push([current.accessToken, 'access_token']);
      for (const [token, hint] of targets) {
        try {
          await this.#client.tokenRevocation(token, { token_type_hint: hint });
          results.push({ tokenTypeHint: hint, revoked: true });
        } catch (error) {
          results.push({ tokenTypeHint: hint, revoked: false, error: asTesseraError(error) });
        }
      }
    }
    await this.#clearTokens(key, 'revoked');
    this.#emitSafely('token.revoked', { key, results });
    return results;
  }

  async #clearTokens(key: string, reason: 'manual' | 'revoked' | 'invalid_grant'): Promise<void> {
    this.#assertOpen();
    await this.#storeCall(key, 'delete', () => this.#store.delete(key));
    this.#cache?.set(key, null);
    this.#lastSeen.delete(key);
    this.#scheduler?.cancel(key);
    this.#states.delete(key);
    this.#emitSafely('token.cleared', { key, reason });
  }

  async #introspectToken(key: string, token: string | undefined): Promise<IntrospectionResponse> {
    this.#assertOpen();
    let subject = token;
    if (subject === undefined) {
      const current = await this.#read(key);
      if (current === undefined) throw noTokens(key);
      subject = current.accessToken;
    }
    const result = await this.#client.tokenIntrospection(subject, token === undefined ? { token_type_hint: 'access_token' } : undefined);
    this.#emitSafely('token.introspected', { key, active: result.active });
    return result;
  }

  /** One renewal per key at a time; every concurrent caller shares it. */
  #renew(key: string, seen: TokenSet | undefined): Promise<TokenSet> {
    const state = this.#state(key);
    if (state.flight === undefined) {
      state.flight = this.#runRenewal(key, seen).finally(() => {
        state.flight = undefined;
      });
    }
    return state.flight;
  }

  async #runRenewal(key: string, seen: TokenSet | undefined): Promise<TokenSet> {
    let lock: StoreLock | undefined;
    let current = seen;
    let version: number | undefined;
    if (this.#store.lock !== undefined) {
      lock = await this.#storeCall(key, 'lock', () => this.#store.lock!(key, { ttlMs: this.#lockTtlMs, waitMs: this.#lockWaitMs }));
      try {
        // Re-read under the lock: another process may have refreshed while we waited.
        ({ tokens: current, version } = await this.#readVersioned(key));
      } catch (error) {
        await releaseQuietly(lock);
        throw error;
      }
      // Another process refreshed while we waited: use its token (even if it is already inside
      // the skew, so a lifetime shorter than the skew does not make every process refresh).
      if (current !== undefined && current.accessToken !== seen?.accessToken && this.#boundToUs(current) && !this.#isExpired(current)) {
        await releaseQuietly(lock);
        this.#schedule(key, current);
        return current;
      }
    }
    try {
      if (current?.refreshToken !== undefined && this.#boundToUs(current)) return await this.#refresh(key, current, version);
      if (this.#grant !== undefined) return await this.#acquire(key, current, version);
      throw noTokens(key);
    } finally {
      if (lock !== undefined) await releaseQuietly(lock);
    }
  }

  async #refresh(key: string, current: TokenSet, version: number | undefined): Promise<TokenSet> {
    const started = this.#now();
    let response: TokenResponse;
    try {
      response = await this.#client.refreshTokenGrant(current.refreshToken!, undefined, this.#grantOptions());
    } catch (error) {
      return this.#refreshFailed(key, current, error);
    }
    try {
      checkRefreshedIdToken(current, response);
    } catch (error) {
      return this.#refreshFailed(key, current, error);
    }
    const fresh = tokenSetFromResponse(response, { requestedAtMs: started, previous: current, dpopJkt: this.#boundJkt(response) });
    const next = await this.#writeRenewed(key, fresh, version);
    this.#succeeded(key, next);
    if (next !== fresh) return next; // a newer token set won the conditional write
    this.#emitSafely('token.refreshed', {
      key,
      ...summary(next),
      rotated: response.refresh_token !== undefined && response.refresh_token !== current.refreshToken,
      durationMs: Math.max(0, this.#now() - started),
    });
    return next;
  }

  async #acquire(key: string, current: TokenSet | undefined, version: number | undefined): Promise<TokenSet> {
    const grant = this.#grant!;
    const started = this.#now();
    const type = grant === 'client_credentials' ? 'client_credentials' : grant.type;
    let response: TokenResponse;
    let parameters: RequestParameters | undefined;
    try {
      const source = typeof grant === 'string' ? undefined : grant.parameters;
      parameters = typeof source === 'function' ? await source() : source;
      response =
        type === 'client_credentials'
          ? await this.#client.clientCredentialsGrant(parameters, this.#grantOptions())
          : await this.#client.genericGrantRequest(type, parameters ?? {}, this.#grantOptions());
    } catch (error) {
      return this.#refreshFailed(key, current, error);
    }
    const fresh = tokenSetFromResponse(response, {
      requestedAtMs: started,
      requestedScope: scopeOf(parameters),
      dpopJkt: this.#boundJkt(response),
    });
    const next = await this.#writeRenewed(key, fresh, version);
    this.#succeeded(key, next);
    if (next !== fresh) return next;
    this.#emitSafely('token.acquired', { key, ...summary(next), grantType: type });
    return next;
  }

  /**
   * `invalid_grant` on a refresh: another process may just have rotated the token, so re-read the
   * store once; if it has a newer token set, use it. Otherwise clear the key (the grant is gone).
   * Transient failures back off and keep the tokens; other errors keep them too.
   */
  async #refreshFailed(key: string, current: TokenSet | undefined, cause: unknown): Promise<TokenSet> {
    const error = asTesseraError(cause);
    const state = this.#state(key);
    if (error instanceof OAuthError && error.error === 'invalid_grant' && current?.refreshToken !== undefined) {
      const latest = await this.#read(key, { bypassCache: true }).catch(() => undefined);
      if (latest !== undefined && latest.refreshToken !== current.refreshToken && this.#boundToUs(latest)) {
        this.#schedule(key, latest);
        return latest;
      }
      await this.#clearTokens(key, 'invalid_grant');
      this.#emitSafely('refresh.failed', { key, error, cleared: true });
      throw error;
    }
    if (isTransient(error)) {
      state.failures += 1;
      const ceiling = Math.min(this.#maxDelayMs, this.#minDelayMs * 2 ** (state.failures - 1));
      const retryInMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
      state.backoffUntil = this.#now() + retryInMs;
      this.#scheduler?.schedule(key, state.backoffUntil);
      this.#emitSafely('refresh.failed', { key, error, cleared: false, retryInMs });
    } else {
      this.#emitSafely('refresh.failed', { key, error, cleared: false });
    }
    throw error;
  }

  #succeeded(key: string, tokens: TokenSet): void {
    const state = this.#state(key);
    state.failures = 0;
    state.backoffUntil = 0;
    this.#schedule(key, tokens);
  }

  /**
   * Background renewal of a due key; failures are reported through events only. At most
   * {@link MAX_BACKGROUND_RENEWALS} run at once, the rest wait in line, so many keys coming due
   * together neither open thousands of connections nor stall the event loop.
   */
  #scheduledRenewal(key: string): void {
    if (this.#closed) return;
    this.#backgroundQueue.push(key);
    this.#pumpBackground();
  }

  #pumpBackground(): void {
    while (this.#backgroundActive < MAX_BACKGROUND_RENEWALS && this.#backgroundHead < this.#backgroundQueue.length && !this.#closed) {
      const key = this.#backgroundQueue[this.#backgroundHead++]!;
      if (this.#backgroundHead === this.#backgroundQueue.length) {
        this.#backgroundQueue = [];
        this.#backgroundHead = 0;
      }
      this.#backgroundActive += 1;
      void this.#read(key)
        .then((current) => (current === undefined ? undefined : this.#renew(key, current)))
        .catch(() => undefined) // refresh.failed / store.failed already reported it
        .finally(() => {
          this.#backgroundActive -= 1;
          this.#pumpBackground();
        });
    }
  }

  #schedule(key: string, tokens: TokenSet): void {
    if (this.#scheduler === undefined || tokens.expiresAt === undefined) return;
    if (tokens.refreshToken === undefined && this.#grant === undefined) return;
    const now = this.#now();
    const expiresAtMs = tokens.expiresAt * 1000;
    const jitterMs = Math.random() * Math.min(30_000, Math.max(0, expiresAtMs - now) * 0.1);
    this.#scheduler.schedule(key, Math.max(now, expiresAtMs - this.#aheadMs! - jitterMs));
  }

  // --- store access -------------------------------------------------------------------------------

  async #read(key: string, options: { bypassCache?: boolean } = {}): Promise<TokenSet | undefined> {
    const cache = this.#cache;
    if (cache !== undefined && !options.bypassCache) {
      const cached = cache.get(key);
      if (cached !== undefined) return cached ?? undefined;
    }
    const generation = this.#generations.get(key);
    const tokens = await this.#storeCall(key, 'get', () => this.#store.get(key));
    if (cache !== undefined && this.#generations.get(key) === generation) cache.set(key, tokens ?? null);
    this.#remember(key, tokens);
    return tokens;
  }

  async #write(key: string, tokens: TokenSet): Promise<void> {
    await this.#storeCall(key, 'set', () => this.#store.set(key, tokens));
    this.#cache?.set(key, tokens);
    this.#remember(key, tokens);
    const state = this.#states.get(key);
    if (state !== undefined) state.expiredReported = undefined;
  }

  /** The stored token set and its version (when the store has versions), bypassing the near-cache. */
  async #readVersioned(key: string): Promise<{ tokens: TokenSet | undefined; version?: number }> {
    const store = this.#store;
    if (store.getVersioned === undefined) return { tokens: await this.#read(key, { bypassCache: true }) };
    const found = await this.#storeCall(key, 'get', () => store.getVersioned!(key));
    return found === undefined ? { tokens: undefined, version: 0 } : found;
  }

  /**
   * Writes renewed tokens: conditionally on the version read under the lock when the store can,
   * so a stale writer (whose lock expired) cannot overwrite a newer token set; on a conflict the
   * newer one is used. If the write fails, the new tokens are still returned and kept in memory:
   * the old refresh token may already be spent, so dropping them would lose a working grant.
   */
  async #writeRenewed(key: string, tokens: TokenSet, version: number | undefined): Promise<TokenSet> {
    const store = this.#store;
    try {
      if (version !== undefined && store.setIfVersion !== undefined) {
        const written = await this.#storeCall(key, 'set', () => store.setIfVersion!(key, tokens, version));
        if (!written) {
          const latest = await this.#read(key, { bypassCache: true });
          if (latest !== undefined && this.#boundToUs(latest)) return latest;
          await this.#write(key, tokens);
          return tokens;
        }
        this.#cache?.set(key, tokens);
        this.#remember(key, tokens);
        return tokens;
      }
      await this.#write(key, tokens);
    } catch {
      this.#cache?.set(key, tokens); // reported as store.failed; serve what we have
      this.#remember(key, tokens);
    }
    return tokens;
  }

  /** Runs a store call; any failure becomes a `TokenStoreError`, reported as `store.failed`. */
  async #storeCall<T>(key: string, operation: 'get' | 'set' | 'delete' | 'lock', call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (cause) {
      const error =
        cause instanceof TokenStoreError
          ? cause
          : new TokenStoreError(operation, `token store ${operation} failed${cause instanceof Error ? `: ${cause.message}` : ''}`, { cause });
      this.#emitSafely('store.failed', { key, operation, error });
      throw error;
    }
  }

  // --- helpers ------------------------------------------------------------------------------------

  #remember(key: string, tokens: TokenSet | undefined): void {
    if (tokens === undefined) this.#lastSeen.delete(key);
    else this.#lastSeen.set(key, tokens);
  }

  #state(key: string): KeyState {
    let state = this.#states.get(key);
    if (state === undefined) {
      state = { backoffUntil: 0, failures: 0 };
      this.#states.set(key, state);
    }
    return state;
  }

  /** Fresh: no expiry known, or more than the skew left (exactly the skew left is still fresh). */
  #isFresh(tokens: TokenSet): boolean {
    return tokens.expiresAt === undefined || tokens.expiresAt * 1000 - this.#now() >= this.#skewMs;
  }

  #isExpired(tokens: TokenSet): boolean {
    return tokens.expiresAt !== undefined && this.#now() >= tokens.expiresAt * 1000;
  }

  /**
   * A DPoP-bound token is used only with the key it is bound to (RFC 9449 §7.2: never as a bearer
   * token). A Bearer token the server did not bind is usable either way.
   */
  #boundToUs(tokens: TokenSet): boolean {
    if (tokens.dpopJkt !== undefined) return this.#dpop !== undefined && tokens.dpopJkt === this.#dpopJkt;
    return tokens.tokenType.toLowerCase() !== 'dpop';
  }

  #boundJkt(response: TokenResponse): string | undefined {
    return response.token_type === 'DPoP' ? this.#dpopJkt : undefined;
  }

  #grantOptions(): { DPoP?: DPoPHandle } {
    return this.#dpop === undefined ? {} : { DPoP: this.#dpop };
  }

  #reportExpired(key: string, tokens: TokenSet): void {
    const state = this.#state(key);
    if (state.expiredReported === tokens.expiresAt) return;
    state.expiredReported = tokens.expiresAt;
    this.#emitSafely('token.expired', { key, expiredAt: tokens.expiresAt! });
  }

  /** Emits without letting a throwing listener break the manager. */
  #emitSafely<E extends keyof TokenManagerEvents>(event: E, payload: Parameters<TokenManagerEvents[E]>[0]): void {
    try {
      (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
    } catch {
      // A listener's own failure is not the manager's.
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ConfigurationError('INVALID_CONFIGURATION', 'the TokenManager is closed');
  }
}

/**
 * OpenID Connect Core §12.2: an ID Token in a refresh response must have the `iss`, `sub` and `aud`
 * of the original (the Client already validated its signature and claims; only the manager has the
 * original to compare with).
 */
function checkRefreshedIdToken(previous: TokenSet, response: TokenResponse): void {
  const claims = response.claims();
  if (claims === undefined || previous.idToken === undefined) return;
  let original: JWTPayload;
  try {
    original = decodeJwt(previous.idToken);
  } catch {
    return; // nothing trustworthy to compare with
  }
  const audience = (aud: unknown) => JSON.stringify([aud].flat().sort());
  for (const claim of ['iss', 'sub'] as const) {
    if (claims[claim] !== original[claim]) {
      throw new IdTokenError(claim, `${claim} in the refresh response differs from the original ID Token (OpenID Connect Core §12.2)`);
    }
  }
  if (audience(claims.aud) !== audience(original.aud)) {
    throw new IdTokenError('aud', 'aud in the refresh response differs from the original ID Token (OpenID Connect Core §12.2)');
  }
}

/** Network failures, timeouts, 5xx and the server's own "try later" codes. */
function isTransient(error: unknown): boolean {
  if (error instanceof TransportError) return error.code !== 'ABORTED';
  if (error instanceof TokenStoreError) return true;
  if (error instanceof ResponseError) return error.status >= 500 || error.status === 429;
  if (error instanceof OAuthError) return error.status >= 500 || error.status === 429 || TRANSIENT_OAUTH_ERRORS.has(error.error);
  return false;
}

function asTesseraError(error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  return new ConfigurationError('INVALID_CONFIGURATION', error instanceof Error ? error.message : 'unexpected failure', { cause: error });
}

function noTokens(key: string): ConfigurationError {
  return new ConfigurationError(
    'INVALID_CONFIGURATION',
    `no tokens for key "${key}": store some with storeTokens(), or configure a grant to acquire them`,
  );
}

function summary(tokens: TokenSet): { expiresAt?: number; scope?: string } {
  return {
    ...(tokens.expiresAt === undefined ? {} : { expiresAt: tokens.expiresAt }),
    ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
  };
}

function scopeOf(parameters: RequestParameters | undefined): string | undefined {
  if (parameters === undefined) return undefined;
  const scope = parameters instanceof URLSearchParams ? parameters.get('scope') : parameters.scope;
  return typeof scope === 'string' && scope !== '' ? scope : undefined;
}

async function releaseQuietly(lock: StoreLock): Promise<void> {
  try {
    await lock.release();
  } catch {
    // The lock expires by its TTL; nothing else to do.
  }
}
