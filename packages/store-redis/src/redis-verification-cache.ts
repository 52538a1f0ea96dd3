import { createHash, randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ConfigurationError, MemoryVerificationCache, TokenStoreError } from '@tessera/core';
import type {
  CacheEviction,
  CachedVerification,
  TokenStoreOperation,
  VerificationCache,
  VerifiedToken,
} from '@tessera/core';
import { closeConnection, pubSubConnection, safely } from './pubsub.js';
import {
  DELETE_IF_EQUAL,
  DELETE_RESULT,
  FORGET_RESULT,
  INDEX_SUBJECT,
  PUT_RESULT,
  REVOKE_SUBJECT,
  runScript,
} from './scripts.js';

/** The name in this cache's error messages. */
const STORE = 'redis verification cache';
/** Results the local layer holds by default. */
const LOCAL_MAX_ENTRIES = 10_000;
/** How soon the eviction feed is opened again after an attempt failed. */
const FEED_RETRY_MS = 1000;
/**
 * A result without `iat` is not kept when its subject was revoked this recently, in seconds: it may
 * have been decided before the revocation (no decision takes longer than this).
 */
const REVOCATION_RACE_SECONDS = 60;
/** What a revoked token's tombstone is in Redis: always this exact text, so scripts can spot it. */
const TOMBSTONE = JSON.stringify({ status: 'revoked' });
const REVOKED: CachedVerification = Object.freeze({ status: 'revoked' });
const INACTIVE: CachedVerification = Object.freeze({ status: 'inactive' });

/** Options of a {@link RedisVerificationCache}. */
export interface RedisVerificationCacheOptions {
  /**
   * An ioredis `Redis` (standalone or Sentinel) or `Cluster` client that the caller owns and closes.
   * Its `commandTimeout` and `maxRetriesPerRequest` bound how long a call of the cache can take.
   */
  client: Redis | Cluster;
  /** Prefix of every key and of the channel of this cache. @default 'tessera:verify:' */
  prefix?: string;
  /**
   * A per-instance in-memory layer in front of Redis: the results it holds are answered without a
   * round trip (and without a promise), while the eviction feed is up. `false`: every `get` asks
   * Redis. @default { maxEntries: 10_000 }
   */
  local?:
    | {
        /** At most this many results in the local layer; the least recently used goes first. @default 10_000 */
        maxEntries?: number;
      }
    | false;
  /** The clock of the local layer, epoch milliseconds (for tests). @default Date.now */
  now?: () => number;
}

/** An eviction as published on the channel: who published it, and what it evicts. */
type EvictionMessage = { from: string; hash: string } | { from: string; subject: string };

/**
 * A {@link VerificationCache} in Redis, so that a fleet of `TokenVerifier`s shares what each one
 * decided: a token verified (or introspected) by one instance is answered by the others from Redis,
 * an eviction on one is seen by all at once, and a DPoP proof is accepted once across the fleet.
 *
 * - Results: `prefix r:<hash>` (`SET … PX`), the JSON of the decision; a revoked token's tombstone
 *   is never overwritten by another instance's decision until it expires.
 * - Subjects never appear in a key or a message: `prefix s:{<sha256(sub)>}` indexes the results of a
 *   subject (a sorted set by expiry, so it stays bounded), `prefix rs:{<sha256(sub)>}` holds its
 *   revocation time; both share a hash slot.
 * - DPoP proofs: `prefix p:<key>`, `SET NX PX`, atomic across the fleet (RFC 9449 §11.1).
 * - Evictions are published on `prefix evictions`; `subscribe()` listens on one more connection
 *   (a duplicate of the client, or one Cluster node), which the cache makes, closes in `close()`,
 *   and opens again (once a second) when it cannot be opened.
 *
 * The local layer (a {@link MemoryVerificationCache} per instance) answers only while the eviction
 * feed is listening, so it is in use once `subscribe()` was called (a `TokenVerifier` does) and
 * the subscription is up (see {@link RedisVerificationCache.listening}). It is dropped whenever the
 * feed goes down, and again when it is back (evictions may have been missed meanwhile). An eviction
 * made elsewhere reaches it after a pub/sub delivery (typically under a millisecond on a LAN);
 * until then it still answers the evicted result. Set `local: false` when that window matters more
 * than a Redis round trip per verification. A subject's eviction drops the whole local layer (the
 * message carries only the subject's hash; subject evictions are rare).
 *
 * Not handled: an opaque token's eviction (`delete`) racing with another instance's introspection
 * of it that started before: that instance may write its older answer after the eviction, to be
 * trusted until its TTL (at most the verifier's `maxTtlSeconds`). Revoke at the server, then evict.
 *
 * Every failure rejects with `TokenStoreError` (the verifier then answers `unavailable`, never
 * "not cached"); no call adds a timer of its own: the client's `commandTimeout` and the verifier's
 * `cache.timeoutMs` bound them. It never connects on import or construction. Needs Redis 5 or later.
 *
 * @example
 * ```ts
 * const redis = new Redis(process.env.REDIS_URL!, { commandTimeout: 500 }); // yours
 * const cache = new RedisVerificationCache({ client: redis, prefix: 'orders-api:verify:' });
 * const verifier = new TokenVerifier({ client, audience: 'https://api.example', cache });
 * // ...
 * await verifier.close();
 * await cache.close(); // closes the cache's pub/sub connection; your client stays yours
 * ```
 */
