import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { ConfigurationError, TokenStoreError, freezeTokenSet } from '@tessera/core';
import type { StoreLock, TokenSet, TokenStore, TokenStoreOperation, VersionedTokenSet } from '@tessera/core';
import { closeConnection, pubSubConnection, safely } from './pubsub.js';
import { DELETE, RELEASE_LOCK, SET_IF_VERSION, runScript } from './scripts.js';

/** Pause between two lock attempts while Redis fails (a failover), in milliseconds. */
const LOCK_RETRY_MS = 100;

/** Resolves after `ms` without keeping the process alive. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** Where a Redis Sentinel listens. */
export interface SentinelAddress {
  /** Host name or IP address. */
  host: string;
  /** Port (Sentinel's default is 26379). */
  port: number;
}

/** How long a write waits for replicas to acknowledge it (`WAIT`). */
export interface ReplicaWait {
  /** How many replicas must acknowledge each write (a positive integer). */
  replicas: number;
  /** How long to wait for them, in milliseconds (a positive integer). */
  timeoutMs: number;
}

/** Options of a {@link RedisTokenStore}. */
export interface RedisTokenStoreOptions {
  /** An ioredis `Redis` (standalone or Sentinel) or `Cluster` client that the caller owns and closes. */
  client?: Redis | Cluster;
  /** Or a URL: the store then creates its own client (lazily connected) and closes it in `close()`. */
  url?: string;
  /**
   * Or Redis Sentinel: the sentinels' addresses, with {@link RedisTokenStoreOptions.name}; the store
   * creates its own client that follows the primary through failovers, and closes it in `close()`.
   */
  sentinels?: readonly SentinelAddress[];
  /** The name the sentinels know the primary by (`SENTINEL MONITOR <name> ...`); with `sentinels`. */
  name?: string;
  /** Prefix of every Redis key and channel of this store. @default 'tessera:' */
  keyPrefix?: string;
  /**
   * Expiry of a token set whose refresh-token lifetime is unknown, in seconds; a key never expires
   * before its access token does. @default 2_592_000 (30 days)
   */
  maxTtlSeconds?: number;
  /** Every store call rejects with `TokenStoreError` after this long, e.g. while Redis is down. @default 2000 */
  commandTimeoutMs?: number;
  /**
   * Durability of writes under asynchronous replication: after each write of a token set, and
   * after taking a lock, wait (`WAIT`) until `replicas` replicas have acknowledged it, for
   * `timeoutMs` at most. A rotated refresh token written to a primary that dies before replicating
   * it is otherwise gone after the failover, and the next refresh presents the spent one; a lock
   * the promoted replica never saw lets a second process refresh the same grant.
   *
   * Fewer acknowledgements within `timeoutMs` reject with `TokenStoreError`: a write stays on the
   * primary (the TokenManager reports `store.failed`, keeps the token set and writes it again
   * later); a lock is given back, so no refresh runs while no replica can vouch for the lock
   * (exactly-once is kept over availability; the manager still uses a token set another process
   * wrote). `false`: no waiting.
   * @default `{ replicas: 1, timeoutMs: 1000 }` on Sentinel (`sentinels`, or a client configured
   *   with them), `false` otherwise.
   */
  waitForReplicas?: ReplicaWait | false;
}

type ChangeListener = {
  onChange: (key: string) => void;
  onReset?: (() => void) | undefined;
  onDisconnect?: (() => void) | undefined;
};

