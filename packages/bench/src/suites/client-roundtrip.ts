/**
 * Client round trip: one client credentials grant, and one token introspection, against the local
 * static token server, by raw undici (the baseline), Tessera's `Client` (alone, and with
 * `@tessera/opentelemetry` recording into the real SDK) and openid-client v6, at concurrency 1 and
 * 32 (`BENCH_ROUNDTRIP_CONCURRENCY`).
 *
 * Target (issue 14, stricter than DESIGN.md's 0.5x): Tessera at least 0.7x the throughput of a raw
 * `undici.request` POST at each concurrency; openid-client v6 reaches about 0.12x.
 */
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { Client } from '@tessera/core';
import { instrumentTessera } from '@tessera/opentelemetry';
import * as openid from 'openid-client';
import { Agent, request } from 'undici';
import { measureContenders, median } from '../measure.js';
import type { Contender, ContenderResult } from '../measure.js';
import { STATIC_TOKEN_RESPONSE } from '../static-token-server.js';
import type { Suite, SuiteContext, SuiteReport, TargetCheck } from '../suite.js';
import { formatCount, formatRatio, formatTable } from '../table.js';

const CLIENT_ID = 'c1';
const CLIENT_SECRET = 's1';
const SCOPE = 'api';
/** Tessera's throughput must be at least this fraction of raw undici's. */
const TARGET_RATIO = 0.7;
/** The concurrencies measured, unless `BENCH_ROUNDTRIP_CONCURRENCY` names others. */
const DEFAULT_CONCURRENCIES = [1, 32];
/** The contender every ratio is taken against. */
const BASELINE = 'undici';
/**
 * Each of the run's rounds is cut into this many shorter ones: the same operations in all, but
 * three times as many per-round ratios, each between runs made closer together. On a shared VM,
 * whose throughput swings by 2x within seconds, the median of 5 ratios moved by ±0.15 between two
 * runs of the same code; the median of 15 moves less.
 */
const ROUND_SPLIT = 3;

/** The names of this suite's contenders, for `BENCH_ONLY`. */
export const CLIENT_ROUNDTRIP_CONTENDERS = ['undici', 'tessera', 'tessera+otel', 'openid-client'] as const;

type ContenderName = (typeof CLIENT_ROUNDTRIP_CONTENDERS)[number];

/** One operation of the suite, done by each contender. */
interface Operation {
  label: string;
  contenders: Record<ContenderName, () => Promise<unknown>>;
  /** Throws when a contender's result is not what the static server sent. */
  check: (name: ContenderName, result: unknown) => void;
}

/** Clients set up once per run, against one issuer. */
interface Clients {
  undici: Agent;
  tessera: Client;
  openid: openid.Configuration;
}

async function createClients(issuer: string): Promise<Clients> {
  const undici = new Agent({ keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 });
  const tessera = new Client(
    { issuer, token_endpoint: `${issuer}/token`, introspection_endpoint: `${issuer}/introspect` },
    { client_id: CLIENT_ID, client_secret: CLIENT_SECRET, token_endpoint_auth_method: 'client_secret_basic' },
  );
  // openid-client defaults to client_secret_post; Basic is asked for so that all three send the
  // same request. Its transport is Node's global fetch (the undici bundled with Node).
  const configuration = await openid.discovery(
    new URL(issuer),
    CLIENT_ID,
    CLIENT_SECRET,
    openid.ClientSecretBasic(CLIENT_SECRET),
    { execute: [openid.allowInsecureRequests] },
  );
  return { undici, tessera, openid: configuration };
}