export class RedisVerificationCache implements VerificationCache {
  readonly #client: Redis | Cluster;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #local: MemoryVerificationCache | undefined;
  /** Tags this instance's messages: it does not deliver them to itself. */
  readonly #instanceId = randomUUID();
  readonly #listeners = new Set<{ listener: (eviction: CacheEviction) => void }>();
  #subscriber: Redis | undefined;
  #feedOpening = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #listening = false;
  /** Bumped by every eviction and every change of the feed: a read from before is not kept locally. */
  #epoch = 0;
  #closed = false;

  /**
   * Checks the options; connects nothing until the first call.
   *
   * @param options - the caller's `client`, and the rest of {@link RedisVerificationCacheOptions}.
   * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option.
   */
  constructor(options: RedisVerificationCacheOptions) {
    checkOptions(options);
    this.#client = options.client;
    this.#prefix = options.prefix ?? 'tessera:verify:';
    this.#channel = `${this.#prefix}evictions`;
    const local = options.local ?? {};
    this.#local =
      local === false
        ? undefined
        : new MemoryVerificationCache({
            maxEntries: local.maxEntries ?? LOCAL_MAX_ENTRIES,
            ...(options.now === undefined ? {} : { now: options.now }),
          });
  }

  /**
   * Whether the eviction feed is up: subscribed, and connected. The local layer answers only then
   * (always `false` before the first `subscribe()`).
   */
  get listening(): boolean {
    return this.#listening;
  }

  /**
   * The decision cached under `hash`: from the local layer when it holds it (synchronously), else
   * from Redis (one `MULTI` of `GET` and `PTTL`), then kept locally for the key's remaining TTL. A
   * value that is not a decision is deleted and answered as `undefined`.
   */
  get(hash: string): CachedVerification | undefined | Promise<CachedVerification | undefined> {
    if (this.#listening) {
      const hit = this.#local?.get(hash);
      if (hit !== undefined) return hit;
    }
    return this.#load(hash);
  }

