import { randomBytes } from 'node:crypto';
import type { AdapterPayload, ClientMetadata, Configuration, ResourceServer } from 'oidc-provider';
import type { OidcProviderModule } from './load-oidc-provider.js';
import { createMemoryAdapterFactory } from './memory-adapter.js';
import type { PrivateJwks } from './signing-keys.js';
import { findTestAccount } from './test-account.js';

/** Scopes of the test API (the resource server behind every resource indicator). */
export const API_SCOPES = ['api:read', 'api:write'] as const;

/** Every scope the server knows. */
export const SCOPES = ['openid', 'offline_access', 'profile', 'email', ...API_SCOPES] as const;

/** Endpoint paths (oidc-provider's defaults, spelled out because the stats count by path). */
export const ROUTES = {
  token: '/token',
  introspection: '/token/introspection',
  revocation: '/token/revocation',
  device_authorization: '/device/auth',
  code_verification: '/device',
  backchannel_authentication: '/backchannel',
  jwks: '/jwks',
} as const;

/** Lifetime of device codes and CIBA requests, in seconds. */
const PENDING_REQUEST_TTL_SECONDS = 600;

/** Clock tolerance of the server (client assertions, DPoP proofs, storage), in seconds. */
const CLOCK_TOLERANCE_SECONDS = 15;

