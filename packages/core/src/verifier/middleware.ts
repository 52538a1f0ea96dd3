/**
 * Putting a {@link TokenVerifier} in front of routes, with no framework dependency: a connect-style
 * `(req, res, next)` for express, connect and node:http, a fastify `onRequest` hook, and the
 * RFC 9728 protected resource metadata document that lets clients find the authorization server.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigurationError, TokenVerificationError } from '../errors.js';
import { protectedResourceMetadataUrl } from './token-verifier.js';
import type { TokenVerifier } from './token-verifier.js';
import type { VerifiedToken } from './verification-cache.js';

/** Options of {@link requireToken} and {@link fastifyRequireToken}. */
export interface RequireTokenOptions {
  /** Scopes the routes need, beyond the verifier's `requiredScopes` (403 `insufficient_scope`). */
  scopes?: readonly string[];
  /**
   * The public origin (and path prefix) clients address, e.g. `https://api.example` or
   * `https://gw.example/svc`: the URL a DPoP proof's `htu` must name is this plus the request path.
   * Without it, the URL is built from the `Host` header (checked to be a plain host) and whether the
   * connection is TLS; behind a proxy set this, or `trustProxy`.
   */
  baseUrl?: string;
  /** Read `X-Forwarded-Proto` and `X-Forwarded-Host` (only behind a proxy that sets them). @default false */
  trustProxy?: boolean;
  /**
   * Without `baseUrl`: the hosts (`host:port`, or `host` for any port) a request may name in `Host` (or
   * `X-Forwarded-Host`) for its DPoP proof to be checked against; a request naming another gets no
   * valid URL, so a proof made for another resource cannot be replayed here with a forged `Host`.
   * @default the host of the verifier's `resource`
   */
  allowedHosts?: readonly string[];
}

/** A request the middleware has verified: `auth` is the result. */
export type AuthenticatedRequest = IncomingMessage & {
  /** What the token was found to be. */
  auth: VerifiedToken;
};