  /**
   * Caches `entry` under `hash` for `ttlSeconds` (a TTL of zero or less forgets `hash` instead). An
   * `active` result is added to its subject's index; it is not written over a tombstone, nor kept
   * when its subject was revoked meanwhile. A tombstone (`revoked`, a JWT evicted by the verifier)
   * is published, so every instance drops its local copy and reads the tombstone next.
   */
  async set(hash: string, entry: CachedVerification, ttlSeconds: number): Promise<void> {
    if (!(ttlSeconds > 0)) return this.delete(hash);
    const json = serialize(entry);
    const ttlMs = String(Math.max(1, Math.ceil(ttlSeconds * 1000)));
    const key = this.#resultKey(hash);
    if (entry.status === 'revoked') {
      this.#epoch++;
      this.#local?.delete(hash); // the tombstone is in Redis: read there, never pushed out locally
      const message = this.#message({ hash });
      await this.#call('set', () =>
        runScript(this.#client, PUT_RESULT, [key], [json, ttlMs, TOMBSTONE, this.#channel, message]),
      );
      return;
    }
    const epoch = this.#epoch;
    const written = await this.#call('set', () =>
      runScript(this.#client, PUT_RESULT, [key], [json, ttlMs, TOMBSTONE, this.#channel, '']),
    );
    if (Number(written) !== 1) {
      this.#local?.delete(hash); // Redis holds a tombstone: read it next time
      return;
    }
    if (entry.status === 'active' && entry.token.subject !== undefined) {
      const id = subjectId(entry.token.subject);
      const iat = entry.token.claims.iat;
      const kept = await this.#call('set', () =>
        runScript(
          this.#client,
          INDEX_SUBJECT,
          [this.#indexKey(id), this.#markKey(id)],
          [hash, ttlMs, typeof iat === 'number' ? String(iat) : '', String(REVOCATION_RACE_SECONDS)],
        ),
      );
      if (Number(kept) !== 1) {
        // Its subject was revoked while it was being decided: forget it, unless replaced meanwhile.
        await this.#call('set', () => runScript(this.#client, DELETE_IF_EQUAL, [key], [json]));
        return;
      }
    }
    if (this.#listening && epoch === this.#epoch) this.#local?.set(hash, entry, ttlSeconds);
  }

  /** Forgets `hash` here and in Redis (`DEL`), and publishes it: every instance forgets it. */
  async delete(hash: string): Promise<void> {
    this.#epoch++;
    this.#local?.delete(hash);
    const message = this.#message({ hash });
    await this.#call('delete', () =>
      runScript(this.#client, DELETE_RESULT, [this.#resultKey(hash)], [this.#channel, message]),
    );
  }

  /**
   * Marks `subject` revoked at `revokedAt` (epoch seconds) for `ttlSeconds`, deletes its results
   * (tombstones stay), and publishes the subject's hash: every instance drops its local layer.
   */
  async revokeSubject(subject: string, revokedAt: number, ttlSeconds: number): Promise<void> {
    this.#epoch++;
    // The mark lives in Redis (subjectRevokedAt reads it there); locally only the results go.
    this.#local?.clear();
    const id = subjectId(subject);
    const ttlMs = String(Math.max(1, Math.ceil(ttlSeconds * 1000)));
    await this.#call('delete', async () => {
      const hashes = (await runScript(
        this.#client,
        REVOKE_SUBJECT,
        [this.#markKey(id), this.#indexKey(id)],
        [String(revokedAt), ttlMs],
      )) as string[];
      // One command per result: on a Cluster they live in other hash slots than the subject's keys.
      await Promise.all(
        hashes.map((hash) => runScript(this.#client, FORGET_RESULT, [this.#resultKey(hash)], [TOMBSTONE])),
      );
      // Last: an instance that drops its local layer on this message finds the results gone.
      await this.#client.publish(this.#channel, this.#message({ subject: id }));
    });
  }

  /**
   * When `subject`'s tokens were last revoked (epoch seconds), or `undefined`: always from Redis
   * (the verifier asks only on a cache miss), so a revocation counts at once.
   *
   * @throws TokenStoreError also when the stored mark is not a number (never taken as "not revoked").
   */
  async subjectRevokedAt(subject: string): Promise<number | undefined> {
    const value = await this.#call('get', () => this.#client.get(this.#markKey(subjectId(subject))));
    if (value === null) return undefined;
    const revokedAt = Number(value);
    if (!Number.isFinite(revokedAt))
      throw new TokenStoreError('get', `${STORE}: a subject's revocation mark is not a number`);
    return revokedAt;
  }

  /**
   * Records a DPoP proof's `key` for `ttlSeconds` (`SET NX PX`): `true` the first time anywhere in
   * the fleet, `false` for a replay.
   */
  async markUsed(key: string, ttlSeconds: number): Promise<boolean> {
    const ttlMs = Math.max(1, Math.ceil(ttlSeconds * 1000));
    const reply = await this.#call('set', () =>
      this.#client.set(this.#proofKey(key), '1', 'PX', ttlMs, 'NX'),
    );
    return reply === 'OK';
  }

  /**
   * Evictions made by other instances: `listener` gets `{ hash }`, or `{ subject }` holding the
   * subject's SHA-256 (base64url), never the subject; this instance's own evictions are not
   * delivered. The first call opens the feed, which stays open until `close()` (the local layer
   * depends on it). Returns the unsubscribe.
   */
  subscribe(listener: (eviction: CacheEviction) => void): () => void {
    const entry = { listener };
    if (this.#closed) return () => undefined;
    this.#listeners.add(entry);
    if (this.#subscriber === undefined && !this.#feedOpening && this.#retryTimer === undefined) {
      this.#openFeed();
    }
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Closes the pub/sub connection this cache opened (never the caller's client) and drops the local
   * layer; later calls reject with `TokenStoreError`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#listening = false;
    this.#local?.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber !== undefined) await closeConnection(subscriber);
  }

  // ---------------------------------------------------------------------------------------------

  async #load(hash: string): Promise<CachedVerification | undefined> {
    const epoch = this.#epoch;
    const key = this.#resultKey(hash);
    const [json, pttl] = await this.#call('get', async () => {
      const replies = await this.#client.multi().get(key).pttl(key).exec();
      if (replies === null) throw new Error('the transaction was discarded');
      const [[getError, value] = [], [pttlError, ttl] = []] = replies;
      if (getError) throw getError;
      if (pttlError) throw pttlError;
      return [value as string | null, Number(ttl)] as const;
    });
    if (json === null) return undefined;
    const entry = parseEntry(json);
    if (entry === undefined) {
      // Not a decision (written by hand, or by another version): forget it, unless replaced meanwhile.
      await this.#call('get', () => runScript(this.#client, DELETE_IF_EQUAL, [key], [json]));
      return undefined;
    }
    if (pttl > 0 && this.#listening && epoch === this.#epoch) this.#local?.set(hash, entry, pttl / 1000);
    return entry;
  }

  /** Opens the eviction feed; after a failure, tries again every second until the cache is closed. */
  #openFeed(previous?: Redis): void {
    this.#feedOpening = true;
    this.#connectFeed(previous).then(
      () => {
        this.#feedOpening = false;
      },
      () => {
        this.#feedOpening = false;
        if (this.#closed) return;
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          if (!this.#closed && this.#subscriber === undefined) this.#openFeed(previous);
        }, FEED_RETRY_MS);
        this.#retryTimer.unref();
      },
    );
  }

  /**
   * Opens the pub/sub connection and subscribes. It is resubscribed by this cache after a
   * reconnect (not by ioredis, whose resubscription fails unhandled when the connection drops
   * again before Redis answers); on a Cluster, a node that stops answering hands over to another.
   */
  async #connectFeed(previous?: Redis): Promise<void> {
    const subscriber = await pubSubConnection(this.#client, STORE, previous);
    if (this.#closed) {
      subscriber.disconnect();
      return;
    }
    this.#subscriber = subscriber;
    let wasReady = false;
    subscriber.on('error', () => undefined); // reconnects by itself; calls report failures
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.#channel) this.#receive(message);
    });
    subscriber.on('ready', () => {
      if (!wasReady) {
        wasReady = true;
        return;
      }
      // A reconnect: listen again (the local layer was dropped when the connection went).
      subscriber.subscribe(this.#channel).then(
        () => this.#startListening(subscriber),
        () => undefined, // the connection dropped again: the next 'ready' tries again
      );
    });
    subscriber.on('close', () => this.#stopListening(subscriber));
    // A Cluster node's connection gives up after a few tries: listen on another node.
    subscriber.once('end', () => {
      if (this.#closed || this.#subscriber !== subscriber || !wasReady) return;
      this.#subscriber = undefined;
      this.#openFeed(subscriber);
    });
    try {
      await subscriber.subscribe(this.#channel);
    } catch (error) {
      if (this.#subscriber === subscriber) this.#subscriber = undefined;
      subscriber.disconnect();
      throw error;
    }
    this.#startListening(subscriber);
  }

  /** Evictions may have been missed until now: the local layer starts empty. */
  #startListening(subscriber: Redis): void {
    if (this.#closed || this.#subscriber !== subscriber) return;
    this.#epoch++;
    this.#local?.clear();
    this.#listening = true;
  }

  /** Evictions are missed from now on: the local layer must not answer. */
  #stopListening(subscriber: Redis): void {
    if (this.#subscriber !== subscriber) return;
    this.#listening = false;
    this.#epoch++;
    this.#local?.clear();
  }

  #receive(text: string): void {
    const message = parseMessage(text);
    if (message?.from === this.#instanceId) return;
    this.#epoch++;
    if (message === undefined) {
      this.#local?.clear(); // not one of ours: forget everything rather than guess
      return;
    }
    let eviction: CacheEviction;
    if ('hash' in message) {
      this.#local?.delete(message.hash);
      eviction = Object.freeze({ hash: message.hash });
    } else {
      this.#local?.clear();
      eviction = Object.freeze({ subject: message.subject });
    }
    for (const { listener } of this.#listeners) safely(() => listener(eviction));
  }

  #message(eviction: { hash: string } | { subject: string }): string {
    return JSON.stringify({ from: this.#instanceId, ...eviction });
  }

  /** Every failure becomes a `TokenStoreError`; no timer: the client's `commandTimeout` bounds it. */
  async #call<T>(operation: TokenStoreOperation, command: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new TokenStoreError(operation, `${STORE} is closed`);
    try {
      return await command();
    } catch (error) {
      throw TokenStoreError.from(operation, error, { store: STORE });
    }
  }

  #resultKey(hash: string): string {
    return `${this.#prefix}r:${hash}`;
  }

  /** A subject's index and revocation mark share a hash slot (the tag is the subject's hash). */
  #indexKey(id: string): string {
    return `${this.#prefix}s:{${id}}`;
  }

  #markKey(id: string): string {
    return `${this.#prefix}rs:{${id}}`;
  }

  #proofKey(key: string): string {
    return `${this.#prefix}p:${key}`;
  }
}

