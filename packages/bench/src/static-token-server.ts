/**
 * A static OAuth 2.0 authorization server for benchmarks: fixed JSON answers, no validation beyond
 * the method and path, keep-alive on; it counts what it answers (read over IPC). It runs in a child process so that its CPU
 * does not compete with the client under test on the same event loop.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The fixed body of every `/token` response. */
export const STATIC_TOKEN_RESPONSE = {
  access_token: 'bench-access-token-0123456789abcdef',
  token_type: 'Bearer',
  expires_in: 3600,
} as const;

/** How long an idle keep-alive connection stays open on the server, in ms. */
const KEEP_ALIVE_TIMEOUT_MS = 60_000;

const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'cache-control': 'no-store',
};

/** What the server has answered since it started (or since the counts were last reset). */
export interface RequestCounts {
  /** `POST /token` requests, by `grant_type` (`'client_credentials'`, `'refresh_token'`, ...). */
  token: Readonly<Record<string, number>>;
  /** `POST /introspect` requests. */
  introspect: number;
  /** TCP connections accepted. */
  connections: number;
}

/** What the parent can ask of the child: its counts, optionally zeroing them or changing answers. */
export interface ControlRequest {
  /** Zero the counts after reading them. */
  reset?: boolean;
  /** `expires_in` of the `/token` responses from now on (default {@link STATIC_TOKEN_RESPONSE}'s 3600). */
  expiresIn?: number;
}

/** Messages the child sends to its parent over the IPC channel. */
type ChildMessage = { type: 'ready'; port: number } | { type: 'control'; id: number; counts: RequestCounts };

/** Messages the parent sends to the child. */
interface ControlMessage extends ControlRequest {
  type: 'control';
  id: number;
}

/** The server's counts, and what it answers; changed by control messages. */
interface ServerState {
  counts: { token: Record<string, number>; introspect: number; connections: number };
  tokenBody: string;
}

function initialState(): ServerState {
  return {
    counts: { token: {}, introspect: 0, connections: 0 },
    tokenBody: JSON.stringify(STATIC_TOKEN_RESPONSE),
  };
}

/** Applies a control message; returns the counts as they were before any reset. */
function control(state: ServerState, request: ControlRequest): RequestCounts {
  const counts = structuredClone(state.counts);
  if (request.reset === true) state.counts = { token: {}, introspect: 0, connections: 0 };
  if (request.expiresIn !== undefined) {
    state.tokenBody = JSON.stringify({ ...STATIC_TOKEN_RESPONSE, expires_in: request.expiresIn });
  }
  return counts;
}

/** The `grant_type` of a form body, without parsing the whole form. */
function grantTypeOf(form: string): string {
  const match = /(?:^|&)grant_type=([^&]*)/.exec(form);
  return match === null ? '(none)' : decodeURIComponent(match[1]!.replace(/\+/g, ' '));
}

/**
 * Creates (but does not start) the server, counting what it answers into `state`. Answers:
 * - `POST /token` → {@link STATIC_TOKEN_RESPONSE}, with `expires_in` as last set by a control
 *   message (whatever the grant; no `refresh_token`, so a refresh keeps the old one);
 * - `POST /introspect` → `{ active: true, scope: 'api', client_id: 'c1', exp: now + 3600 }`;
 * - `GET /.well-known/openid-configuration` and `/.well-known/oauth-authorization-server` → the
 *   server metadata, with `issuer` the origin the request was addressed to;
 * - anything else → 404.
 */
export function createStaticTokenServer(state: ServerState = initialState()): http.Server {
  const server = http.createServer((request, response) => {
    // Read the request body before answering, as a real server does (the grant type is counted).
    let form = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (form += chunk));
    request.once('end', () => {
      const path = request.url ?? '/';
      if (request.method === 'POST' && path === '/token') {
        const grantType = grantTypeOf(form);
        state.counts.token[grantType] = (state.counts.token[grantType] ?? 0) + 1;
        send(response, 200, state.tokenBody);
      } else if (request.method === 'POST' && path === '/introspect') {
        state.counts.introspect++;
        const exp = Math.floor(Date.now() / 1000) + 3600;
        send(response, 200, JSON.stringify({ active: true, scope: 'api', client_id: 'c1', exp }));
      } else if (
        request.method === 'GET' &&
        (path === '/.well-known/openid-configuration' || path === '/.well-known/oauth-authorization-server')
      ) {
        const issuer = `http://${request.headers.host ?? '127.0.0.1'}`;
        send(response, 200, JSON.stringify(serverMetadata(issuer)));
      } else {
        send(response, 404, JSON.stringify({ error: 'not_found' }));
      }
    });
  });
  server.on('connection', () => state.counts.connections++);
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  return server;
}