/** `binding_message` rule of oidc-provider's default validator. */
const BINDING_MESSAGE = /^[a-zA-Z0-9-._+/!?#]{1,20}$/;

/** What `user_code` values the CIBA endpoint accepts. */
const CIBA_USER_CODE = /^[A-Za-z0-9-]{1,32}$/;

/** Inputs of {@link buildProviderConfiguration}, with every option resolved. */
export interface ProviderConfigurationInput {
  errors: OidcProviderModule['errors'];
  jwks: PrivateJwks;
  clients: ClientMetadata[];
  apiResource: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  accessTokenFormat: 'opaque' | 'jwt';
  rotateRefreshTokens: boolean;
  requireDPoPNonce: boolean;
  /** oidc-provider's development sign-in pages, for a person at a browser. */
  browserSignIn: boolean;
}

/** A minimal HTML page for the interactive device flow pages nobody uses in tests. */
function page(title: string, content = ''): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${content}</body></html>`;
}

/**
 * Builds the oidc-provider configuration of a test server. Every default function that would print
 * an "oidc-provider NOTICE/WARNING" when called is replaced, so the server writes nothing to the
 * console.
 */
export function buildProviderConfiguration(input: ProviderConfigurationInput): Configuration {
  const { errors } = input;
  const apiScope = API_SCOPES.join(' ');

  const resourceServer = (resource: string): ResourceServer => ({
    scope: apiScope,
    audience: resource,
    accessTokenTTL: input.accessTokenTtlSeconds,
    accessTokenFormat: input.accessTokenFormat,
    ...(input.accessTokenFormat === 'jwt' ? { jwt: { sign: { alg: 'RS256' } } } : {}),
  });

  return {
    // Clients live in the store (as if registered dynamically), not in `clients`: oidc-provider copies
    // static clients with the global structuredClone, which under jest's VM modules yields objects
    // its own `jwks` validation rejects.
    adapter: createMemoryAdapterFactory(CLOCK_TOLERANCE_SECONDS, {
      Client: Object.fromEntries(input.clients.map((client) => [client.client_id, client as AdapterPayload])),
    }),
    jwks: input.jwks as Configuration['jwks'],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    routes: ROUTES,
    scopes: [...SCOPES],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email', 'email_verified'],
    },
    // Put the scope's claims (name, email) in ID tokens too, not only at the userinfo endpoint.
    conformIdTokenClaims: false,
    findAccount: (_ctx, accountId) => findTestAccount(accountId),
    // Headless flows have no browser session to tie tokens to.
    expiresWithSession: () => false,
    issueRefreshToken: (_ctx, client, code) =>
      client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    rotateRefreshToken: input.rotateRefreshTokens,
    enabledJWA: {
      dPoPSigningAlgValues: ['ES256', 'EdDSA', 'Ed25519', 'PS256', 'RS256'],
    },
    // devInteractions serve their own pages at oidc-provider's default URL.
    ...(input.browserSignIn
      ? {}
      : { interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` } }),
    renderError: (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
    clientBasedCORS: () => true,
    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? input.accessTokenTtlSeconds,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? input.accessTokenTtlSeconds,
      RefreshToken: input.refreshTokenTtlSeconds,
      IdToken: input.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      DeviceCode: PENDING_REQUEST_TTL_SECONDS,
      BackchannelAuthenticationRequest: (ctx) => {
        const requested = Number(ctx?.oidc?.params?.requested_expiry);
        return requested > 0 ? Math.min(PENDING_REQUEST_TTL_SECONDS, requested) : PENDING_REQUEST_TTL_SECONDS;
      },
      // A grant outlives any chain of rotated refresh tokens a test can build.
      Grant: 365 * 24 * 60 * 60,
      Interaction: 60 * 60,
      Session: 24 * 60 * 60,
    },
    features: {
      devInteractions: { enabled: input.browserSignIn },
      rpInitiatedLogout: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // oidc-provider's default: any confidential client may introspect any token; a public client
        // only its own.
        allowedPolicy: (ctx, client, token) =>
          client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client?.clientId,
      },
      jwtIntrospection: { enabled: true },
      revocation: {
        enabled: true,
        // oidc-provider's default: only the client a token was issued to may revoke it.
        allowedPolicy: (_ctx, client, token) => {
          if (token.clientId === client.clientId) return true;
          if (client.clientAuthMethod === 'none') return false;
          throw new errors.InvalidRequest('client is not authorized to revoke the presented token');
        },
      },
      deviceFlow: {
        enabled: true,
        userCodeInputSource: (ctx, form) => {
          ctx.type = 'html';
          ctx.body = page(
            'Sign-in',
            `${form}<button type="submit" form="op.deviceInputForm">Continue</button>`,
          );
        },
        userCodeConfirmSource: (ctx, form) => {
          ctx.type = 'html';
          ctx.body = page(
            'Confirm',
            `${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>`,
          );
        },
        successSource: (ctx) => {
          ctx.type = 'html';
          ctx.body = page('Sign-in Success');
        },
      },
      ciba: {
        enabled: true,
        deliveryModes: ['poll'],
        processLoginHint: (_ctx, loginHint) => loginHint || undefined,
        processLoginHintToken: () => {
          throw new errors.InvalidRequest('login_hint_token is not supported, use login_hint');
        },
        verifyUserCode: (_ctx, _account, userCode) => {
          if (userCode !== undefined && !CIBA_USER_CODE.test(userCode)) {
            throw new errors.InvalidUserCode('user_code must be 1 - 32 characters of A-Z, a-z, 0-9 or -');
          }
        },
        validateBindingMessage: (_ctx, bindingMessage) => {
          if (bindingMessage !== undefined && !BINDING_MESSAGE.test(bindingMessage)) {
            throw new errors.InvalidBindingMessage(
              'the binding_message value, when provided, needs to be 1 - 20 characters in length and use only a basic set of characters (matching the regex: ^[a-zA-Z0-9-._+/!?#]{1,20}$ )',
            );
          }
        },
        validateRequestContext: () => undefined,
        // The end user approves through TestServer.approveBackchannel().
        triggerAuthenticationDevice: () => undefined,
      },
      dPoP: {
        enabled: true,
        nonceSecret: randomBytes(32),
        requireNonce: () => input.requireDPoPNonce,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) =>
          oneOf ?? (input.accessTokenFormat === 'jwt' ? input.apiResource : undefined),
        // A refresh or a code keeps the resource it was granted for.
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => resourceServer(resource),
      },
    },
  };
}