/** `Authorization: Basic` for c1:s1 (RFC 6749 §2.3.1: form-encoded, then base64). */
const BASIC_AUTHORIZATION = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`;

const FORM_HEADERS = {
  'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
  accept: 'application/json',
  authorization: BASIC_AUTHORIZATION,
};

/** A raw undici POST of a form, returning the parsed JSON body; rejects on a non-200. */
async function undiciPost(dispatcher: Agent, url: string, form: string): Promise<unknown> {
  const { statusCode, body } = await request(url, {
    method: 'POST',
    headers: FORM_HEADERS,
    body: form,
    dispatcher,
  });
  const json: unknown = await body.json();
  if (statusCode !== 200) throw new Error(`${url} answered HTTP ${statusCode}`);
  return json;
}

function member(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

function operations(issuer: string, clients: Clients): Operation[] {
  const token = STATIC_TOKEN_RESPONSE.access_token;
  const grantForm = new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE }).toString();
  const introspectionForm = new URLSearchParams({ token }).toString();
  return [
    {
      label: 'client_credentials grant',
      contenders: {
        undici: () => undiciPost(clients.undici, `${issuer}/token`, grantForm),
        tessera: () => clients.tessera.clientCredentialsGrant({ scope: SCOPE }),
        'tessera+otel': () => clients.tessera.clientCredentialsGrant({ scope: SCOPE }),
        'openid-client': () => openid.clientCredentialsGrant(clients.openid, { scope: SCOPE }),
      },
      check: (name, result) => {
        if (member(result, 'access_token') !== token) throw new Error(`${name}: unexpected token response`);
      },
    },
    {
      label: 'token introspection',
      contenders: {
        undici: () => undiciPost(clients.undici, `${issuer}/introspect`, introspectionForm),
        tessera: () => clients.tessera.tokenIntrospection(token),
        'tessera+otel': () => clients.tessera.tokenIntrospection(token),
        'openid-client': () => openid.tokenIntrospection(clients.openid, token),
      },
      check: (name, result) => {
        if (member(result, 'active') !== true) throw new Error(`${name}: unexpected introspection response`);
      },
    },
  ];
}

/** Drops what it is given, as fast as an exporter can: the cost measured is the recording. */
class DiscardingSpanExporter implements SpanExporter {
  export(_spans: ReadableSpan[], done: Parameters<SpanExporter['export']>[1]): void {
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

/** A metric reader nobody reads: the instruments still aggregate every measurement. */
class IdleMetricReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/**
 * What a production service runs: a batching span processor and a meter provider. The
 * `tessera+otel` contender subscribes only during its own runs, so the others run without it.
 */
function openTelemetry(): { instrument: () => () => void; shutdown: () => Promise<void> } {
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(new DiscardingSpanExporter())],
  });
  const meterProvider = new MeterProvider({ readers: [new IdleMetricReader()] });
  return {
    instrument: () => instrumentTessera({ tracerProvider, meterProvider }),
    shutdown: async () => {
      await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}

/** The concurrencies of `BENCH_ROUNDTRIP_CONCURRENCY` (e.g. `1,32`), or the defaults. */
function concurrencies(): number[] {
  const raw = process.env.BENCH_ROUNDTRIP_CONCURRENCY;
  if (raw === undefined || raw.trim() === '') return DEFAULT_CONCURRENCIES;
  return raw.split(',').map((part) => {
    const value = Number(part.trim());
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`BENCH_ROUNDTRIP_CONCURRENCY must list positive integers, got ${raw}`);
    }
    return value;
  });
}

/**
 * `name`'s throughput as a fraction of the baseline's: the median of the per-round ratios. Rounds
 * are interleaved, so a round's ratio compares runs made moments apart; the machine's slow drifts
 * (a shared VM's throughput can halve from one minute to the next) cancel out of it.
 */
function ratioTo(results: readonly ContenderResult[], name: string): number | undefined {
  const baseline = results.find((r) => r.name === BASELINE);
  const result = results.find((r) => r.name === name);
  if (baseline === undefined || result === undefined) return undefined;
  return median(result.rounds.map((opsPerSecond, round) => opsPerSecond / baseline.rounds[round]!));
}

/** The client round-trip suite (see the module comment). */
export const clientRoundtripSuite: Suite = {
  name: 'client-roundtrip',
  title: 'Client round trip against a local static token server (child process, keep-alive)',
  async run(context: SuiteContext): Promise<SuiteReport> {
    const { config } = context;
    const server = await context.tokenServer();
    const clients = await createClients(server.issuer);
    const telemetry = openTelemetry();
    const rows: string[][] = [];
    const targets: TargetCheck[] = [];
    try {
      for (const concurrency of concurrencies()) {
        for (const operation of operations(server.issuer, clients)) {
          const contenders: Contender[] = CLIENT_ROUNDTRIP_CONTENDERS.filter(
            (name) => config.only?.has(name) ?? true,
          ).map((name) => ({
            name,
            operation: operation.contenders[name],
            ...(name === 'tessera+otel' ? { setup: telemetry.instrument } : {}),
          }));
          for (const contender of contenders) {
            const undo = contender.setup?.();
            try {
              operation.check(contender.name as ContenderName, await contender.operation());
            } finally {
              undo?.();
            }
          }
          const results = await measureContenders(contenders, {
            ...config,
            concurrency,
            rounds: config.rounds * ROUND_SPLIT,
            operations: Math.max(concurrency, Math.ceil(config.operations / ROUND_SPLIT)),
          });
          const alone = results.find((result) => result.name === 'tessera');
          for (const result of results) {
            const ratio = ratioTo(results, result.name);
            const overhead =
              result.name === 'tessera+otel' && alone !== undefined
                ? ` (+${formatCount(result.cpuMicrosPerOp - alone.cpuMicrosPerOp)})`
                : '';
            rows.push([
              operation.label,
              String(concurrency),
              result.name,
              formatCount(result.opsPerSecond),
              result.rounds.map(formatCount).join(' / '),
              ratio === undefined ? 'n/a' : formatRatio(ratio),
              `${formatCount(result.cpuMicrosPerOp)}${overhead}`,
            ]);
          }
          const measured = ratioTo(results, 'tessera');
          targets.push({
            description: `${operation.label}, concurrency ${concurrency}: tessera / undici >= ${TARGET_RATIO}`,
            measured,
            met: measured === undefined ? undefined : measured >= TARGET_RATIO,
          });
        }
      }
    } finally {
      await clients.undici.close();
      await telemetry.shutdown();
    }
    const table = formatTable(
      [
        { heading: 'operation' },
        { heading: 'concurrency', align: 'right' },
        { heading: 'contender' },
        { heading: 'ops/s (median)', align: 'right' },
        { heading: 'rounds (ops/s)', align: 'right' },
        { heading: `vs ${BASELINE} (median of rounds)`, align: 'right' },
        { heading: 'client CPU µs/op', align: 'right' },
      ],
      rows,
    );
    return { table, targets };
  },
};
