import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  AggregationTemporality,
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base';
import { Client, TokenManager, TokenVerificationError, TokenVerifier, TransportError } from '@tessera/core';
import { INSTRUMENTATION_NAME, instrumentTessera, METRICS } from '@tessera/opentelemetry';
import { startTestServer, type TestServer } from '@tessera/testing';

// @tessera/opentelemetry with the real OpenTelemetry SDK (in-memory span exporter, a pull metric
// reader, the async-hooks context manager the Node SDK registers) around real exchanges with
// oidc-provider.

/** A metric reader that is only read when the test asks (`collect()`). */
class TestMetricReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

let server: TestServer;
let jwtServer: TestServer;
const contextManager = new AsyncLocalStorageContextManager();
let exporter: InMemorySpanExporter;
let tracerProvider: BasicTracerProvider;
let reader: TestMetricReader;
let meterProvider: MeterProvider;
let uninstrument: () => void;
/** Every secret the run has seen, to look for in every span and metric point. */
const secrets = new Set<string>();

beforeAll(async () => {
  [server, jwtServer] = await Promise.all([
    startTestServer({ rotateRefreshTokens: true }),
    startTestServer({ accessTokenFormat: 'jwt' }),
  ]);
  context.setGlobalContextManager(contextManager.enable());
  for (const testServer of [server, jwtServer]) {
    for (const client of Object.values(testServer.clients)) {
      if (client.client_secret !== undefined) secrets.add(client.client_secret);
    }
  }
});

beforeEach(() => {
  exporter = new InMemorySpanExporter();
  tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  reader = new TestMetricReader();
  meterProvider = new MeterProvider({ readers: [reader] });
  uninstrument = instrumentTessera({ tracerProvider, meterProvider });
});

afterEach(async () => {
  uninstrument();
  // Nothing recorded anywhere holds a secret of this test.
  const recorded = JSON.stringify({
    spans: exporter.getFinishedSpans().map((span) => ({
      name: span.name,
      attributes: span.attributes,
      status: span.status,
      events: span.events,
    })),
    metrics: await metricsOf(),
  });
  for (const secret of secrets) {
    for (const form of formsOf(secret)) expect(recorded).not.toContain(form);
  }
  await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
});

afterAll(async () => {
  context.disable();
  await Promise.all([server?.close(), jwtServer?.close()]);
});

