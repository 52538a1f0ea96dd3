/**
 * The transport: the only file that knows axios. Requests go through node:http(s) with keep-alive
 * agents, or through the caller's own axios instance (`ClientOptions.axios`) in stream mode. Either
 * way this file, not the library, enforces the body size limit and the whole-request timeout, and
 * nothing library-shaped (an axios error's `config` carries our headers and body) escapes: failures
 * become `TransportError` / `ResponseError` with a stripped-down cause.
 */
import http from 'node:http';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AxiosInstance, AxiosResponse } from 'axios';
import { ConfigurationError, ResponseError, TransportError, errorSummary } from '../errors.js';
import type { ClientOptions } from '../types.js';
import { traceRequest, urlWithoutQuery } from './tracing.js';
import { errorFields, Log } from './log.js';
import { backoffMs } from './backoff.js';
import { headerSecrets } from './redact.js';
import { aborted, sleep } from './sleep.js';

/** A request ready to send. Built anew for every attempt (a client assertion must not repeat). */
export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers: Record<string, string>;
  body?: string;
}

/** A response: status, lower-cased headers, the raw body and when it arrived (epoch ms). */
export interface HttpResponse {
  status: number;
  headers: Readonly<Record<string, string | undefined>>;
  body: Buffer;
  receivedAt: number;
}

/**
 * What may be retried.
 * - `'idempotent'` (discovery, JWKS, introspection, revocation): network failures, 5xx, 429.
 * - `'unprocessed'` (grants): only what the server cannot have acted on, a refused connection
 *   (nothing was sent) or 429/503 with `Retry-After`; a rotating refresh token or a one-time
 *   code must never be replayed after an unknown outcome (RFC 6749 §10.4, RFC 9700 §4.14).
 * - `'none'`: the caller retries itself (the polling grants, which wait as the server says).
 */
export type RetryPolicy = 'idempotent' | 'unprocessed' | 'none';

/** One exchange with an endpoint. */
export interface Exchange {
  /** For messages: `'token endpoint'`, `'introspection endpoint'`, ... */
  endpoint: string;
  policy: RetryPolicy;
  signal?: AbortSignal | undefined;
  /** Builds the request for each attempt. */
  build: () => HttpRequest | Promise<HttpRequest>;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/** Parses `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date, in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = /^[a-z]{3},/i.test(trimmed) ? Date.parse(trimmed) : Number.NaN; // IMF-fixdate
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The options the transport owns: nothing of the client's credentials, only how to send. */
export type TransportOptions = Pick<
  ClientOptions,
  | 'axios'
  | 'tls'
  | 'timeoutMs'
  | 'maxResponseBytes'
  | 'retry'
  | 'allowInsecureRequests'
  | 'headers'
  | 'logger'
>;

/** What of `options` is the transport's, picked at the edge (the rest, such as keys, stays out). */
export function transportOptions(options: ClientOptions): TransportOptions {
  const { axios, tls, timeoutMs, maxResponseBytes, retry, allowInsecureRequests, headers, logger } = options;
  return { axios, tls, timeoutMs, maxResponseBytes, retry, allowInsecureRequests, headers, logger };
}

/** Sends requests with keep-alive agents, timeouts, a size limit, no redirects and bounded retries. */
export class HttpTransport {
  /** The caller's axios instance; without one, requests go through node:http(s) directly. */
  readonly #axios: AxiosInstance | undefined;
  readonly #targets = new Map<string, Target>();
  readonly #httpAgent: http.Agent;
  readonly #httpsAgent: https.Agent;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #retries: number;
  readonly #minDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #allowInsecure: boolean;
  readonly #headers: Record<string, string>;
  readonly #checkedUrls = new Map<string, true>();
  /** Values of the caller's `headers` that are credentials, for redaction. */
  readonly secrets: readonly string[];
  /** The client's log: a debug line per attempt. */
  readonly log: Log;

  constructor(options: TransportOptions = {}) {
    this.#axios = options.axios;
    this.#httpAgent = new http.Agent({ keepAlive: true });
    this.#httpsAgent = new https.Agent({
      keepAlive: true,
      ...(options.tls?.cert !== undefined ? { cert: options.tls.cert } : {}),
      ...(options.tls?.key !== undefined ? { key: options.tls.key } : {}),
      ...(options.tls?.ca !== undefined ? { ca: options.tls.ca } : {}),
    });
    // The Client validated the options (internal/options.ts); only defaults are applied here.
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxResponseBytes = options.maxResponseBytes ?? 1_048_576;
    this.#retries = options.retry?.retries ?? 2;
    this.#minDelayMs = options.retry?.minDelayMs ?? 100;
    this.#maxDelayMs = options.retry?.maxDelayMs ?? 10_000;
    this.#allowInsecure = options.allowInsecureRequests === true;
    this.#headers = { 'user-agent': 'tessera', ...lowerCaseKeys(options.headers ?? {}) };
    this.secrets = headerSecrets(this.#headers);
    this.log = Log.to(options.logger, 'tessera.client');
  }

