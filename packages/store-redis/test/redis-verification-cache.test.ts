/**
 * RedisVerificationCache against a real redis-server (started by the harness on an ephemeral port,
 * or REDIS_URL) and a real 3-master Cluster: results, tombstones, subject revocations and DPoP
 * proofs shared by instances; evictions reaching the other instances' local layers over pub/sub;
 * TokenVerifiers sharing it against the real authorization server, in this process and another.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Cluster, Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { Client, ConfigurationError, TokenStoreError, TokenVerifier } from '@tessera/core';
import type { CacheEviction, CachedVerification } from '@tessera/core';
import { RedisVerificationCache } from '@tessera/store-redis';
import type { RedisVerificationCacheOptions } from '@tessera/store-redis';
import { startRedisCluster, startRedisServer, startTestServer } from '@tessera/testing';
import type { RedisClusterHandle, RedisServerHandle, TestServer } from '@tessera/testing';
import type {
  VerificationWorkerConfig,
  VerificationWorkerMessage,
  VerificationWorkerRequest,
} from './fixtures/verification-worker.js';

const workerPath = fileURLToPath(new URL('./fixtures/verification-worker.ts', import.meta.url));
const repository = fileURLToPath(new URL('../../..', import.meta.url));

let redis: RedisServerHandle;
let cluster: RedisClusterHandle | undefined;
let clusterStarted: Promise<unknown> | undefined;
let server: TestServer;
let client: Client;
/** The other process, and the prefix it shares with this one. */
let worker: Worker;
const workerPrefix = `verify-worker-${randomUUID()}:`;
const connections: Array<Redis | Cluster> = [];
const caches: RedisVerificationCache[] = [];
const children = new Set<ChildProcess>();

beforeAll(async () => {
  clusterStarted = startRedisCluster().then((handle) => (cluster = handle));
  [redis, server] = await Promise.all([startRedisServer(), startTestServer()]);
  // It boots (tsx, ~2 s) while the cluster starts and the first tests run.
  worker = startWorker({
    issuer: server.issuer,
    client: server.clients.basic,
    redisUrl: redis.url,
    prefix: workerPrefix,
  });
  client = await Client.discover(server.issuer, server.clients.basic);
  await clusterStarted;
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all(caches.map((cache) => cache.close()));
  // Not twice: ioredis would wait 2 s for a second 'close' of the stream it already ended.
  for (const connection of connections) if (connection.status !== 'end') connection.disconnect();
  await clusterStarted?.catch(() => undefined);
  await Promise.all([redis?.close(), cluster?.close(), server?.close()]);
});

/** A connection of the test's own (as another process would have), closed in afterAll. */
function connect(url = redis.url, options: RedisOptions = {}): Redis {
  const connection = new Redis(url, { maxRetriesPerRequest: 1, ...options });
  connection.on('error', () => undefined);
  connections.push(connection);
  return connection;
}

function connectCluster(): Cluster {
  const connection = new Cluster(
    cluster!.nodes.map(({ host, port }) => ({ host, port })),
    { redisOptions: { maxRetriesPerRequest: 1 } },
  );
  connection.on('error', () => undefined);
  connections.push(connection);
  return connection;
}

/** A cache on a connection of its own, closed in afterAll. */
function newCache(
  prefix: string,
  options: Partial<RedisVerificationCacheOptions> = {},
): RedisVerificationCache {
  const cache = new RedisVerificationCache({ client: connect(), prefix, ...options });
  caches.push(cache);
  return cache;
}

const freshPrefix = () => `verify-${randomUUID()}:`;
const randomHash = () => randomBytes(32).toString('base64url');
const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** When the fixtures' tokens were issued: one instant, so that results compare equal. */
const issuedAt = nowSeconds();

function active(subject = 'alice@example.com', claims: Record<string, unknown> = {}): CachedVerification {
  return {
    status: 'active',
    token: {
      kind: 'introspection',
      issuer: 'https://as.example',
      claims: { active: true, sub: subject, iat: issuedAt - 10, scope: 'api:read', ...claims },
      scopes: ['api:read'],
      subject,
      clientId: 'orders',
      expiresAt: issuedAt + 300,
    },
  };
}