/** A subject as it appears in keys and messages: its SHA-256, base64url. */
function subjectId(subject: string): string {
  return createHash('sha256').update(subject).digest('base64url');
}

function serialize(entry: CachedVerification): string {
  if (entry.status !== 'active') return entry.status === 'revoked' ? TOMBSTONE : JSON.stringify(INACTIVE);
  try {
    return JSON.stringify({ status: 'active', token: entry.token });
  } catch (cause) {
    throw TokenStoreError.from('set', cause, { message: `${STORE}: the result is not plain data` });
  }
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A stored decision, checked member by member (only the members of a `VerifiedToken` are kept, and
 * frozen), or `undefined` when it is not one.
 */
function parseEntry(json: string): CachedVerification | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!isObject(value)) return undefined;
  if (value.status === 'revoked') return REVOKED;
  if (value.status === 'inactive') return INACTIVE;
  const token = value.token;
  if (value.status !== 'active' || !isObject(token)) return undefined;
  const { kind, issuer, claims, scopes, subject, clientId, expiresAt, cnf } = token;
  if (
    (kind !== 'jwt' && kind !== 'introspection') ||
    typeof issuer !== 'string' ||
    !isObject(claims) ||
    !Array.isArray(scopes) ||
    !scopes.every((scope) => typeof scope === 'string') ||
    (subject !== undefined && typeof subject !== 'string') ||
    (clientId !== undefined && typeof clientId !== 'string') ||
    (expiresAt !== undefined && typeof expiresAt !== 'number') ||
    (cnf !== undefined && !isObject(cnf))
  ) {
    return undefined;
  }
  const verified: Omit<VerifiedToken, 'scheme'> = {
    kind,
    issuer,
    claims: deepFreeze(claims),
    scopes: Object.freeze(scopes as string[]),
    ...(subject === undefined ? {} : { subject }),
    ...(clientId === undefined ? {} : { clientId }),
    ...(expiresAt === undefined ? {} : { expiresAt }),
    ...(cnf === undefined ? {} : { cnf: deepFreeze(cnf) }),
  };
  return Object.freeze({ status: 'active', token: Object.freeze(verified) });
}

