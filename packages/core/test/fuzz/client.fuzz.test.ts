/**
 * Property-based fuzzing of every Client call against the hostile server, with every client
 * authentication method that carries or signs with a secret. What the server answers is in
 * ./hostile-server.ts, what every case must keep in ./properties.ts.
 *
 * The seed is fixed; `FUZZ_SEED=N` replays another run, `FUZZ_RUNS=N` (or `pnpm fuzz --runs N`)
 * runs more cases. A failure prints the plan that broke a property, and what broke.
 */
import { it } from '@jest/globals';
import fc from 'fast-check';
import { Client } from '@tessera/core';
import type {
  BackchannelAuthenticationResponse,
  DeviceAuthorizationResponse,
  GrantOptions,
  IntrospectionOptions,
} from '@tessera/core';
import {
  ACCESS_TOKEN,
  AUTH_METHODS,
  AUTH_REQ_ID,
  BEARER_TOKEN,
  DEVICE_CODE,
  REFRESH_TOKEN,
  SUBJECT_TOKEN,
  TRANSPORTS,
  clientMetadata,
  clientOptions,
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
import {
  checkCall,
  cibaProblems,
  deadlineMs,
  deviceProblems,
  fuzzParameters,
  introspectionProblems,
  propertyTimeoutMs,
  tokenResponseProblems,
} from './properties.js';

const suite = useHostileSuite();

const authArb = fc.constantFrom<FuzzAuthMethod>(...AUTH_METHODS);
const transportArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant<FuzzTransport>(TRANSPORTS[0]) },
  { weight: 1, arbitrary: fc.constant<FuzzTransport>(TRANSPORTS[1]) },
);

interface Input {
  auth: FuzzAuthMethod;
  transport: FuzzTransport;
  dpop: boolean;
  plan: CasePlan;
}

function inputArb(kind: EndpointKind, sources: SecretSource[], maxAnswers = 3): fc.Arbitrary<Input> {
  return record({
    auth: authArb,
    transport: transportArb,
    dpop: fc.boolean(),
    plan: casePlanArb(kind, sources, maxAnswers),
  });
}

function grantOptions(client: Client, input: Input): GrantOptions {
  return input.dpop ? { DPoP: dpopHandle(client, suite.keys) } : {};
}

/** A grant may be answered `use_dpop_nonce` and retried once, then fetch the JWKS for its ID Token. */
const GRANT_REQUESTS = 3;
/** Polls: ~0.4 s until the code expires, then the last poll, its retry and the JWKS. */
const POLL_REQUESTS = 6;
const POLL_EXPIRES_IN = 0.4;
const POLL_INTERVAL = 0.05;