/** Every form of a secret that could show up in an attribute. */
function formsOf(secret: string): string[] {
  return [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64'), secret.slice(0, 12)];
}

/** Remembers the secrets of a token set, so that `afterEach` looks for them. */
function remember(...values: Array<string | undefined>): void {
  for (const value of values) if (value !== undefined) secrets.add(value);
}

async function metricsOf(): Promise<MetricData[]> {
  const { resourceMetrics } = await reader.collect();
  return resourceMetrics.scopeMetrics
    .filter((scope) => scope.scope.name === INSTRUMENTATION_NAME)
    .flatMap((scope) => scope.metrics);
}

/** The points of metric `name`, as attributes and value (a histogram's value is its count). */
async function pointsOf(name: string): Promise<Array<{ attributes: object; value: number }>> {
  const metric = (await metricsOf()).find((entry) => entry.descriptor.name === name);
  if (metric === undefined) return [];
  return (metric.dataPoints as Array<DataPoint<number | Histogram>>).map((point) => ({
    attributes: point.attributes,
    value: typeof point.value === 'number' ? point.value : point.value.count,
  }));
}

const spans = (): ReadableSpan[] => exporter.getFinishedSpans();
const named = (name: string): ReadableSpan[] => spans().filter((span) => span.name === name);
const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId;
const idOf = (span: ReadableSpan): string => span.spanContext().spanId;

describe('a client-credentials grant through a TokenManager', () => {
  it('records a refresh span under the caller’s span, with the token request inside it', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const manager = new TokenManager({ client, grant: 'client_credentials', key: 'billing' });
    try {
      const caller = tracerProvider.getTracer('app').startSpan('GET /invoices');
      const token = await context.with(trace.setSpan(context.active(), caller), () =>
        manager.getValidAccessToken(),
      );
      caller.end();
      remember(token);

      const [refresh] = named('tessera.refresh');
      expect(refresh).toBeDefined();
      expect(refresh!.kind).toBe(SpanKind.INTERNAL);
      expect(parentOf(refresh!)).toBe(caller.spanContext().spanId);
      expect(refresh!.spanContext().traceId).toBe(caller.spanContext().traceId);
      expect(refresh!.attributes).toEqual({
        'tessera.key.fingerprint': expect.stringMatching(/^[0-9a-f]{16}$/),
        'tessera.grant_type': 'client_credentials',
        'tessera.refresh.outcome': 'acquired',
      });
      expect(refresh!.status.code).toBe(SpanStatusCode.UNSET);

      const [request] = named('POST');
      expect(request!.kind).toBe(SpanKind.CLIENT);
      expect(parentOf(request!)).toBe(idOf(refresh!));
      const { hostname, port } = new URL(server.issuer);
      expect(request!.attributes).toEqual({
        'http.request.method': 'POST',
        'url.full': `${server.issuer}/token`,
        'server.address': hostname,
        'server.port': Number(port),
        'http.response.status_code': 200,
        'tessera.endpoint': 'token endpoint',
      });
      expect(request!.instrumentationScope.name).toBe(INSTRUMENTATION_NAME);
      // The key names a tenant or a user: spans show its fingerprint only.
      expect(JSON.stringify(spans().map((span) => span.attributes))).not.toContain('billing');

      expect(await pointsOf(METRICS.requests)).toEqual([
        { attributes: { 'tessera.endpoint': 'discovery endpoint', 'tessera.outcome': 'success' }, value: 1 },
        { attributes: { 'tessera.endpoint': 'token endpoint', 'tessera.outcome': 'success' }, value: 1 },
      ]);
      const [duration] = (await metricsOf()).filter(
        (metric) => metric.descriptor.name === METRICS.requestDuration,
      );
      expect(duration!.descriptor.unit).toBe('s');
      expect(await pointsOf(METRICS.requestDuration)).toContainEqual({
        attributes: {
          'tessera.endpoint': 'token endpoint',
          'http.request.method': 'POST',
          'http.response.status_code': 200,
        },
        value: 1,
      });
      const point = (duration!.dataPoints as Array<DataPoint<Histogram>>).find(
        (entry) => entry.attributes['tessera.endpoint'] === 'token endpoint',
      );
      expect(point!.value.sum).toBeGreaterThan(0);
      expect(point!.value.sum).toBeLessThan(60); // seconds, not milliseconds
      expect(await pointsOf(METRICS.refreshFailures)).toEqual([]);

      // The cached token needs no renewal: nothing more is recorded.
      exporter.reset();
      expect(await manager.getValidAccessToken()).toBe(token);
      expect(spans()).toEqual([]);
    } finally {
      await manager.close();
    }
  });

  it('keeps concurrent renewals apart: each token request is inside its own refresh span', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const managers = ['tenant-a', 'tenant-b', 'tenant-c'].map(
      (key) => new TokenManager({ client, grant: 'client_credentials', key }),
    );
    try {
      exporter.reset();
      remember(...(await Promise.all(managers.map((manager) => manager.getValidAccessToken()))));
      const refreshes = named('tessera.refresh');
      const requests = named('POST');
      expect(refreshes).toHaveLength(3);
      expect(new Set(requests.map(parentOf))).toEqual(new Set(refreshes.map(idOf)));
      expect(new Set(refreshes.map((span) => span.attributes['tessera.key.fingerprint'])).size).toBe(3);
    } finally {
      await Promise.all(managers.map((manager) => manager.close()));
    }
  });

  it('records a discovery made outside any span as a root CLIENT span', async () => {
    await Client.discover(server.issuer, server.clients.basic);
    const [discovery] = named('GET');
    expect(discovery!.attributes).toMatchObject({
      'tessera.endpoint': 'discovery endpoint',
      'url.full': `${server.issuer}/.well-known/oauth-authorization-server`,
      'http.response.status_code': 200,
    });
    expect(parentOf(discovery!)).toBeUndefined();
  });
});

