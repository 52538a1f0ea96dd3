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
import type { Secret } from './properties.js';

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

/** What one property checks of a case, given its client and input (see {@link clientProperty}). */
interface CallSpec<T> {
  /** The name in failure messages; default: the property's name. */
  what?: string;
  /** Secrets of the call besides the client's own. */
  secrets?: Secret[];
  call: () => Promise<T>;
  check: (value: T) => string[];
}

/**
 * One property: every generated input opens a case on the hostile server with a client for its
 * authentication method and transport, and the call must keep every property of ./properties.ts.
 */
function clientProperty<I extends { auth: FuzzAuthMethod; transport: FuzzTransport; plan: CasePlan }, T>(
  name: string,
  arb: fc.Arbitrary<I>,
  maxRequests: number,
  spec: (client: Client, input: I) => CallSpec<T>,
): void {
  it(
    name,
    async () => {
      await fc.assert(
        fc.asyncProperty(arb, async (input) => {
          const { fuzzCase, client } = openCase(
            suite.server,
            input.plan,
            input.auth,
            suite.keys,
            input.transport,
          );
          const { what = name, secrets = [], call, check } = spec(client, input);
          await checkCall(suite.watch, {
            what,
            input,
            fuzzCase,
            secrets: [...configuredSecrets(input.auth), ...secrets],
            maxRequests,
            call,
            check,
          });
        }),
        fuzzParameters(),
      );
    },
    propertyTimeoutMs(deadlineMs(maxRequests)),
  );
}

clientProperty(
  'clientCredentialsGrant',
  inputArb('token', GRANT_SOURCES),
  GRANT_REQUESTS,
  (client, input) => ({
    call: () => client.clientCredentialsGrant({ scope: 'api:read' }, grantOptions(client, input)),
    check: tokenResponseProblems,
  }),
);

clientProperty(
  'refreshTokenGrant',
  inputArb('token', [...GRANT_SOURCES, 'refresh_token']),
  GRANT_REQUESTS,
  (client, input) => ({
    secrets: [{ name: 'refresh_token', value: REFRESH_TOKEN }],
    call: () => client.refreshTokenGrant(REFRESH_TOKEN, undefined, grantOptions(client, input)),
    check: tokenResponseProblems,
  }),
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

clientProperty(
  'genericGrantRequest',
  inputArb('token', [...GRANT_SOURCES, 'subject_token']).chain((input) =>
    fc
      .constantFrom<keyof typeof GENERIC_GRANTS>('token-exchange', 'jwt-bearer')
      .map((grant) => ({ ...input, grant })),
  ),
  GRANT_REQUESTS,
  (client, input) => {
    const [grantType, parameters] = GENERIC_GRANTS[input.grant];
    return {
      what: `genericGrantRequest (${input.grant})`,
      secrets: [{ name: 'subject token', value: SUBJECT_TOKEN }],
      call: () => client.genericGrantRequest(grantType, parameters, grantOptions(client, input)),
      check: tokenResponseProblems,
    };
  },
);

type IntrospectionMode = 'json' | 'jwt' | 'bearer';

clientProperty(
  'tokenIntrospection (JSON, RFC 9701 JWT, and with a bearer token)',
  fc.constantFrom<IntrospectionMode>('json', 'jwt', 'bearer').chain((mode) =>
    record({
      mode: fc.constant(mode),
      auth: authArb,
      transport: transportArb,
      plan: casePlanArb(mode === 'jwt' ? 'jwt-introspection' : 'introspection', [...CLIENT_SOURCES, 'token']),
    }),
  ),
  2,
  (client, { mode }) => {
    const options: IntrospectionOptions =
      mode === 'jwt' ? { jwtResponse: true } : mode === 'bearer' ? { bearer: BEARER_TOKEN } : {};
    return {
      what: `tokenIntrospection (${mode})`,
      secrets: [
        { name: 'introspected token', value: ACCESS_TOKEN },
        ...(mode === 'bearer' ? [{ name: 'bearer token', value: BEARER_TOKEN }] : []),
      ],
      call: () => client.tokenIntrospection(ACCESS_TOKEN, { token_type_hint: 'access_token' }, options),
      check: introspectionProblems,
    };
  },
);

clientProperty(
  'tokenRevocation',
  record({
    hint: fc.constantFrom('access_token', 'refresh_token'),
    auth: authArb,
    transport: transportArb,
    plan: casePlanArb('revocation', [...CLIENT_SOURCES, 'token']),
  }),
  1,
  (client, { hint }) => {
    const token = hint === 'access_token' ? ACCESS_TOKEN : REFRESH_TOKEN;
    return {
      what: `tokenRevocation (${hint})`,
      secrets: [{ name: 'revoked token', value: token }],
      call: () => client.tokenRevocation(token, { token_type_hint: hint }),
      check: (result: unknown) =>
        result === undefined ? [] : [`revocation resolved with ${String(result)}`],
    };
  },
);

clientProperty('initiateDeviceAuthorization', inputArb('device', CLIENT_SOURCES), 1, (client) => ({
  call: () => client.initiateDeviceAuthorization({ scope: 'openid offline_access' }),
  check: deviceProblems,
}));

clientProperty(
  'pollDeviceAuthorizationGrant',
  inputArb('token', [...GRANT_SOURCES, 'device_code']),
  POLL_REQUESTS,
  (client, input) => {
    const device: DeviceAuthorizationResponse = {
      device_code: DEVICE_CODE,
      user_code: 'WDJB-MJHT',
      verification_uri: 'https://as.example/device',
      expires_in: POLL_EXPIRES_IN,
      interval: POLL_INTERVAL,
    };
    return {
      secrets: [{ name: 'device_code', value: DEVICE_CODE }],
      call: () => client.pollDeviceAuthorizationGrant(device, undefined, grantOptions(client, input)),
      check: tokenResponseProblems,
    };
  },
);

clientProperty('initiateBackchannelAuthentication', inputArb('ciba', CLIENT_SOURCES), 1, (client) => ({
  call: () =>
    client.initiateBackchannelAuthentication({ login_hint: 'user@example.com', binding_message: 'W4SCT' }),
  check: cibaProblems,
}));

clientProperty(
  'pollBackchannelAuthenticationGrant',
  inputArb('token', [...GRANT_SOURCES, 'auth_req_id']),
  POLL_REQUESTS,
  (client, input) => {
    const request: BackchannelAuthenticationResponse = {
      auth_req_id: AUTH_REQ_ID,
      expires_in: POLL_EXPIRES_IN,
      interval: POLL_INTERVAL,
    };
    return {
      secrets: [{ name: 'auth_req_id', value: AUTH_REQ_ID }],
      call: () => client.pollBackchannelAuthenticationGrant(request, undefined, grantOptions(client, input)),
      check: tokenResponseProblems,
    };
  },
);