/** The RFC 8414 / OpenID Connect Discovery document of the static server at `issuer`. */
export function serverMetadata(issuer: string): Record<string, unknown> {
  return {
    issuer,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/introspect`,
    token_endpoint_auth_methods_supported: ['client_secret_basic'],
    introspection_endpoint_auth_methods_supported: ['client_secret_basic'],
    grant_types_supported: ['client_credentials'],
    response_types_supported: ['code'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  };
}

function send(response: http.ServerResponse, status: number, body: string): void {
  response.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

/** A running static token server in a child process. */
export interface StaticTokenServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash: the issuer identifier. */
  readonly issuer: string;
  /** The child's process id (for `--cpu-prof` or `top`). */
  readonly pid: number | undefined;
  /** The requests answered so far; with `reset`, the counts then start again from zero. */
  counts(options?: { reset?: boolean }): Promise<RequestCounts>;
  /** Changes what the server answers (see {@link ControlRequest}); resolves with the counts. */
  control(request: ControlRequest): Promise<RequestCounts>;
  /** Stops the child process. */
  close(): Promise<void>;
}

/**
 * Forks a child process running {@link createStaticTokenServer} on 127.0.0.1, an ephemeral port,
 * and resolves once it listens.
 */
export function startStaticTokenServer(): Promise<StaticTokenServer> {
  const entry = fileURLToPath(new URL('./static-token-server-main.js', import.meta.url));
  // The child does not inherit the parent's --cpu-prof / --expose-gc flags.
  const child = fork(entry, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => {
      reject(new Error(`static token server exited before it was ready (code ${String(code)})`));
    };
    child.once('error', reject);
    child.once('exit', onExit);
    const send = controller(child);
    child.once('message', (message: ChildMessage) => {
      if (message.type !== 'ready') return;
      child.off('exit', onExit);
      child.off('error', reject);
      resolve({
        issuer: `http://127.0.0.1:${message.port}`,
        pid: child.pid,
        counts: (options = {}) => send({ reset: options.reset === true }),
        control: (request) => send(request),
        close: () => stopChild(child),
      });
    });
  });
}

/** Sends control messages to the child over IPC; answers are matched to requests by id. */
function controller(child: ChildProcess): (request: ControlRequest) => Promise<RequestCounts> {
  let nextId = 0;
  const pending = new Map<number, (counts: RequestCounts) => void>();
  child.on('message', (message: ChildMessage) => {
    if (message.type !== 'control') return;
    pending.get(message.id)?.(message.counts);
    pending.delete(message.id);
  });
  return (request) =>
    new Promise((resolve, reject) => {
      const message: ControlMessage = { ...request, type: 'control', id: nextId++ };
      pending.set(message.id, resolve);
      child.send(message, (error) => {
        if (error === null) return;
        pending.delete(message.id);
        reject(error);
      });
    });
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/**
 * The child's side: listens, then tells the parent its port; answers the parent's control messages;
 * exits when the parent goes away.
 */
export function runStaticTokenServerChild(): void {
  const state = initialState();
  const server = createStaticTokenServer(state);
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo;
    const ready: ChildMessage = { type: 'ready', port };
    process.send?.(ready);
  });
  process.on('message', (message: ControlMessage) => {
    if (message.type !== 'control') return;
    const answer: ChildMessage = { type: 'control', id: message.id, counts: control(state, message) };
    process.send?.(answer);
  });
  process.once('disconnect', () => process.exit(0));
  process.once('SIGTERM', () => process.exit(0));
}
