/**
 * TokenVerifier under hostile input: whatever the token, the request headers, the DPoP proof or
 * the introspection answer, a verification ends in a result or a TokenVerificationError with an
 * HTTP status a middleware can send, never another exception, a hang, or the token in the error.
 *
 * The seed is fixed; `FUZZ_SEED=N` replays another run, `FUZZ_RUNS=N` runs more cases.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { TokenVerificationError, TokenVerifier } from '@tessera/core';
import { json, raw } from '../support/fake-server.js';
import { AUDIENCE, startIssuer, unsignedJwt } from '../verifier/issuer-fixture.js';
import type { Issuer } from '../verifier/issuer-fixture.js';
import { FUZZ_RUNS, FUZZ_SEED } from './properties.js';

let issuer: Issuer;
let answer: { status: number; body: string } = { status: 200, body: '{"active":false}' };
beforeAll(async () => {
  issuer = await startIssuer({ clientOptions: { timeoutMs: 500, retry: { retries: 0 } } });
  issuer.introspect = (_request, response) =>
    raw(response, answer.status, answer.body, { 'content-type': 'application/json' });
  issuer.jwks = (_request, response) =>
    json(response, 200, { keys: issuer.keys.map((key) => key.publicJwk) });
});
afterAll(() => issuer.close());

const jsonValue = fc.jsonValue({ maxDepth: 3 });
const token = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc
    .tuple(
      fc.dictionary(fc.string({ maxLength: 8 }), jsonValue),
      fc.dictionary(fc.string({ maxLength: 8 }), jsonValue),
      fc.string({ maxLength: 20 }),
    )
    .map(([header, payload, signature]) => unsignedJwt(header, payload, signature)),
  fc
    .record({
      typ: fc.constantFrom('at+jwt', 'JWT'),
      alg: fc.constantFrom('RS256', 'none', 'HS256', 'ES256'),
      kid: fc.string({ maxLength: 10 }),
    })
    .chain((header) =>
      fc
        .record(
          {
            iss: fc.oneof(fc.constant('ISSUER'), fc.string()),
            aud: fc.oneof(fc.constant(AUDIENCE), jsonValue),
            exp: fc.oneof(fc.integer(), jsonValue),
            sub: jsonValue,
            cnf: jsonValue,
          },
          { requiredKeys: [] },
        )
        .map((payload) => unsignedJwt(header, payload, 'c2ln')),
    ),
);
const introspection = fc.record({
  status: fc.constantFrom(200, 200, 400, 401, 500, 503),
  body: fc.oneof(
    jsonValue.map((value) => JSON.stringify(value)),
    fc.string({ maxLength: 50 }),
    fc.constant('{"active":true,"scope":5}'),
    fc.constant('{"active":true,"exp":"soon","cnf":{"jkt":7}}'),
  ),
});
const headers = fc.dictionary(
  fc.constantFrom('authorization', 'dpop', 'host', 'content-type'),
  fc.oneof(
    fc.string({ maxLength: 60 }),
    token.map((t) => `Bearer ${t}`),
    token.map((t) => `DPoP ${t}`),
    fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }),
  ),
);

function checkFailure(error: unknown, secret: string): void {
  expect(error).toBeInstanceOf(TokenVerificationError);
  const failure = error as TokenVerificationError;
  expect([400, 401, 403, 503]).toContain(failure.status);
  expect(failure.wwwAuthenticate).not.toMatch(/[\r\n]/);
  if (secret.length >= 12) {
    for (const text of [
      failure.message,
      JSON.stringify(failure),
      inspect(failure),
      failure.wwwAuthenticate,
    ]) {
      expect(text.includes(secret)).toBe(false);
    }
  }
}

describe('TokenVerifier fuzzing', () => {
  it('answers any token and introspection answer with a result or a TokenVerificationError', async () => {
    await fc.assert(
      fc.asyncProperty(
        token,
        introspection,
        fc.option(fc.string({ maxLength: 80 })),
        async (value, served, proof) => {
          answer = served;
          const v = new TokenVerifier({ client: issuer.client, audience: AUDIENCE });
          const tokenValue = value.replace('ISSUER', issuer.issuer);
          try {
            await v.verify(tokenValue, {
              method: 'GET',
              url: 'https://rs.example.com/x',
              ...(proof === null ? {} : { dpopProof: proof }),
            });
          } catch (error) {
            checkFailure(error, tokenValue);
          }
        },
      ),
      { seed: FUZZ_SEED, numRuns: FUZZ_RUNS * 5 },
    );
  });

  it('answers any request headers with a result or a TokenVerificationError', async () => {
    answer = { status: 200, body: '{"active":false}' };
    const v = new TokenVerifier({
      client: issuer.client,
      audience: AUDIENCE,
      bearerMethods: ['header', 'query'],
    });
    await fc.assert(
      fc.asyncProperty(headers, fc.string({ maxLength: 40 }), async (requestHeaders, query) => {
        try {
          await v.verifyRequest({
            method: 'GET',
            url: `https://rs.example.com/x?${query}`,
            headers: requestHeaders,
          });
        } catch (error) {
          checkFailure(error, '');
        }
      }),
      { seed: FUZZ_SEED, numRuns: FUZZ_RUNS * 5 },
    );
  });
});