describe('a refresh with rotation, then a failed refresh', () => {
  it('records the rotation, then the failure with its error type and a refresh failure', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const manager = new TokenManager({ client, key: 'user:jo' });
    try {
      const issued = await server.issueUserTokens('basic', { accountId: 'jo' });
      remember(issued.access_token, issued.refresh_token, issued.id_token);
      await manager.storeTokens(issued);
      const refreshed = await manager.refreshTokens();
      remember(refreshed.accessToken, refreshed.refreshToken, refreshed.idToken);
      expect(refreshed.refreshToken).not.toBe(issued.refresh_token);

      const [rotation] = named('tessera.refresh');
      expect(rotation!.attributes).toMatchObject({
        'tessera.grant_type': 'refresh_token',
        'tessera.refresh.outcome': 'refreshed',
        'tessera.refresh.rotated': true,
      });
      const [rotationRequest] = named('POST');
      expect(parentOf(rotationRequest!)).toBe(idOf(rotation!));

      // The refresh token is revoked: the next refresh is refused with invalid_grant.
      await client.tokenRevocation(refreshed.refreshToken!, { token_type_hint: 'refresh_token' });
      exporter.reset();
      await expect(manager.refreshTokens()).rejects.toMatchObject({ error: 'invalid_grant' });

      const [failure] = named('tessera.refresh');
      expect(failure!.attributes).toMatchObject({
        'tessera.grant_type': 'refresh_token',
        'tessera.refresh.outcome': 'failed',
        'error.type': 'OAUTH_ERROR',
      });
      expect(failure!.status).toEqual({ code: SpanStatusCode.ERROR, message: expect.any(String) });
      const [refused] = named('POST');
      expect(parentOf(refused!)).toBe(idOf(failure!));
      expect(refused!.attributes).toMatchObject({ 'http.response.status_code': 400, 'error.type': '400' });
      expect(refused!.status.code).toBe(SpanStatusCode.ERROR);

      expect(await pointsOf(METRICS.refreshFailures)).toEqual([
        { attributes: { 'tessera.grant_type': 'refresh_token', 'error.type': 'OAUTH_ERROR' }, value: 1 },
      ]);
      const requests = await pointsOf(METRICS.requests);
      expect(requests).toEqual(
        expect.arrayContaining([
          {
            attributes: { 'tessera.endpoint': 'token endpoint', 'tessera.outcome': 'success' },
            value: 1,
          },
          {
            attributes: {
              'tessera.endpoint': 'token endpoint',
              'tessera.outcome': 'failure',
              'error.type': '400',
            },
            value: 1,
          },
          {
            attributes: { 'tessera.endpoint': 'revocation endpoint', 'tessera.outcome': 'success' },
            value: 1,
          },
        ]),
      );
    } finally {
      await manager.close();
    }
  });

  it('records an unreachable server: one span per attempt, error.type the transport code', async () => {
    const client = new Client(
      { issuer: 'http://127.0.0.1:1', token_endpoint: 'http://127.0.0.1:1/token' },
      { client_id: 'c', client_secret: 'unreachable-secret-value' },
      { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 } },
    );
    remember('unreachable-secret-value');
    await expect(client.clientCredentialsGrant()).rejects.toBeInstanceOf(TransportError);
    const attempts = named('POST');
    expect(attempts.map((span) => span.attributes['http.request.resend_count'])).toEqual([undefined, 1]);
    for (const span of attempts) {
      expect(span.attributes['error.type']).toBe('NETWORK_ERROR');
      expect(span.attributes).not.toHaveProperty('http.response.status_code');
      expect(span.status.code).toBe(SpanStatusCode.ERROR);
    }
    expect(await pointsOf(METRICS.requests)).toEqual([
      {
        attributes: {
          'tessera.endpoint': 'token endpoint',
          'tessera.outcome': 'failure',
          'error.type': 'NETWORK_ERROR',
        },
        value: 2,
      },
    ]);
  });
});

