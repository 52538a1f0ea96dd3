import { REVOKED_TOKENS, type RevokedTokenListener } from './internal/revocation-feed.js';
import { z } from 'zod';
import { unverifiedClaims } from './internal/jwt.js';
import type { Client } from './client.js';
import type { DPoPHandle } from './dpop.js';
import { createHash } from 'node:crypto';
import {
  ConfigurationError,
  IdTokenError,
  InternalError,
  OAuthError,
  ResponseError,
  TesseraError,
  TokenManagerError,
  TokenStoreError,
  TransportError,
  withHint,
} from './errors.js';
import type { RevocationResult, TokenManagerEvents } from './events.js';
import { fetchWithTokens } from './fetch-integration.js';
import { holdTokenSource } from './internal/token-source.js';
import type { TokenSource } from './internal/token-source.js';
import { backoffMs } from './internal/backoff.js';
import { coarseNow, releaseCoarseClock, useCoarseClock } from './internal/coarse-clock.js';
import {
  fn,
  logger,
  nonEmptyString,
  nonNegativeNumber,
  parseOptions,
  positiveNumber,
} from './internal/options.js';
import { CLIENT_INTERNALS } from './internal/client-internals.js';
import { logEvent, TOKEN_MANAGER_LINES } from './internal/event-log.js';
import { Log } from './internal/log.js';
import type { Logger } from './logger.js';
import { RefreshScheduler } from './internal/refresh-scheduler.js';
import { SafeEventEmitter } from './internal/safe-emitter.js';
import { traceRefresh } from './internal/tracing.js';
import type { RefreshTraceContext } from './diagnostics.js';
import { tokenResponseSchema } from './internal/schemas.js';
import { isDPoPTokenType } from './internal/token-type.js';
import { StoreView } from './internal/store-view.js';
import { MemoryTokenStore } from './memory-token-store.js';
import { tokenSetFromResponse } from './token-set.js';
import type { TokenSet } from './token-set.js';
import type { StoreLock, TokenStore } from './token-store.js';
import type {
  IntrospectionResponse,
  Parameters as RequestParameters,
  TokenEndpointResponse,
  TokenResponse,
} from './types.js';

/** How the manager gets a token for a key that has none (machine-to-machine). */
export type TokenGrant =
  | 'client_credentials'
  | {
      /** The grant type, e.g. `'client_credentials'`, `'urn:ietf:params:oauth:grant-type:token-exchange'`. */
      type: string;
      /**
       * The grant's request parameters (`scope`, `audience`, `resource`...), or a function giving them
       * for each request (e.g. a fresh `subject_token`; such a grant is then scoped by its type only).
       */
      parameters?: RequestParameters | (() => RequestParameters | Promise<RequestParameters>);
    };

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
  autoRefresh?:
    | boolean
    | {
        /** How many seconds before expiry a key is renewed. @default refreshSkewSeconds */
        aheadSeconds?: number;
      };
  /** Acquire and refresh with DPoP proofs from this handle; tokens bound to another key are not used. */
  dpop?: DPoPHandle;
  /** The clock, in epoch milliseconds (for tests). @default Date.now */
  now?: () => number;
  /**
   * Backoff after a transient failure (network, timeout, 5xx): doubling from `minDelayMs`, capped at
   * `maxDelayMs`, with jitter. @default { minDelayMs: 1000, maxDelayMs: 60_000 }
   */
  retry?: {
    /** The first backoff delay, in milliseconds; it doubles per failure. @default 1000 */
    minDelayMs?: number;
    /** The longest backoff delay, in milliseconds. @default 60_000 */
    maxDelayMs?: number;
  };
  /** The store lock around a refresh, when the store has `lock`. @default { ttlMs: 30_000, waitMs: 30_000 } */
  lock?: {
    /** How long the lock is held at most, in milliseconds, should its holder die. @default 30_000 */
    ttlMs?: number;
    /** How long a renewal waits for the lock, in milliseconds, before failing with `TokenStoreError`. @default 30_000 */
    waitMs?: number;
  };
  /**
   * Every store call (`get`, `set`, `delete`; `lock` beyond its own `waitMs`) rejects with
   * `TokenStoreError` after this long, so a store that never answers cannot hang a caller.
   * @default 5000
   */
  storeTimeoutMs?: number;
  /**
   * Store keys are `${namespace}:${key}` (bare keys when `''`). By default each grant gets its own
   * namespace, a short hash of the issuer, the `client_id`, and the grant's type and static
   * parameters (none for user tokens), so managers of different clients, servers, scopes or
   * audiences sharing one store never see each other's tokens. Set it for managers that mean to
   * share keys (e.g. a web app storing user tokens under its own namespace for a worker to use).
   * Whatever the namespace, a token set recording another issuer or client is refused.
   * @default a hash of issuer, client and grant
   */
  namespace?: string;
  /**
   * Where to log (pino-style, see {@link Logger}): tokens acquired, refreshed, stored and cleared at
   * info, a renewal that failed and will be retried at warn (with its delay), a refresh token the
   * server refused at error. Tokens appear only as their fingerprint.
   * @default the client's `logger`, else silent
   */
  logger?: Logger;
}

const objectOf = (members: z.ZodRawShape) => z.looseObject(members, { error: 'must be an object' });

const grantSchema = z.union(
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
  {
    error:
      "must be 'client_credentials' or { type, parameters? } with parameters an object of strings, a URLSearchParams or a function",
  },
);

/** What `for(key, options)` accepts. */
const handleOptionsSchema = objectOf({ grant: grantSchema.optional() });

