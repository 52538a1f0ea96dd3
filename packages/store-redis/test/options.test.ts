/** RedisTokenStore options: a bad one is a ConfigurationError naming it, never a raw TypeError. */
import { describe, expect, it } from '@jest/globals';
import { ConfigurationError } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import type { RedisTokenStoreOptions } from '@tessera/store-redis';

describe('RedisTokenStore options', () => {
  it.each<[string, unknown, string]>([
    ['no options (regression: a raw TypeError)', undefined, 'needs options'],
    ['neither client nor url', {}, 'exactly one of the options client and url'],
    ['both client and url', { client: { hmget: () => undefined }, url: 'redis://127.0.0.1' }, 'exactly one'],
    ['a client that is not an ioredis client', { client: {} }, 'option client'],
    ['an empty url', { url: '' }, 'option url'],
    ['a keyPrefix that is not a string', { url: 'redis://127.0.0.1', keyPrefix: 5 }, 'option keyPrefix'],
    ['a NaN maxTtlSeconds', { url: 'redis://127.0.0.1', maxTtlSeconds: Number.NaN }, 'option maxTtlSeconds'],
    [
      'a negative commandTimeoutMs',
      { url: 'redis://127.0.0.1', commandTimeoutMs: -1 },
      'option commandTimeoutMs',
    ],
  ])('%s', (_case, options, message) => {
    let error: unknown;
    try {
      new RedisTokenStore(options as RedisTokenStoreOptions);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('INVALID_CONFIGURATION');
    expect((error as Error).message).toContain(message);
  });
});