/** The connect-style middleware signature (express, connect, node:http). */
export type Middleware = (
  req: IncomingMessage & { originalUrl?: string; body?: unknown; auth?: VerifiedToken },
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/** What the fastify hook reads of fastify's request and reply (fastify is not a dependency). */
export interface FastifyLikeRequest {
  /** The request method. */
  method: string;
  /** The path and query, as the client sent it. */
  url: string;
  /** The request headers. */
  headers: IncomingMessage['headers'];
  /** node's request. */
  raw: IncomingMessage;
  /** Set to the result on success. */
  auth?: VerifiedToken;
}

/** What the fastify hook uses of fastify's reply. */
export interface FastifyLikeReply {
  /** Sets the status. */
  code(status: number): FastifyLikeReply;
  /** Sets a header. */
  header(name: string, value: string): FastifyLikeReply;
  /** Sends the body. */
  send(payload: unknown): FastifyLikeReply;
}

const HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * Express / connect / node:http middleware: verifies the request's token, sets `req.auth` to the
 * {@link VerifiedToken} and calls `next()`; otherwise answers 400 / 401 / 403 / 503 itself with the
 * `WWW-Authenticate` challenge (RFC 6750 §3, RFC 9449 §7.1, RFC 9728 §5.1), `Retry-After` on 503,
 * `DPoP-Nonce` when the verifier uses nonces, and a small JSON body (`error`,
 * `error_description`, nothing internal). Errors that are not verification failures go to `next(err)`.
 *
 * @example
 * ```ts
 * app.get('/orders', requireToken(verifier, { scopes: ['orders:read'] }), (req, res) => {
 *   res.json({ for: (req as AuthenticatedRequest).auth.subject });
 * });
 * ```
 */
export function requireToken(verifier: TokenVerifier, options: RequireTokenOptions = {}): Middleware {
  const url = requestUrlOf(verifier, options, 'requireToken');
  return (req, res, next) => {
    const path = req.originalUrl ?? req.url ?? '/';
    verifier
      .verifyRequest({
        method: req.method ?? 'GET',
        url: url(req, path),
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: req.body,
        ...(options.scopes === undefined ? {} : { scopes: options.scopes }),
      })
      .then(
        (auth) => {
          req.auth = auth;
          const nonce = verifier.dpopNonce();
          if (nonce !== undefined) {
            // RFC 9449 §8.2 (applied to resource servers by §9): the next nonce, on an uncacheable answer.
            res.setHeader('DPoP-Nonce', nonce);
            res.setHeader('Cache-Control', 'no-store');
            res.setHeader('Access-Control-Expose-Headers', 'DPoP-Nonce');
          }
          next();
        },
        (error: unknown) => {
          if (!(error instanceof TokenVerificationError)) return next(error);
          const { status, headers, body } = answerOf(error);
          res.statusCode = status;
          for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
          res.end(body);
        },
      );
  };
}

/**
 * The same as {@link requireToken} as a fastify `onRequest` hook: sets `request.auth`, or sends the
 * answer. Tokens in a form body are not read (fastify parses bodies after `onRequest`).
 *
 * @example
 * ```ts
 * fastify.addHook('onRequest', fastifyRequireToken(verifier, { scopes: ['orders:read'] }));
 * ```
 */
export function fastifyRequireToken(
  verifier: TokenVerifier,
  options: RequireTokenOptions = {},
): (request: FastifyLikeRequest, reply: FastifyLikeReply) => Promise<FastifyLikeReply | undefined> {
  const url = requestUrlOf(verifier, options, 'fastifyRequireToken');
  return async (request, reply) => {
    try {
      request.auth = await verifier.verifyRequest({
        method: request.method,
        url: url(request.raw, request.url),
        headers: request.headers,
        rawHeaders: request.raw.rawHeaders,
        ...(options.scopes === undefined ? {} : { scopes: options.scopes }),
      });
      const nonce = verifier.dpopNonce();
      if (nonce !== undefined) {
        reply
          .header('DPoP-Nonce', nonce)
          .header('Cache-Control', 'no-store')
          .header('Access-Control-Expose-Headers', 'DPoP-Nonce');
      }
      return undefined;
    } catch (error) {
      if (!(error instanceof TokenVerificationError)) throw error;
      const { status, headers, body } = answerOf(error);
      reply.code(status);
      for (const [name, value] of Object.entries(headers)) reply.header(name, value);
      return reply.send(body);
    }
  };
}

/** The HTTP answer for a verification failure. */
function answerOf(error: TokenVerificationError): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const headers: Record<string, string> = {
    'WWW-Authenticate': error.wwwAuthenticate,
    'Cache-Control': 'no-store',
    'Content-Type': 'application/json',
    // Browsers show these to scripts only when listed (RFC 9449 §7.1, §8).
    'Access-Control-Expose-Headers': 'WWW-Authenticate, DPoP-Nonce',
  };
  if (error.retryAfterSeconds !== undefined)
    headers['Retry-After'] = String(Math.min(30, Math.max(1, error.retryAfterSeconds)));
  if (error.dpopNonce !== undefined) headers['DPoP-Nonce'] = error.dpopNonce;
  // No error code when no token was sent (RFC 6750 §3.1), as in the challenge.
  const body = JSON.stringify(
    error.reason === 'missing'
      ? { error_description: error.error_description }
      : { error: error.error, error_description: error.error_description },
  );
  return { status: error.status, headers, body };
}

/** How the middleware learns the URL the client addressed (see {@link RequireTokenOptions.baseUrl}). */
function requestUrlOf(
  verifier: TokenVerifier,
  options: RequireTokenOptions,
  owner: string,
): (req: IncomingMessage, path: string) => string {
  if (options.baseUrl !== undefined) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch (cause) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `${owner} option baseUrl must be an absolute URL`,
        { cause },
      );
    }
    const prefix = `${base.origin}${base.pathname.replace(/\/$/, '')}`;
    return (_req, path) => `${prefix}${path.startsWith('/') ? path : `/${path}`}`;
  }
  const resource = verifier.resource;
  const allowed = new Set(
    (options.allowedHosts ?? (resource === undefined ? [] : [new URL(resource).host])).map((host) =>
      host.toLowerCase(),
    ),
  );
  if (allowed.size === 0 && verifier.describe().dpopAlgorithms !== undefined) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      `${owner} needs the public URL to check DPoP proofs against (RFC 9449 §4.3 htu): set the option baseUrl or allowedHosts, or the TokenVerifier option resource (or dpop: false)`,
    );
  }
  return (req, path) => {
    const forwarded = (name: string): string | undefined => {
      const value = options.trustProxy === true ? req.headers[name] : undefined;
      return typeof value === 'string' ? value.split(',')[0]!.trim() : undefined;
    };
    const tls = (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true;
    const proto = forwarded('x-forwarded-proto') ?? (tls ? 'https' : 'http');
    const host = forwarded('x-forwarded-host') ?? req.headers.host ?? '';
    // A Host that is not a plain host[:port] could make the URL name another path (and so let a
    // proof for one endpoint be replayed on another): such a request gets no valid URL.
    // Only a host of ours: a proof made for another resource is not checked against its own Host.
    if (
      !HOST.test(host) ||
      !(allowed.has(host.toLowerCase()) || allowed.has(host.toLowerCase().replace(/:\d+$/, ''))) ||
      path.includes('://') ||
      (proto !== 'http' && proto !== 'https') ||
      !path.startsWith('/') ||
      path.startsWith('//')
    ) {
      return 'invalid:';
    }
    return `${proto}://${host}${path}`;
  };
}

