/**
 * OA4MP's admin token listing (`urn:oa4mp:params:oauth:grant-type:token-info`, an RFC 6749 §4.5
 * extension grant) for the test server, answered as OA4MP does: the user of the presented access or
 * refresh token, and every token the server holds for that user by client and grant, with
 * milliseconds for `issued_at` and `lifetime`; a bad token is a 500 in OA4MP's `error="..."` line
 * format. Only the admin client may use it. Tokens the server does not store (JWT access tokens)
 * are not listed.
 */
import { createHash } from 'node:crypto';
import type { AdapterPayload, Provider } from 'oidc-provider';
import type { OidcProviderModule } from './load-oidc-provider.js';
import type { MemoryAdapterFactory } from './memory-adapter.js';
import { TOKEN_INFO_GRANT_TYPE } from './test-clients.js';

type Context = Parameters<Parameters<Provider['registerGrantType']>[1]>[0];

/** Registers the grant on `provider`; `store` is the provider's adapter factory. */
export function registerTokenInfoGrant(
  provider: Provider,
  store: MemoryAdapterFactory,
  errors: OidcProviderModule['errors'],
  adminClientId: string,
): void {
  const handler = async (ctx: Context): Promise<void> => {
    const { client, params } = ctx.oidc as unknown as {
      client: { clientId: string };
      params: { access_token?: string; refresh_token?: string };
    };
    if (client.clientId !== adminClientId) throw new errors.UnauthorizedClient('not an admin client');
    if ((params.access_token === undefined) === (params.refresh_token === undefined)) {
      throw new errors.InvalidRequest('exactly one of access_token and refresh_token is required');
    }
    const presented =
      params.access_token !== undefined
        ? await provider.AccessToken.find(params.access_token)
        : await provider.RefreshToken.find(params.refresh_token!);
    if (presented === undefined || presented.isExpired || (presented as { consumed?: unknown }).consumed) {
      ctx.status = 500;
      ctx.type = 'text/plain';
      ctx.body = `error="server_error"\nerror_description="${encodeURIComponent('the token is invalid or expired')}"\n`;
      return;
    }
    const accountId = (presented as { accountId?: string }).accountId;
    const byClient = new Map<string, Map<string, object[]>>();
    for (const [model, kind] of [
      ['AccessToken', 'access_token'],
      ['RefreshToken', 'refresh_token'],
    ] as const) {
      for (const payload of store.live(model)) {
        if (accountId === undefined || payload.accountId !== accountId) continue;
        const clientId = String(payload.clientId);
        const grant = String(payload.grantId ?? payload.jti);
        let grants = byClient.get(clientId);
        if (grants === undefined) byClient.set(clientId, (grants = new Map()));
        let tokens = grants.get(grant);
        if (tokens === undefined) grants.set(grant, (tokens = []));
        tokens.push({ [kind]: wireToken(ctx.oidc.issuer, kind, payload) });
      }
    }
    ctx.body = {
      user_uid: accountId,
      clients: [...byClient].map(([clientId, grants]) => ({
        client_id: clientId,
        transactions: [...grants].map(([code, tokens]) => ({
          code: `${ctx.oidc.issuer}/grant/${code}`,
          tokens,
        })),
      })),
    };
  };
  provider.registerGrantType(TOKEN_INFO_GRANT_TYPE, handler as never, ['access_token', 'refresh_token']);
}

function wireToken(issuer: string, kind: string, payload: AdapterPayload): object {
  const iat = Number(payload.iat);
  const exp = Number(payload.exp);
  return {
    is_valid: payload.consumed === undefined && exp * 1000 > Date.now(),
    lifetime: (exp - iat) * 1000,
    issued_at: iat * 1000,
    // URI-like, as OA4MP's; a hash, so that no part of the token is shown where it is not redacted
    jti: `${issuer}/${kind}/${createHash('sha256').update(String(payload.jti)).digest('hex').slice(0, 16)}?type=${kind}`,
    token: String(payload.jti), // an opaque token's value is its id
  };
}

type Middleware = Parameters<Provider['use']>[0];

/**
 * OA4MP takes the token-info grant as a GET with the parameters in the query too (oidc-provider's
 * token endpoint takes only POST): such a request becomes the same POST, its query the form body,
 * before oidc-provider routes it. Any other GET of the endpoint is left alone (and refused).
 */
export function createTokenInfoGetMiddleware(tokenPath: string): Middleware {
  return async (ctx, next) => {
    if (ctx.method === 'GET' && ctx.path === tokenPath && ctx.query.grant_type === TOKEN_INFO_GRANT_TYPE) {
      const body = Buffer.from(ctx.querystring, 'utf8');
      ctx.method = 'POST';
      ctx.url = tokenPath;
      ctx.req.headers['content-type'] = 'application/x-www-form-urlencoded';
      ctx.req.headers['content-length'] = String(body.length);
      // A GET's body has ended but not been read: the form goes in front of that end.
      ctx.req.unshift(body);
    }
    await next();
  };
}
