/**
 * Bad options and arguments are a `ConfigurationError` `INVALID_CONFIGURATION` naming what is wrong,
 * at construction or before any request: never a raw `TypeError`, never a silently odd behaviour.
 */
import { describe, expect, it } from '@jest/globals';
import { Client, ConfigurationError, MemoryTokenStore, TokenManager } from '@tessera/core';
import type { ClientOptions, TokenManagerOptions } from '@tessera/core';
import { rejection } from './support/test-helpers.js';

const SERVER = { issuer: 'http://127.0.0.1:1', token_endpoint: 'http://127.0.0.1:1/token' };
const METADATA = {
  client_id: 'c',
  client_secret: 'the-client-secret',
  token_endpoint_auth_method: 'client_secret_post' as const,
};
const client = new Client(SERVER, METADATA, { retry: { retries: 0 } });

function configurationError(run: () => unknown): ConfigurationError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('INVALID_CONFIGURATION');
    return error as ConfigurationError;
  }
  throw new Error('expected a ConfigurationError');
}

describe('TokenManager options', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['no client', { client: undefined }, 'client'],
    ['a client that is not one', { client: {} }, 'client'],
    [
      'a negative retry delay (regression: about 1,000 refresh requests in 2 s)',
      { retry: { minDelayMs: -5 } },
      'retry.minDelayMs',
    ],
    [
      'a NaN retry delay (regression: retries silently stopped)',
      { retry: { maxDelayMs: Number.NaN } },
      'retry.maxDelayMs',
    ],
    ['a zero retry delay', { retry: { minDelayMs: 0 } }, 'retry.minDelayMs'],
    ['minDelayMs above maxDelayMs', { retry: { minDelayMs: 5000, maxDelayMs: 10 } }, 'retry'],
    ['an empty key', { key: '' }, 'key'],
    ['a key that is not a string', { key: 5 }, 'key'],
    [
      'grant parameters as a string (regression: sent as garbage)',
      { grant: { type: 'client_credentials', parameters: 'scope=a' } },
      'grant',
    ],
    ['grant parameters as a number', { grant: { type: 'client_credentials', parameters: 5 } }, 'grant'],
    [
      'grant parameters as an array',
      { grant: { type: 'client_credentials', parameters: ['scope', 'a'] } },
      'grant',
    ],
    [
      'a grant parameter that is a number',
      { grant: { type: 'client_credentials', parameters: { scope: 5 } } },
      'grant',
    ],
    ['an unknown grant string', { grant: 'password' }, 'grant'],
    ['a grant without a type', { grant: {} }, 'grant'],
    ['a NaN skew', { refreshSkewSeconds: Number.NaN }, 'refreshSkewSeconds'],
    ['a negative skew', { refreshSkewSeconds: -1 }, 'refreshSkewSeconds'],
    ['autoRefresh ahead of NaN', { autoRefresh: { aheadSeconds: Number.NaN } }, 'autoRefresh'],
    [
      'a store without set',
      { store: { get: async () => undefined, delete: async () => undefined } },
      'store',
    ],
    ['a lock TTL of 0', { lock: { ttlMs: 0 } }, 'lock.ttlMs'],
    ['a negative lock wait', { lock: { waitMs: -1 } }, 'lock.waitMs'],
    ['a storeTimeoutMs of 0', { storeTimeoutMs: 0 }, 'storeTimeoutMs'],
    ['a now that is not a function', { now: 5 }, 'now'],
    ['a dpop that is not a handle', { dpop: {} }, 'dpop'],
  ])('%s', (_case, options, option) => {
    const error = configurationError(
      () => new TokenManager({ client, ...options } as unknown as TokenManagerOptions),
    );
    expect(error.message).toContain(`TokenManager option ${option}`);
  });

  it('no options at all', () => {
    expect(
      configurationError(() => new TokenManager(undefined as unknown as TokenManagerOptions)).message,
    ).toContain('TokenManager');
  });

  it('a store whose subscribe() throws (regression: a raw error from the constructor)', () => {
    const store = Object.assign(new MemoryTokenStore(), {
      subscribe: () => {
        throw new TypeError('feed not ready');
      },
    });
    expect(configurationError(() => new TokenManager({ client, store })).message).toMatch(
      /option store: its subscribe\(\) threw: feed not ready/,
    );
  });

  it('a store whose subscribe() returns no unsubscribe function', () => {
    const store = Object.assign(new MemoryTokenStore(), {
      subscribe: () => undefined as unknown as () => void,
    });
    expect(configurationError(() => new TokenManager({ client, store })).message).toContain('option store');
  });

  it('for() with an empty key', () => {
    const manager = new TokenManager({ client });
    expect(configurationError(() => manager.for('')).message).toContain('key');
    return manager.close();
  });

  it('valid options pass', async () => {
    const manager = new TokenManager({
      client,
      grant: {
        type: 'client_credentials',
        parameters: { scope: 'a', resource: ['https://r1', 'https://r2'], audience: undefined },
      },
      retry: { minDelayMs: 10, maxDelayMs: 20 },
      lock: { ttlMs: 100, waitMs: 0 },
      autoRefresh: { aheadSeconds: 0 },
      refreshSkewSeconds: 0,
      storeTimeoutMs: 1,
    });
    await manager.close();
  });
});