/** What the constructor accepts (see {@link TokenManagerOptions}). */
const optionsSchema = objectOf({
  client: z.custom<Client>(
    (v) => typeof v === 'object' && v !== null && typeof (v as Client).refreshTokenGrant === 'function',
    'is required and must be a Client',
  ),
  store: z
    .custom<TokenStore>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        ['get', 'set', 'delete'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
      'must be a TokenStore (an object with get, set and delete)',
    )
    .optional(),
  key: nonEmptyString.optional(),
  grant: grantSchema.optional(),
  refreshSkewSeconds: nonNegativeNumber.optional(),
  autoRefresh: z
    .union([z.boolean(), objectOf({ aheadSeconds: nonNegativeNumber.optional() })], {
      error: 'must be a boolean or { aheadSeconds }',
    })
    .optional(),
  dpop: z
    .custom<DPoPHandle>(
      (v) => typeof v === 'object' && v !== null && typeof (v as DPoPHandle).proof === 'function',
      'must be a DPoPHandle',
    )
    .optional(),
  now: fn.optional(),
  retry: objectOf({ minDelayMs: positiveNumber.optional(), maxDelayMs: positiveNumber.optional() })
    .refine(
      (r) => (r.minDelayMs ?? 1000) <= (r.maxDelayMs ?? 60_000),
      'must have minDelayMs at most maxDelayMs',
    )
    .optional(),
  lock: objectOf({ ttlMs: positiveNumber.optional(), waitMs: nonNegativeNumber.optional() }).optional(),
  storeTimeoutMs: positiveNumber.optional(),
  namespace: z.string({ error: 'must be a string' }).optional(),
  logger: logger.optional(),
});

/** The manager's token methods bound to one key. */
export interface TokenHandle {
  /** The key, as events name it (the store key adds the manager's namespace). */
  readonly key: string;
  /** A valid access token for this key (see {@link TokenManager.getValidAccessToken}). */
  getValidAccessToken(): Promise<string>;
  /** This key's token set as stored (possibly expired), or `undefined`. */
  getTokens(): Promise<TokenSet | undefined>;
  /** Refreshes (or re-acquires) this key now (see {@link TokenManager.refreshTokens}). */
  refreshTokens(): Promise<TokenSet>;
  /** Stores a token response (from any flow) for this key (see {@link TokenManager.storeTokens}). */
  storeTokens(tokens: TokenEndpointResponse): Promise<TokenSet>;
  /** Revokes this key's tokens and clears the key (see {@link TokenManager.revokeTokens}). */
  revokeTokens(): Promise<RevocationResult[]>;
  /** Forgets this key's tokens (no request to the server). */
  clearTokens(): Promise<void>;
  /** Introspects `token`, or this key's access token (RFC 7662). */
  introspectToken(token?: string): Promise<IntrospectionResponse>;
  /** `fetch` with this key's token attached (see {@link TokenManager.fetch}). */
  fetch(input: string | URL, init?: RequestInit): Promise<Response>;
}

/**
 * One key as the manager serves it: the caller's name for it (in events), where it lives in the
 * store, and the grant that may get tokens for it (the manager's own key: the manager's grant; a
 * handle's key: the handle's, or none).
 */
interface Slot {
  readonly key: string;
  readonly storeKey: string;
  grant: TokenGrant | undefined;
  /** What the grant asks for (type and static parameters), to tell grants apart. */
  readonly grantId: string;
}

interface KeyState {
  /** The one acquisition or refresh in flight for the key. */
  flight?: Promise<TokenSet> | undefined;
  /** The `tessera:refresh` context of that renewal, while someone subscribes. */
  trace?: RefreshTraceContext | undefined;
  /** No automatic renewal attempt before this time (epoch ms), after a failure. */
  backoffUntil: number;
  failures: number;
  /** What the last renewal failed with: callers without a valid token get it during the backoff. */
  lastFailure?: TesseraError | undefined;
  /** `expiresAt` of the token set `token.expired` was last emitted for. */
  expiredReported?: number;
  /** The refresh token whose refresh was sent but whose answer was lost (the server may have rotated it). */
  answerLost?: string | undefined;
}

/** How far beyond the coarse clock a cached token must still be fresh to skip the precise check. */
const HOT_PATH_MARGIN_MS = 1000;

