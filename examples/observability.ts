/**
 * Observability: what an operator sees of a TokenManager, with pino logging and OpenTelemetry
 * spans and metrics on the console exporters. Run it with `pnpm example examples/observability.ts`.
 *
 * 1. An acquisition (client credentials) inside a request handler's span: the `tessera.refresh`
 *    span is its child, and the token request (a `POST` CLIENT span) the child of that.
 * 2. A refresh of a user's tokens, with a rotating refresh token.
 * 3. A failure: the user's refresh token is revoked, the next refresh is refused with
 *    `invalid_grant`, the manager clears the key and logs it at `error`; the metrics count it.
 *
 * Log lines are pino's JSON on stdout; spans and metrics are printed by the console exporters. No
 * line, span or metric holds a token or a secret: a token shows only as its fingerprint.
 */
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, ConsoleSpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Client, TokenManager, tokenFingerprint } from '@tessera/core';
import { instrumentTessera } from '@tessera/opentelemetry';
import { startTestServer } from '@tessera/testing';
import { pino } from 'pino';

const say = (text: string) => console.log(`\n=== ${text}`);

// What the OpenTelemetry Node SDK sets up, by hand: a context manager (so spans nest across
// awaits), a tracer provider and a meter provider, here printing to the console.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const tracerProvider = new BasicTracerProvider({
  spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())],
});
const metricReader = new PeriodicExportingMetricReader({
  exporter: new ConsoleMetricExporter(),
  exportIntervalMillis: 60_000, // once a minute, and at shutdown (below)
});
const meterProvider = new MeterProvider({ readers: [metricReader] });
const uninstrument = instrumentTessera({ tracerProvider, meterProvider });

// One logger on the Client: the managers built on it log through it too.
// (A synchronous destination keeps its lines in order with the exporters' output.)
const logger = pino({ level: 'debug', base: { service: 'reports' } }, pino.destination({ sync: true }));

const server = await startTestServer({ rotateRefreshTokens: true });
const client = await Client.discover(server.issuer, server.clients.basic, { logger });
const service = new TokenManager({ client, grant: 'client_credentials' });
const users = new TokenManager({ client });

try {
  say('1. an acquisition, inside the span of GET /reports');
  const handler = tracerProvider.getTracer('reports').startSpan('GET /reports');
  await context.with(trace.setSpan(context.active(), handler), () => service.getValidAccessToken());
  handler.end();

  say('2. a refresh of the tokens of user "ada", with rotation');
  const ada = users.for('ada');
  await ada.storeTokens(await server.issueUserTokens('basic', { accountId: 'ada' }));
  const refreshed = await ada.refreshTokens();
  console.log(`(the refreshed access token's fingerprint is ${tokenFingerprint(refreshed.accessToken)})`);

  say('3. a failure: the refresh token is revoked, the next refresh is refused');
  await client.tokenRevocation(refreshed.refreshToken!, { token_type_hint: 'refresh_token' });
  const failure = await ada.refreshTokens().catch((error: Error) => error);
  console.log(`(refreshTokens() rejected: ${String(failure)})`);
} finally {
  uninstrument();
  await Promise.all([service.close(), users.close()]);
  say('the metrics, as the exporter sends them at shutdown');
  await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
  await server.close();
  console.log('\ndone.');
}
