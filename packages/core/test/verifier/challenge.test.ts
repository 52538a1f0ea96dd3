/**
 * The challenges a resource server sends (RFC 6750 §3, RFC 9449 §7.1): which scheme carries the
 * error, and nothing in them that breaks the header's syntax.
 */
import { describe, expect, it } from '@jest/globals';
import { parseWwwAuthenticate } from '@tessera/core';
import { verificationError } from '../../src/verifier/challenge.js';
import type { ChallengeSettings } from '../../src/verifier/challenge.js';

const settings: ChallengeSettings = {
  realm: 'api "main"',
  resourceMetadata: 'https://rs.example/.well-known/oauth-protected-resource',
  bearer: true,
  dpopAlgorithms: ['ES256', 'PS256'],
};

describe('challenges', () => {
  it('drops quotes, backslashes, CR/LF and non-ASCII from error_description, and escapes the realm', () => {
    const error = verificationError(settings, {
      reason: 'malformed',
      description: 'bad "token"\\ here\r\nSet-Cookie: x=1 — é',
      scheme: 'Bearer',
    });
    expect(error.wwwAuthenticate).not.toMatch(/[\r\n]/);
    const [bearer, dpop] = parseWwwAuthenticate(error.wwwAuthenticate);
    expect(bearer!.parameters.error_description).toBe("bad 'token' hereSet-Cookie: x=1  ");
    expect(bearer!.parameters.realm).toBe('api "main"');
    expect(dpop!.parameters).toStrictEqual({
      realm: 'api "main"',
      resource_metadata: settings.resourceMetadata,
      algs: 'ES256 PS256',
    });
  });

  it('puts a DPoP failure in the DPoP challenge, an ambiguous one in both, and none for unavailable', () => {
    const dpop = parseWwwAuthenticate(
      verificationError(settings, { reason: 'dpop_proof', description: 'x', scheme: 'DPoP' }).wwwAuthenticate,
    );
    expect(dpop.map((c) => c.parameters.error)).toEqual([undefined, 'invalid_dpop_proof']);
    const both = parseWwwAuthenticate(
      verificationError(settings, { reason: 'request', description: 'x', scheme: 'both' }).wwwAuthenticate,
    );
    expect(both.map((c) => c.parameters.error)).toEqual(['invalid_request', 'invalid_request']);
    const down = verificationError(settings, {
      reason: 'unavailable',
      description: 'x',
      scheme: 'Bearer',
      retryAfterSeconds: 10,
    });
    expect(down).toMatchObject({ status: 503, error: 'temporarily_unavailable', retryAfterSeconds: 10 });
    expect(parseWwwAuthenticate(down.wwwAuthenticate).every((c) => c.parameters.error === undefined)).toBe(
      true,
    );
  });

  it('answers insufficient_scope with 403 and the scopes needed', () => {
    const error = verificationError(settings, {
      reason: 'scope',
      description: 'x',
      scheme: 'Bearer',
      scope: ['a', 'b'],
    });
    expect(error.status).toBe(403);
    expect(parseWwwAuthenticate(error.wwwAuthenticate)[0]!.parameters).toMatchObject({
      error: 'insufficient_scope',
      scope: 'a b',
    });
  });
});