/** Options of {@link protectedResourceMetadata} (RFC 9728 §2). */
export interface ProtectedResourceMetadataOptions {
  /** The resource identifier. @default the verifier's `resource` */
  resource?: string;
  /** Issuer identifiers clients may get tokens from. @default the verifier's listed issuers */
  authorizationServers?: readonly string[];
  /** Scopes used to request access to this resource (RECOMMENDED). */
  scopesSupported?: readonly string[];
  /** A human-readable name. */
  resourceName?: string;
  /** A page for developers. */
  resourceDocumentation?: string;
  /** The data-use policy. */
  resourcePolicyUri?: string;
  /** The terms of service. */
  resourceTosUri?: string;
  /** `Cache-Control: max-age` of the document, seconds (RFC 9728 §7.10). @default 3600 */
  maxAgeSeconds?: number;
}

/** A handler serving the metadata document, with the document and its path for other frameworks. */
export interface ProtectedResourceMetadataHandler extends Middleware {
  /** The path it answers, e.g. `/.well-known/oauth-protected-resource/mcp`. */
  readonly path: string;
  /** The document (frozen): serve it yourself, e.g. `fastify.get(handler.path, () => handler.document)`. */
  readonly document: Readonly<Record<string, unknown>>;
}

/**
 * Serves the protected resource metadata (RFC 9728 §3) at the well-known path of the verifier's
 * resource: `GET` (and `HEAD`) answer the JSON document, no token needed; other methods 405; every
 * other path goes to `next()`. Mount it at the host root, not under the API's router. Challenges
 * point to it when the verifier has `resource` (RFC 9728 §5.1).
 *
 * @throws ConfigurationError `INVALID_CONFIGURATION` without a resource.
 * @example
 * ```ts
 * app.use(protectedResourceMetadata(verifier, { scopesSupported: ['orders:read'], resourceName: 'Orders API' }));
 * ```
 */
export function protectedResourceMetadata(
  verifier: TokenVerifier,
  options: ProtectedResourceMetadataOptions = {},
): ProtectedResourceMetadataHandler {
  const resource = options.resource ?? verifier.resource;
  if (resource === undefined) {
    throw new ConfigurationError(
      'INVALID_CONFIGURATION',
      'protectedResourceMetadata needs a resource: set the TokenVerifier option resource, or this option',
    );
  }
  const { dpopAlgorithms, dpopRequired, bearerMethods } = verifier.describe();
  const servers = options.authorizationServers ?? verifier.issuers;
  const document: Record<string, unknown> = { resource };
  // RFC 9728 §3.2: members with no values are omitted.
  if (servers.length > 0) document.authorization_servers = [...servers];
  if ((options.scopesSupported?.length ?? 0) > 0) document.scopes_supported = [...options.scopesSupported!];
  document.bearer_methods_supported = [...bearerMethods];
  if (options.resourceName !== undefined) document.resource_name = options.resourceName;
  if (options.resourceDocumentation !== undefined)
    document.resource_documentation = options.resourceDocumentation;
  if (options.resourcePolicyUri !== undefined) document.resource_policy_uri = options.resourcePolicyUri;
  if (options.resourceTosUri !== undefined) document.resource_tos_uri = options.resourceTosUri;
  if (dpopAlgorithms !== undefined) document.dpop_signing_alg_values_supported = [...dpopAlgorithms];
  if (dpopRequired) document.dpop_bound_access_tokens_required = true;
  const body = JSON.stringify(document);
  const path = new URL(protectedResourceMetadataUrl(resource)).pathname;
  const maxAge = options.maxAgeSeconds ?? 3600;
  const handler: Middleware = (req, res, next) => {
    const requested = (req.originalUrl ?? req.url ?? '').split('?')[0];
    if (requested !== path) return next();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.statusCode = 405;
      res.setHeader('Allow', 'GET, HEAD');
      res.end();
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Cache-Control', `max-age=${maxAge}`);
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  return Object.assign(handler, { path, document: Object.freeze(structuredClone(document)) });
}
