import { describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import {
  ConfigurationError,
  IdTokenError,
  OAuthError,
  ResponseError,
  TesseraError,
  TokenStoreError,
  TransportError,
} from '@tessera/core';
import { parseRetryAfter } from '../src/internal/http.js';

describe('error classes', () => {
  it.each<[string, TesseraError, string]>([
    [
      'OAuthError',
      new OAuthError({ error: 'invalid_grant', status: 400, endpoint: 'token endpoint' }),
      'OAUTH_ERROR',
    ],
    [
      'ResponseError',
      new ResponseError('INVALID_RESPONSE', 'm', { endpoint: 'e', status: 200 }),
      'INVALID_RESPONSE',
    ],
    ['TransportError', new TransportError('TIMEOUT', 'm', { endpoint: 'e' }), 'TIMEOUT'],
    ['IdTokenError', new IdTokenError('iss', 'iss mismatch'), 'INVALID_ID_TOKEN'],
    ['ConfigurationError', new ConfigurationError('UNSUPPORTED', 'm'), 'UNSUPPORTED'],
  ])('%s is a TesseraError with a code and its own name', (name, error, code) => {
    expect(error).toBeInstanceOf(TesseraError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(error.code).toBe(code);
  });

  it('OAuthError reads like the seeds: err.error, error_description, status', () => {
    const error = new OAuthError({
      error: 'invalid_grant',
      error_description: 'expired',
      status: 400,
      endpoint: 'token endpoint',
    });
    expect(error.error).toBe('invalid_grant');
    expect(error.message).toBe('token endpoint returned invalid_grant (HTTP 400): expired');
    expect(error.toJSON()).toEqual({
      name: 'OAuthError',
      code: 'OAUTH_ERROR',
      message: error.message,
      error: 'invalid_grant',
      error_description: 'expired',
      status: 400,
      endpoint: 'token endpoint',
    });
  });

  it('util.inspect shows the cause by name and message only, never its properties', () => {
    const cause = Object.assign(new Error('socket hang up'), {
      config: { headers: { authorization: 'Basic c2VjcmV0' } },
    });
    const error = new TransportError(
      'NETWORK_ERROR',
      'request to token endpoint failed: ECONNRESET',
      { endpoint: 'token endpoint' },
      { cause },
    );
    const shown = inspect(error, { depth: 10 });
    expect(shown).toContain('TransportError [NETWORK_ERROR]');
    expect(shown).toContain('socket hang up');
    expect(shown).not.toContain('c2VjcmV0');
    expect(JSON.stringify(error)).not.toContain('c2VjcmV0');
  });
});

describe('parseRetryAfter (RFC 9110 §10.2.3)', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each<[string | undefined, number | undefined]>([
    ['2', 2000],
    [' 0 ', 0],
    ['Thu, 01 Jan 2026 00:00:05 GMT', 5000],
    ['Wed, 31 Dec 2025 23:59:00 GMT', 0],
    ['soon', undefined],
    ['-1', undefined],
    [undefined, undefined],
  ])('%s → %s ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('TokenStoreError.from (the translator store adapters use)', () => {
  it("keeps the driver's name, message and code, never the driver error itself", () => {
    const driver = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:6379'), {
      code: 'ECONNREFUSED',
      options: { password: 'redis-secret-password' },
    });
    const error = TokenStoreError.from('get', driver, { store: 'my token store' });
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(error).toMatchObject({ code: 'STORE_ERROR', operation: 'get' });
    expect(error.message).toBe('my token store get failed: connect ECONNREFUSED 10.0.0.5:6379');
    expect(error.cause).not.toBe(driver);
    expect(error.cause).toMatchObject({ name: 'Error', message: driver.message, code: 'ECONNREFUSED' });
    expect(JSON.stringify(error) + inspect(error, { depth: 5 }) + JSON.stringify(error.cause)).not.toContain(
      'redis-secret-password',
    );
  });

  it('leaves a TokenStoreError as it is, and takes a thrown string or anything else', () => {
    const original = new TokenStoreError('set', 'disk full');
    expect(TokenStoreError.from('get', original)).toBe(original);
    expect(TokenStoreError.from('delete', 'gone').message).toBe('token store delete failed: gone');
    expect(TokenStoreError.from('lock', 42)).toMatchObject({
      message: 'token store lock failed: unknown error',
    });
    const parse = TokenStoreError.from('get', new SyntaxError('Unexpected token'), {
      message: 'the value is not a token set',
    });
    expect(parse).toMatchObject({ message: 'the value is not a token set', cause: { name: 'SyntaxError' } });
  });
});