/**
 * A {@link TokenStore} in Redis (standalone, Sentinel or Cluster, through ioredis), for a fleet of
 * processes that share tokens:
 * - each token set is a hash with a version; writes can be compare-and-set (`setIfVersion`, a Lua
 *   script), so a stale writer cannot overwrite a newer token set;
 * - `lock()` is `SET NX PX` with a random owner, released by compare-and-delete; waiters are woken
 *   by pub/sub, and a lock whose holder died expires after its TTL;
 * - `subscribe()` is a change feed over pub/sub, which a TokenManager uses to keep a near-cache;
 * - a key's data and lock share one hash slot (`prefix{key}:data`, `prefix{key}:lock`);
 * - every call rejects with `TokenStoreError` within `commandTimeoutMs` when Redis is unavailable,
 *   and works again when it is back.
 *
 * It never connects on import; with `{ client }` it uses the caller's connection and opens one more
 * (a duplicate) for pub/sub, only when `lock()` has to wait or `subscribe()` is called.
 *
 * @example
 * ```ts
 * const redis = new Redis(process.env.REDIS_URL);
 * const store = new RedisTokenStore({ client: redis });
 * const manager = new TokenManager({ client, store, grant: 'client_credentials' });
 * ```
 */
export class RedisTokenStore implements TokenStore {
  readonly #client: Redis | Cluster;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #maxTtlMs: number;
  readonly #timeoutMs: number;
  readonly #waitForReplicas: ReplicaWait | undefined;
  readonly #changes: string;
  readonly #unlocks: string;
  readonly #listeners = new Set<ChangeListener>();
  readonly #lockWaiters = new Map<string, Set<() => void>>();
  #subscriber: Redis | undefined;
  #subscribed: Promise<void> | undefined;
  #subscriberUp = false;
  #closed = false;

