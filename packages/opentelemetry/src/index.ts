/**
 * OpenTelemetry for Tessera: {@link instrumentTessera} subscribes to `@tessera/core`'s
 * `node:diagnostics_channel` tracing channels and records spans and metrics from them. Nothing in
 * Tessera is patched or wrapped; the channels' contexts hold no secret, so neither do the spans.
 *
 * @packageDocumentation
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import {
  context as otelContext,
  metrics,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Counter,
  type Histogram,
  type MeterProvider,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import {
  DIAGNOSTICS_CHANNELS,
  type RefreshTraceContext,
  type RequestTraceContext,
  type VerifyTraceContext,
} from '@tessera/core';

/** What {@link instrumentTessera} records with. */
export interface InstrumentTesseraOptions {
  /** Where spans go. @default the global tracer provider (`trace.getTracerProvider()`) */
  tracerProvider?: TracerProvider;
  /** Where metrics go. @default the global meter provider (`metrics.getMeterProvider()`) */
  meterProvider?: MeterProvider;
}

/** The instrumentation scope of every span and instrument. */
export const INSTRUMENTATION_NAME = '@tessera/opentelemetry';

/** The names of the metrics {@link instrumentTessera} records. */
export const METRICS = {
  /** Counter: exchanges with the authorization server, by `tessera.endpoint` and `tessera.outcome`. */
  requests: 'tessera.token.requests',
  /** Histogram, seconds: how long each exchange took, by endpoint, method and status. */
  requestDuration: 'tessera.token.request.duration',
  /** Counter: failed renewals of a `TokenManager`, by `tessera.grant_type` and `error.type`. */
  refreshFailures: 'tessera.refresh.failures',
  /** Counter: verifications decided from the `TokenVerifier`'s cache, by `tessera.verify.kind`. */
  verifierCacheHits: 'tessera.verifier.cache.hits',
  /** Counter: verifications that had to check a signature or introspect, by `tessera.verify.kind`. */
  verifierCacheMisses: 'tessera.verifier.cache.misses',
} as const;

/** The buckets of `http.client.request.duration` in the HTTP semantic conventions, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** What the channels' contexts share. */
interface TraceContext {
  error?: Error;
  errorCode?: string;
}

/** The span of one trace and when it started. */
interface Open {
  span: Span;
  startedMs: number;
  ended: boolean;
}

/** The recorders of one instrumentation. */
interface Instruments {
  tracer: Tracer;
  requests: Counter;
  requestDuration: Histogram;
  refreshFailures: Counter;
  cacheHits: Counter;
  cacheMisses: Counter;
}

/**
 * Subscribes to Tessera's tracing channels and records, until the returned function is called:
 *
 * - a `CLIENT` span per HTTP attempt at the authorization server, after the HTTP client semantic
 *   conventions (`http.request.method`, `server.address`, `server.port`, `url.full` without query,
 *   `http.response.status_code`, `http.request.resend_count`, `error.type`) plus `tessera.endpoint`;
 * - a `tessera.refresh` span per renewal of a `TokenManager` key, parent of its requests;
 * - a `tessera.verify` span per `TokenVerifier.verify()`, parent of its introspection or JWKS fetch;
 * - the metrics of {@link METRICS}.
 *
 * Spans are children of the span active where Tessera was called (with a context manager
 * registered, as the OpenTelemetry Node SDK does). Calling it twice records everything twice.
 *
 * @returns the function that removes the instrumentation (calling it again does nothing).
 */
