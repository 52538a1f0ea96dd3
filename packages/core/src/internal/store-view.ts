/**
 * The TokenManager's view of its store: every store call bounded in time, checked and redacted; a
 * near-cache kept by the store's change feed; and the rule that **the newest token set this process
 * has seen wins over an older one**.
 *
 * A store can fall behind the process: a write fails after a rotating refresh (the old refresh
 * token is spent, the new one exists only here), or Redis restarts empty. Reading the store then
 * would hand back a spent refresh token, whose replay makes the server revoke the whole grant. So
 * the view remembers, per key, the newest token set it has seen and the tokens that set replaced:
 * - the store holds a replaced (older) set → the newest is used and written back;
 * - the store holds nothing, and the view cannot be sure the key was deleted on purpose (the last
 *   write failed, or the store failed or its feed was reset since the set was last confirmed) →
 *   the newest is used and written back, if it can still work;
 * - the store holds anything else → it is newer (another process refreshed or stored it): it wins.
 * A write that fails is retried in the background with backoff until it lands or is superseded.
 *
 * A store that fails (an error, or no answer within the bound) is given a rest: for a backoff
 * window no call is sent to it, a read whose key has a known unexpired set is answered with it at
 * once, every other call fails at once, and then a single call probes the store again; the first
 * call that succeeds ends the outage. So a store that is down costs callers holding a valid token
 * nothing, instead of the store's timeout on every call.
 */
import { inspect } from 'node:util';
import { z } from 'zod';
import { ConfigurationError, TokenStoreError } from '../errors.js';
import type { TokenStoreOperation } from '../errors.js';
import { freezeTokenSet } from '../token-set.js';
import type { TokenSet } from '../token-set.js';
import type { StoreLock, TokenStore } from '../token-store.js';
import { backoffMs } from './backoff.js';
import { NearCache } from './near-cache.js';
import { Redactor } from './redact.js';
import { RefreshScheduler } from './refresh-scheduler.js';

/** The operations a TokenManager reports in `store.failed`. */
export type StoreOperation = Extract<TokenStoreOperation, 'get' | 'set' | 'delete' | 'lock'>;

export interface StoreViewOptions {
  store: TokenStore;
  /** Bound on every call (a `lock` gets its `waitMs` on top). */
  timeoutMs: number;
  /** Whether this manager may use a token set (its DPoP binding). */
  usable: (tokens: TokenSet) => boolean;
  /**
   * Why a token set the store holds is not this manager's at all (another issuer or client: a
   * mis-keyed or shared store), or `undefined` when it is. Such a set is refused, never served.
   */
  foreign: (key: string, tokens: TokenSet) => string | undefined;
  skewMs: number;
  now: () => number;
  /** Backoff of background write-backs. */
  retry: { minDelayMs: number; maxDelayMs: number };
  /** Every failed call, already a redacted `TokenStoreError`. */
  onFailure: (key: string, operation: StoreOperation, error: TokenStoreError) => void;
  /** The store's `subscribe()`, wrapped by the caller (it may throw a configuration error). */
  subscribe?: (
    onChange: (key: string) => void,
    options: { onReset: () => void; onDisconnect: () => void },
  ) => () => void;
}

/** The newest token set of a key, as far as this process knows. */
interface Known {
  tokens: TokenSet;
  /**
   * Access and refresh tokens of the sets it replaced, newest first: a stored set holding one is
   * older. Once the store holds `tokens`, only the set it directly replaced is kept (a lagging
   * replica or writer can still hand that one back); while it does not, the whole lineage is.
   */
  replaced: string[];
  /** How many of `replaced` belong to the set it directly replaced. */
  recent: number;
  /** The store may not hold it: a write failed, or the store was found behind. */
  unsaved: boolean;
  /** {@link StoreView.#epoch} when the store last confirmed what it holds for the key. */
  confirmedEpoch: number;
}

/** How many replaced tokens are remembered per key at most (while the store is behind). */
const MAX_REPLACED = 16;