/** Background renewals in flight at once; due keys beyond this wait in line. */
const MAX_BACKGROUND_RENEWALS = 32;

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
  /** Who obtains the tokens: recorded in every token set, and checked in every one read. */
  readonly #origin: { issuer: string; clientId: string };
  /** The `namespace` option; `undefined`: one per grant, derived from the origin and the grant. */
  readonly #namespace: string | undefined;
  readonly #namespaces = new Map<string, string>();
  /**
   * The slots with a grant, and with an explicit namespace (where keys of different grants would
   * meet) every slot, by store key. Any other store key is a grantless slot that can be made again
   * from it (see {@link #slotOf}), so 100,000 user keys cost no registry.
   */
  readonly #slots = new Map<string, Slot>();
  /** The manager's own key. */
  readonly #own: Slot;
  readonly #skewMs: number;
  readonly #aheadMs: number | undefined;
  readonly #dpop: DPoPHandle | undefined;
  #dpopJkt: string | undefined;
  readonly #dpopJktReady: Promise<string | undefined>;
  readonly #now: () => number;
  /** Verifiers of this process to tell of revoked access tokens (see internal/revocation-feed.ts). */
  readonly #revocationListeners = new Set<RevokedTokenListener>();
  /** The hot path's clock: the coarse clock, unless a `now` was injected (tests use it exactly). */
  readonly #hotNow: (() => number) | undefined;
  readonly #minDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #lockTtlMs: number;
  readonly #lockWaitMs: number;
  /** Per store key. */
  readonly #states = new Map<string, KeyState>();
  /** The store, bounded and checked, with the near-cache and the newest token set of each key. */
  readonly #view: StoreView;
  readonly #scheduler: RefreshScheduler | undefined;
  /** The `logger` option's log, or the client's. */
  readonly #log: Log;
  #closed = false;

  /**
   * Checks the options and starts nothing: no request, no store call and no timer until first use.
   *
   * @param options - see {@link TokenManagerOptions}.
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming the first bad option.
   */
  constructor(options: TokenManagerOptions) {
    super();
    parseOptions(optionsSchema, options, 'TokenManager');
    this.#client = options.client;
    this.#log = Log.to(
      options.logger ?? options.client[CLIENT_INTERNALS]?.transport.log.logger,
      'tessera.token-manager',
    );
    this.#origin = { issuer: options.client.serverMetadata().issuer, clientId: options.client.clientId };
    this.#namespace = options.namespace;
    this.#ownsStore = options.store === undefined;
    this.#store = options.store ?? new MemoryTokenStore();
    this.#own = this.#slot(options.key ?? 'default', options.grant);
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
      this.#scheduler = new RefreshScheduler(this.#now, (storeKey) => this.#scheduledRenewal(storeKey), {
        concurrency: MAX_BACKGROUND_RENEWALS,
      });
    }
    this.#view = new StoreView({
      store: this.#store,
      timeoutMs: options.storeTimeoutMs ?? 5000,
      usable: (tokens) => this.#boundToUs(tokens),
      foreign: (storeKey, tokens) => this.#foreign(storeKey, tokens),
      skewMs: this.#skewMs,
      now: this.#now,
      retry: { minDelayMs: this.#minDelayMs, maxDelayMs: this.#maxDelayMs },
      onFailure: (storeKey, operation, error) =>
        this.#emitSafely('store.failed', { key: this.#userKey(storeKey), operation, error }),
      ...(this.#store.subscribe === undefined
        ? {}
        : { subscribe: (onChange, feed) => this.#subscribe(onChange, feed) }),
    });
    // Last: nothing above may throw once the process-wide clock counts this manager as a user.
    if (this.#hotNow !== undefined) useCoarseClock();
    holdTokenSource(this, this.#source(this.#own));
  }

  /** The store's change feed; a store whose `subscribe()` throws is a configuration error. */
  #subscribe(
    onChange: (key: string) => void,
    options: { onReset: () => void; onDisconnect: () => void },
  ): () => void {
    let unsubscribe: unknown;
    try {
      unsubscribe = this.#store.subscribe!(onChange, options);
    } catch (cause) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `TokenManager option store: its subscribe() threw${cause instanceof Error ? `: ${cause.message}` : ''}`,
        { cause },
      );
    }
    if (typeof unsubscribe !== 'function') {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        'TokenManager option store: its subscribe() must return an unsubscribe function',
      );
    }
    return unsubscribe as () => void;
  }

  /** A valid access token for the default key: cached, refreshed or newly acquired as needed. */
  getValidAccessToken(): Promise<string> {
    return this.#validAccessToken(this.#own);
  }

  /** The default key's token set as stored (possibly expired), or `undefined`. */
  getTokens(): Promise<TokenSet | undefined> {
    return this.#getTokens(this.#own);
  }

  /** Refreshes (or re-acquires) now, even while backing off after a failure; joins a refresh already in progress. */
  refreshTokens(): Promise<TokenSet> {
    return this.#refreshTokens(this.#own);
  }

  /**
   * Stores the tokens of a token response (from any flow) for the default key, replacing whatever
   * the key had (an explicit write: also a set of another client, which reads would refuse).
   */
  storeTokens(tokens: TokenEndpointResponse): Promise<TokenSet> {
    return this.#storeTokens(this.#own, tokens);
  }

  /**
   * Revokes the refresh token, then the access token (RFC 7009 §2, with `token_type_hint`), waits
   * for both to settle, and clears the key whatever the outcome.
   */
  revokeTokens(): Promise<RevocationResult[]> {
    return this.#revokeTokens(this.#own);
  }

  /** Forgets the default key's tokens (no request to the server). */
  clearTokens(): Promise<void> {
    return this.#clearTokens(this.#own, 'manual');
  }

  /** Introspects `token`, or the default key's access token (RFC 7662). */
  introspectToken(token?: string): Promise<IntrospectionResponse> {
    return this.#introspectToken(this.#own, token);
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
    return fetchWithTokens(this.#source(this.#own), input, init);
  }

  /**
   * The same methods, bound to another key (one per user, per tenant, per audience). The manager's
   * `grant` is its own key's only: a handle without a grant of its own never runs one, and rejects
   * with `TokenManagerError` `NO_TOKENS` when its key has no tokens (store some with
   * `storeTokens()`). With `grant`, the handle acquires its own tokens (e.g. one audience per
   * tenant); its store key is scoped by that grant, like the manager's.
   *
   * @example
   * ```ts
   * const alice = manager.for('user:alice');          // user tokens, from storeTokens()
   * const tenant = manager.for('tenant:acme', { grant: { type: 'client_credentials', parameters: { audience: 'https://acme.api' } } });
   * ```
   * @throws ConfigurationError `INVALID_CONFIGURATION` for an empty key, a bad grant, or a key the
   *   store already holds for another grant (with an explicit `namespace`).
   */
  for(key: string, options?: { grant?: TokenGrant }): TokenHandle {
    if (typeof key !== 'string' || key === '')
      throw new ConfigurationError('INVALID_CONFIGURATION', 'a token key must be a non-empty string');
    if (options !== undefined) parseOptions(handleOptionsSchema, options, `TokenManager.for("${key}")`);
    const slot = this.#handleSlot(key, options?.grant);
    const source = this.#source(slot);
    const handle: TokenHandle = {
      key,
      getValidAccessToken: () => this.#validAccessToken(slot),
      getTokens: () => this.#getTokens(slot),
      refreshTokens: () => this.#refreshTokens(slot),
      storeTokens: (tokens) => this.#storeTokens(slot, tokens),
      revokeTokens: () => this.#revokeTokens(slot),
      clearTokens: () => this.#clearTokens(slot, 'manual'),
      introspectToken: (token) => this.#introspectToken(slot, token),
      fetch: (input, init) => fetchWithTokens(source, input, init),
    };
    holdTokenSource(handle, source);
    return Object.freeze(handle);
  }

  /** The key of the manager's own methods. */
  get key(): string {
    return this.#own.key;
  }

  /** The DPoP handle tokens are bound to, if any. */
  get dpop(): DPoPHandle | undefined {
    return this.#dpop;
  }

  /** Subscribes a verifier of this process to the access tokens this manager revokes. @internal */
  [REVOKED_TOKENS](listener: RevokedTokenListener): () => void {
    this.#revocationListeners.add(listener);
    return () => this.#revocationListeners.delete(listener);
  }

  /**
   * Stops the background timer and the change feed, waits for renewals in flight (a rotating
   * refresh must not be cut off: its answer holds the only copy of the new refresh token; one still
   * waiting for the store lock gives up), tries once more to write back token sets the store may
   * not have, and closes the store if the manager made it. Any call afterwards rejects with
   * `TokenManagerError` `CLOSED`.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#hotNow !== undefined) releaseCoarseClock();
    this.#scheduler?.close(); // and the due keys waiting in its line
    this.#view.stop(); // renewals still waiting for the store lock give up at once
    await Promise.allSettled([...this.#states.values()].map((state) => state.flight));
    await this.#view.flush(); // a last try for token sets the store may not have
    this.#view.close();
    if (this.#ownsStore) await this.#store.close?.();
  }

  // --- keys -----------------------------------------------------------------------------------------

  /** The slot of a handle's key: the manager's own for its own key, unless given another grant. */
  #handleSlot(key: string, grant: TokenGrant | undefined): Slot {
    if (key !== this.#own.key) return this.#slot(key, grant);
    if (grant === undefined || grantFingerprint(grant) === this.#own.grantId) return this.#own;
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      `TokenManager.for("${key}"): "${key}" is the manager's own key, whose grant is the manager's; use another key for another grant`,
    );
  }

  /**
   * The slot of `key` for `grant`, made on first use. Its store key is `${namespace}:${key}`: the
   * `namespace` option, or else a hash of the issuer, the client and the grant, so managers of
   * different clients, servers or grant parameters never share token sets by accident.
   */
  #slot(key: string, grant: TokenGrant | undefined): Slot {
    const grantId = grantFingerprint(grant);
    const namespace = this.#namespaceOf(grantId);
    const storeKey = namespace === '' ? key : `${namespace}:${key}`;
    if (this.#namespace === undefined && grant === undefined) return { key, storeKey, grant, grantId };
    const existing = this.#slots.get(storeKey);
    if (existing === undefined) {
      const slot: Slot = { key, storeKey, grant, grantId };
      this.#slots.set(storeKey, slot);
      return slot;
    }
    if (existing.grantId !== grantId) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `TokenManager: key "${key}" is already used with another grant in namespace "${namespace}"; give it another key (or leave the namespace option to its default, which scopes keys by grant)`,
      );
    }
    if (grant !== undefined) existing.grant = grant;
    return existing;
  }

  /** The slot of a store key the scheduler hands back. */
  #slotOf(storeKey: string): Slot {
    return (
      this.#slots.get(storeKey) ?? {
        key: this.#userKey(storeKey),
        storeKey,
        grant: undefined,
        grantId: grantFingerprint(undefined),
      }
    );
  }

  /** The caller's key of a store key (the namespace's prefix off). */
  #userKey(storeKey: string): string {
    if (this.#namespace === '') return storeKey;
    return storeKey.slice(
      this.#namespace === undefined ? storeKey.indexOf(':') + 1 : this.#namespace.length + 1,
    );
  }

  #namespaceOf(grantId: string): string {
    if (this.#namespace !== undefined) return this.#namespace;
    let namespace = this.#namespaces.get(grantId);
    if (namespace === undefined) {
      const { issuer, clientId } = this.#origin;
      namespace = createHash('sha256')
        .update(JSON.stringify([issuer, clientId, grantId]))
        .digest('base64url')
        .slice(0, 12);
      this.#namespaces.set(grantId, namespace);
    }
    return namespace;
  }

  /**
   * Why a stored token set is not this manager's: it records another issuer or client, or (a set
   * that records neither, from before they were recorded) its ID Token was issued by or for another.
   */
  #foreign(storeKey: string, tokens: TokenSet): string | undefined {
    const { issuer, clientId } = this.#origin;
    let theirs: { issuer?: unknown; clientId?: unknown } = tokens;
    if (tokens.issuer === undefined && tokens.clientId === undefined && tokens.idToken !== undefined) {
      theirs = idTokenOrigin(tokens.idToken, clientId);
    }
    const sameIssuer = theirs.issuer === undefined || theirs.issuer === issuer;
    const sameClient = theirs.clientId === undefined || theirs.clientId === clientId;
    if (sameIssuer && sameClient) return undefined;
    const who = `client ${JSON.stringify(theirs.clientId ?? clientId)} of ${JSON.stringify(theirs.issuer ?? issuer)}`;
    return (
      `the token set stored under "${storeKey}" was obtained by ${who}, not by this manager's client ${JSON.stringify(clientId)} ` +
      `of ${JSON.stringify(issuer)}; it is refused (never served, never overwritten). Managers that share a store must not share keys: ` +
      'leave the TokenManager option namespace to its default, or give each client its own'
    );
  }

  #source(slot: Slot): TokenSource {
    return {
      current: () => this.#validTokenSet(slot),
      renewAfterRejection: (sent) => this.#renewAfterRejection(slot, sent),
      dpop: this.#dpop,
    };
  }

  // ---------------------------------------------------------------------------------------------

  #validAccessToken(slot: Slot): Promise<string> {
    // Hot path: a fresh, correctly bound token from the near-cache, without an await.
    // The coarse clock may lag a tick (or a blocked event loop): a second of margin covers it.
    const cached = this.#view.fresh(
      slot.storeKey,
      this.#hotNow === undefined ? this.#now() : this.#hotNow() + HOT_PATH_MARGIN_MS,
    );
    if (cached !== undefined) return Promise.resolve(cached);
    return this.#slowValidAccessToken(slot);
  }

  async #slowValidAccessToken(slot: Slot): Promise<string> {
    return (await this.#validTokenSet(slot)).accessToken;
  }

  async #validTokenSet(slot: Slot): Promise<TokenSet> {
    this.#assertOpen(slot);
    await this.#dpopJktReady;
    const storeKey = slot.storeKey;
    let current: TokenSet | undefined;
    try {
      current = await this.#view.read(storeKey);
    } catch (error) {
      const known = this.#view.lastKnown(storeKey);
      if (
        error instanceof TokenStoreError &&
        known !== undefined &&
        this.#boundToUs(known) &&
        !this.#isExpired(known)
      )
        return known;
      throw error;
    }
    const usable = current !== undefined && this.#boundToUs(current) ? current : undefined;
    if (usable !== undefined && this.#isFresh(usable)) {
      // Cached before the DPoP thumbprint was known? Re-evaluate, so the hot path finds it.
      this.#view.recache(storeKey, usable);
      return usable;
    }
    const state = this.#state(slot);
    const backingOff = this.#now() < state.backoffUntil;
    if (usable !== undefined && !this.#isExpired(usable)) {
      // Inside the skew but still valid: serve it and renew behind it (not again while backing off
      // after a failure), so a slow or hung server costs nobody latency until it really expires.
      if (!backingOff) this.#renewBehind(slot, current);
      return usable;
    }
    if (usable !== undefined) this.#reportExpired(slot, usable);
    // No valid token, and the last renewal failed moments ago: its error, without a new request
    // (one per backoff window, however many callers; `refreshTokens()` forces one).
    if (backingOff && state.lastFailure !== undefined) throw state.lastFailure;
    return this.#renew(slot, current);
  }

  /** Starts (or joins) a renewal nobody waits for; its failures are reported through events. */
  #renewBehind(slot: Slot, seen: TokenSet | undefined): void {
    this.#renew(slot, seen).catch(() => undefined);
  }

  /**
   * RFC 6750 §3.1 `invalid_token`, "refresh if current is T": reuse a token another request already got; else renew,
   * or `undefined` when there is no way to (no refresh token and no grant): the 401 stands.
   */
  async #renewAfterRejection(slot: Slot, sentAccessToken: string): Promise<TokenSet | undefined> {
    this.#assertOpen(slot);
    await this.#dpopJktReady;
    const current = await this.#view.read(slot.storeKey, { bypassCache: true });
    if (
      current !== undefined &&
      current.accessToken !== sentAccessToken &&
      this.#boundToUs(current) &&
      !this.#isExpired(current)
    ) {
      return current;
    }
    const renewable =
      (current?.refreshToken !== undefined && this.#boundToUs(current)) || slot.grant !== undefined;
    if (!renewable) return undefined;
    const state = this.#states.get(slot.storeKey);
    if (state?.flight !== undefined) return state.flight;
    // A renewal failed moments ago: its error, not one more request per rejected call.
    if (state?.lastFailure !== undefined && this.#now() < state.backoffUntil) throw state.lastFailure;
    return this.#renew(slot, current);
  }

  async #getTokens(slot: Slot): Promise<TokenSet | undefined> {
    this.#assertOpen(slot);
    return this.#view.read(slot.storeKey);
  }

  async #refreshTokens(slot: Slot): Promise<TokenSet> {
    this.#assertOpen(slot);
    await this.#dpopJktReady;
    return this.#renew(slot, await this.#view.read(slot.storeKey));
  }

  async #storeTokens(slot: Slot, response: TokenEndpointResponse): Promise<TokenSet> {
    this.#assertOpen(slot);
    const wire = storedResponse(response);
    const jkt = await this.#dpopJktReady;
    const tokens = tokenSetFromResponse(wire, {
      requestedAtMs: this.#now(),
      dpopJkt: isDPoPTokenType(wire.token_type) ? jkt : undefined,
      origin: this.#origin,
    });
    // A new grant: no backoff, failure or lost answer of the old one applies (a renewal in flight stays single).
    const state = this.#states.get(slot.storeKey);
    if (state !== undefined)
      Object.assign(state, {
        backoffUntil: 0,
        failures: 0,
        lastFailure: undefined,
        expiredReported: undefined,
        answerLost: undefined,
      });
    await this.#view.write(slot.storeKey, tokens);
    this.#schedule(slot, tokens);
    this.#emitSafely('token.stored', { key: slot.key, ...summary(tokens) }, tokens);
    return tokens;
  }

  async #revokeTokens(slot: Slot): Promise<RevocationResult[]> {
    this.#assertOpen(slot);
    const current = await this.#view.read(slot.storeKey);
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
    if (current !== undefined) {
      // Whatever the server said, this process stops accepting the token it let go of.
      for (const listener of this.#revocationListeners) {
        try {
          listener(current.accessToken);
        } catch {
          // a verifier's failure to forget is its own; the revocation goes on
        }
      }
    }
    // What happened at the server is reported whether or not the store then lets go of the key.
    try {
      await this.#forget(slot);
    } finally {
      this.#emitSafely('token.revoked', { key: slot.key, results });
    }
    this.#emitSafely('token.cleared', { key: slot.key, reason: 'revoked' });
    return results;
  }

  async #clearTokens(slot: Slot, reason: 'manual' | 'invalid_grant'): Promise<void> {
    this.#assertOpen(slot);
    await this.#forget(slot);
    this.#emitSafely('token.cleared', { key: slot.key, reason });
  }

  /** Forgets the key here, then in the store (which may fail: it is forgotten here anyway). */
  async #forget(slot: Slot): Promise<void> {
    this.#scheduler?.cancel(slot.storeKey);
    this.#states.delete(slot.storeKey);
    await this.#view.delete(slot.storeKey);
  }

  async #introspectToken(slot: Slot, token: string | undefined): Promise<IntrospectionResponse> {
    this.#assertOpen(slot);
    let subject = token;
    if (subject === undefined) {
      const current = await this.#view.read(slot.storeKey);
      if (current === undefined) throw this.#noTokens(slot);
      subject = current.accessToken;
    }
    const result = await this.#client.tokenIntrospection(
      subject,
      token === undefined ? { token_type_hint: 'access_token' } : undefined,
    );
    this.#emitSafely('token.introspected', { key: slot.key, active: result.active });
    return result;
  }

  /** One renewal per key at a time; every concurrent caller shares it. */
  #renew(slot: Slot, seen: TokenSet | undefined): Promise<TokenSet> {
    const state = this.#state(slot);
    if (state.flight === undefined) {
      state.flight = traceRefresh(slot.key, async (trace) => {
        state.trace = trace;
        try {
          const next = await this.#runRenewal(slot, seen);
          if (trace !== undefined) trace.outcome ??= 'reused';
          return next;
        } catch (error) {
          if (trace !== undefined) trace.outcome = 'failed';
          throw error;
        } finally {
          state.trace = undefined;
        }
      }).finally(() => {
        state.flight = undefined;
      });
    }
    return state.flight;
  }

  async #runRenewal(slot: Slot, seen: TokenSet | undefined): Promise<TokenSet> {
    const storeKey = slot.storeKey;
    let lock: StoreLock | undefined;
    let current = seen;
    let version: number | undefined;
    if (this.#store.lock !== undefined) {
      try {
        lock = await this.#view.lock(storeKey, { ttlMs: this.#lockTtlMs, waitMs: this.#lockWaitMs });
      } catch (error) {
        // No lock (busy past waitMs, refused, store away): no refresh here, but the process that
        // held it may have written a fresh token set meanwhile (reported as store.failed).
        const latest = await this.#view.read(storeKey, { bypassCache: true }).catch(() => undefined);
        if (this.#renewedElsewhere(latest, seen)) {
          this.#succeeded(slot, latest);
          return latest;
        }
        throw error;
      }
      try {
        // Re-read under the lock: another process may have refreshed while we waited.
        ({ tokens: current, version } = await this.#view.readVersioned(storeKey));
      } catch (error) {
        await releaseQuietly(lock);
        throw error;
      }
      if (this.#renewedElsewhere(current, seen)) {
        await releaseQuietly(lock);
        this.#succeeded(slot, current);
        return current;
      }
    }
    try {
      if (current?.refreshToken !== undefined && this.#boundToUs(current))
        return await this.#refresh(slot, current, version);
      if (slot.grant !== undefined) return await this.#acquire(slot, slot.grant, current, version);
      throw this.#noTokens(slot);
    } finally {
      if (lock !== undefined) await releaseQuietly(lock);
    }
  }

  /**
   * Whether another process renewed the token set since this one saw `seen`: use its token (even if
   * it is already inside the skew, so a lifetime shorter than the skew does not make every process
   * refresh).
   */
  #renewedElsewhere(current: TokenSet | undefined, seen: TokenSet | undefined): current is TokenSet {
    return (
      current !== undefined &&
      current.accessToken !== seen?.accessToken &&
      this.#boundToUs(current) &&
      !this.#isExpired(current)
    );
  }

  async #refresh(slot: Slot, current: TokenSet, version: number | undefined): Promise<TokenSet> {
    const started = this.#now();
    const trace = this.#state(slot).trace;
    if (trace !== undefined) trace.grantType = 'refresh_token';
    let response: TokenResponse;
    try {
      response = await this.#client.refreshTokenGrant(current.refreshToken!, undefined, this.#grantOptions());
    } catch (error) {
      return this.#renewalFailed(slot, current, answerLost(error) ?? refreshProbablyInvalid(error) ?? error);
    }
    try {
      checkRefreshedIdToken(current, response);
    } catch (error) {
      return this.#renewalFailed(slot, current, error);
    }
    const fresh = tokenSetFromResponse(response, {
      requestedAtMs: started,
      previous: current,
      dpopJkt: this.#boundJkt(response),
      origin: this.#origin,
    });
    const next = await this.#view.writeRenewed(slot.storeKey, fresh, version, current);
    this.#succeeded(slot, next);
    if (next !== fresh) return next; // a newer token set won the conditional write
    const rotated = response.refresh_token !== undefined && response.refresh_token !== current.refreshToken;
    if (trace !== undefined) Object.assign(trace, { outcome: 'refreshed', rotated });
    this.#emitSafely(
      'token.refreshed',
      {
        key: slot.key,
        ...summary(next),
        rotated,
        durationMs: Math.max(0, this.#now() - started),
      },
      next,
    );
    return next;
  }

  async #acquire(
    slot: Slot,
    grant: TokenGrant,
    current: TokenSet | undefined,
    version: number | undefined,
  ): Promise<TokenSet> {
    const started = this.#now();
    const type = grant === 'client_credentials' ? 'client_credentials' : grant.type;
    const trace = this.#state(slot).trace;
    if (trace !== undefined) trace.grantType = type;
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
      return this.#renewalFailed(slot, current, error);
    }
    const fresh = tokenSetFromResponse(response, {
      requestedAtMs: started,
      requestedScope: scopeOf(parameters),
      dpopJkt: this.#boundJkt(response),
      origin: this.#origin,
    });
    const next = await this.#view.writeRenewed(slot.storeKey, fresh, version, current);
    this.#succeeded(slot, next);
    if (next !== fresh) return next;
    if (trace !== undefined) trace.outcome = 'acquired';
    this.#emitSafely('token.acquired', { key: slot.key, ...summary(next), grantType: type }, next);
    return next;
  }

  /**
   * `invalid_grant` on a refresh: another process may just have rotated the token, so re-read the
   * store once; if it has a newer token set, use it. Otherwise clear the key (the grant is gone).
   * Any other failure keeps the tokens (it proves nothing about them) and backs off: no automatic
   * attempt before `retryInMs`, and callers without a valid token get this error meanwhile.
   */
  async #renewalFailed(slot: Slot, current: TokenSet | undefined, cause: unknown): Promise<TokenSet> {
    const error = asTesseraError(cause);
    const { key, storeKey } = slot;
    const state = this.#state(slot);
    if (
      error instanceof OAuthError &&
      error.error === 'invalid_grant' &&
      current?.refreshToken !== undefined
    ) {
      // (A foreign set under the key is not ours to clear: that refusal is the caller's answer.)
      const latest = await this.#view.read(storeKey, { bypassCache: true }).catch((error: unknown) => {
        if (error instanceof ConfigurationError) throw error;
        return undefined;
      });
      if (latest !== undefined && latest.refreshToken !== current.refreshToken && this.#boundToUs(latest)) {
        this.#succeeded(slot, latest);
        return latest;
      }
      const failure = state.answerLost === current.refreshToken ? spentAfterLostAnswer(error) : error;
      // The grant is gone whether or not the store lets go of the key now (a failed delete is
      // reported as store.failed; the spent set is forgotten here either way).
      const cleared = await this.#clearTokens(slot, 'invalid_grant').then(
        () => true,
        () => false,
      );
      this.#emitSafely('refresh.failed', { key, error: failure, cleared });
      throw failure;
    }
    if (error instanceof TransportError && error.code === 'ABORTED') {
      this.#emitSafely('refresh.failed', { key, error, cleared: false });
      throw error;
    }
    state.failures += 1;
    state.lastFailure = error;
    const retryInMs = Math.round(backoffMs(state.failures - 1, this.#minDelayMs, this.#maxDelayMs));
    state.backoffUntil = this.#now() + retryInMs;
    this.#scheduler?.schedule(storeKey, state.backoffUntil);
    const lost = error instanceof TransportError && error.outcomeUnknown === true;
    if (lost) state.answerLost = current?.refreshToken;
    this.#emitSafely('refresh.failed', {
      key,
      error,
      cleared: false,
      retryInMs,
      ...(lost ? { outcomeUnknown: true as const } : {}),
    });
    throw error;
  }

  #succeeded(slot: Slot, tokens: TokenSet): void {
    const state = this.#state(slot);
    state.failures = 0;
    state.backoffUntil = 0;
    state.lastFailure = undefined;
    this.#schedule(slot, tokens);
  }

  /**
   * Background renewal of a due key (at most {@link MAX_BACKGROUND_RENEWALS} at once, the scheduler
   * sees to it); its failures are reported through events only.
   */
  async #scheduledRenewal(storeKey: string): Promise<void> {
    if (this.#closed) return;
    const slot = this.#slotOf(storeKey);
    const current = await this.#view.read(slot.storeKey);
    if (current !== undefined) await this.#renew(slot, current);
  }

  #schedule(slot: Slot, tokens: TokenSet): void {
    if (this.#scheduler === undefined || tokens.expiresAt === undefined) return;
    if (tokens.refreshToken === undefined && slot.grant === undefined) return;
    const now = this.#now();
    const expiresAtMs = tokens.expiresAt * 1000;
    const jitterMs = Math.random() * Math.min(30_000, Math.max(0, expiresAtMs - now) * 0.1);
    this.#scheduler.schedule(slot.storeKey, Math.max(now, expiresAtMs - this.#aheadMs! - jitterMs));
  }

  // --- helpers ------------------------------------------------------------------------------------

  #state(slot: Slot): KeyState {
    let state = this.#states.get(slot.storeKey);
    if (state === undefined) {
      state = { backoffUntil: 0, failures: 0 };
      this.#states.set(slot.storeKey, state);
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
    return !isDPoPTokenType(tokens.tokenType);
  }

  #boundJkt(response: TokenResponse): string | undefined {
    return response.token_type === 'DPoP' ? this.#dpopJkt : undefined;
  }

  #grantOptions(): { DPoP?: DPoPHandle } {
    return this.#dpop === undefined ? {} : { DPoP: this.#dpop };
  }

  #reportExpired(slot: Slot, tokens: TokenSet): void {
    const state = this.#state(slot);
    if (state.expiredReported === tokens.expiresAt) return;
    state.expiredReported = tokens.expiresAt;
    this.#emitSafely('token.expired', { key: slot.key, expiredAt: tokens.expiresAt! });
  }

  /**
   * Emits, and logs the event's line (internal/event-log.ts) with the fingerprint of `tokens`'
   * access token; listeners are isolated from the manager and each other by `SafeEventEmitter`.
   */
  #emitSafely<E extends keyof TokenManagerEvents>(
    event: E,
    payload: Parameters<TokenManagerEvents[E]>[0],
    tokens?: TokenSet,
  ): void {
    (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
    logEvent(this.#log, TOKEN_MANAGER_LINES, event, payload as never, tokens?.accessToken);
  }

  #noTokens(slot: Slot): TokenManagerError {
    const how =
      slot !== this.#own && this.#own.grant !== undefined
        ? `the manager's grant is for its own key "${this.#own.key}" only; store tokens with storeTokens(), or give the handle a grant of its own: manager.for(key, { grant })`
        : 'the user must sign in and the tokens be stored with storeTokens(), or a grant configured to acquire them';
    return new TokenManagerError('NO_TOKENS', `no tokens for key "${slot.key}": ${how}`, { key: slot.key });
  }

  #assertOpen(slot: Slot): void {
    if (this.#closed)
      throw new TokenManagerError(
        'CLOSED',
        `the TokenManager is closed (key "${slot.key}"); make a new one`,
        { key: slot.key },
      );
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
  const original = unverifiedClaims(previous.idToken);
  if (original === undefined) return; // nothing trustworthy to compare with
  const audience = (aud: unknown) => JSON.stringify([aud].flat().sort());
  for (const claim of ['iss', 'sub'] as const) {
    if (claims[claim] !== original[claim]) {
      throw new IdTokenError(
        claim,
        `${claim} in the refresh response differs from the original ID Token (OpenID Connect Core §12.2)`,
      );
    }
  }
  if (audience(claims.aud) !== audience(original.aud)) {
    throw new IdTokenError(
      'aud',
      'aud in the refresh response differs from the original ID Token (OpenID Connect Core §12.2)',
    );
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
    {
      endpoint: error.endpoint,
      ...(error.systemCode === undefined ? {} : { systemCode: error.systemCode }),
      outcomeUnknown: true,
    },
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

/** Anything else (a grant's parameters function that threw, a bug) is `INTERNAL`, the original its cause. */
function asTesseraError(error: unknown): TesseraError {
  if (error instanceof TesseraError) return error;
  return new InternalError(`unexpected failure${error instanceof Error ? `: ${error.message}` : ''}`, {
    cause: error,
  });
}

/**
 * A refresh refused with a 400, 401 or 403 that carries no OAuth error (an empty or non-JSON
 * body, as some servers answer for a revoked refresh token): say what it most likely means,
 * without acting on the guess (the tokens are kept). `undefined` for any other failure.
 */
function refreshProbablyInvalid(error: unknown): ResponseError | undefined {
  if (!(error instanceof ResponseError) || ![400, 401, 403].includes(error.status)) return undefined;
  return new ResponseError(
    error.code,
    `${error.message}; the server refused the refresh without an OAuth error (RFC 6749 §5.2), so the refresh token is probably no longer valid (revoked or expired). ` +
      'The tokens are kept and the refresh is retried with backoff; if it keeps failing, the user must sign in again',
    {
      endpoint: error.endpoint,
      status: error.status,
      ...(error.body === undefined ? {} : { body: error.body }),
      ...(error.field === undefined ? {} : { field: error.field }),
      ...(error.providerError === undefined ? {} : { providerError: error.providerError }),
    },
    { cause: error },
  );
}

/**
 * What a grant asks for, as a stable string: its type and static parameters (sorted). Parameters
 * computed by a function are not known in advance; such grants differ by type only.
 */
function grantFingerprint(grant: TokenGrant | undefined): string {
  if (grant === undefined) return 'none';
  const type = grant === 'client_credentials' ? grant : grant.type;
  const parameters = typeof grant === 'string' ? undefined : grant.parameters;
  if (typeof parameters === 'function') return JSON.stringify([type, 'computed']);
  const pairs: Array<[string, string]> =
    parameters === undefined
      ? []
      : parameters instanceof URLSearchParams
        ? [...parameters]
        : Object.entries(parameters).flatMap(([name, value]) =>
            value === undefined ? [] : [value].flat().map((v): [string, string] => [name, v]),
          );
  pairs.sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : x > y ? 1 : 0) : a < b ? -1 : 1));
  return JSON.stringify([type, pairs]);
}

/** The issuer and client of an ID Token (unverified: only to tell whose a stored set is). */
function idTokenOrigin(idToken: string, clientId: string): { issuer?: unknown; clientId?: unknown } {
  const claims = unverifiedClaims(idToken);
  if (claims === undefined) return {}; // nothing to tell by
  const audiences = [claims.aud].flat();
  return {
    issuer: claims.iss,
    clientId: claims.aud === undefined || audiences.includes(clientId) ? undefined : audiences[0],
  };
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
      field === ''
        ? 'storeTokens needs a token response object'
        : `storeTokens: token response ${field} ${issue.message}`,
    );
  }
  const helper = (response as Partial<TokenResponse>).expiresIn;
  const expiresIn = typeof helper === 'function' ? helper.call(response) : parsed.data.expires_in;
  return {
    ...(parsed.data as TokenEndpointResponse),
    ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
  };
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