export function instrumentTessera(options: InstrumentTesseraOptions = {}): () => void {
  const tracerProvider = options.tracerProvider ?? trace.getTracerProvider();
  const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
  const instruments: Instruments = {
    tracer: tracerProvider.getTracer(INSTRUMENTATION_NAME),
    requests: meter.createCounter(METRICS.requests, {
      description: 'Exchanges with the authorization server (a retry is another exchange)',
      unit: '{request}',
    }),
    requestDuration: meter.createHistogram(METRICS.requestDuration, {
      description: 'Duration of exchanges with the authorization server',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    }),
    refreshFailures: meter.createCounter(METRICS.refreshFailures, {
      description: 'Token renewals (refreshes and grants) of a TokenManager that failed',
      unit: '{failure}',
    }),
    cacheHits: meter.createCounter(METRICS.verifierCacheHits, {
      description: "Token verifications decided from the verifier's cache",
      unit: '{verification}',
    }),
    cacheMisses: meter.createCounter(METRICS.verifierCacheMisses, {
      description: 'Token verifications that checked a signature or introspected the token',
      unit: '{verification}',
    }),
  };
  // The context each trace's work runs in, so that what runs inside (a renewal's token request)
  // finds its parent even though the application's context manager knows nothing of our spans.
  const active = new AsyncLocalStorage<Context>();
  const { tracer } = instruments;

  const removers = [
    subscribe(tracingChannel<unknown, RequestTraceContext>(DIAGNOSTICS_CHANNELS.request), active, {
      open: (context, parent) => requestSpan(tracer, context, parent),
      close: (context, open) => closeRequest(instruments, context, open),
    }),
    subscribe(tracingChannel<unknown, RefreshTraceContext>(DIAGNOSTICS_CHANNELS.refresh), active, {
      open: (context, parent) =>
        internalSpan(tracer, 'tessera.refresh', { 'tessera.key.fingerprint': context.key }, parent),
      close: (context, open) => closeRefresh(instruments, context, open),
    }),
    subscribe(tracingChannel<unknown, VerifyTraceContext>(DIAGNOSTICS_CHANNELS.verify), active, {
      open: (context, parent) =>
        internalSpan(tracer, 'tessera.verify', { 'tessera.verify.scheme': context.scheme }, parent),
      close: (context, open) => closeVerify(instruments, context, open),
    }),
  ];
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    for (const remove of removers) remove();
  };
}

/**
 * Opens a span at each trace's start and closes it at its end: `asyncEnd`, or `end` for work that
 * threw at once (no `asyncEnd` follows then). The span is bound to `active` for the trace's work.
 */
function subscribe<C extends TraceContext & object>(
  channel: TracingChannel<unknown, C>,
  active: AsyncLocalStorage<Context>,
  handlers: { open: (context: C, parent: Context) => Span; close: (context: C, open: Open) => void },
): () => void {
  const opened = new WeakMap<C, Open>();
  const finish = (context: C): void => {
    const open = opened.get(context);
    if (open === undefined || open.ended) return;
    open.ended = true;
    handlers.close(context, open);
  };
  // The store's transform runs before `start` is published and before the work: the span is
  // opened there, with the parent of the moment, and becomes the parent of the work inside.
  const bind = (context: C): Context => {
    const parent = active.getStore() ?? otelContext.active();
    const span = handlers.open(context, parent);
    opened.set(context, { span, startedMs: performance.now(), ended: false });
    return trace.setSpan(parent, span);
  };
  const subscribers = {
    start: () => undefined,
    end: (context: C) => {
      if (context.error !== undefined) finish(context); // it threw synchronously
    },
    asyncStart: () => undefined,
    asyncEnd: finish,
    error: () => undefined,
  };
  channel.start.bindStore(active, bind as (message: unknown) => Context);
  channel.subscribe(subscribers);
  return () => {
    channel.unsubscribe(subscribers);
    channel.start.unbindStore(active);
  };
}

/** A span's `error.type`: the error's code (`TIMEOUT`, ...) or its class name. */
function errorType(context: TraceContext): string | undefined {
  if (context.error === undefined) return undefined;
  return context.errorCode ?? context.error.name;
}

function failed(span: Span, type: string, context: TraceContext): void {
  span.setAttribute('error.type', type);
  // The message of a Tessera error holds no secret; it is all that is recorded of the error.
  span.setStatus({ code: SpanStatusCode.ERROR, message: context.error?.message ?? type });
}

/** `server.address` and `server.port` of the URLs seen, parsed once each (a client has a few). */
const servers = new Map<string, Attributes>();