  /**
   * Refuses a URL that is not `https:` (or `http:` to loopback, or anything `http:` with
   * `allowInsecureRequests`). Throws `ConfigurationError` `INVALID_CONFIGURATION`.
   */
  assertUrl(url: string, what: string): void {
    if (this.#checkedUrls.has(url)) return;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch (cause) {
      throw new ConfigurationError('INVALID_CONFIGURATION', `${what} is not a valid URL`, { cause });
    }
    const secure =
      parsed.protocol === 'https:' ||
      (parsed.protocol === 'http:' && (this.#allowInsecure || LOOPBACK.test(parsed.hostname)));
    if (!secure) {
      throw new ConfigurationError(
        'INVALID_CONFIGURATION',
        `${what} must use https (got ${parsed.protocol}//${parsed.host}); http is allowed only to loopback or with allowInsecureRequests`,
      );
    }
    if (this.#checkedUrls.size < 1000) this.#checkedUrls.set(url, true);
  }

  /** Performs the exchange, retrying as its policy allows. */
  async send(exchange: Exchange): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const canRetry = exchange.policy !== 'none' && attempt < this.#retries;
      let response: HttpResponse;
      try {
        const built = exchange.build();
        const request = built instanceof Promise ? await built : built;
        const run = (): Promise<HttpResponse> =>
          traceRequest(exchange.endpoint, request.method, request.url, attempt, () =>
            this.#attempt(exchange, request),
          );
        response = this.log.enabled('debug')
          ? await this.#logged(exchange, request, attempt, run)
          : await run();
      } catch (error) {
        const refused = error instanceof TransportError && error.systemCode === 'ECONNREFUSED';
        const retryable =
          error instanceof TransportError &&
          error.code === 'NETWORK_ERROR' &&
          (exchange.policy === 'idempotent' || refused);
        if (!canRetry || !retryable) throw error;
        await this.#retryAfter(exchange, attempt, this.#backoff(attempt));
        continue;
      }
      if (!canRetry) return response;
      const delay = this.#retryDelay(response, exchange.policy, attempt);
      if (delay === undefined) return response;
      await this.#retryAfter(exchange, attempt, delay);
    }
  }

  /** Runs one attempt and logs it at debug: endpoint, method, URL without query, outcome, duration. */
  async #logged(
    exchange: Exchange,
    request: HttpRequest,
    attempt: number,
    run: () => Promise<HttpResponse>,
  ): Promise<HttpResponse> {
    const fields = {
      endpoint: exchange.endpoint,
      method: request.method,
      url: urlWithoutQuery(request.url),
      attempt,
    };
    const started = performance.now();
    const durationMs = (): number => Math.round((performance.now() - started) * 10) / 10;
    try {
      const response = await run();
      this.log.write(
        'debug',
        { ...fields, status: response.status, durationMs: durationMs() },
        `${exchange.endpoint} answered ${response.status}`,
      );
      return response;
    } catch (error) {
      const failure = errorFields(error);
      this.log.write(
        'debug',
        { ...fields, ...failure, durationMs: durationMs() },
        `${exchange.endpoint} gave no answer: ${failure.errorCode ?? failure.error}`,
      );
      throw error;
    }
  }