/** Polls `condition` every few milliseconds; fails after `ms`. */
async function until(condition: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Subscribes, waits until the eviction feed listens, and returns what the listener receives. */
async function listen(cache: RedisVerificationCache): Promise<CacheEviction[]> {
  const seen: CacheEviction[] = [];
  cache.subscribe((eviction) => seen.push(eviction));
  await until(() => cache.listening, 'the eviction feed');
  return seen;
}

const isPromise = (value: unknown): boolean => value instanceof Promise;

describe('RedisVerificationCache options', () => {
  const fakeClient = { set: () => undefined, duplicate: () => undefined };
  it.each<[string, unknown, string]>([
    ['no options', undefined, 'needs options'],
    ['no client', {}, 'option client'],
    ['a client that is not an ioredis client', { client: {} }, 'option client'],
    ['a prefix that is not a string', { client: fakeClient, prefix: 5 }, 'option prefix'],
    ['a local that is neither false nor an object', { client: fakeClient, local: true }, 'option local'],
    ['a zero local.maxEntries', { client: fakeClient, local: { maxEntries: 0 } }, 'option local.maxEntries'],
    ['a fractional local.maxEntries', { client: fakeClient, local: { maxEntries: 1.5 } }, 'local.maxEntries'],
    ['a now that is not a function', { client: fakeClient, now: 5 }, 'option now'],
  ])('%s', (_case, options, message) => {
    let error: unknown;
    try {
      new RedisVerificationCache(options as RedisVerificationCacheOptions);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('INVALID_CONFIGURATION');
    expect((error as Error).message).toContain(message);
  });

  it('connects nothing when constructed', () => {
    const connection = connect(redis.url, { lazyConnect: true });
    new RedisVerificationCache({ client: connection });
    expect(connection.status).toBe('wait');
  });
});

describe('RedisVerificationCache on one Redis', () => {
  it('stores a result with its TTL, and answers it from the local layer (synchronously) by the injected clock', async () => {
    const prefix = freshPrefix();
    let nowMs = Date.now();
    const cache = newCache(prefix, { now: () => nowMs });
    const probe = connect();
    await listen(cache);
    const hash = randomHash();
    const entry = active();
    await cache.set(hash, entry, 60);

    const pttl = await probe.pttl(`${prefix}r:${hash}`);
    expect(pttl).toBeGreaterThan(59_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(JSON.parse((await probe.get(`${prefix}r:${hash}`))!)).toEqual(entry);
    const hit = cache.get(hash);
    expect(isPromise(hit)).toBe(false);
    expect(hit).toEqual(entry);

    nowMs += 60_001; // expired locally; Redis still has it
    const miss = cache.get(hash);
    expect(isPromise(miss)).toBe(true);
    await expect(miss).resolves.toEqual(entry);
    await cache.delete(hash);
    expect(await probe.exists(`${prefix}r:${hash}`)).toBe(0);
    await expect(cache.get(hash)).resolves.toBeUndefined();
  });

  it("another instance reads a result from Redis, frozen, and keeps it locally for the key's remaining TTL", async () => {
    const prefix = freshPrefix();
    let nowMs = Date.now();
    const writer = newCache(prefix);
    const reader = newCache(prefix, { now: () => nowMs });
    const probe = connect();
    await listen(reader);
    const hash = randomHash();
    await writer.set(hash, active(), 60);
    await probe.pexpire(`${prefix}r:${hash}`, 5_000); // 5 s left

    const read = (await reader.get(hash)) as Extract<CachedVerification, { status: 'active' }>;
    expect(read).toEqual(active());
    expect(Object.isFrozen(read.token.claims) && Object.isFrozen(read.token.scopes)).toBe(true);
    nowMs += 4_500;
    expect(isPromise(reader.get(hash))).toBe(false);
    nowMs += 1_000; // past the remaining 5 s
    expect(isPromise(reader.get(hash))).toBe(true);
  });

  it.each([
    ['not JSON', 'not json'],
    ['an array', '[]'],
    ['an active result without its token', '{"status":"active"}'],
    [
      'a token whose issuer is not a string',
      '{"status":"active","token":{"kind":"jwt","issuer":1,"claims":{},"scopes":[]}}',
    ],
    ['an unknown status', '{"status":"maybe"}'],
  ])('answers %s as not cached, and deletes it', async (_case, value) => {
    const prefix = freshPrefix();
    const cache = newCache(prefix);
    const probe = connect();
    const hash = randomHash();
    await probe.set(`${prefix}r:${hash}`, value, 'PX', 60_000);
    await expect(cache.get(hash)).resolves.toBeUndefined();
    expect(await probe.exists(`${prefix}r:${hash}`)).toBe(0);
  });

  it('indexes results by a hash of their subject, never by the subject, for as long as the longest lives', async () => {
    const prefix = freshPrefix();
    const cache = newCache(prefix);
    const probe = connect();
    const [first, second] = [randomHash(), randomHash()];
    await cache.set(first, active('alice@example.com'), 60);
    await cache.set(second, active('alice@example.com'), 120);
    const index = `${prefix}s:{${sha256('alice@example.com')}}`;
    expect((await probe.zrange(index, '0', '-1')).sort()).toEqual([first, second].sort());
    expect(await probe.pttl(index)).toBeGreaterThan(119_000);
    expect((await probe.keys(`${prefix}*`)).filter((key) => key.includes('alice'))).toEqual([]);
  });

  it('markUsed: 20 concurrent calls for one proof across two instances, exactly one true', async () => {
    const prefix = freshPrefix();
    const [a, b] = [newCache(prefix), newCache(prefix)];
    const probe = connect();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).markUsed('proof-1', 30)),
    );
    expect(results.filter((first) => first)).toHaveLength(1);
    const pttl = await probe.pttl(`${prefix}p:proof-1`);
    expect(pttl).toBeGreaterThan(29_000);
    expect(pttl).toBeLessThanOrEqual(30_000);
    await expect(b.markUsed('proof-1', 30)).resolves.toBe(false);
    await expect(b.markUsed('proof-2', 30)).resolves.toBe(true);
  });

  it("an eviction on A reaches B's local layer and listener, and not A's own listener", async () => {
    const prefix = freshPrefix();
    const [a, b] = [newCache(prefix), newCache(prefix)];
    const [seenByA, seenByB] = await Promise.all([listen(a), listen(b)]);
    const hash = randomHash();
    await a.set(hash, active(), 60);
    await expect(b.get(hash)).resolves.toEqual(active());
    expect(isPromise(b.get(hash))).toBe(false); // B's local layer holds it

    await a.delete(hash);
    await until(() => seenByB.length > 0, "B's listener");
    expect(seenByB).toEqual([{ hash }]);
    const next = b.get(hash);
    expect(isPromise(next)).toBe(true);
    await expect(next).resolves.toBeUndefined();
    expect(seenByA).toEqual([]);
  });

  it('a tombstone reaches B at once, and no later decision overwrites it until it expires', async () => {
    const prefix = freshPrefix();
    const [a, b] = [newCache(prefix), newCache(prefix)];
    const probe = connect();
    const seenByB = await listen(b);
    await listen(a);
    const hash = randomHash();
    await a.set(hash, active(), 60);
    await b.get(hash);
    expect(b.get(hash)).toEqual(active()); // local

    await a.set(hash, { status: 'revoked' }, 60);
    await until(() => seenByB.length > 0, "B's listener");
    expect(seenByB).toEqual([{ hash }]);
    await expect(b.get(hash)).resolves.toEqual({ status: 'revoked' });
    // B decided before it heard of the eviction, and writes late (regression: it reopened the token).
    await b.set(hash, active(), 60);
    expect(await a.get(hash)).toEqual({ status: 'revoked' });
    expect(await b.get(hash)).toEqual({ status: 'revoked' });
    expect(await probe.get(`${prefix}r:${hash}`)).toBe('{"status":"revoked"}');
  });

  it('revokes more subjects than its local layer holds entries, every one marked in Redis (regression)', async () => {
    const cache = newCache(freshPrefix(), { local: { maxEntries: 3 } });
    await listen(cache);
    for (let i = 0; i < 6; i++) await cache.revokeSubject(`user-${i}`, 1000 + i, 60);
    for (let i = 0; i < 6; i++) await expect(cache.subjectRevokedAt(`user-${i}`)).resolves.toBe(1000 + i);
  });

  it('keeps an evicted token refused whatever traffic fills its local layer (regression)', async () => {
    const cache = newCache(freshPrefix(), { local: { maxEntries: 2 } });
    await listen(cache);
    const evicted = randomHash();
    await cache.set(evicted, { status: 'revoked' }, 60);
    for (let i = 0; i < 5; i++) await cache.set(randomHash(), { status: 'inactive' }, 60);
    await expect(Promise.resolve(cache.get(evicted))).resolves.toEqual({ status: 'revoked' });
  });

  it("revokeSubject on A: B drops the subject's results, sees the revocation, and no message names the subject", async () => {
    const prefix = freshPrefix();
    const [a, b] = [newCache(prefix), newCache(prefix)];
    const probe = connect();
    const messages: string[] = [];
    const raw = connect();
    raw.on('message', (_channel: string, message: string) => messages.push(message));
    await raw.subscribe(`${prefix}evictions`);
    const seenByB = await listen(b);
    const [alice1, alice2, bob] = [randomHash(), randomHash(), randomHash()];
    await a.set(alice1, active('alice@example.com'), 60);
    await a.set(alice2, active('alice@example.com'), 60);
    await a.set(bob, active('bob@example.com'), 60);
    for (const hash of [alice1, alice2, bob]) await b.get(hash);
    expect(b.get(alice1)).toEqual(active('alice@example.com')); // local

    const revokedAt = nowSeconds();
    await a.revokeSubject('alice@example.com', revokedAt, 3600);
    await until(() => seenByB.length > 0 && messages.length > 0, "B's listener");
    expect(seenByB).toEqual([{ subject: sha256('alice@example.com') }]);
    await expect(b.get(alice1)).resolves.toBeUndefined();
    await expect(b.get(alice2)).resolves.toBeUndefined();
    await expect(b.get(bob)).resolves.toEqual(active('bob@example.com'));
    await expect(b.subjectRevokedAt('alice@example.com')).resolves.toBe(revokedAt);
    await expect(b.subjectRevokedAt('bob@example.com')).resolves.toBeUndefined();
    const pttl = await probe.pttl(`${prefix}rs:{${sha256('alice@example.com')}}`);
    expect(pttl).toBeGreaterThan(3_599_000);
    expect(pttl).toBeLessThanOrEqual(3_600_000);
    expect(await probe.exists(`${prefix}s:{${sha256('alice@example.com')}}`)).toBe(0);
    expect(messages.filter((message) => message.includes('alice'))).toEqual([]);
    expect((await probe.keys(`${prefix}*`)).filter((key) => key.includes('alice'))).toEqual([]);
  });

  it.each<[string, number | undefined, boolean]>([
    ['issued before the revocation', -5, false],
    ['issued at the revocation', 0, false],
    ['issued after the revocation', 5, true],
    ['without iat (within the race window)', undefined, false],
  ])(
    'a result written after its subject was revoked, %s: kept %s (regression: the index race)',
    async (_case, issuedOffset, kept) => {
      const prefix = freshPrefix();
      const [a, b] = [newCache(prefix), newCache(prefix)];
      const revokedAt = nowSeconds();
      await a.revokeSubject('carol@example.com', revokedAt, 3600);
      const hash = randomHash();
      const entry = active('carol@example.com', {
        iat: issuedOffset === undefined ? undefined : revokedAt + issuedOffset,
      });
      await b.set(hash, entry, 60); // decided by B while A revoked the subject
      await expect(a.get(hash)).resolves.toEqual(kept ? entry : undefined);
    },
  );

  it('after its feed reconnects, the local layer starts empty (evictions may have been missed)', async () => {
    const prefix = freshPrefix();
    const cache = newCache(prefix);
    const admin = connect();
    await listen(cache);
    const hash = randomHash();
    await cache.set(hash, active(), 60);
    expect(isPromise(cache.get(hash))).toBe(false);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await until(() => isPromise(cache.get(hash)), 'the local layer to be dropped');
    await until(() => cache.listening, 'the feed to come back');
    await cache.get(hash);
    expect(isPromise(cache.get(hash))).toBe(false); // in use again
  });

  it('close() quits only its own connection, is idempotent, and later calls reject', async () => {
    const connection = connect();
    const cache = new RedisVerificationCache({ client: connection, prefix: freshPrefix() });
    await listen(cache);
    await Promise.all([cache.close(), cache.close()]);
    await cache.close();
    expect(cache.listening).toBe(false);
    await expect(connection.ping()).resolves.toBe('PONG');
    await expect(cache.get(randomHash())).rejects.toBeInstanceOf(TokenStoreError);
  });
});

