/** The part of a koa context the middleware reads and writes. */
interface ResponseContext {
  readonly path: string;
  status: number;
  body: unknown;
}

/** A koa middleware, as `provider.use()` takes it. */
export type PollIntervalMiddleware = (ctx: ResponseContext, next: () => Promise<unknown>) => Promise<void>;

/**
 * Creates a koa middleware that adds `interval` (seconds) to successful responses of the given
 * endpoints. oidc-provider sends no `interval` in device authorization (RFC 8628 §3.2) or CIBA
 * responses, so clients fall back to waiting 5 s between polls; tests set a shorter one.
 */
export function createPollIntervalMiddleware(
  paths: readonly string[],
  intervalSeconds: number,
): PollIntervalMiddleware {
  const endpoints = new Set(paths);
  return async (ctx, next) => {
    await next();
    if (endpoints.has(ctx.path) && ctx.status === 200 && ctx.body !== null && typeof ctx.body === 'object') {
      ctx.body = { ...(ctx.body as Record<string, unknown>), interval: intervalSeconds };
    }
  };
}
