/**
 * Publishing to the tracing channels of `diagnostics.ts`: only when someone subscribes, and with
 * contexts built here from safe parts only.
 */
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import {
  DIAGNOSTICS_CHANNELS,
  type RefreshTraceContext,
  type RequestTraceContext,
  type VerifyTraceContext,
} from '../diagnostics.js';
import { tokenFingerprint } from '../logger.js';

/** The `tessera:request` tracing channel. */
export const requestChannel: TracingChannel<unknown, RequestTraceContext> = tracingChannel(
  DIAGNOSTICS_CHANNELS.request,
);

/** The `tessera:refresh` tracing channel. */
export const refreshChannel: TracingChannel<unknown, RefreshTraceContext> = tracingChannel(
  DIAGNOSTICS_CHANNELS.refresh,
);

/** The `tessera:verify` tracing channel. */
export const verifyChannel: TracingChannel<unknown, VerifyTraceContext> = tracingChannel(
  DIAGNOSTICS_CHANNELS.verify,
);

/** What every trace context has for a failure. */
interface Failable {
  error?: Error;
  errorCode?: string;
}

/**
 * Runs `run` as one traced operation of `channel` (start, end, then asyncStart and asyncEnd, with
 * error before them on a rejection), in `start`'s stores so a tracer's span is active during it.
 * `settled` copies what may be shown of the result into the context; the result itself is never
 * published (responses and token sets hold secrets).
 */
function traced<T, C extends Failable>(
  channel: TracingChannel<unknown, C>,
  context: C,
  run: () => Promise<T>,
  settled: (result: T) => void,
): Promise<T> {
  const failed = (error: unknown): void => {
    context.error = error as Error;
    const code = (error as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string') context.errorCode = code;
    channel.error.publish(context);
  };
  return channel.start.runStores(context, () => {
    let promise: Promise<T>;
    try {
      promise = run();
    } catch (error) {
      failed(error);
      throw error;
    } finally {
      channel.end.publish(context);
    }
    return promise.then(
      (result) => {
        settled(result);
        channel.asyncStart.publish(context);
        channel.asyncEnd.publish(context);
        return result;
      },
      (error: unknown) => {
        failed(error);
        channel.asyncStart.publish(context);
        channel.asyncEnd.publish(context);
        throw error;
      },
    );
  });
}

/** `url` without user info, query and fragment (they may carry credentials or parameters). */
export function urlWithoutQuery(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

/**
 * Runs one HTTP attempt inside a `tessera:request` trace when someone subscribes; otherwise only
 * runs it. The context holds the request's safe parts and the answer's status, never its body.
 */
export function traceRequest<T extends { status: number }>(
  endpoint: string,
  method: 'GET' | 'POST',
  url: string,
  attempt: number,
  run: () => Promise<T>,
): Promise<T> {
  if (!requestChannel.hasSubscribers) return run();
  const context: RequestTraceContext = { endpoint, method, url: urlWithoutQuery(url), attempt };
  return traced(requestChannel, context, run, (response) => {
    context.status = response.status;
  });
}

/**
 * Runs `run` inside a trace of `channel` whose context the traced code fills in as it learns what
 * it does, when someone subscribes; otherwise runs it with no context (nothing is built).
 */
function traceFilledIn<T, C extends Failable>(
  channel: TracingChannel<unknown, C>,
  makeContext: () => C,
  run: (context: C | undefined) => Promise<T>,
): Promise<T> {
  if (!channel.hasSubscribers) return run(undefined);
  const context = makeContext();
  return traced(
    channel,
    context,
    () => run(context),
    () => undefined,
  );
}

/** Runs one renewal of `key` inside a `tessera:refresh` trace (see {@link traceFilledIn}). */
export function traceRefresh<T>(
  key: string,
  run: (context: RefreshTraceContext | undefined) => Promise<T>,
): Promise<T> {
  return traceFilledIn(refreshChannel, () => ({ key: tokenFingerprint(key) }), run);
}

/** Runs one verification inside a `tessera:verify` trace (see {@link traceFilledIn}). */
export function traceVerify<T>(
  scheme: 'Bearer' | 'DPoP',
  run: (context: VerifyTraceContext | undefined) => Promise<T>,
): Promise<T> {
  return traceFilledIn(verifyChannel, () => ({ scheme }), run);
}
