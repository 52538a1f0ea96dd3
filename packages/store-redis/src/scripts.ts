/**
 * The Lua scripts of the Redis token store and the Redis verification cache, as named constants.
 * Each touches one key, or keys of one hash slot (a hash tag), so they run on Redis Cluster.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/** A script and its SHA-1, for EVALSHA with an EVAL fallback. */
export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/** Runs a script by its SHA-1 (EVALSHA), sending its source (EVAL) when Redis does not have it yet. */
export async function runScript(
  client: Redis | Cluster,
  script: LuaScript,
  keys: string[],
  args: string[],
): Promise<unknown> {
  try {
    return await client.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error;
    return client.eval(script.lua, keys.length, ...keys, ...args);
  }
}

/**
 * Writes a token set as a new version, only if the stored version equals ARGV[1] (when ARGV[1] is
 * not empty), sets the key's expiry, and announces the change.
 * KEYS[1] data hash; ARGV: expected version ('' = any), token set JSON, ttl ms (0 = none),
 * change channel, token key. Returns the new version, or -1 on a version conflict.
 */
export const SET_IF_VERSION = script(
  'setIfVersion',
  `local current = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[1] ~= '' and tonumber(ARGV[1]) ~= current then return -1 end
local nextVersion = current + 1
redis.call('HSET', KEYS[1], 'v', nextVersion, 't', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) else redis.call('PERSIST', KEYS[1]) end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return nextVersion`,
);

/** Deletes a token set and announces it. KEYS[1] data hash; ARGV: change channel, token key. */
export const DELETE = script(
  'delete',
  `redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`,
);

/**
 * Releases a lock only if this owner still holds it (compare-and-delete), and wakes the waiters.
 * KEYS[1] lock key; ARGV: owner id, unlock channel, token key. Returns 1 if released.
 */
export const RELEASE_LOCK = script(
  'releaseLock',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`,
);

// ---- the verification cache -------------------------------------------------------------------

/**
 * Writes a verification result, except over a tombstone (a revoked token stays refused until it
 * expires, whatever another instance decided meanwhile), and announces it when asked.
 * KEYS[1] result key; ARGV: result JSON, ttl ms, tombstone JSON, eviction channel, message ('' =
 * none). Returns 1 when written, 0 when a tombstone was kept.
 */
export const PUT_RESULT = script(
  'putResult',
  `if ARGV[1] ~= ARGV[3] and redis.call('GET', KEYS[1]) == ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1`,
);

/** Deletes a result and announces it. KEYS[1] result key; ARGV: eviction channel, message. */
export const DELETE_RESULT = script(
  'deleteResult',
  `redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1`,
);

/**
 * Deletes a result unless it is a tombstone (a revoked token stays refused until it expires).
 * KEYS[1] result key; ARGV[1] tombstone JSON. Returns 1 if deleted.
 */
export const FORGET_RESULT = script(
  'forgetResult',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])`,
);

/** Deletes a key only if it still holds ARGV[1] (compare-and-delete). Returns 1 if deleted. */
export const DELETE_IF_EQUAL = script(
  'deleteIfEqual',
  `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`,
);

/**
 * Adds a result to its subject's index, a sorted set scored by expiry (Redis's clock, epoch ms):
 * expired members go on every write and the index lives as long as its longest member, so it stays
 * bounded by the results alive. Then checks the subject's revocation mark, in the same step, so a
 * result written while the subject was being revoked is caught by one side or the other.
 * KEYS[1] index, KEYS[2] revocation mark (one hash slot); ARGV: result hash, ttl ms, the token's
 * `iat` ('' = unknown), a window in seconds. Returns 1, or 0 when the subject was revoked at or
 * after `iat` (without `iat`: within the window before now, when the decision may have been made).
 */
export const INDEX_SUBJECT = script(
  'indexSubject',
  `local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
local mark = tonumber(redis.call('GET', KEYS[2]))
if mark == nil then return 1 end
if ARGV[3] == '' then
  if mark >= now / 1000 - tonumber(ARGV[4]) then return 0 end
elseif tonumber(ARGV[3]) <= mark then
  return 0
end
return 1`,
);

/**
 * Marks a subject revoked and takes its index. KEYS[1] revocation mark, KEYS[2] index (one hash
 * slot); ARGV: revokedAt (epoch seconds), ttl ms. Returns the hashes the index held.
 */
export const REVOKE_SUBJECT = script(
  'revokeSubject',
  `redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local hashes = redis.call('ZRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return hashes`,
);