/** A store that failed: no call is sent before `until`, and then one probe at a time. */
interface Outage {
  until: number;
  failures: number;
  /** The failure that started or extended it (already redacted). */
  error: TokenStoreError;
  probing: boolean;
}

const optionalString = z.string().optional();
/** What a store must hand back: a token set (`null` counts as missing). */
const storedTokenSetSchema = z.looseObject({
  accessToken: z.string({ error: 'must be a string' }).min(1, 'must not be empty'),
  tokenType: z.string({ error: 'must be a string' }).min(1, 'must not be empty'),
  expiresAt: z
    .number({ error: 'must be a number' })
    .refine(Number.isFinite, 'must be a finite number')
    .optional(),
  refreshToken: optionalString,
  idToken: optionalString,
  scope: optionalString,
  dpopJkt: optionalString,
  issuer: optionalString,
  clientId: optionalString,
  extra: z.record(z.string(), z.unknown(), { error: 'must be an object' }).optional(),
});
const versionedSchema = z.looseObject({
  tokens: z.unknown(),
  version: z.number({ error: 'must be a number' }).refine(Number.isFinite, 'must be a finite number'),
});

export class StoreView {
  readonly #store: TokenStore;
  readonly #timeoutMs: number;
  readonly #usable: (tokens: TokenSet) => boolean;
  readonly #foreign: StoreViewOptions['foreign'];
  readonly #now: () => number;
  readonly #retry: { minDelayMs: number; maxDelayMs: number };
  readonly #onFailure: StoreViewOptions['onFailure'];
  /** Token sets known to match the store; only with a change feed. */
  readonly #cache: NearCache | undefined;
  /** Bumped on every change notice of a key, so a read that raced with a change is not cached. */
  readonly #generations = new Map<string, number>();
  readonly #known = new Map<string, Known>();
  /** Bumped on every store failure and feed reset: what the store holds may have been lost since. */
  #epoch = 0;
  /** Values the store handed back that were checked already (a memory store returns the same object). */
  readonly #checked = new WeakSet<object>();
  readonly #writeBacks: RefreshScheduler;
  readonly #writeBackAttempts = new Map<string, number>();
  readonly #writing = new Set<string>();
  /** Keys served from memory during an outage, to reconcile with the store once it is back. */
  readonly #recheck = new Set<string>();
  readonly #unsubscribe: (() => void) | undefined;
  #closed = false;
  /** Ends the stoppable calls in flight (lock waits) when the view is stopped. */
  readonly #stoppers = new Set<(reason: TokenStoreError) => void>();
  #stopped = false;
  #outage: Outage | undefined;
  /** Errors about what a store handed back (not a sign the store is down). */
  readonly #malformed = new WeakSet<object>();

