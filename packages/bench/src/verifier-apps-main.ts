/**
 * Entry point of the verifier suite's app process (see `suites/verifier.ts`): express apps with one
 * `GET` route answering a small JSON, one behind `requireToken(new TokenVerifier(...))` of
 * `@tessera/core`, one behind `express-oauth2-jwt-bearer`'s `auth()`, both trusting the bench's
 * issuer (its JWKS is served by the bench process), and the same app with no token check. It says "ready" with both ports, answers
 * the parent's CPU-time questions, and exits when the parent goes away. Apps and load generator are
 * in different processes, so autocannon's own CPU does not count against either app.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { RequestHandler } from 'express';
import { auth } from 'express-oauth2-jwt-bearer';
import { Client, TokenVerifier, requireToken } from '@tessera/core';
import type { AuthenticatedRequest } from '@tessera/core';

/** What the parent passes in `argv[2]`, as JSON. */
export interface VerifierAppsConfig {
  issuer: string;
  jwksUri: string;
  introspectionEndpoint: string;
  tokenEndpoint: string;
  audience: string;
  /** The path of the one route of both apps, e.g. `/orders`. */
  route: string;
}

/** The apps, by name: the two contenders, and the same app without any token check (the ceiling). */
export type VerifierAppName = 'tessera' | 'express-oauth2-jwt-bearer' | 'no-auth';

/** Messages the parent sends. */
export type VerifierAppsParentMessage = { type: 'cpu'; id: number };

/** Messages this process sends. */
export type VerifierAppsMessage =
  | { type: 'ready'; ports: Record<VerifierAppName, number> }
  /** User + system CPU time of this process since it started, in µs. */
  | { type: 'cpu'; id: number; cpuMicros: number };

const config = JSON.parse(process.argv[2]!) as VerifierAppsConfig;
const send = (message: VerifierAppsMessage): void => void process.send?.(message);

const client = new Client(
  {
    issuer: config.issuer,
    jwks_uri: config.jwksUri,
    introspection_endpoint: config.introspectionEndpoint,
    token_endpoint: config.tokenEndpoint,
  },
  { client_id: 'rs', client_secret: 'rs-secret', token_endpoint_auth_method: 'client_secret_basic' },
);
const verifier = new TokenVerifier({ client, audience: config.audience });

function app(guard: RequestHandler, subjectOf: (req: express.Request) => unknown): express.Express {
  const made = express();
  made.disable('x-powered-by');
  made.get(config.route, guard, (req, res) => {
    res.json({ orders: [], for: subjectOf(req) });
  });
  return made;
}

// `baseUrl`: the public origin clients address, as behind a proxy (DPoP proofs would be checked
// against it; none is sent here). requireToken's connect-style signature is typed on node:http's
// request, not express's.
const guard = requireToken(verifier, { baseUrl: config.audience }) as unknown as RequestHandler;
const tessera = app(guard, (req) => {
  return (req as unknown as AuthenticatedRequest).auth.subject;
});
// `strict: true` makes it check the RFC 9068 profile as the TokenVerifier does (typ at+jwt, iat,
// sub, client_id, jti); both check iss, aud, exp and the RS256 signature against the JWKS.
const auth0 = app(
  auth({ issuer: config.issuer, jwksUri: config.jwksUri, audience: config.audience, strict: true }),
  (req) => {
    return req.auth?.payload.sub;
  },
);

function listen(handler: express.Express): Promise<http.Server> {
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// The same app with no token check; its answer is as long as the others' (`user-1`).
const none = app(
  (_req, _res, next) => next(),
  () => 'nobody',
);

const servers = await Promise.all([listen(tessera), listen(auth0), listen(none)]);
const port = (server: http.Server): number => (server.address() as AddressInfo).port;
send({
  type: 'ready',
  ports: {
    tessera: port(servers[0]!),
    'express-oauth2-jwt-bearer': port(servers[1]!),
    'no-auth': port(servers[2]!),
  },
});

process.on('message', (message: VerifierAppsParentMessage) => {
  if (message.type !== 'cpu') return;
  const cpu = process.cpuUsage();
  send({ type: 'cpu', id: message.id, cpuMicros: cpu.user + cpu.system });
});
const stop = (): void => {
  for (const server of servers) server.closeAllConnections();
  void verifier.close();
  process.exit(0);
};
process.once('disconnect', stop);
process.once('SIGTERM', stop);