  /** Waits `delayMs` before the retry after `attempt`, saying so at debug. */
  async #retryAfter(exchange: Exchange, attempt: number, delayMs: number): Promise<void> {
    this.log.write(
      'debug',
      { endpoint: exchange.endpoint, attempt, retryInMs: Math.round(delayMs) },
      `${exchange.endpoint}: retrying in ${Math.round(delayMs)} ms`,
    );
    await sleep(delayMs, exchange.signal, exchange.endpoint);
  }

  /** Closes idle keep-alive sockets. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent.destroy();
  }

  #retryDelay(response: HttpResponse, policy: RetryPolicy, attempt: number): number | undefined {
    const { status } = response;
    const retryAfter = parseRetryAfter(response.headers['retry-after']);
    if ((status === 429 || status === 503) && retryAfter !== undefined) {
      // The server said when to come back; a wait longer than we are allowed is not a retry.
      return retryAfter <= this.#maxDelayMs ? retryAfter : undefined;
    }
    if (
      policy === 'idempotent' &&
      (status === 429 || status === 500 || status === 502 || status === 503 || status === 504)
    ) {
      return this.#backoff(attempt);
    }
    return undefined;
  }

  #backoff(attempt: number): number {
    return backoffMs(attempt, this.#minDelayMs, this.#maxDelayMs);
  }

  /**
   * One attempt, bounded by `timeoutMs` and the caller's signal. The deadline and the signal settle
   * the attempt themselves instead of waiting for the socket to report an error: whatever the server
   * does (a `101 Switching Protocols`, 1xx answers without end, a body that never finishes, a socket
   * closed without an error event), the attempt ends in time. One promise per attempt: the
   * exchange, the deadline and the signal all report to `settle`, and the first report wins.
   */
  #attempt(exchange: Exchange, request: HttpRequest): Promise<HttpResponse> {
    const { endpoint, signal } = exchange;
    try {
      this.assertUrl(request.url, endpoint);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (signal?.aborted) return Promise.reject(aborted(endpoint, signal.reason));
    return new Promise((resolve, reject) => {
      // What stops the exchange: known once it has started (it may report before that).
      const state: { settled: boolean; cancel?: () => void } = { settled: false };
      const settle: Settle = (error, response) => {
        if (state.settled) return;
        state.settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) {
          resolve(response!);
        } else {
          state.cancel?.();
          reject(error);
        }
      };
      const timer = setTimeout(
        () =>
          settle(
            new TransportError('TIMEOUT', `${endpoint} did not answer within ${this.#timeoutMs} ms`, {
              endpoint,
            }),
          ),
        this.#timeoutMs,
      );
      const onAbort = (): void => settle(aborted(endpoint, signal?.reason));
      signal?.addEventListener('abort', onAbort, { once: true });
      state.cancel =
        this.#axios === undefined
          ? this.#exchangeWithNode(endpoint, request, settle)
          : this.#exchangeWithAxios(this.#axios, endpoint, request, settle);
      if (state.settled) state.cancel(); // it failed at once, before `cancel` was known
    });
  }

  /**
   * Sends with node:http(s) directly: the default, as axios's per-request config and header
   * pipeline cost several times the whole exchange (see BENCHMARKS.md). No redirects are
   * followed: a 3xx is a response like any other. Returns what stops the exchange.
   */
  #exchangeWithNode(endpoint: string, request: HttpRequest, settle: Settle): () => void {
    let req: http.ClientRequest | undefined;
    let stream: IncomingMessage | undefined;
    const fail = (cause: unknown): void => settle(networkError(endpoint, cause));
    try {
      const target = this.#target(request.url);
      const send = target.secure ? https.request : http.request;
      let answered = false;
      req = send(
        {
          method: request.method,
          hostname: target.hostname,
          port: target.port,
          path: target.path,
          headers: rawHeaders(target.host, this.#headers, request),
          agent: target.secure ? this.#httpsAgent : this.#httpAgent,
        },
        (response) => {
          answered = true;
          stream = response;
          this.#receive(endpoint, response.statusCode ?? 0, response.headers, response, settle);
        },
      );
      // `on`, not `once`: `settle` takes the first report only, and an error after it (a socket
      // destroyed by the deadline) must still find a listener rather than crash the process.
      req.on('error', fail);
      // A 101 hands the socket over to another protocol: not an answer we can use. It is reported
      // as the status it is (an HTTP error), with no body, and the socket is closed.
      req.on('upgrade', (response: IncomingMessage, socket: { destroy(): void }) => {
        answered = true;
        socket.destroy();
        this.#receive(endpoint, response.statusCode ?? 101, response.headers, undefined, settle);
      });
      // Closed without a response and without an error (e.g. after an unhandled upgrade). Every
      // request closes, answered or not: the error (and its stack trace) is built only when unanswered.
      req.on('close', () => {
        if (!answered) fail(new Error('the connection closed before a response'));
      });
      req.end(request.body);
    } catch (cause) {
      fail(cause);
    }
    return () => {
      req?.destroy();
      stream?.destroy();
    };
  }

  /** Sends with the caller's axios instance (its interceptors and adapter run). */
  #exchangeWithAxios(
    instance: AxiosInstance,
    endpoint: string,
    request: HttpRequest,
    settle: Settle,
  ): () => void {
    const controller = new AbortController();
    let stream: IncomingMessage | undefined;
    const fail = (cause: unknown): void => settle(networkError(endpoint, cause));
    try {
      instance
        .request<IncomingMessage>({
          method: request.method,
          url: request.url,
          headers: { ...this.#headers, ...request.headers },
          data: request.body,
          responseType: 'stream',
          maxRedirects: 0, // a 3xx comes back as a response and is treated as an error
          validateStatus: () => true,
          transformRequest: [(data: unknown) => data],
          transformResponse: [(data: unknown) => data],
          httpAgent: this.#httpAgent,
          httpsAgent: this.#httpsAgent,
          signal: controller.signal,
          proxy: false,
        })
        .then((response: AxiosResponse<IncomingMessage>) => {
          stream = response.data ?? undefined;
          // Headers as axios normalised them (an interceptor may have changed them).
          const headers = { ...(response.headers as Record<string, unknown>) };
          this.#receive(endpoint, response.status, headers, stream, settle);
        }, fail);
    } catch (cause) {
      fail(cause);
    }
    return () => {
      controller.abort();
      stream?.destroy();
    };
  }

  /** Reads a response's body within `maxResponseBytes` and reports it, or why not, to `settle`. */
  #receive(
    endpoint: string,
    status: number,
    received: Record<string, unknown>,
    stream: IncomingMessage | undefined,
    settle: Settle,
  ): void {
    const headers = flattenHeaders(received);
    const limit = this.#maxResponseBytes;
    if (Number(headers['content-length']) > limit) {
      stream?.destroy();
      settle(tooLarge(endpoint, status, limit));
      return;
    }
    if (stream === undefined) {
      settle(undefined, { status, headers, body: Buffer.alloc(0), receivedAt: Date.now() });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        stream.destroy();
        settle(tooLarge(endpoint, status, limit));
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      settle(undefined, { status, headers, body, receivedAt: Date.now() });
    });
    stream.on('error', (cause: unknown) => settle(networkError(endpoint, cause)));
    stream.on('close', () => {
      if (!stream.readableEnded) {
        settle(networkError(endpoint, new Error('the connection closed before the response ended')));
      }
    });
  }

  /** Host, port and path of a URL, parsed once per URL. */
  #target(url: string): Target {
    let target = this.#targets.get(url);
    if (target === undefined) {
      const parsed = new URL(url);
      target = {
        secure: parsed.protocol === 'https:',
        hostname: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: parsed.port,
        host: parsed.host,
        path: `${parsed.pathname}${parsed.search}`,
      };
      if (this.#targets.size < 1000) this.#targets.set(url, target);
    }
    return target;
  }
}

