/**
 * The Lua scripts of the Redis token store, as named constants. Each touches exactly one key, so
 * they run on Redis Cluster (the data and lock keys of one token key share a hash slot anyway).
 */
import { createHash } from 'node:crypto';

/** A script and its SHA-1, for EVALSHA with an EVAL fallback. */
export interface LuaScript {
  readonly name: string;
  readonly lua: string;
  readonly sha: string;
}

function script(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash('sha1').update(lua).digest('hex') };
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
