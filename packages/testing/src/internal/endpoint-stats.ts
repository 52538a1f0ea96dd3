import type { TestServerStats } from '../test-server-types.js';

/** The part of a koa context the counters read. */
interface RequestContext {
  readonly path: string;
  readonly method: string;
  get(field: string): string;
}

/** A koa middleware, as `provider.use()` takes it. */
export type CountingMiddleware = (ctx: RequestContext, next: () => Promise<unknown>) => Promise<void>;

/** Request counters per endpoint, and the koa middleware that feeds them. */
export interface EndpointStats {
  /** Counts each request whose path is a known endpoint, before the provider handles it. */
  middleware: CountingMiddleware;
  /** A copy of the counts. */
  snapshot(): TestServerStats;
  reset(): void;
}

/** Endpoint paths of the provider (its `routes` configuration, plus both discovery documents). */
export interface EndpointPaths {
  token: string;
  introspection: string;
  revocation: string;
  deviceAuthorization: string;
  backchannelAuthentication: string;
  jwks: string;
}

const DISCOVERY_PATHS = ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'];

function zero(): TestServerStats {
  return {
    token: 0,
    introspection: 0,
    revocation: 0,
    deviceAuthorization: 0,
    backchannelAuthentication: 0,
    discovery: 0,
    jwks: 0,
  };
}

/**
 * Creates the request counters of one test server. `OPTIONS` (CORS preflight) requests and requests
 * carrying `internalHeader` with the value `internalValue` (made by the server's own helpers) are
 * not counted.
 */
export function createEndpointStats(
  paths: EndpointPaths,
  internalHeader: string,
  internalValue: string,
): EndpointStats {
  const byPath = new Map<string, keyof TestServerStats>(
    Object.entries(paths).map(([name, path]) => [path, name as keyof TestServerStats]),
  );
  for (const path of DISCOVERY_PATHS) byPath.set(path, 'discovery');

  let counts = zero();

  return {
    middleware: async (ctx, next) => {
      const endpoint = byPath.get(ctx.path);
      if (endpoint && ctx.method !== 'OPTIONS' && ctx.get(internalHeader) !== internalValue) {
        counts[endpoint] += 1;
      }
      await next();
    },
    snapshot: () => ({ ...counts }),
    reset: () => {
      counts = zero();
    },
  };
}