it(
  'Client.discover',
  async () => {
    await fc.assert(
      fc.asyncProperty(
        record({
          auth: authArb,
          transport: transportArb,
          plan: casePlanArb('metadata', ['client_secret'], 4),
        }),
        async ({ auth, transport, plan }) => {
          const fuzzCase = suite.server.open(plan, { clientId: 'unused' });
          await checkCall(suite.watch, {
            what: 'Client.discover',
            input: { auth, transport, plan },
            fuzzCase,
            secrets: configuredSecrets(auth),
            maxRequests: 4,
            call: () =>
              Client.discover(
                fuzzCase.issuer,
                clientMetadata(auth),
                clientOptions(auth, suite.keys, transport),
              ),
            check: (client) =>
              client instanceof Client && client.serverMetadata().issuer === fuzzCase.issuer
                ? []
                : ['discover resolved without a client for the issuer'],
          });
        },
      ),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(4)),
);

it(
  'clientCredentialsGrant',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', GRANT_SOURCES), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        await checkCall(suite.watch, {
          what: 'clientCredentialsGrant',
          input,
          fuzzCase,
          secrets: configuredSecrets(input.auth),
          maxRequests: GRANT_REQUESTS,
          call: () => client.clientCredentialsGrant({ scope: 'api:read' }, grantOptions(client, input)),
          check: (tokens) => tokenResponseProblems(tokens),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

it(
  'refreshTokenGrant',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', [...GRANT_SOURCES, 'refresh_token']), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        await checkCall(suite.watch, {
          what: 'refreshTokenGrant',
          input,
          fuzzCase,
          secrets: [...configuredSecrets(input.auth), { name: 'refresh_token', value: REFRESH_TOKEN }],
          maxRequests: GRANT_REQUESTS,
          call: () => client.refreshTokenGrant(REFRESH_TOKEN, undefined, grantOptions(client, input)),
          check: (tokens) => tokenResponseProblems(tokens),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

const GENERIC_GRANTS = {
  'token-exchange': [
    'urn:ietf:params:oauth:grant-type:token-exchange',
    {
      subject_token: SUBJECT_TOKEN,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: ['https://api.example/a', 'https://api.example/b'],
    },
  ],
  'jwt-bearer': [
    'urn:ietf:params:oauth:grant-type:jwt-bearer',
    { assertion: SUBJECT_TOKEN, scope: 'api:read' },
  ],
} as const;

it(
  'genericGrantRequest',
  async () => {
    const arb = record({
      grant: fc.constantFrom<keyof typeof GENERIC_GRANTS>('token-exchange', 'jwt-bearer'),
      input: inputArb('token', [...GRANT_SOURCES, 'subject_token']),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ grant, input }) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        const [grantType, parameters] = GENERIC_GRANTS[grant];
        await checkCall(suite.watch, {
          what: `genericGrantRequest (${grant})`,
          input: { grant, input },
          fuzzCase,
          secrets: [...configuredSecrets(input.auth), { name: 'subject token', value: SUBJECT_TOKEN }],
          maxRequests: GRANT_REQUESTS,
          call: () => client.genericGrantRequest(grantType, parameters, grantOptions(client, input)),
          check: (tokens) => tokenResponseProblems(tokens),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(GRANT_REQUESTS)),
);

type IntrospectionMode = 'json' | 'jwt' | 'bearer';

it(
  'tokenIntrospection (JSON, RFC 9701 JWT, and with a bearer token)',
  async () => {
    const sources: SecretSource[] = [...CLIENT_SOURCES, 'token'];
    const arb = fc.constantFrom<IntrospectionMode>('json', 'jwt', 'bearer').chain((mode) =>
      record({
        mode: fc.constant(mode),
        auth: authArb,
        transport: transportArb,
        plan: casePlanArb(mode === 'jwt' ? 'jwt-introspection' : 'introspection', sources),
      }),
    );
    await fc.assert(
      fc.asyncProperty(arb, async ({ mode, auth, transport, plan }) => {
        const { fuzzCase, client } = openCase(suite.server, plan, auth, suite.keys, transport);
        const options: IntrospectionOptions =
          mode === 'jwt' ? { jwtResponse: true } : mode === 'bearer' ? { bearer: BEARER_TOKEN } : {};
        await checkCall(suite.watch, {
          what: `tokenIntrospection (${mode})`,
          input: { mode, auth, transport, plan },
          fuzzCase,
          secrets: [
            ...configuredSecrets(auth),
            { name: 'introspected token', value: ACCESS_TOKEN },
            ...(mode === 'bearer' ? [{ name: 'bearer token', value: BEARER_TOKEN }] : []),
          ],
          maxRequests: 2,
          call: () => client.tokenIntrospection(ACCESS_TOKEN, { token_type_hint: 'access_token' }, options),
          check: introspectionProblems,
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(2)),
);

it(
  'tokenRevocation',
  async () => {
    const arb = record({
      hint: fc.constantFrom('access_token', 'refresh_token'),
      auth: authArb,
      transport: transportArb,
      plan: casePlanArb('revocation', [...CLIENT_SOURCES, 'token']),
    });
    await fc.assert(
      fc.asyncProperty(arb, async ({ hint, auth, transport, plan }) => {
        const { fuzzCase, client } = openCase(suite.server, plan, auth, suite.keys, transport);
        const token = hint === 'access_token' ? ACCESS_TOKEN : REFRESH_TOKEN;
        await checkCall(suite.watch, {
          what: `tokenRevocation (${hint})`,
          input: { hint, auth, transport, plan },
          fuzzCase,
          secrets: [...configuredSecrets(auth), { name: 'revoked token', value: token }],
          maxRequests: 1,
          call: () => client.tokenRevocation(token, { token_type_hint: hint }),
          check: (result) => (result === undefined ? [] : [`revocation resolved with ${String(result)}`]),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(1)),
);

it(
  'initiateDeviceAuthorization',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('device', CLIENT_SOURCES), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        await checkCall(suite.watch, {
          what: 'initiateDeviceAuthorization',
          input,
          fuzzCase,
          secrets: configuredSecrets(input.auth),
          maxRequests: 1,
          call: () => client.initiateDeviceAuthorization({ scope: 'openid offline_access' }),
          check: deviceProblems,
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(1)),
);

it(
  'pollDeviceAuthorizationGrant',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', [...GRANT_SOURCES, 'device_code']), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        const device: DeviceAuthorizationResponse = {
          device_code: DEVICE_CODE,
          user_code: 'WDJB-MJHT',
          verification_uri: 'https://as.example/device',
          expires_in: POLL_EXPIRES_IN,
          interval: POLL_INTERVAL,
        };
        await checkCall(suite.watch, {
          what: 'pollDeviceAuthorizationGrant',
          input,
          fuzzCase,
          secrets: [...configuredSecrets(input.auth), { name: 'device_code', value: DEVICE_CODE }],
          maxRequests: POLL_REQUESTS,
          call: () => client.pollDeviceAuthorizationGrant(device, undefined, grantOptions(client, input)),
          check: (tokens) => tokenResponseProblems(tokens),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(POLL_REQUESTS)),
);

it(
  'initiateBackchannelAuthentication',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('ciba', CLIENT_SOURCES), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        await checkCall(suite.watch, {
          what: 'initiateBackchannelAuthentication',
          input,
          fuzzCase,
          secrets: configuredSecrets(input.auth),
          maxRequests: 1,
          call: () =>
            client.initiateBackchannelAuthentication({
              login_hint: 'user@example.com',
              binding_message: 'W4SCT',
            }),
          check: cibaProblems,
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(1)),
);

it(
  'pollBackchannelAuthenticationGrant',
  async () => {
    await fc.assert(
      fc.asyncProperty(inputArb('token', [...GRANT_SOURCES, 'auth_req_id']), async (input) => {
        const { fuzzCase, client } = openCase(
          suite.server,
          input.plan,
          input.auth,
          suite.keys,
          input.transport,
        );
        const request: BackchannelAuthenticationResponse = {
          auth_req_id: AUTH_REQ_ID,
          expires_in: POLL_EXPIRES_IN,
          interval: POLL_INTERVAL,
        };
        await checkCall(suite.watch, {
          what: 'pollBackchannelAuthenticationGrant',
          input,
          fuzzCase,
          secrets: [...configuredSecrets(input.auth), { name: 'auth_req_id', value: AUTH_REQ_ID }],
          maxRequests: POLL_REQUESTS,
          call: () =>
            client.pollBackchannelAuthenticationGrant(request, undefined, grantOptions(client, input)),
          check: (tokens) => tokenResponseProblems(tokens),
        });
      }),
      fuzzParameters(),
    );
  },
  propertyTimeoutMs(deadlineMs(POLL_REQUESTS)),
);
