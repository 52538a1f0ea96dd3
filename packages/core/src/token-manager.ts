import { z } from 'zod';
import { decodeJwt } from 'jose';
import type { JWTPayload } from 'jose';
import type { Client } from './client.js';
import type { DPoPHandle } from './dpop.js';
import { ConfigurationError, IdTokenError, OAuthError, ResponseError, TesseraError, TokenStoreError, TransportError, withHint } from './errors.js';
import type { RevocationResult, TokenManagerEvents } from './events.js';
import { fetchWithTokens, tokenSources } from './http-integration.js';
import type { TokenSource } from './http-integration.js';
import { backoffMs } from './internal/backoff.js';
import { coarseNow, releaseCoarseClock, useCoarseClock } from './internal/coarse-clock.js';
import { fn, nonEmptyString, nonNegativeNumber, parseOptions, positiveNumber } from './internal/options.js';
import { RefreshScheduler } from './internal/refresh-scheduler.js';
import { SafeEventEmitter } from './internal/safe-emitter.js';
import { tokenResponseSchema } from './internal/schemas.js';
import { StoreView } from './internal/store-view.js';
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
  /** The refresh token whose refresh was sent but whose answer was lost (the server may have rotated it). */
  answerLost?: string | undefined;
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
export class TokenManager extends SafeEventEmitter<TokenManagerEvents> {
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
  readonly #states = new Map<string, KeyState>();
  /** The store, bounded and checked, with the near-cache and the newest token set of each key. */
  readonly #view: StoreView;
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
    this.#view = new StoreView({
      store: this.#store,
      timeoutMs: options.storeTimeoutMs ?? 5000,
      usable: (tokens) => this.#boundToUs(tokens),
      skewMs: this.#skewMs,
      now: this.#now,
      retry: { minDelayMs: this.#minDelayMs, maxDelayMs: this.#maxDelayMs },
      onFailure: (key, operation, error) => this.#emitSafely('store.failed', { key, operation, error }),
      ...(this.#store.subscribe === undefined ? {} : { subscribe: (onChange, feed) => this.#subscribe(onChange, feed) }),
    });
    // Last: nothing above may throw once the process-wide clock counts this manager as a user.
    if (this.#hotNow !== undefined) useCoarseClock();
    tokenSources.set(this, this.#source(this.#key));
  }

  /** The store's change feed; a store whose `subscribe()` throws is a configuration error. */
  #subscribe(onChange: (key: string) => void, options: { onReset: () => void; onDisconnect: () => void }): () => void {
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

  /**
   * Stops the background timer and the change feed, waits for renewals in flight (a rotating
   * refresh must not be cut off: its answer holds the only copy of the new refresh token; one still
   * waiting for the store lock gives up), tries once more to write back token sets the store may
   * not have, and closes the store if the manager made it.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#hotNow !== undefined) releaseCoarseClock();
    this.#scheduler?.close();
    this.#backgroundQueue = [];
    this.#backgroundHead = 0;
    this.#view.stop(); // renewals still waiting for the store lock give up at once
    await Promise.allSettled([...this.#states.values()].map((state) => state.flight));
    await this.#view.flush(); // a last try for token sets the store may not have
    this.#view.close();
    if (this.#ownsStore) await this.#store.close?.();
  }

  // ---------------------------------------------------------------------------------------------

  #validAccessToken(key: string): Promise<string> {
    // Hot path: a fresh, correctly bound token from the near-cache, without an await.
    // The coarse clock may lag a tick (or a blocked event loop): a second of margin covers it.
    const cached = this.#view.fresh(key, this.#hotNow === undefined ? this.#now() : this.#hotNow() + HOT_PATH_MARGIN_MS);
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
      current = await this.#view.read(key);
    } catch (error) {
      const known = this.#view.lastKnown(key);
      if (error instanceof TokenStoreError && known !== undefined && this.#boundToUs(known) && !this.#isExpired(known)) return known;
      throw error;
    }
    const usable = current !== undefined && this.#boundToUs(current) ? current : undefined;
    if (usable !== undefined && this.#isFresh(usable)) {
      // Cached before the DPoP thumbprint was known? Re-evaluate, so the hot path finds it.
      this.#view.recache(key, usable);
      return usable;
    }
    if (usable !== undefined && !this.#isExpired(usable)) {
      // Inside the skew but still valid: serve it and renew behind it (not again while backing off
      // after a failure), so a slow or hung server costs nobody latency until it really expires.
      if (this.#now() >= this.#state(key).backoffUntil) this.#renewBehind(key, current);
      return usable;
    }
    if (usable !== undefined) this.#reportExpired(key, usable);
    return this.#renew(key, current);
  }

  /** Starts (or joins) a renewal nobody waits for; its failures are reported through events. */
  #renewBehind(key: string, seen: TokenSet | undefined): void {
    this.#renew(key, seen).catch(() => undefined);
  }