describe('TokenVerifiers sharing a RedisVerificationCache', () => {
  it('B answers from Redis what A introspected; after A evicts a token revoked at the server, B refuses it', async () => {
    const prefix = freshPrefix();
    const [cacheA, cacheB] = [newCache(prefix), newCache(prefix)];
    const verifierA = new TokenVerifier({ client, accept: ['introspection'], cache: cacheA });
    const verifierB = new TokenVerifier({ client, accept: ['introspection'], cache: cacheB });
    const evictedOnB: unknown[] = [];
    verifierB.on('cache.evicted', (event) => evictedOnB.push(event));
    await until(() => cacheA.listening && cacheB.listening, 'the eviction feeds');
    const { access_token: token } = await client.clientCredentialsGrant({ scope: 'api:read' });
    server.resetStats();

    await expect(verifierA.verify(token)).resolves.toMatchObject({
      kind: 'introspection',
      scopes: ['api:read'],
    });
    await expect(verifierB.verify(token)).resolves.toMatchObject({
      kind: 'introspection',
      scopes: ['api:read'],
    });
    await expect(verifierB.verify(token)).resolves.toMatchObject({ kind: 'introspection' }); // local layer
    expect(server.stats().introspection).toBe(1);

    await client.tokenRevocation(token);
    await verifierA.evict(token);
    await until(() => evictedOnB.length > 0, "B's eviction");
    expect(evictedOnB).toEqual([{ by: 'token', origin: 'remote' }]);
    await expect(verifierB.verify(token)).rejects.toMatchObject({ reason: 'inactive', status: 401 });
    expect(server.stats().introspection).toBe(2);
    await Promise.all([verifierA.close(), verifierB.close()]);
  });

  it('across two processes: this one evicts, the other hears it and refuses the token on its next call', async () => {
    const verifier = new TokenVerifier({ client, accept: ['introspection'], cache: newCache(workerPrefix) });
    const { access_token: token } = await client.clientCredentialsGrant({ scope: 'api:read' });
    server.resetStats();
    await expect(verifier.verify(token)).resolves.toMatchObject({ kind: 'introspection' });
    await worker.ready;
    await expect(worker.verify(token)).resolves.toEqual({ kind: 'introspection' });
    expect(server.stats().introspection).toBe(1); // the other process answered from Redis

    await client.tokenRevocation(token);
    await verifier.evict(token);
    await expect(worker.evicted).resolves.toBe('token');
    await expect(worker.verify(token)).resolves.toEqual({ reason: 'inactive' });
    await worker.stop();
    await verifier.close();
  }, 15_000);
});

