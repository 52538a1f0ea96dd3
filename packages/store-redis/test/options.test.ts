/** RedisTokenStore options: a bad one is a ConfigurationError naming it, never a raw TypeError. */
import { describe, expect, it } from '@jest/globals';
import { ConfigurationError } from '@tessera/core';
import { RedisTokenStore } from '@tessera/store-redis';
import type { RedisTokenStoreOptions } from '@tessera/store-redis';

describe('RedisTokenStore options', () => {
  it.each<[string, unknown, string]>([
    ['no options (regression: a raw TypeError)', undefined, 'needs options'],
    ['neither client nor url', {}, 'exactly one of the options client, url and sentinels'],
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
    [
      'both url and sentinels',
      { url: 'redis://127.0.0.1', sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'm' },
      'exactly one',
    ],
    ['sentinels without name', { sentinels: [{ host: '127.0.0.1', port: 26379 }] }, 'option name'],
    ['an empty sentinels list', { sentinels: [], name: 'm' }, 'option sentinels'],
    ['a sentinel without a port', { sentinels: [{ host: '127.0.0.1' }], name: 'm' }, 'option sentinels'],
    ['name without sentinels', { url: 'redis://127.0.0.1', name: 'm' }, 'option name'],
    [
      'waitForReplicas with no replicas',
      { url: 'redis://127.0.0.1', waitForReplicas: { replicas: 0, timeoutMs: 100 } },
      'option waitForReplicas',
    ],
    [
      'waitForReplicas without a timeout',
      { url: 'redis://127.0.0.1', waitForReplicas: { replicas: 1 } },
      'option waitForReplicas',
    ],
    ['waitForReplicas true', { url: 'redis://127.0.0.1', waitForReplicas: true }, 'option waitForReplicas'],
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