describe('Client options and arguments', () => {
  it.each<[string, ClientOptions, string]>([
    [
      'a NaN clockToleranceSeconds (regression: every ID Token failed)',
      { clockToleranceSeconds: Number.NaN },
      'clockToleranceSeconds',
    ],
    ['a negative clockToleranceSeconds', { clockToleranceSeconds: -1 }, 'clockToleranceSeconds'],
    ['a timeoutMs of 0', { timeoutMs: 0 }, 'timeoutMs'],
    ['fractional retries', { retry: { retries: 1.5 } }, 'retry.retries'],
    ['a negative retry delay', { retry: { minDelayMs: -1 } }, 'retry.minDelayMs'],
    ['Infinity maxResponseBytes', { maxResponseBytes: Number.POSITIVE_INFINITY }, 'maxResponseBytes'],
    [
      'a header value with CR/LF (regression: reported as NETWORK_ERROR at request time)',
      { headers: { 'x-trace': 'a\r\nx-evil: 1' } },
      'headers',
    ],
    ['a header name with a space', { headers: { 'x trace': 'a' } }, 'headers'],
    ['a header value that is a number', { headers: { 'x-n': 5 as unknown as string } }, 'headers'],
    ['an unknown basicAuthEncoding', { basicAuthEncoding: 'latin1' as 'raw' }, 'basicAuthEncoding'],
    [
      'an unknown clientAssertionAudience',
      { clientAssertionAudience: 'token' as 'issuer' },
      'clientAssertionAudience',
    ],
    ['tls.cert that is a number', { tls: { cert: 5 as unknown as string } }, 'tls.cert'],
  ])('%s', (_case, options, option) => {
    const error = configurationError(() => new Client(SERVER, METADATA, options));
    expect(error.message).toContain(`Client option ${option}`);
  });

  it('a header value is never quoted in the message (it may be a credential)', () => {
    const error = configurationError(
      () => new Client(SERVER, METADATA, { headers: { 'x-api-key': 'k3y-value\n' } }),
    );
    expect(error.message).not.toContain('k3y-value');
  });

  it('options that are null (regression: a raw TypeError)', () => {
    expect(
      configurationError(() => new Client(SERVER, METADATA, null as unknown as ClientOptions)).message,
    ).toContain('Client options');
  });

  it.each([[null], [undefined], ['a string']])('client metadata %p', (metadata) => {
    expect(configurationError(() => new Client(SERVER, metadata as never)).message).toContain(
      'client metadata',
    );
  });

  it.each([[undefined], [null], [''], [5]])(
    'Client.discover(%p) (regression: a raw TypeError)',
    async (issuer) => {
      const error = await rejection(Client.discover(issuer as unknown as string, METADATA));
      expect(error).toBeInstanceOf(ConfigurationError);
      expect(error.message).toContain('issuer');
    },
  );

  it('Client.discover with bad options fails before any request', async () => {
    const error = await rejection(Client.discover('http://127.0.0.1:1', METADATA, { timeoutMs: -1 }));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain('timeoutMs');
  });
});

describe('request parameters', () => {
  it.each<[string, unknown, string]>([
    ['a number value (regression: a raw TypeError)', { scope: 5 }, 'parameter scope'],
    ['an object value', { scope: { a: 1 } }, 'parameter scope'],
    ['an array with a number', { resource: ['https://r', 5] }, 'parameter resource'],
    ['parameters as a string', 'scope=a', 'parameters must be'],
    ['parameters as an array', [['scope', 'a']], 'parameters must be'],
    ['parameters as a number', 5, 'parameters must be'],
  ])('%s', async (_case, parameters, message) => {
    const error = await rejection(client.clientCredentialsGrant(parameters as never));
    expect(error).toBeInstanceOf(ConfigurationError);
    expect(error.message).toContain(message);
  });
});