function serverOf(url: string): Attributes {
  let attributes = servers.get(url);
  if (attributes === undefined) {
    attributes = {};
    try {
      const parsed = new URL(url);
      attributes['server.address'] = parsed.hostname.replace(/^\[|\]$/g, '');
      attributes['server.port'] =
        parsed.port === '' ? (parsed.protocol === 'https:' ? 443 : 80) : Number(parsed.port);
    } catch {
      // An unparsable URL has neither: the span keeps what it has.
    }
    if (servers.size < 1000) servers.set(url, attributes);
  }
  return attributes;
}

function internalSpan(tracer: Tracer, name: string, attributes: Attributes, parent: Context): Span {
  return tracer.startSpan(name, { kind: SpanKind.INTERNAL, attributes }, parent);
}

function requestSpan(tracer: Tracer, context: RequestTraceContext, parent: Context): Span {
  const attributes: Attributes = {
    'http.request.method': context.method,
    'url.full': context.url,
    'tessera.endpoint': context.endpoint,
    ...serverOf(context.url),
  };
  if (context.attempt > 0) attributes['http.request.resend_count'] = context.attempt;
  return tracer.startSpan(context.method, { kind: SpanKind.CLIENT, attributes }, parent);
}

function closeRequest(instruments: Instruments, context: RequestTraceContext, open: Open): void {
  const { span } = open;
  const type =
    errorType(context) ??
    (context.status !== undefined && context.status >= 400 ? String(context.status) : undefined);
  if (context.status !== undefined) span.setAttribute('http.response.status_code', context.status);
  if (type !== undefined) failed(span, type, context);
  span.end();
  const attributes: Attributes = {
    'tessera.endpoint': context.endpoint,
    'http.request.method': context.method,
    ...(context.status === undefined ? {} : { 'http.response.status_code': context.status }),
    ...(type === undefined ? {} : { 'error.type': type }),
  };
  instruments.requests.add(1, {
    'tessera.endpoint': context.endpoint,
    'tessera.outcome': type === undefined ? 'success' : 'failure',
    ...(type === undefined ? {} : { 'error.type': type }),
  });
  instruments.requestDuration.record((performance.now() - open.startedMs) / 1000, attributes);
}

function closeRefresh(instruments: Instruments, context: RefreshTraceContext, open: Open): void {
  const { span } = open;
  if (context.grantType !== undefined) span.setAttribute('tessera.grant_type', context.grantType);
  if (context.outcome !== undefined) span.setAttribute('tessera.refresh.outcome', context.outcome);
  if (context.rotated !== undefined) span.setAttribute('tessera.refresh.rotated', context.rotated);
  const type = errorType(context);
  if (type !== undefined) {
    failed(span, type, context);
    instruments.refreshFailures.add(1, {
      ...(context.grantType === undefined ? {} : { 'tessera.grant_type': context.grantType }),
      'error.type': type,
    });
  }
  span.end();
}

function closeVerify(instruments: Instruments, context: VerifyTraceContext, open: Open): void {
  const { span } = open;
  const attributes: Attributes = {
    ...(context.kind === undefined ? {} : { 'tessera.verify.kind': context.kind }),
    ...(context.cached === undefined ? {} : { 'tessera.verify.cached': context.cached }),
    ...(context.outcome === undefined ? {} : { 'tessera.verify.outcome': context.outcome }),
    ...(context.reason === undefined ? {} : { 'tessera.verify.reason': context.reason }),
    ...(context.status === undefined ? {} : { 'tessera.verify.status': context.status }),
  };
  span.setAttributes(attributes);
  // A refused token is an answer, not a failure of ours; a token that could not be judged is.
  if (context.reason === 'unavailable') failed(span, 'unavailable', context);
  span.end();
  if (context.cached !== undefined) {
    const counter = context.cached ? instruments.cacheHits : instruments.cacheMisses;
    counter.add(1, context.kind === undefined ? {} : { 'tessera.verify.kind': context.kind });
  }
}
