import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Provider } from 'oidc-provider';
import { authenticateClient } from './internal/client-authentication.js';
import { createEndpointStats } from './internal/endpoint-stats.js';
import { loadOidcProvider } from './internal/load-oidc-provider.js';
import { createPollIntervalMiddleware } from './internal/poll-interval.js';
import { API_SCOPES, buildProviderConfiguration, ROUTES, SCOPES } from './internal/provider-configuration.js';
import { generateServerSigningKeys } from './internal/signing-keys.js';
import { DEFAULT_ACCOUNT_ID } from './internal/test-account.js';
import { createTestClients } from './internal/test-clients.js';
import type { MemoryAdapterFactory } from './internal/memory-adapter.js';
import { createTokenInfoGetMiddleware, registerTokenInfoGrant } from './internal/token-info-grant.js';
import type {
  TestClient,
  TestClientName,
  TestServer,
  TestServerOptions,
  TestTokenEndpointResponse,
} from './test-server-types.js';

/** The resource indicator of the test API. */
const API_RESOURCE = 'https://api.tessera.test';

/** Scope of {@link TestServer.issueUserTokens} when the test names none. */
const DEFAULT_USER_SCOPE = 'openid offline_access profile email api:read';

/** Marks requests made by the server's own helpers, which the stats do not count. */
const INTERNAL_REQUEST_HEADER = 'x-tessera-test-server-internal';

const DEVICE_CODE_GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:device_code';

const STATIC_SCOPES: ReadonlySet<string> = new Set(SCOPES);
const RESOURCE_SCOPES: ReadonlySet<string> = new Set(API_SCOPES);