describe('RedisVerificationCache on a Cluster', () => {
  it('shares results, evictions, subject revocations and proofs across instances', async () => {
    const prefix = freshPrefix();
    const a = new RedisVerificationCache({ client: connectCluster(), prefix });
    const b = new RedisVerificationCache({ client: connectCluster(), prefix });
    caches.push(a, b);
    const seenByB = await listen(b);
    const hashes = Array.from({ length: 6 }, randomHash); // spread over the slots
    for (const hash of hashes) await a.set(hash, active('dave@example.com'), 60);
    for (const hash of hashes) await expect(b.get(hash)).resolves.toEqual(active('dave@example.com'));
    expect(isPromise(b.get(hashes[0]!))).toBe(false);

    await a.delete(hashes[0]!);
    await until(() => seenByB.length === 1, "B's listener");
    await expect(b.get(hashes[0]!)).resolves.toBeUndefined();
    await a.revokeSubject('dave@example.com', nowSeconds(), 60);
    await until(() => seenByB.length === 2, "B's listener");
    expect(seenByB[1]).toEqual({ subject: sha256('dave@example.com') });
    for (const hash of hashes) await expect(b.get(hash)).resolves.toBeUndefined();
    await expect(b.subjectRevokedAt('dave@example.com')).resolves.toBeGreaterThan(0);
    const used = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).markUsed('proof', 30)),
    );
    expect(used.filter((first) => first)).toHaveLength(1);
  });
});