describe('verification', () => {
  it('records an introspection inside the verify span, then a cache hit, then a rejection', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const verifier = new TokenVerifier({ client, resource: server.apiResource });
    try {
      const { access_token } = await client.clientCredentialsGrant({
        scope: 'api:read',
        resource: server.apiResource,
      });
      remember(access_token);
      exporter.reset();
      await verifier.verify(access_token);
      await verifier.verify(access_token);
      remember('not-a-token-this-server-issued');
      await expect(verifier.verify('not-a-token-this-server-issued')).rejects.toBeInstanceOf(
        TokenVerificationError,
      );

      const verifications = named('tessera.verify');
      expect(verifications.map((span) => span.attributes)).toEqual([
        {
          'tessera.verify.scheme': 'Bearer',
          'tessera.verify.kind': 'introspection',
          'tessera.verify.cached': false,
          'tessera.verify.outcome': 'verified',
        },
        {
          'tessera.verify.scheme': 'Bearer',
          'tessera.verify.kind': 'introspection',
          'tessera.verify.cached': true,
          'tessera.verify.outcome': 'verified',
        },
        {
          'tessera.verify.scheme': 'Bearer',
          'tessera.verify.cached': false,
          'tessera.verify.outcome': 'rejected',
          'tessera.verify.reason': expect.any(String),
          'tessera.verify.status': 401,
        },
      ]);
      // A refused token is the verifier's answer, not a failure of it.
      expect(verifications.map((span) => span.status.code)).toEqual([
        SpanStatusCode.UNSET,
        SpanStatusCode.UNSET,
        SpanStatusCode.UNSET,
      ]);
      const introspections = spans().filter(
        (span) => span.attributes['tessera.endpoint'] === 'introspection endpoint',
      );
      expect(introspections).toHaveLength(2);
      expect(parentOf(introspections[0]!)).toBe(idOf(verifications[0]!));
      expect(parentOf(introspections[1]!)).toBe(idOf(verifications[2]!));

      expect(await pointsOf(METRICS.verifierCacheHits)).toEqual([
        { attributes: { 'tessera.verify.kind': 'introspection' }, value: 1 },
      ]);
      expect(await pointsOf(METRICS.verifierCacheMisses)).toEqual([
        { attributes: { 'tessera.verify.kind': 'introspection' }, value: 1 },
        { attributes: {}, value: 1 },
      ]);
    } finally {
      await verifier.close();
    }
  });

  it('marks a verification that could not be made (issuer unreachable) as an error', async () => {
    const client = new Client(
      { issuer: 'http://127.0.0.1:1', introspection_endpoint: 'http://127.0.0.1:1/introspect' },
      { client_id: 'api', client_secret: 'api-secret-value-0001' },
      { retry: { retries: 0 } },
    );
    remember('api-secret-value-0001', 'an-opaque-token-for-the-api');
    const verifier = new TokenVerifier({ client, resource: 'https://api.example' });
    try {
      await expect(verifier.verify('an-opaque-token-for-the-api')).rejects.toMatchObject({
        reason: 'unavailable',
        status: 503,
      });
      const [verification] = named('tessera.verify');
      expect(verification!.attributes).toMatchObject({
        'tessera.verify.outcome': 'rejected',
        'tessera.verify.reason': 'unavailable',
        'error.type': 'unavailable',
      });
      expect(verification!.status.code).toBe(SpanStatusCode.ERROR);
      const [introspection] = named('POST');
      expect(parentOf(introspection!)).toBe(idOf(verification!));
      expect(introspection!.attributes['error.type']).toBe('NETWORK_ERROR');
    } finally {
      await verifier.close();
    }
  });

  it('records a JWT verified locally, with its JWKS fetch inside the first verification', async () => {
    const client = await Client.discover(jwtServer.issuer, jwtServer.clients.basic);
    const verifier = new TokenVerifier({ client, resource: jwtServer.apiResource });
    try {
      const { access_token } = await client.clientCredentialsGrant({
        scope: 'api:read',
        resource: jwtServer.apiResource,
      });
      remember(access_token, ...access_token.split('.'));
      exporter.reset();
      await verifier.verify(access_token);
      await verifier.verify(access_token);
      const verifications = named('tessera.verify');
      expect(verifications.map((span) => span.attributes['tessera.verify.kind'])).toEqual(['jwt', 'jwt']);
      expect(verifications.map((span) => span.attributes['tessera.verify.cached'])).toEqual([false, true]);
      const [jwks] = spans().filter((span) => span.attributes['tessera.endpoint'] === 'jwks_uri');
      expect(parentOf(jwks!)).toBe(idOf(verifications[0]!));
      expect(await pointsOf(METRICS.verifierCacheHits)).toEqual([
        { attributes: { 'tessera.verify.kind': 'jwt' }, value: 1 },
      ]);
    } finally {
      await verifier.close();
    }
  });
});

describe('the function instrumentTessera returns', () => {
  it('removes the instrumentation: nothing more is recorded, and calling it twice is harmless', async () => {
    uninstrument();
    uninstrument();
    const client = await Client.discover(server.issuer, server.clients.basic);
    await client.clientCredentialsGrant();
    expect(spans()).toEqual([]);
    expect(await pointsOf(METRICS.requests)).toEqual([]);
  });

  it('with no providers given, records with the global ones', async () => {
    uninstrument();
    trace.setGlobalTracerProvider(tracerProvider);
    const remove = instrumentTessera();
    try {
      await Client.discover(server.issuer, server.clients.basic);
      expect(named('GET')).toHaveLength(1);
    } finally {
      remove();
      trace.disable();
    }
  });
});