interface ResolvedOptions {
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  accessTokenFormat: 'opaque' | 'jwt';
  rotateRefreshTokens: boolean;
  requireDPoPNonce: boolean;
  pollIntervalSeconds: number | undefined;
  browserSignIn: boolean;
  port: number;
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`startTestServer: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function resolveOptions(options: TestServerOptions): ResolvedOptions {
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new RangeError(`startTestServer: port must be an integer from 0 to 65535, got ${String(port)}`);
  }
  const { pollIntervalSeconds } = options;
  if (
    pollIntervalSeconds !== undefined &&
    (!Number.isSafeInteger(pollIntervalSeconds) || pollIntervalSeconds < 0)
  ) {
    throw new RangeError(
      `startTestServer: pollIntervalSeconds must be a non-negative integer, got ${String(pollIntervalSeconds)}`,
    );
  }
  const accessTokenFormat = options.accessTokenFormat ?? 'opaque';
  if (accessTokenFormat !== 'opaque' && accessTokenFormat !== 'jwt') {
    throw new RangeError(`startTestServer: accessTokenFormat must be 'opaque' or 'jwt'`);
  }
  return {
    accessTokenTtlSeconds: positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds, 300),
    refreshTokenTtlSeconds: positiveInteger('refreshTokenTtlSeconds', options.refreshTokenTtlSeconds, 86_400),
    accessTokenFormat,
    rotateRefreshTokens: options.rotateRefreshTokens ?? true,
    requireDPoPNonce: options.requireDPoPNonce ?? false,
    pollIntervalSeconds,
    browserSignIn: options.browserSignIn === true,
    port,
  };
}

function listen(server: Server, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** oidc-provider's normalisation of user codes: upper case, without separators. */
function normalizeUserCode(userCode: string): string {
  return userCode.toUpperCase().replace(/\W/g, '');
}

function epochSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** The resource indicators a device code or CIBA request carries. */
function resourcesOf(resource: unknown): string[] {
  if (typeof resource === 'string') return [resource];
  if (Array.isArray(resource)) return resource.filter((value): value is string => typeof value === 'string');
  return [];
}

/** A device code or CIBA request, as far as approving it goes. */
interface PendingRequest {
  accountId?: string | undefined;
  grantId?: string | undefined;
  error?: string | undefined;
  errorDescription?: string | undefined;
  consumed?: unknown;
  readonly isExpired: boolean;
}

function assertPending<T extends PendingRequest>(request: T | undefined, what: string): asserts request is T {
  if (!request || request.isExpired) {
    throw new Error(`test server: no pending ${what}`);
  }
  if (request.grantId || request.error || request.consumed) {
    throw new Error(`test server: the ${what} was already approved, denied or used`);
  }
}

/**
 * Starts a real OAuth 2.0 / OpenID Connect authorization server (oidc-provider) in-process on
 * 127.0.0.1, for tests, the demo and examples. It supports discovery (both `openid-configuration` and
 * `oauth-authorization-server`), the client credentials, refresh token, device authorization, CIBA
 * (poll) and authorization code grants, introspection (also as JWT, RFC 9701), revocation, DPoP
 * (RFC 9449) and resource indicators (RFC 8707), with one registered client per client
 * authentication method. Keys, secrets and storage are fresh for every server; it writes nothing to
 * the console.
 *
 * @throws RangeError when an option is out of range.
 * @example
 * ```ts
 * const server = await startTestServer({ accessTokenTtlSeconds: 60 });
 * const client = await Client.discover(server.issuer, server.clients.basic);
 * const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
 * await server.close();
 * ```
 */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const resolved = resolveOptions(options);
  const [{ Provider, errors }, jwks, { registrations, clients }] = await Promise.all([
    loadOidcProvider(),
    generateServerSigningKeys(),
    createTestClients(),
  ]);

  const server = createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
      for (const socket of sockets) socket.destroy();
    });
    return closing;
  };

  const internalRequestValue = randomBytes(16).toString('base64url');
  const stats = createEndpointStats(
    {
      token: ROUTES.token,
      introspection: ROUTES.introspection,
      revocation: ROUTES.revocation,
      deviceAuthorization: ROUTES.device_authorization,
      backchannelAuthentication: ROUTES.backchannel_authentication,
      jwks: ROUTES.jwks,
    },
    INTERNAL_REQUEST_HEADER,
    internalRequestValue,
  );

  let provider: Provider;
  let issuer: string;
  try {
    const address = await listen(server, resolved.port);
    issuer = `http://127.0.0.1:${address.port}`;
    const configuration = buildProviderConfiguration({
      errors,
      jwks,
      clients: registrations,
      apiResource: API_RESOURCE,
      accessTokenTtlSeconds: resolved.accessTokenTtlSeconds,
      refreshTokenTtlSeconds: resolved.refreshTokenTtlSeconds,
      accessTokenFormat: resolved.accessTokenFormat,
      rotateRefreshTokens: resolved.rotateRefreshTokens,
      requireDPoPNonce: resolved.requireDPoPNonce,
      browserSignIn: resolved.browserSignIn,
    });
    provider = new Provider(issuer, configuration);
    registerTokenInfoGrant(
      provider,
      configuration.adapter as MemoryAdapterFactory,
      errors,
      clients.admin.client_id,
    );
    provider.use(stats.middleware);
    provider.use(createTokenInfoGetMiddleware(ROUTES.token));
    if (resolved.pollIntervalSeconds !== undefined) {
      provider.use(
        createPollIntervalMiddleware(
          [ROUTES.device_authorization, ROUTES.backchannel_authentication],
          resolved.pollIntervalSeconds,
        ),
      );
    }
    server.on('request', provider.callback());
  } catch (error) {
    await close().catch(() => undefined); // the server may never have listened
    throw error;
  }

  /** Stores a grant of `scope` (and of the API scopes for each resource) to the account. */
  async function saveGrant(clientId: string, accountId: string, scope: string, resources: string[]) {
    const grant = new provider.Grant({ clientId, accountId });
    const scopes = scope.split(' ').filter(Boolean);
    const staticScopes = scopes.filter((value) => STATIC_SCOPES.has(value));
    if (staticScopes.length) grant.addOIDCScope(staticScopes.join(' '));
    const resourceScopes = scopes.filter((value) => RESOURCE_SCOPES.has(value));
    for (const resource of resources) {
      if (resourceScopes.length) grant.addResourceScope(resource, resourceScopes.join(' '));
    }
    return grant.save();
  }

  async function findDeviceCode(userCode: string) {
    const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCode));
    assertPending(code, `device authorization with user_code ${userCode}`);
    return code;
  }

  async function findBackchannelRequest(authReqId: string) {
    const request = await provider.BackchannelAuthenticationRequest.find(authReqId);
    assertPending(request, 'backchannel authentication request with that auth_req_id');
    return request;
  }

  function resolveClient(client: TestClientName | TestClient): TestClient {
    if (typeof client !== 'string') return client;
    const found = Object.hasOwn(clients, client) ? clients[client] : undefined;
    if (!found) throw new TypeError(`test server: unknown client ${client}`);
    return found;
  }

  /** POSTs a form to one of the server's endpoints as `client`, and returns the JSON body. */
  async function post(
    endpoint: 'device_authorization' | 'token',
    client: TestClient,
    fields: Record<string, string>,
  ): Promise<Record<string, unknown>> {
    const authentication = await authenticateClient(client, issuer);
    const response = await fetch(`${issuer}${ROUTES[endpoint]}`, {
      method: 'POST',
      headers: {
        accept: 'application/json',
        'content-type': 'application/x-www-form-urlencoded',
        [INTERNAL_REQUEST_HEADER]: internalRequestValue,
        ...authentication.headers,
      },
      body: new URLSearchParams({ ...fields, ...authentication.fields }),
    });
    const body = (await response.json()) as Record<string, unknown>;
    if (!response.ok) {
      throw new Error(
        `test server: ${endpoint} endpoint answered ${response.status} ${String(body.error)}` +
          (body.error_description ? `: ${String(body.error_description)}` : ''),
      );
    }
    return body;
  }

  const testServer: TestServer = {
    issuer,
    apiResource: API_RESOURCE,
    clients,
    stats: () => stats.snapshot(),
    resetStats: () => stats.reset(),

    async approveDevice(userCode, approval = {}) {
      const code = await findDeviceCode(userCode);
      const accountId = approval.accountId ?? DEFAULT_ACCOUNT_ID;
      const scope = approval.scope ?? (typeof code.params?.scope === 'string' ? code.params.scope : '');
      const resources = resourcesOf(code.params?.resource);
      if (resources.length === 0 && resolved.accessTokenFormat === 'jwt') resources.push(API_RESOURCE);
      const grantId = await saveGrant(code.clientId as string, accountId, scope, resources);
      Object.assign(code, { accountId, grantId, scope, authTime: epochSeconds() });
      if (resources.length) code.resource = resources.length === 1 ? resources[0] : resources;
      await code.save();
    },

    async denyDevice(userCode) {
      const code = await findDeviceCode(userCode);
      Object.assign(code, {
        error: 'access_denied',
        errorDescription: 'the end-user denied the authorization request',
      });
      await code.save();
    },

    async approveBackchannel(authReqId, approval = {}) {
      const request = await findBackchannelRequest(authReqId);
      const accountId = approval.accountId ?? request.accountId ?? DEFAULT_ACCOUNT_ID;
      const grantId = await saveGrant(
        request.clientId as string,
        accountId,
        request.scope ?? '',
        resourcesOf(request.resource),
      );
      Object.assign(request, { accountId, grantId, authTime: epochSeconds() });
      await request.save();
    },

    async denyBackchannel(authReqId) {
      const request = await findBackchannelRequest(authReqId);
      Object.assign(request, {
        error: 'access_denied',
        errorDescription: 'the end-user denied the authentication request',
      });
      await request.save();
    },

    async issueUserTokens(clientOrName, issue = {}) {
      const client = resolveClient(clientOrName);
      const authorization = await post('device_authorization', client, {
        scope: issue.scope ?? DEFAULT_USER_SCOPE,
      });
      await testServer.approveDevice(String(authorization.user_code), {
        ...(issue.accountId !== undefined ? { accountId: issue.accountId } : {}),
      });
      const tokens = await post('token', client, {
        grant_type: DEVICE_CODE_GRANT_TYPE,
        device_code: String(authorization.device_code),
      });
      return tokens as TestTokenEndpointResponse;
    },

    close,
  };

  return Object.freeze(testServer);
}
