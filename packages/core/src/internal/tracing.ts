/**
 * Publishing to the tracing channels of `diagnostics.ts`: only when someone subscribes.
 */
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import { DIAGNOSTICS_CHANNELS, type RequestTraceContext } from '../diagnostics.js';

/** The `tessera:request` tracing channel. */
export const requestChannel: TracingChannel<unknown, RequestTraceContext> = tracingChannel(
  DIAGNOSTICS_CHANNELS.request,
);

/** `url` without user info, query and fragment. */
function traceableUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Runs one HTTP attempt inside a `tessera:request` trace, when someone subscribes; otherwise just
 * runs it. The trace's context is built here, from the request's safe parts only (never the
 * response, whose body may hold tokens), and the attempt runs in `start`'s stores, so a tracer's
 * span is the active one during the attempt.
 */
export function traceRequest<T extends { status: number }>(
  endpoint: string,
  method: 'GET' | 'POST',
  url: string,
  attempt: number,
  run: () => Promise<T>,
): Promise<T> {
  if (!requestChannel.hasSubscribers) return run();
  const context: RequestTraceContext = { endpoint, method, url: traceableUrl(url), attempt };
  const failed = (error: unknown): void => {
    context.error = error as Error;
    const code = (error as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') context.errorCode = code;
    requestChannel.error.publish(context);
  };
  return requestChannel.start.runStores(context, () => {
    let promise: Promise<T>;
    try {
      promise = run();
    } catch (error) {
      failed(error);
      throw error;
    } finally {
      requestChannel.end.publish(context);
    }
    return promise.then(
      (response) => {
        context.status = response.status;
        requestChannel.asyncStart.publish(context);
        requestChannel.asyncEnd.publish(context);
        return response;
      },
      (error: unknown) => {
        failed(error);
        requestChannel.asyncStart.publish(context);
        requestChannel.asyncEnd.publish(context);
        throw error;
      },
    );
  });
}