  constructor(options: StoreViewOptions) {
    this.#store = options.store;
    this.#timeoutMs = options.timeoutMs;
    this.#usable = options.usable;
    this.#foreign = options.foreign;
    this.#now = options.now;
    this.#retry = options.retry;
    this.#onFailure = options.onFailure;
    this.#writeBacks = new RefreshScheduler(options.now, (key) => void this.#writeBack(key));
    if (options.subscribe !== undefined) {
      this.#cache = new NearCache(options.usable, options.skewMs);
      this.#unsubscribe = options.subscribe((key) => this.#changed(key), {
        onReset: () => this.#reset(),
        // The store is out of reach and may come back empty; the cache stays (nobody writes to it meanwhile).
        onDisconnect: () => void (this.#epoch += 1),
      });
    }
  }

  /** The cached access token of `key` if usable and fresh at `nowMs` (the hot path: no await). */
  fresh(key: string, nowMs: number): string | undefined {
    return this.#cache?.fresh(key, nowMs);
  }

  /** Re-evaluates a cached entry (e.g. once the DPoP thumbprint is known). */
  recache(key: string, tokens: TokenSet): void {
    if (this.#cache?.get(key) === tokens) this.#cache.set(key, tokens);
  }

  /** The newest token set this process knows of `key`, whatever the store says now. */
  lastKnown(key: string): TokenSet | undefined {
    return this.#known.get(key)?.tokens;
  }

  /** The token set of `key`: cached, or read and reconciled with the newest known one. */
  async read(key: string, options: { bypassCache?: boolean } = {}): Promise<TokenSet | undefined> {
    const cache = this.#cache;
    if (cache !== undefined && !options.bypassCache) {
      const cached = cache.get(key);
      if (cached !== undefined) return cached ?? undefined;
    }
    // The store failed lately: a known set that still works is the answer, at once. Once the
    // outage's window is over, the store is probed behind the answer.
    const known = this.#known.get(key)?.tokens;
    if (this.#outage !== undefined && known !== undefined && !this.#expired(known)) {
      if (this.#resting())
        this.#recheckLater(key); // the store may come back without it: see then
      else this.#readStore(key).catch(() => undefined); // reported as store.failed
      return known;
    }
    return this.#readStore(key);
  }

  async #readStore(key: string): Promise<TokenSet | undefined> {
    const cache = this.#cache;
    const generation = this.#generations.get(key);
    const epoch = this.#epoch;
    const stored = this.#refuseForeign(
      key,
      await this.#call(key, 'get', async () => this.#tokenSet(key, await this.#store.get(key))),
    );
    const tokens = this.#reconcile(key, stored, epoch);
    if (cache !== undefined && this.#generations.get(key) === generation) cache.set(key, tokens ?? null);
    return tokens;
  }

  /** Like {@link read}, bypassing the cache, with the store's version where it has versions. */
  async readVersioned(key: string): Promise<{ tokens: TokenSet | undefined; version?: number }> {
    if (this.#store.getVersioned === undefined)
      return { tokens: await this.read(key, { bypassCache: true }) };
    const epoch = this.#epoch;
    const found = await this.#getVersioned(key);
    this.#refuseForeign(key, found?.tokens);
    return { tokens: this.#reconcile(key, found?.tokens, epoch), version: found?.version ?? 0 };
  }

  /**
   * Stores a token set that replaces whatever the key had (e.g. from `storeTokens()`). On failure it
   * rejects, yet the set is kept as the newest and written back later: it may be all there is.
   */
  async write(key: string, tokens: TokenSet): Promise<void> {
    const known = this.#replace(key, tokens, this.#known.get(key)?.tokens);
    try {
      await this.#call(key, 'set', () => this.#store.set(key, tokens));
    } catch (error) {
      this.#cache?.set(key, tokens);
      this.#scheduleWriteBack(key);
      throw error;
    }
    this.#saved(key, known);
  }

  /**
   * Writes a renewed token set that replaces `replaces`: conditionally on `version` where the store
   * can, so a stale writer (whose lock expired) cannot overwrite a newer set; on a conflict the
   * newer set is returned. A failed write does not reject: the new set is returned, kept as the
   * newest, and written back in the background (the old refresh token may already be spent).
   */
  async writeRenewed(
    key: string,
    tokens: TokenSet,
    version: number | undefined,
    replaces: TokenSet | undefined,
  ): Promise<TokenSet> {
    const store = this.#store;
    const known = this.#replace(key, tokens, replaces);
    try {
      if (version !== undefined && store.setIfVersion !== undefined) {
        const written = await this.#call(key, 'set', () => store.setIfVersion!(key, tokens, version));
        if (!written) {
          const latest = await this.read(key, { bypassCache: true });
          if (latest !== undefined && latest !== tokens && this.#usable(latest)) return latest;
          await this.#call(key, 'set', () => store.set(key, tokens));
        }
      } else {
        await this.#call(key, 'set', () => store.set(key, tokens));
      }
      this.#saved(key, known);
    } catch {
      // Reported as store.failed; serve what we have and keep trying to write it.
      this.#cache?.set(key, tokens);
      this.#scheduleWriteBack(key);
    }
    return tokens;
  }

  /** Deletes the key in the store and forgets it here. */
  async delete(key: string): Promise<void> {
    // Forgotten here whatever the store does: nothing is written back, nothing served from memory.
    this.#forget(key);
    this.#cache?.set(key, null);
    await this.#call(key, 'delete', () => this.#store.delete(key));
  }

  /** The store's cross-process lock, bounded by `waitMs` plus the store timeout. */
  lock(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock> {
    return this.#call(key, 'lock', () => this.#store.lock!(key, options), {
      boundMs: options.waitMs + this.#timeoutMs,
      stoppable: true,
      // A lock granted after we gave up would block everyone else until its TTL: give it back.
      late: (lock) => void Promise.resolve(lock?.release?.()).catch(() => undefined),
    });
  }

  /**
   * The first step of closing: lock waits end at once (nothing was sent yet, so giving up is safe),
   * and nothing new is scheduled.
   */
  stop(): void {
    this.#stopped = true;
    for (const stop of [...this.#stoppers])
      stop(new TokenStoreError('lock', 'the TokenManager was closed while waiting for the store lock'));
    this.#writeBacks.close();
  }

  /** One last attempt to write back every token set the store may not have (bounded like any call). */
  async flush(): Promise<void> {
    const unsaved = [...this.#known].filter(([, known]) => known.unsaved).map(([key]) => key);
    await Promise.allSettled(unsaved.map((key) => this.#writeBack(key, { force: true })));
  }

  close(): void {
    this.stop();
    this.#closed = true;
    this.#unsubscribe?.();
    this.#cache?.clear();
  }

  // --- reconciling the store with the newest known set --------------------------------------------

  /**
   * Which token set of `key` counts, given what the store holds now (`stored`, read when the epoch
   * was `epoch`): see the module comment. Writes the newest known set back when the store is behind.
   */
  #reconcile(key: string, stored: TokenSet | undefined, epoch: number): TokenSet | undefined {
    const known = this.#known.get(key);
    if (known === undefined) {
      if (stored !== undefined)
        this.#known.set(key, {
          tokens: stored,
          replaced: [],
          recent: 0,
          unsaved: false,
          confirmedEpoch: epoch,
        });
      return stored;
    }
    if (stored !== undefined && stored.accessToken === known.tokens.accessToken) {
      known.tokens = stored;
      this.#confirmed(key, known, epoch);
      return stored;
    }
    if (stored !== undefined && !isReplacedBy(stored, known)) {
      this.#confirmed(key, this.#replace(key, stored, known.tokens), epoch); // someone else's newer set
      return stored;
    }
    // The store is behind: it holds an older set, or nothing although it may have lost the key.
    // (The epoch now, not at the start of the read: a reset may arrive while the read is under way.)
    const lost = stored !== undefined || known.unsaved || known.confirmedEpoch !== this.#epoch;
    if (!lost || !this.#canStillWork(known.tokens)) {
      if (stored === undefined) this.#forget(key); // deleted on purpose (or worthless)
      return stored;
    }
    known.unsaved = true;
    void this.#writeBack(key);
    return known.tokens;
  }

  /** Makes `tokens` the newest set of `key`, replacing `replaced` (an older set) and its lineage. */
  #replace(key: string, tokens: TokenSet, replaced: TokenSet | undefined): Known {
    const previous = this.#known.get(key);
    const current = (list: Array<string | undefined>): string[] =>
      list.filter(
        (token): token is string =>
          token !== undefined && token !== tokens.accessToken && token !== tokens.refreshToken,
      );
    const recent = current(replaced === undefined ? [] : [replaced.accessToken, replaced.refreshToken]);
    const older = current([
      ...(previous === undefined || previous.tokens === replaced
        ? []
        : [previous.tokens.accessToken, previous.tokens.refreshToken]),
      ...(previous?.replaced ?? []),
    ]);
    const known: Known = {
      tokens,
      replaced: [...new Set([...recent, ...older])].slice(0, MAX_REPLACED),
      recent: recent.length,
      unsaved: true,
      confirmedEpoch: previous?.confirmedEpoch ?? this.#epoch,
    };
    this.#known.set(key, known);
    return known;
  }

  /** The store holds `known` (as of `epoch`): nothing to write back. */
  #confirmed(key: string, known: Known, epoch: number): void {
    known.unsaved = false;
    this.#recheck.delete(key);
    if (known.replaced.length > known.recent) known.replaced = known.replaced.slice(0, known.recent);
    known.confirmedEpoch = epoch;
    this.#writeBackAttempts.delete(key);
    this.#writeBacks.cancel(key);
  }

  /** Our own write of `known` landed. */
  #saved(key: string, known: Known): void {
    this.#confirmed(key, known, this.#epoch);
    this.#cache?.set(key, known.tokens);
  }

  #forget(key: string): void {
    this.#known.delete(key);
    this.#recheck.delete(key);
    this.#writeBackAttempts.delete(key);
    this.#writeBacks.cancel(key);
  }

  /** A set worth keeping: it has a refresh token, or an access token that has not expired. */
  #canStillWork(tokens: TokenSet): boolean {
    return (
      tokens.refreshToken !== undefined ||
      tokens.expiresAt === undefined ||
      this.#now() < tokens.expiresAt * 1000
    );
  }

  /**
   * Writes the newest known set of `key` back, conditionally where the store can: only over what
   * was just read (an older set or nothing), never over a newer set written meanwhile.
   */
  async #writeBack(key: string, options: { force?: boolean } = {}): Promise<void> {
    const known = this.#known.get(key);
    if (
      this.#closed ||
      known === undefined ||
      (!known.unsaved && !this.#recheck.has(key)) ||
      this.#writing.has(key)
    )
      return;
    this.#writing.add(key);
    const store = this.#store;
    const conditional = store.getVersioned !== undefined && store.setIfVersion !== undefined;
    try {
      const epoch = this.#epoch;
      const found = conditional
        ? await this.#getVersioned(key, options)
        : {
            tokens: await this.#call(
              key,
              'get',
              async () => this.#tokenSet(key, await store.get(key)),
              options,
            ),
            version: 0,
          };
      this.#refuseForeign(key, found?.tokens); // never written over: it is someone else's
      this.#recheck.delete(key);
      if (this.#known.get(key) !== known) return; // superseded meanwhile: its own write persists it
      // Still behind? (Another process may have written a newer set, or ours, meanwhile.)
      if (this.#reconcile(key, found?.tokens, epoch) !== known.tokens || !known.unsaved) return;
      if (conditional) {
        if (
          !(await this.#call(
            key,
            'set',
            () => store.setIfVersion!(key, known.tokens, found?.version ?? 0),
            options,
          ))
        ) {
          this.#scheduleWriteBack(key); // changed between the read and the write: look again
          return;
        }
      } else {
        await this.#call(key, 'set', () => store.set(key, known.tokens), options);
      }
      if (this.#known.get(key) === known) this.#saved(key, known);
    } catch (error) {
      // Someone else's set holds the key: it is never written over, so retrying is pointless (ours
      // stays known here, and every call on the key says what is wrong).
      if (error instanceof ConfigurationError) this.#recheck.delete(key);
      else this.#scheduleWriteBack(key);
    } finally {
      this.#writing.delete(key);
    }
  }

  #recheckLater(key: string): void {
    if (this.#closed || this.#recheck.has(key)) return;
    this.#recheck.add(key);
    this.#writeBacks.schedule(key, this.#outage?.until ?? this.#now());
  }

  #scheduleWriteBack(key: string): void {
    if (this.#closed) return;
    const attempt = this.#writeBackAttempts.get(key) ?? 0;
    this.#writeBackAttempts.set(key, attempt + 1);
    this.#writeBacks.schedule(
      key,
      this.#now() + backoffMs(attempt, this.#retry.minDelayMs, this.#retry.maxDelayMs),
    );
  }

  // --- the change feed ------------------------------------------------------------------------------

  #changed(key: string): void {
    this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
    this.#cache?.delete(key);
    // Fresh word from the store about this key: an empty read from now on is a deletion.
    const known = this.#known.get(key);
    if (known !== undefined && !known.unsaved) known.confirmedEpoch = this.#epoch;
  }

  /** The feed may have missed changes (a reconnect; the store may have restarted empty). */
  #reset(): void {
    this.#epoch += 1;
    for (const key of this.#cache?.keys() ?? [])
      this.#generations.set(key, (this.#generations.get(key) ?? 0) + 1);
    this.#cache?.clear();
  }

  // --- bounded, checked, redacted calls -------------------------------------------------------------

  async #getVersioned(
    key: string,
    options: { force?: boolean } = {},
  ): Promise<{ tokens: TokenSet; version: number } | undefined> {
    return this.#call(
      key,
      'get',
      async () => {
        const found: unknown = await this.#store.getVersioned!(key);
        if (found === undefined || found === null) return undefined;
        const parsed = versionedSchema.safeParse(found);
        if (!parsed.success) throw this.#isMalformed(notATokenSet(key, parsed.error, 'getVersioned'));
        const tokens = this.#tokenSet(key, parsed.data.tokens, 'getVersioned');
        return tokens === undefined ? undefined : { tokens, version: parsed.data.version };
      },
      options,
    );
  }

  /**
   * `tokens`, unless they are another issuer's or client's: then a `ConfigurationError` (two
   * managers share store keys they should not; serving the set would hand a token to the wrong
   * caller, and overwriting it would destroy someone else's grant).
   */
  #refuseForeign(key: string, tokens: TokenSet | undefined): TokenSet | undefined {
    const why = tokens === undefined ? undefined : this.#foreign(key, tokens);
    if (why !== undefined) throw new ConfigurationError('INVALID_CONFIGURATION', why);
    return tokens;
  }

  #expired(tokens: TokenSet): boolean {
    return tokens.expiresAt !== undefined && this.#now() >= tokens.expiresAt * 1000;
  }

  // --- outages ----------------------------------------------------------------------------------------

  /** Whether calls are held back now: inside the outage's window, or while its probe runs. */
  #resting(): boolean {
    const outage = this.#outage;
    return outage !== undefined && (outage.probing || this.#now() < outage.until);
  }

  /** A call held back during an outage: it fails at once with what the store last did. */
  #heldBack(operation: StoreOperation, outage: Outage): TokenStoreError {
    const next = Math.max(0, Math.ceil(outage.until - this.#now()));
    const when = outage.probing ? 'a probe is under way' : `the next attempt is in ${next} ms`;
    return new TokenStoreError(
      operation,
      `token store unavailable (${outage.error.message}); ${operation} not sent, ${when}`,
      { cause: outage.error },
    );
  }

  #failed(error: TokenStoreError): void {
    const failures = (this.#outage?.failures ?? 0) + 1;
    const restMs = backoffMs(failures - 1, this.#retry.minDelayMs, this.#retry.maxDelayMs);
    this.#outage = { until: this.#now() + restMs, failures, error, probing: false };
  }

  /** A store's answer as a token set: `null` and `undefined` are missing; anything else is checked. */
  #tokenSet(key: string, value: unknown, method = 'get'): TokenSet | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'object' && this.#checked.has(value)) return value as TokenSet;
    const parsed = storedTokenSetSchema.safeParse(value);
    if (!parsed.success) throw this.#isMalformed(notATokenSet(key, parsed.error, method));
    // Keep a store's own frozen, redacting copy; otherwise make one.
    const tokens =
      Object.isFrozen(value) && Object.getOwnPropertySymbols(value).includes(inspect.custom)
        ? (value as TokenSet)
        : freezeTokenSet(value as TokenSet);
    this.#checked.add(tokens);
    return tokens;
  }

  #isMalformed(error: TokenStoreError): TokenStoreError {
    this.#malformed.add(error);
    return error;
  }

  /**
   * Runs one store call within `boundMs`. Any failure becomes a `TokenStoreError` with no token of
   * the key in any text (a driver's message may quote the value it failed to write), is reported
   * through `onFailure`, and marks the store as possibly behind (a new epoch).
   */
  async #call<T>(
    key: string,
    operation: StoreOperation,
    run: () => Promise<T>,
    options: { boundMs?: number; late?: (value: T) => void; stoppable?: boolean; force?: boolean } = {},
  ): Promise<T> {
    const outage = this.#outage;
    let probe = false;
    if (outage !== undefined && !options.force) {
      // A lock waits up to its waitMs: it would hold every other call back that long. Reads probe.
      if (this.#resting() || options.stoppable) throw this.#heldBack(operation, outage);
      outage.probing = probe = true;
    }
    const boundMs = options.boundMs ?? this.#timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let stopper: ((reason: TokenStoreError) => void) | undefined;
    let overdue: TokenStoreError | undefined;
    try {
      const pending = Promise.resolve().then(run);
      // The deadline, and for a stoppable call the view being stopped (a per-call registration: a
      // shared promise that never settles would collect a reaction per call, forever).
      const deadline = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          overdue = new TokenStoreError(
            operation,
            `token store ${operation} of "${key}" did not settle within ${boundMs} ms`,
          );
          reject(overdue);
        }, boundMs);
        if (options.stoppable) {
          if (this.#stopped) reject(new TokenStoreError(operation, 'the TokenManager was closed'));
          stopper = reject;
          this.#stoppers.add(stopper);
        }
      });
      const raced = Promise.race([pending, deadline]);
      // A result that lost the race (it came after the deadline or a stop) goes to `late`.
      pending.then(
        (value) =>
          raced.then(
            (won) => won !== value && options.late?.(value),
            () => options.late?.(value),
          ),
        () => undefined, // a late failure, after the deadline, is of no interest
      );
      const value = await raced;
      this.#outage = undefined; // it answered
      return value;
    } catch (cause) {
      this.#epoch += 1;
      const error = TokenStoreError.from(operation, cause);
      this.#redactor(key).redactError(error);
      // The store is down when it does not answer, or cannot read: not when it answers with
      // garbage, refuses one write, or has a busy lock.
      const down =
        !this.#stopped && (error === overdue || (operation === 'get' && !this.#malformed.has(error)));
      // An outage starts with the first failure and grows with each failed probe only: calls that
      // were already under way when it started fail with it, and must not stretch it.
      if (down && (this.#outage === undefined || probe)) this.#failed(error);
      else if (probe && this.#outage !== undefined) this.#outage.probing = false;
      this.#onFailure(key, operation, error);
      throw error;
    } finally {
      clearTimeout(timer);
      if (stopper !== undefined) this.#stoppers.delete(stopper);
    }
  }

  /** The tokens of `key` this process knows, old and new, for redacting a store's error. */
  #redactor(key: string): Redactor {
    const known = this.#known.get(key);
    if (known === undefined) return Redactor.NONE;
    const { accessToken, refreshToken, idToken } = known.tokens;
    return new Redactor([accessToken, refreshToken, idToken, ...known.replaced]);
  }
}

/** Whether `stored` is one of the sets `known` replaced (so older than it). */
function isReplacedBy(stored: TokenSet, known: Known): boolean {
  return (
    known.replaced.includes(stored.accessToken) ||
    (stored.refreshToken !== undefined &&
      stored.refreshToken !== known.tokens.refreshToken &&
      known.replaced.includes(stored.refreshToken))
  );
}

function notATokenSet(key: string, error: z.ZodError, method: string): TokenStoreError {
  const issue = error.issues[0]!;
  const path = issue.path.map(String).join('.');
  return new TokenStoreError(
    'get',
    `token store ${method}("${key}") returned something that is not a token set: ${path === '' ? 'not an object' : `${path} ${issue.message}`}`,
  );
}
