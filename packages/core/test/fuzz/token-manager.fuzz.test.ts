/**
 * Property-based fuzzing of the TokenManager against the hostile server: acquiring with a grant,
 * refreshing stored tokens (asked for, and because they expire), revoking and introspecting, with
 * every client authentication method, with and without DPoP. Besides the Client's properties
 * (./properties.ts), no event payload may carry a secret or a token.
 */
import { it } from '@jest/globals';
import fc from 'fast-check';
import { TokenManager } from '@tessera/core';
import type {
  IntrospectionResponse,
  RevocationResult,
  TokenEndpointResponse,
  TokenManagerEventName,
  TokenSet,
} from '@tessera/core';
import { onEveryEvent } from '../support/events.js';
import {
  ACCESS_TOKEN,
  AUTH_METHODS,
  REFRESH_TOKEN,
  TRANSPORTS,
  configuredSecrets,
  dpopHandle,
  openCase,
  useHostileSuite,
  CLIENT_SOURCES,
  GRANT_SOURCES,
} from './clients.js';
import type { FuzzAuthMethod, FuzzTransport } from './clients.js';
import { casePlanArb, record } from './answer-plans.js';
import type { CasePlan, EndpointKind, SecretSource } from './answer-plans.js';
import type { HostileCase } from './hostile-server.js';
import {
  accessTokenProblems,
  checkCall,
  deadlineMs,
  fuzzParameters,
  introspectionProblems,
  propertyTimeoutMs,
  revocationProblems,
  tokenSetProblems,
} from './properties.js';
import type { FuzzCall, Secret } from './properties.js';

const suite = useHostileSuite();

const GRANT_REQUESTS = 3;

/** What the manager holds before the call (never sent to the server by `storeTokens`). */
const STORED_SECRETS: Secret[] = [
  { name: 'stored access token', value: ACCESS_TOKEN },
  { name: 'stored refresh token', value: REFRESH_TOKEN },
];

function stored(expiresIn: number): TokenEndpointResponse {
  return {
    access_token: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: expiresIn,
    refresh_token: REFRESH_TOKEN,
  };
}

interface Input {
  auth: FuzzAuthMethod;
  transport: FuzzTransport;
  dpop: boolean;
  plan: CasePlan;
}

function inputArb(kind: EndpointKind, sources: SecretSource[]): fc.Arbitrary<Input> {
  return record({
    auth: fc.constantFrom<FuzzAuthMethod>(...AUTH_METHODS),
    transport: fc.oneof(
      { weight: 3, arbitrary: fc.constant<FuzzTransport>(TRANSPORTS[0]) },
      { weight: 1, arbitrary: fc.constant<FuzzTransport>(TRANSPORTS[1]) },
    ),
    dpop: fc.boolean(),
    plan: casePlanArb(kind, sources),
  });
}

/**
 * Runs one case with a fresh manager: `prepare` (local only, e.g. `storeTokens`), then the call,
 * then every property, with every event the manager emitted checked for secrets and tokens.
 */
async function managerCase<T>(
  input: Input & { expiresIn?: number },
  options: { grant: boolean },
  run: (
    manager: TokenManager,
    fuzzCase: HostileCase,
  ) => Omit<FuzzCall<T>, 'fuzzCase' | 'payloads' | 'input'> & { prepare?: () => Promise<unknown> },
): Promise<void> {
  const { fuzzCase, client } = openCase(suite.server, input.plan, input.auth, suite.keys, input.transport);
  const manager = new TokenManager({
    client,
    ...(options.grant ? { grant: 'client_credentials' as const } : {}),
    ...(input.dpop ? { dpop: dpopHandle(client, suite.keys) } : {}),
  });
  const events: Array<[string, unknown]> = [];
  onEveryEvent(manager, (name: TokenManagerEventName, payload) => events.push([`event ${name}`, payload]));
  try {
    const { prepare, ...call } = run(manager, fuzzCase);
    await prepare?.();
    await checkCall(suite.watch, { ...call, input, fuzzCase, payloads: () => events });
  } finally {
    await manager.close();
  }
}

it(
  'getValidAccessToken with a client_credentials grant',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', GRANT_SOURCES), async (input) => {
        await managerCase<string>(input, { grant: true }, (manager) => ({
          what: 'TokenManager.getValidAccessToken (client_credentials)',
          secrets: configuredSecrets(input.auth),
          maxRequests: GRANT_REQUESTS,
          call: () => manager.getValidAccessToken(),
          check: accessTokenProblems,
          tokensOf: (token) => [{ name: 'issued access token', value: token }],
        }));
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

it(
  'refreshTokens of stored tokens',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', [...GRANT_SOURCES, 'refresh_token']), async (input) => {
        await managerCase<TokenSet>(input, { grant: false }, (manager) => ({
          what: 'TokenManager.refreshTokens',
          secrets: [...configuredSecrets(input.auth), ...STORED_SECRETS],
          maxRequests: GRANT_REQUESTS,
          prepare: () => manager.storeTokens(stored(3600)),
          call: () => manager.refreshTokens(),
          check: tokenSetProblems,
          tokensOf: (tokens) => [
            { name: 'issued access token', value: tokens.accessToken },
            ...(tokens.refreshToken === undefined
              ? []
              : [{ name: 'issued refresh token', value: tokens.refreshToken }]),
          ],
        }));
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

it(
  'storeTokens, then getValidAccessToken refreshes them (expired, or inside the skew)',
  async () => {
    const arb = record({
      expiresIn: fc.constantFrom(0, 30),
      input: inputArb('token', [...GRANT_SOURCES, 'refresh_token']),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ expiresIn, input }) => {
        await managerCase<string>({ ...input, expiresIn }, { grant: false }, (manager) => ({
          what: `TokenManager.storeTokens (expires_in ${expiresIn}) + getValidAccessToken`,
          secrets: [...configuredSecrets(input.auth), ...STORED_SECRETS],
          maxRequests: GRANT_REQUESTS,
          prepare: () => manager.storeTokens(stored(expiresIn)),
          call: () => manager.getValidAccessToken(),
          check: accessTokenProblems,
          // A still valid stored token may be served when the refresh fails transiently: only a new one is "issued".
          tokensOf: (token) =>
            token === ACCESS_TOKEN ? [] : [{ name: 'issued access token', value: token }],
        }));
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

it(
  'revokeTokens',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('revocation', [...CLIENT_SOURCES, 'token']), async (input) => {
        await managerCase<RevocationResult[]>(input, { grant: false }, (manager) => ({
          what: 'TokenManager.revokeTokens',
          secrets: [...configuredSecrets(input.auth), ...STORED_SECRETS],
          maxRequests: 2,
          prepare: () => manager.storeTokens(stored(3600)),
          call: () => manager.revokeTokens(),
          check: revocationProblems,
          errorsIn: (results) =>
            results.flatMap((result): Array<[string, unknown]> =>
              result.error === undefined
                ? []
                : [[`revokeTokens result (${result.tokenTypeHint}).error`, result.error]],
            ),
        }));
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(2)),
);

it(
  'introspectToken of the stored access token',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('introspection', [...CLIENT_SOURCES, 'token']), async (input) => {
        await managerCase<IntrospectionResponse>(input, { grant: false }, (manager) => ({
          what: 'TokenManager.introspectToken',
          secrets: [...configuredSecrets(input.auth), ...STORED_SECRETS],
          maxRequests: 1,
          prepare: () => manager.storeTokens(stored(3600)),
          call: () => manager.introspectToken(),
          check: introspectionProblems,
        }));
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(1)),
);