describe('RedisVerificationCache while Redis is down', () => {
  it('rejects with TokenStoreError (the verifier answers unavailable), and works again when Redis is back', async () => {
    const own = await startRedisServer({ useEnv: false });
    const connection = connect(own.url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
    const cache = new RedisVerificationCache({ client: connection, prefix: freshPrefix() });
    const verifier = new TokenVerifier({ client, accept: ['introspection'], cache });
    try {
      await until(() => cache.listening, 'the eviction feed');
      const hash = randomHash();
      await cache.set(hash, active(), 60);
      expect(isPromise(cache.get(hash))).toBe(false);

      await own.stop();
      await until(() => !cache.listening, 'the feed to go down');
      // Not answered from the local layer: evictions are missed while the feed is down.
      const failed = (call: unknown): Promise<unknown> =>
        Promise.resolve(call).then(
          () => undefined,
          (error: unknown) => error,
        );
      const failures = await Promise.all([
        failed(cache.get(hash)),
        failed(cache.set(randomHash(), active(), 60)),
        failed(cache.delete(hash)),
        failed(cache.revokeSubject('alice@example.com', nowSeconds(), 60)),
        failed(cache.subjectRevokedAt('alice@example.com')),
        failed(cache.markUsed('proof', 30)),
      ]);
      for (const failure of failures) expect(failure).toBeInstanceOf(TokenStoreError);
      expect(failures.map((failure) => (failure as TokenStoreError).operation)).toEqual([
        'get',
        'set',
        'delete',
        'delete',
        'get',
        'set',
      ]);
      await expect(verifier.verify('an-opaque-token')).rejects.toMatchObject({
        reason: 'unavailable',
        status: 503,
      });

      await own.start();
      await until(() => cache.listening, 'the feed to come back');
      await expect(cache.get(hash)).resolves.toBeUndefined(); // Redis came back empty
    } finally {
      await verifier.close();
      await cache.close();
      connection.disconnect();
      await own.close();
    }
  });
});

interface Worker {
  ready: Promise<void>;
  evicted: Promise<'token' | 'subject'>;
  verify(token: string): Promise<{ kind?: string; reason?: string }>;
  stop(): Promise<void>;
}

/** Another process with a TokenVerifier on the same Redis (fixtures/verification-worker.ts). */
function startWorker(config: VerificationWorkerConfig): Worker {
  const child = fork(workerPath, [JSON.stringify(config)], {
    cwd: repository,
    execArgv: ['--conditions=tessera-source', '--import', 'tsx'],
    env: { ...process.env, NODE_OPTIONS: '' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  exited.then(
    () => children.delete(child),
    () => undefined,
  );
  const pending = new Map<number, (answer: { kind?: string; reason?: string }) => void>();
  let onReady: () => void = () => undefined;
  let onEvicted: (by: 'token' | 'subject') => void = () => undefined;
  let failReady: (error: Error) => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => ((onReady = resolve), (failReady = reject)));
  const evicted = new Promise<'token' | 'subject'>((resolve) => (onEvicted = resolve));
  child.once('exit', (code, signal) =>
    failReady(new Error(`the worker exited (${code ?? signal}) before it was ready`)),
  );
  child.on('message', (message: VerificationWorkerMessage) => {
    if (message.type === 'ready') onReady();
    else if (message.type === 'evicted') onEvicted(message.by);
    else {
      const { id, type: _type, ...answer } = message;
      pending.get(id)?.(answer);
      pending.delete(id);
    }
  });
  let nextId = 0;
  const send = (request: VerificationWorkerRequest) => child.send(request);
  return {
    ready,
    evicted,
    verify: (token) =>
      new Promise((resolve) => {
        const id = nextId++;
        pending.set(id, resolve);
        send({ type: 'verify', id, token });
      }),
    stop: async () => {
      send({ type: 'stop' });
      await exited;
    },
  };
}