  /**
   * specs/10 §3 "refresh if current is T": reuse a token another request already got; else renew,
   * or `undefined` when there is no way to (no refresh token and no grant): the 401 stands.
   */
  async #renewAfterRejection(key: string, sentAccessToken: string): Promise<TokenSet | undefined> {
    this.#assertOpen();
    await this.#dpopJktReady;
    const current = await this.#view.read(key, { bypassCache: true });
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
    return this.#view.read(key);
  }

  async #refreshTokens(key: string): Promise<TokenSet> {
    this.#assertOpen();
    await this.#dpopJktReady;
    return this.#renew(key, await this.#view.read(key));
  }

  async #storeTokens(key: string, response: TokenEndpointResponse): Promise<TokenSet> {
    this.#assertOpen();
    const wire = storedResponse(response);
    const jkt = await this.#dpopJktReady;
    const tokens = tokenSetFromResponse(wire, {
      requestedAtMs: this.#now(),
      dpopJkt: wire.token_type.toLowerCase() === 'dpop' ? jkt : undefined,
    });
    const state = this.#states.get(key);
    if (state !== undefined) state.expiredReported = undefined;
    await this.#view.write(key, tokens);
    this.#schedule(key, tokens);
    this.#emitSafely('token.stored', { key, ...summary(tokens) });
    return tokens;
  }

  async #revokeTokens(key: string): Promise<RevocationResult[]> {
    this.#assertOpen();
    const current = await this.#view.read(key);
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
    await this.#view.delete(key);
    this.#scheduler?.cancel(key);
    this.#states.delete(key);
    this.#emitSafely('token.cleared', { key, reason });
  }

  async #introspectToken(key: string, token: string | undefined): Promise<IntrospectionResponse> {
    this.#assertOpen();
    let subject = token;
    if (subject === undefined) {
      const current = await this.#view.read(key);
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
      lock = await this.#view.lock(key, { ttlMs: this.#lockTtlMs, waitMs: this.#lockWaitMs });
      try {
        // Re-read under the lock: another process may have refreshed while we waited.
        ({ tokens: current, version } = await this.#view.readVersioned(key));
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
      return this.#refreshFailed(key, current, answerLost(error) ?? error);
    }
    try {
      checkRefreshedIdToken(current, response);
    } catch (error) {
      return this.#refreshFailed(key, current, error);
    }
    const fresh = tokenSetFromResponse(response, { requestedAtMs: started, previous: current, dpopJkt: this.#boundJkt(response) });
    const next = await this.#view.writeRenewed(key, fresh, version, current);
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
    const next = await this.#view.writeRenewed(key, fresh, version, current);
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
      const latest = await this.#view.read(key, { bypassCache: true }).catch(() => undefined);
      if (latest !== undefined && latest.refreshToken !== current.refreshToken && this.#boundToUs(latest)) {
        this.#schedule(key, latest);
        return latest;
      }
      const failure = state.answerLost === current.refreshToken ? spentAfterLostAnswer(error) : error;
      await this.#clearTokens(key, 'invalid_grant');
      this.#emitSafely('refresh.failed', { key, error: failure, cleared: true });
      throw failure;
    }
    if (isTransient(error)) {
      state.failures += 1;
      const retryInMs = Math.round(backoffMs(state.failures - 1, this.#minDelayMs, this.#maxDelayMs));
      state.backoffUntil = this.#now() + retryInMs;
      this.#scheduler?.schedule(key, state.backoffUntil);
      const lost = error instanceof TransportError && error.outcomeUnknown === true;
      if (lost) state.answerLost = current?.refreshToken;
      this.#emitSafely('refresh.failed', { key, error, cleared: false, retryInMs, ...(lost ? { outcomeUnknown: true as const } : {}) });
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
      void this.#view
        .read(key)
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

  // --- helpers ------------------------------------------------------------------------------------

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

  /** Emits; listeners are isolated from the manager and each other by `SafeEventEmitter`. */
  #emitSafely<E extends keyof TokenManagerEvents>(event: E, payload: Parameters<TokenManagerEvents[E]>[0]): void {
    (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
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

/** System errors that mean the request never reached the server. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH']);

/**
 * A refresh whose request went out but whose answer was lost (a timeout, a reset): the server may
 * have rotated the refresh token and the new one is gone with the answer. That cannot be undone
 * without the server's help (a reuse grace period), but it is said as it is. `undefined` for any
 * other failure.
 * @see RFC 6749 §10.4, RFC 9700 §4.14.2
 */
function answerLost(error: unknown): TransportError | undefined {
  if (!(error instanceof TransportError) || error.code === 'ABORTED') return undefined;
  if (error.code === 'NETWORK_ERROR' && NOT_SENT.has(error.systemCode ?? '')) return undefined;
  return new TransportError(
    error.code as 'NETWORK_ERROR' | 'TIMEOUT',
    `${error.message}; the refresh outcome is unknown: if the server rotated the refresh token, the new one was lost with the answer and the grant may be lost (the next refresh will tell)`,
    { endpoint: error.endpoint, ...(error.systemCode === undefined ? {} : { systemCode: error.systemCode }), outcomeUnknown: true },
    { cause: error },
  );
}

/** `invalid_grant` for a refresh token whose previous refresh lost its answer: say what most likely happened. */
function spentAfterLostAnswer(error: OAuthError): OAuthError {
  return withHint(
    error,
    'the answer to the previous refresh with this refresh token was lost; the server had most likely rotated it, so the grant is lost and the user must sign in again',
  );
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

/**
 * A token response handed to `storeTokens()`, checked like a server's (numeric strings such as
 * `"3600"` are read as numbers). A `TokenResponse`'s `expiresIn()` counts from when it arrived.
 * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad member.
 */
function storedResponse(response: TokenEndpointResponse): TokenEndpointResponse {
  const parsed = tokenResponseSchema.safeParse(response);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.map(String).join('.');
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      field === '' ? 'storeTokens needs a token response object' : `storeTokens: token response ${field} ${issue.message}`,
    );
  }
  const helper = (response as Partial<TokenResponse>).expiresIn;
  const expiresIn = typeof helper === 'function' ? helper.call(response) : parsed.data.expires_in;
  return { ...(parsed.data as TokenEndpointResponse), ...(expiresIn === undefined ? {} : { expires_in: expiresIn }) };
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