/** Parsed JSON, frozen all the way down. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const member of Object.values(value)) deepFreeze(member);
    Object.freeze(value);
  }
  return value;
}

function parseMessage(text: string): EvictionMessage | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isObject(value) || typeof value.from !== 'string') return undefined;
  if (typeof value.hash === 'string') return { from: value.from, hash: value.hash };
  if (typeof value.subject === 'string') return { from: value.from, subject: value.subject };
  return undefined;
}

/**
 * @throws ConfigurationError `INVALID_CONFIGURATION` naming the bad option: an ioredis client, a
 *   string prefix, `local` false or `{ maxEntries }` with a positive integer, `now` a function.
 */
function checkOptions(options: unknown): asserts options is RedisVerificationCacheOptions {
  const fail = (message: string): never => {
    throw new ConfigurationError('INVALID_CONFIGURATION', `RedisVerificationCache ${message}`);
  };
  if (!isObject(options)) fail('needs options: { client }');
  const { client, prefix, local, now } = options as JsonObject;
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof (client as Redis).set !== 'function' ||
    typeof (client as Redis).duplicate !== 'function'
  ) {
    fail('option client must be an ioredis Redis or Cluster client');
  }
  if (prefix !== undefined && typeof prefix !== 'string') fail('option prefix must be a string');
  if (local !== undefined && local !== false) {
    if (!isObject(local)) fail('option local must be false or { maxEntries }');
    const { maxEntries } = local as JsonObject;
    if (
      maxEntries !== undefined &&
      !(typeof maxEntries === 'number' && Number.isInteger(maxEntries) && maxEntries > 0)
    )
      fail('option local.maxEntries must be a positive integer');
  }
  if (now !== undefined && typeof now !== 'function') fail('option now must be a function');
}