/** Where a URL's requests go, parsed once. */
interface Target {
  secure: boolean;
  /** Without the brackets of an IPv6 address: what the socket connects to. */
  hostname: string;
  port: string;
  /** The `Host` header (RFC 9110 §7.2): the URL's host, with its port unless it is the default. */
  host: string;
  path: string;
}

/**
 * The request's headers as node's raw `[name, value, ...]` list, with `Host` and `Content-Length`:
 * node then writes them as they are (still validating each) instead of storing them one by one
 * with `setHeader` and reading them back, which cost as much as the rest of the request's own
 * work (see BENCHMARKS.md). The request's headers win over the client's defaults of the same name
 * (a `Host` among them over the URL's); every name is lower-case already.
 */
function rawHeaders(host: string, defaults: Record<string, string>, request: HttpRequest): string[] {
  const raw = ['host', request.headers.host ?? defaults.host ?? host];
  for (const name of Object.keys(defaults)) {
    if (name !== 'host' && request.headers[name] === undefined) raw.push(name, defaults[name]!);
  }
  for (const name of Object.keys(request.headers)) {
    if (name !== 'host') raw.push(name, request.headers[name]!);
  }
  if (request.body !== undefined) raw.push('content-length', String(Buffer.byteLength(request.body)));
  return raw;
}

/** How an exchange reports its outcome: an error, or the whole response. */
type Settle = (error: Error | undefined, response?: HttpResponse) => void;

function tooLarge(endpoint: string, status: number, limit: number): ResponseError {
  return new ResponseError(
    'INVALID_RESPONSE',
    `${endpoint} response exceeded maxResponseBytes (${limit} bytes)`,
    { endpoint, status },
  );
}

function networkError(endpoint: string, cause: unknown): TransportError {
  const systemCode = systemCodeOf(cause);
  const detail = systemCode ?? (cause instanceof Error ? cause.message : 'unknown error');
  return new TransportError(
    'NETWORK_ERROR',
    `request to ${endpoint} failed: ${detail}`,
    systemCode === undefined ? { endpoint } : { endpoint, systemCode },
    { cause: errorSummary(cause) }, // an axios error's config holds our request headers and body
  );
}

function systemCodeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, cause } = error as { code?: unknown; cause?: unknown };
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code) && !code.startsWith('ERR_')) return code;
  return cause === undefined ? undefined : systemCodeOf(cause);
}

function flattenHeaders(headers: Record<string, unknown>): Record<string, string | undefined> {
  const flat: Record<string, string | undefined> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value === undefined || value === null) continue;
    flat[name.toLowerCase()] =
      typeof value === 'string' ? value : Array.isArray(value) ? value.join(', ') : String(value);
  }
  return flat;
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}