  /**
   * Checks the options; connects nothing until the first call.
   *
   * @param options - `{ client }` or `{ url }`, and the rest of {@link RedisTokenStoreOptions}.
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option.
   */
  constructor(options: RedisTokenStoreOptions) {
    checkOptions(options);
    this.#ownsClient = options.client === undefined;
    const owned = { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000 } as const;
    this.#client =
      options.client ??
      (options.sentinels === undefined
        ? new Redis(options.url!, owned)
        : new Redis({ ...owned, sentinels: [...options.sentinels], name: options.name! }));
    if (this.#ownsClient) this.#client.on('error', () => undefined); // failures surface per call
    this.#prefix = options.keyPrefix ?? 'tessera:';
    this.#maxTtlMs = (options.maxTtlSeconds ?? 30 * 24 * 3600) * 1000;
    this.#timeoutMs = options.commandTimeoutMs ?? 2000;
    const onSentinel =
      options.sentinels !== undefined || ((this.#client as Redis).options?.sentinels?.length ?? 0) > 0;
    const wait = options.waitForReplicas ?? (onSentinel ? { replicas: 1, timeoutMs: 1000 } : false);
    this.#waitForReplicas = wait === false ? undefined : { ...wait };
    this.#changes = `${this.#prefix}changes`;
    this.#unlocks = `${this.#prefix}unlocks`;
  }

  /** The token set of `key`, or `undefined`; rejects with `TokenStoreError` within `commandTimeoutMs`. */
  async get(key: string): Promise<TokenSet | undefined> {
    return (await this.getVersioned(key))?.tokens;
  }

  /** The token set of `key` with its version (one `HMGET`), or `undefined`. */
  async getVersioned(key: string): Promise<VersionedTokenSet | undefined> {
    const [version, json] = await this.#call('get', () => this.#client.hmget(this.#dataKey(key), 'v', 't'));
    if (json === null || json === undefined) return undefined;
    try {
      return { tokens: freezeTokenSet(JSON.parse(json) as TokenSet), version: Number(version) };
    } catch (cause) {
      throw TokenStoreError.from('get', cause, {
        message: `redis token store: the value of "${key}" is not a token set`,
      });
    }
  }

  /** Writes `tokens` (a new version), sets the key's expiry, and publishes the change. */
  async set(key: string, tokens: TokenSet): Promise<void> {
    await this.#write(key, tokens, '');
  }

  /** Writes `tokens` only if the stored version is still `version` (0: absent), in one Lua script; `false` on a conflict. */
  async setIfVersion(key: string, tokens: TokenSet, version: number): Promise<boolean> {
    return (await this.#write(key, tokens, String(version))) !== -1;
  }

  /** Deletes `key` and publishes the change. */
  async delete(key: string): Promise<void> {
    await this.#call('delete', () =>
      runScript(this.#client, DELETE, [this.#dataKey(key)], [this.#changes, key]),
    );
  }

  /**
   * Takes the lock of `key` (`SET NX PX` with a random owner), waiting up to `waitMs` for its
   * release (woken by pub/sub) or its expiry; rejects with `TokenStoreError` after that. While it
   * waits, Redis failing (a failover) is waited through; Redis failing at the first attempt rejects
   * at once. With `waitForReplicas`, a lock no replica acknowledged is given back and rejects.
   */
  async lock(key: string, options: { ttlMs: number; waitMs: number }): Promise<StoreLock> {
    const { ttlMs, waitMs } = options;
    if (!(ttlMs > 0) || !(waitMs >= 0))
      throw new TokenStoreError('lock', 'redis token store: ttlMs must be positive and waitMs non-negative');
    const lockKey = this.#lockKey(key);
    const owner = randomUUID();
    const deadline = Date.now() + waitMs;
    let listening = false;
    // Once Redis has said the lock is busy, a failure (a failover, a node restarting) is waited
    // through until the deadline: the holder may release it on the new primary. A failure before
    // that (Redis away) rejects at once.
    let busy = false;
    let failure: unknown;
    const attempt = async <T>(command: () => Promise<T>): Promise<T | undefined> => {
      try {
        const result = await this.#call('lock', command);
        failure = undefined;
        return result;
      } catch (error) {
        if (!busy || this.#closed) throw error;
        failure = error;
        return undefined;
      }
    };
    for (;;) {
      const acquired = await attempt(() => this.#client.set(lockKey, owner, 'PX', Math.ceil(ttlMs), 'NX'));
      if (acquired === 'OK') {
        const held = this.#heldLock(key, lockKey, owner);
        if (this.#waitForReplicas === undefined) return held;
        try {
          await this.#replicated('lock', lockKey, `the lock of "${key}"`);
        } catch (error) {
          // Held on the primary only: a failover now would let another process take it too.
          await held.release().catch(() => undefined);
          throw error;
        }
        return held;
      }
      busy = true;
      const remaining = deadline - Date.now();
      if (remaining <= 0)
        throw new TokenStoreError(
          'lock',
          `redis token store: the lock of "${key}" was not acquired within ${waitMs} ms` +
            (failure === undefined ? '' : '; Redis was failing meanwhile'),
          { cause: failure },
        );
      if (!listening && failure === undefined) {
        // Listen for unlocks first, then try once more: no release can slip between the two.
        await attempt(() => this.#ensureSubscriber());
        listening = failure === undefined;
        continue;
      }
      if (failure !== undefined) {
        await sleep(Math.min(remaining, LOCK_RETRY_MS));
        continue;
      }
      // Woken by the holder's release, or when its TTL runs out (a holder that died never releases).
      // Wait for the release before asking for the TTL: the release's message (on the pub/sub
      // connection) may arrive before the TTL's answer (on this one).
      const wait = this.#waitForUnlock(key);
      const holderTtl = await attempt(() => this.#client.pttl(lockKey));
      const sleepMs = holderTtl === undefined ? LOCK_RETRY_MS : holderTtl > 0 ? holderTtl + 5 : 25;
      await wait.until(Math.min(remaining, sleepMs));
    }
  }

  /**
   * The change feed, over pub/sub on one more connection: `listener(key)` after every write or
   * delete by any process; `onReset` after a reconnect (what was published meanwhile was missed);
   * `onDisconnect` when the connection drops.
   */
  subscribe(
    listener: (key: string) => void,
    options: { onReset?: () => void; onDisconnect?: () => void } = {},
  ): () => void {
    const entry: ChangeListener = {
      onChange: listener,
      onReset: options.onReset,
      onDisconnect: options.onDisconnect,
    };
    this.#listeners.add(entry);
    this.#ensureSubscriber().catch(() => entry.onReset?.()); // not listening yet: caches may be stale
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Closes the pub/sub connection, and the client if the store created it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    for (const waiters of this.#lockWaiters.values()) for (const wake of waiters) wake();
    this.#lockWaiters.clear();
    const connections = [this.#subscriber, this.#ownsClient ? this.#client : undefined];
    await Promise.all(
      connections.map((connection) => (connection === undefined ? undefined : closeConnection(connection))),
    );
  }

  // ---------------------------------------------------------------------------------------------

  async #write(key: string, tokens: TokenSet, expectedVersion: string): Promise<number> {
    let json: string;
    try {
      json = JSON.stringify(tokens);
    } catch (cause) {
      throw TokenStoreError.from('set', cause, {
        message: 'redis token store: the token set is not plain data',
      });
    }
    const dataKey = this.#dataKey(key);
    const result = Number(
      await this.#call('set', () =>
        runScript(
          this.#client,
          SET_IF_VERSION,
          [dataKey],
          [expectedVersion, json, String(this.#ttlMs(tokens)), this.#changes, key],
        ),
      ),
    );
    if (result !== -1 && this.#waitForReplicas !== undefined)
      await this.#replicated('set', dataKey, `the write of "${key}"`);
    return result;
  }

  /**
   * Waits until the write just made to `redisKey` (a token set, or a lock just taken) has reached
   * `waitForReplicas.replicas` replicas. `WAIT` counts the writes of its own connection: it is sent
   * on the connection of the key's node, in a pipeline behind a read of the key, which is how a
   * Cluster routes it there.
   * @param what - the write, for the error: `the write of "key"`, `the lock of "key"`.
   * @throws TokenStoreError when fewer replicas acknowledged it in time.
   */
  async #replicated(operation: 'set' | 'lock', redisKey: string, what: string): Promise<void> {
    const { replicas, timeoutMs } = this.#waitForReplicas!;
    const results = await this.#call(
      operation,
      () => this.#client.pipeline().exists(redisKey).wait(replicas, timeoutMs).exec(),
      this.#timeoutMs + timeoutMs,
    );
    const [error, acknowledged] = results?.[1] ?? [null, 0];
    if (error) throw TokenStoreError.from(operation, error, { store: 'redis token store' });
    if (Number(acknowledged) >= replicas) return;
    const risk =
      operation === 'set'
        ? 'it is on the primary only, and a failover now would lose it'
        : 'it was given back, since a failover now would let another process take it too';
    throw new TokenStoreError(
      operation,
      `redis token store: ${what} reached ${Number(acknowledged)} of the ${replicas} replicas waited for within ${timeoutMs} ms (WAIT); ${risk}`,
    );
  }

  /**
   * How long Redis keeps a token set: the refresh token's lifetime when known (`refresh_expires_in`,
   * as Keycloak sends), else `maxTtlSeconds` when there is a refresh token, else the access token's;
   * never shorter than the access token's.
   */
  #ttlMs(tokens: TokenSet): number {
    const accessMs = tokens.expiresAt === undefined ? undefined : tokens.expiresAt * 1000 - Date.now();
    const refreshSeconds = Number(tokens.extra?.refresh_expires_in);
    let ttl =
      tokens.refreshToken !== undefined
        ? Number.isFinite(refreshSeconds) && refreshSeconds > 0
          ? refreshSeconds * 1000
          : this.#maxTtlMs
        : (accessMs ?? this.#maxTtlMs);
    if (accessMs !== undefined) ttl = Math.max(ttl, accessMs);
    return Math.max(1000, Math.ceil(ttl));
  }

  /** A held lock: `release()` once released stays so; one that failed (Redis away) can be tried again. */
  #heldLock(key: string, lockKey: string, owner: string): StoreLock {
    let released: Promise<void> | undefined;
    return {
      release: () =>
        (released ??= this.#call('lock', () =>
          runScript(this.#client, RELEASE_LOCK, [lockKey], [owner, this.#unlocks, key]),
        ).then(
          () => undefined,
          (error: unknown) => {
            released = undefined;
            throw error;
          },
        )),
    };
  }

  /**
   * Registers for the key's next unlock at once; `until(ms)` then waits for it, or `ms` at most.
   */
  #waitForUnlock(key: string): { until(ms: number): Promise<void>; cancel(): void } {
    let waiters = this.#lockWaiters.get(key);
    if (waiters === undefined) this.#lockWaiters.set(key, (waiters = new Set()));
    const set = waiters;
    let woken = false;
    let resolveWait: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const wake = (): void => {
      woken = true;
      clearTimeout(timer);
      set.delete(wake);
      if (set.size === 0 && this.#lockWaiters.get(key) === set) this.#lockWaiters.delete(key);
      resolveWait?.();
    };
    set.add(wake);
    return {
      until: (ms) =>
        new Promise<void>((resolve) => {
          if (woken) return resolve();
          resolveWait = resolve;
          timer = setTimeout(wake, ms);
          timer.unref();
        }),
      cancel: wake,
    };
  }

  /** One extra connection for pub/sub: the change feed and lock releases. */
  #ensureSubscriber(): Promise<void> {
    if (this.#closed) return Promise.reject(new TokenStoreError('subscribe', 'redis token store is closed'));
    this.#subscribed ??= this.#openSubscriber(false).catch((error: unknown) => {
      this.#subscribed = undefined;
      throw error;
    });
    return this.#subscribed;
  }

  /**
   * Opens the pub/sub connection and subscribes. It is always a plain connection that this store
   * resubscribes itself after a reconnect, then wakes the lock waiters and calls every `onReset`
   * (what was published meanwhile was missed): ioredis's own resubscription leaves an unhandled
   * rejection when the connection drops again before Redis answers, and a Cluster's moves its
   * subscriber to another node silently.
   *
   * @param replacing - whether it replaces a connection that was listening (a Cluster node that went
   *   away): its listeners missed changes.
   */
  async #openSubscriber(replacing: boolean, previous?: Redis): Promise<void> {
    const subscriber = await pubSubConnection(this.#client, 'redis token store', previous);
    if (this.#closed) {
      subscriber.disconnect();
      throw new TokenStoreError('subscribe', 'redis token store is closed');
    }
    this.#subscriber = subscriber;
    let wasReady = false;
    // Listening again after a gap: the change feed's listeners and the lock waiters may have
    // missed a message (a waiter that missed its release would sleep until the holder's TTL).
    const reset = (): void => {
      for (const waiters of [...this.#lockWaiters.values()]) for (const wake of [...waiters]) wake();
      for (const { onReset } of this.#listeners) safely(() => onReset?.());
    };
    subscriber.on('error', () => undefined); // reconnects by itself; calls report failures
    subscriber.on('message', (channel: string, key: string) => {
      if (channel === this.#unlocks) {
        for (const wake of [...(this.#lockWaiters.get(key) ?? [])]) wake();
      } else if (channel === this.#changes) {
        for (const { onChange } of this.#listeners) safely(() => onChange(key));
      }
    });
    subscriber.on('ready', () => {
      this.#subscriberUp = true;
      if (!wasReady) {
        wasReady = true;
        return;
      }
      // A reconnect: listen again, then say what was published meanwhile was missed.
      subscriber.subscribe(this.#changes, this.#unlocks).then(
        reset,
        () => undefined, // the connection dropped again: the next 'ready' tries again
      );
    });
    // Redis went away (stopped, crashed, unreachable): it may come back without its data.
    subscriber.on('close', () => {
      if (!this.#subscriberUp) return;
      this.#subscriberUp = false;
      for (const { onDisconnect } of this.#listeners) safely(() => onDisconnect?.());
    });
    // A Cluster node's connection gives up after a few tries: listen on another node.
    subscriber.once('end', () => {
      if (this.#closed || this.#subscriber !== subscriber || !wasReady) return;
      this.#subscriber = undefined;
      this.#resubscribeElsewhere(subscriber);
    });
    try {
      await subscriber.subscribe(this.#changes, this.#unlocks);
    } catch (error) {
      if (this.#subscriber === subscriber) this.#subscriber = undefined;
      subscriber.disconnect();
      throw error;
    }
    if (replacing) reset();
  }

  /** Listens on another node, and keeps trying (once a second) while no node answers. */
  #resubscribeElsewhere(previous: Redis): void {
    const attempt = this.#openSubscriber(true, previous);
    this.#subscribed = attempt;
    attempt.catch(() => {
      if (this.#subscribed === attempt) this.#subscribed = undefined;
      if (this.#closed) return;
      const timer = setTimeout(() => {
        if (!this.#closed && this.#subscribed === undefined) this.#resubscribeElsewhere(previous);
      }, 1000);
      timer.unref();
    });
  }

  /** Runs a command with the store's time bound; every failure becomes a `TokenStoreError`. */
  #call<T>(
    operation: TokenStoreOperation,
    command: () => Promise<T>,
    timeoutMs: number = this.#timeoutMs,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new TokenStoreError(operation, 'redis token store is closed'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new TokenStoreError(
            operation,
            `redis token store: ${operation} did not complete within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      timer.unref();
      command().then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(TokenStoreError.from(operation, error, { store: 'redis token store' }));
        },
      );
    });
  }

  /** Data and lock of one key share a hash slot: the tag is the (brace-free) encoded key. */
  #dataKey(key: string): string {
    return `${this.#prefix}{${encodeURIComponent(key)}}:data`;
  }

  #lockKey(key: string): string {
    return `${this.#prefix}{${encodeURIComponent(key)}}:lock`;
  }
}

/**
 * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option: exactly one of `client`,
 *   `url` and `sentinels` (with `name`), numbers that are positive and finite, and `waitForReplicas`.
 */
function checkOptions(options: unknown): asserts options is RedisTokenStoreOptions {
  const fail = (message: string): never => {
    throw new ConfigurationError('INVALID_CONFIGURATION', `RedisTokenStore ${message}`);
  };
  if (typeof options !== 'object' || options === null) fail('needs options: { client } or { url }');
  const { client, url, sentinels, name, keyPrefix, maxTtlSeconds, commandTimeoutMs, waitForReplicas } =
    options as Record<string, unknown>;
  if ([client, url, sentinels].filter((given) => given !== undefined).length !== 1)
    fail('needs exactly one of the options client, url and sentinels');
  if (sentinels !== undefined) {
    const valid =
      Array.isArray(sentinels) &&
      sentinels.length > 0 &&
      sentinels.every(
        (s: unknown) =>
          typeof s === 'object' &&
          s !== null &&
          typeof (s as { host?: unknown }).host === 'string' &&
          Number.isInteger((s as { port?: unknown }).port),
      );
    if (!valid) fail('option sentinels must be a non-empty list of { host, port }');
    if (typeof name !== 'string' || name === '')
      fail("option name (the primary's name) is required with sentinels");
  } else if (name !== undefined) fail('option name is only for sentinels');
  if (waitForReplicas !== undefined && waitForReplicas !== false) {
    const { replicas, timeoutMs } = (waitForReplicas ?? {}) as Record<string, unknown>;
    if (
      typeof waitForReplicas !== 'object' ||
      !(Number.isInteger(replicas) && (replicas as number) > 0) ||
      !(typeof timeoutMs === 'number' && Number.isInteger(timeoutMs) && timeoutMs > 0)
    )
      fail('option waitForReplicas must be false or { replicas, timeoutMs } with positive integers');
  }
  if (
    client !== undefined &&
    (typeof client !== 'object' || client === null || typeof (client as Redis).hmget !== 'function')
  ) {
    fail('option client must be an ioredis Redis or Cluster client');
  }
  if (url !== undefined && (typeof url !== 'string' || url === ''))
    fail('option url must be a non-empty string');
  if (keyPrefix !== undefined && typeof keyPrefix !== 'string') fail('option keyPrefix must be a string');
  for (const [name, value] of Object.entries({ maxTtlSeconds, commandTimeoutMs })) {
    if (value !== undefined && !(typeof value === 'number' && Number.isFinite(value) && value > 0))
      fail(`option ${name} must be a positive number`);
  }
}
