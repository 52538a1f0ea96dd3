import { Console } from 'node:console';
import { exportJWK, generateKeyPair } from 'jose';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pino } from 'pino';
import {
  Client,
  ConfigurationError,
  TokenManager,
  TokenVerificationError,
  TokenVerifier,
  tokenFingerprint,
  type LogFields,
  type Logger,
} from '@tessera/core';
import { startTestServer, type TestServer } from '@tessera/testing';

// The `logger` option with a real pino logger at debug, through a whole run against oidc-provider:
// grants, a refresh with rotation, revocation, DPoP, verification and failures. Every line is
// collected and checked against every secret the run handled.

interface Line extends Record<string, unknown> {
  level: number;
  msg: string;
  component: string;
}

const LEVELS: Record<number, string> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error' };

let server: TestServer;
let jwtServer: TestServer;

beforeAll(async () => {
  [server, jwtServer] = await Promise.all([startTestServer(), startTestServer({ accessTokenFormat: 'jwt' })]);
});

afterAll(async () => {
  await Promise.all([server?.close(), jwtServer?.close()]);
});

/** A pino logger at debug writing its JSON lines into `lines`. */
function collectingPino(): { logger: Logger; lines: Line[]; raw: string[] } {
  const lines: Line[] = [];
  const raw: string[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        raw.push(line);
        lines.push(JSON.parse(line) as Line);
      },
    },
  );
  return { logger, lines, raw };
}

/** The forms a secret could take in a line: raw, encoded, in a Basic header, cut at either end. */
function formsOf(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    secret.slice(0, 16),
    secret.slice(-16),
  ];
}

function levelOf(line: Line): string {
  return LEVELS[line.level] ?? String(line.level);
}

describe('logger', () => {
  it('logs a whole run at the documented levels, and no secret in any form in any line', async () => {
    const { logger, lines, raw } = collectingPino();
    const secrets: string[] = [
      server.clients.basic.client_secret!,
      `${server.clients.basic.client_id}:${server.clients.basic.client_secret!}`,
      jwtServer.clients.basic.client_secret!,
      String(server.clients.privateKeyJwt.privateJwk.d),
    ];

    // A machine-to-machine grant, with DPoP, authenticating with private_key_jwt.
    const signing = await Client.discover(server.issuer, server.clients.privateKeyJwt, {
      privateKey: server.clients.privateKeyJwt.privateJwk,
      logger,
    });
    const keyPair = await generateKeyPair('ES256', { extractable: true });
    secrets.push(String((await exportJWK(keyPair.privateKey)).d));
    const dpop = signing.getDPoPHandle(keyPair);
    const proof = dpop.proof.bind(dpop);
    dpop.proof = async (...args: Parameters<typeof proof>) => {
      const made = await proof(...args);
      secrets.push(made);
      return made;
    };
    const machine = new TokenManager({ client: signing, grant: 'client_credentials', dpop, key: 'billing' });
    const machineToken = await machine.getValidAccessToken();
    secrets.push(machineToken);
    await machine.close();

    // User tokens: stored, refreshed with rotation, revoked, then refused (invalid_grant).
    const client = await Client.discover(server.issuer, server.clients.basic, { logger });
    const user = new TokenManager({ client, key: 'user:ada' });
    const issued = await server.issueUserTokens('basic', { accountId: 'ada' });
    secrets.push(issued.access_token, issued.refresh_token!, ...(issued.id_token ? [issued.id_token] : []));
    await user.storeTokens(issued);
    const refreshed = await user.refreshTokens();
    secrets.push(refreshed.accessToken, refreshed.refreshToken!);
    await client.tokenRevocation(refreshed.refreshToken!, { token_type_hint: 'refresh_token' });
    await expect(user.refreshTokens()).rejects.toMatchObject({ error: 'invalid_grant' });
    const again = await server.issueUserTokens('basic', { accountId: 'ada' });
    secrets.push(again.access_token, again.refresh_token!);
    await user.storeTokens(again);
    await user.revokeTokens();
    await user.close();

    // A transient failure: the server is unreachable, the manager will retry later.
    const gone = new Client(
      { issuer: 'http://127.0.0.1:1', token_endpoint: 'http://127.0.0.1:1/token' },
      { client_id: 'c', client_secret: 'gone-client-secret-value' },
      { retry: { retries: 1, minDelayMs: 1, maxDelayMs: 1 }, logger },
    );
    secrets.push('gone-client-secret-value');
    const unreachable = new TokenManager({ client: gone, grant: 'client_credentials', key: 'offline' });
    await expect(unreachable.getValidAccessToken()).rejects.toMatchObject({ code: 'NETWORK_ERROR' });
    await unreachable.close();

    // A resource server: a JWT verified then cached, a token it refuses, the logger from its client.
    const issuer = await Client.discover(jwtServer.issuer, jwtServer.clients.basic, { logger });
    const verifier = new TokenVerifier({ client: issuer, audience: jwtServer.apiResource });
    const { access_token: jwt } = await issuer.clientCredentialsGrant({
      scope: 'api:read',
      resource: jwtServer.apiResource,
    });
    secrets.push(jwt);
    await verifier.verify(jwt);
    await verifier.verify(jwt);
    const forged = `${jwt.slice(0, -8)}AAAAAAAA`;
    secrets.push(forged);
    await expect(verifier.verify(forged)).rejects.toBeInstanceOf(TokenVerificationError);
    await verifier.close();

    // What an operator sees, by level.
    const find = (level: string, match: Record<string, unknown>): Line | undefined =>
      lines.find((line) => levelOf(line) === level && Object.entries(match).every(([k, v]) => line[k] === v));
    expect(
      find('debug', {
        component: 'tessera.client',
        endpoint: 'token endpoint',
        method: 'POST',
        url: `${server.issuer}/token`,
        status: 200,
        attempt: 0,
      }),
    ).toMatchObject({ durationMs: expect.any(Number), msg: 'token endpoint answered 200' });
    expect(find('info', { event: 'token.acquired', key: 'billing' })).toMatchObject({
      component: 'tessera.token-manager',
      grantType: 'client_credentials',
      token: tokenFingerprint(machineToken),
    });
    expect(find('info', { event: 'token.refreshed', key: 'user:ada' })).toMatchObject({
      rotated: true,
      token: tokenFingerprint(refreshed.accessToken),
    });
    expect(find('error', { event: 'refresh.failed', key: 'user:ada' })).toMatchObject({
      cleared: true,
      errorCode: 'OAUTH_ERROR',
    });
    expect(find('info', { event: 'token.revoked', key: 'user:ada' })).toMatchObject({
      revoked: 2,
      notRevoked: 0,
    });
    expect(
      find('debug', { component: 'tessera.client', errorCode: 'NETWORK_ERROR', attempt: 0 }),
    ).toBeDefined();
    expect(find('debug', { endpoint: 'token endpoint', attempt: 0, retryInMs: 1 })).toBeDefined();
    expect(find('warn', { event: 'refresh.failed', key: 'offline' })).toMatchObject({
      cleared: false,
      errorCode: 'NETWORK_ERROR',
      retryInMs: expect.any(Number),
      msg: expect.stringMatching(
        /^renewing the token of key offline failed: NETWORK_ERROR; retrying in \d+ ms$/,
      ),
    });
    // One token, matched across lines and services by its fingerprint.
    const verified = lines.filter((line) => line.event === 'token.verified');
    expect(verified.map((line) => [levelOf(line), line.cached, line.token])).toEqual([
      ['debug', false, tokenFingerprint(jwt)],
      ['debug', true, tokenFingerprint(jwt)],
    ]);
    expect(verified[0]).toMatchObject({ component: 'tessera.token-verifier', kind: 'jwt', scheme: 'Bearer' });
    expect(find('debug', { event: 'token.rejected', token: tokenFingerprint(forged) })).toMatchObject({
      status: 401,
    });
    expect(lines.some((line) => line.msg === "fetched the issuer's JWKS")).toBe(true);

    // Nothing secret, in any form, anywhere.
    expect(secrets.length).toBeGreaterThan(15);
    const everything = raw.join('');
    for (const secret of secrets) {
      for (const form of formsOf(secret)) expect(everything).not.toContain(form);
    }
    expect(everything).not.toMatch(/authorization"|Basic |DPoP ey|client_assertion|refresh_token=/i);
  });

  it('warns when a token cannot be judged (the JWKS cannot be fetched), answering 503', async () => {
    const { logger, lines } = collectingPino();
    const issuer = await Client.discover(jwtServer.issuer, jwtServer.clients.basic);
    const { access_token: jwt } = await issuer.clientCredentialsGrant({
      scope: 'api:read',
      resource: jwtServer.apiResource,
    });
    const unreachable = new Client(
      { ...issuer.serverMetadata(), jwks_uri: 'http://127.0.0.1:1/jwks' },
      jwtServer.clients.basic,
      { retry: { retries: 0 } },
    );
    const verifier = new TokenVerifier({ client: unreachable, audience: jwtServer.apiResource, logger });
    await expect(verifier.verify(jwt)).rejects.toMatchObject({ status: 503, reason: 'unavailable' });
    await verifier.close();
    expect(lines.filter((line) => levelOf(line) === 'warn').map((line) => line.msg)).toEqual([
      expect.stringMatching(/^fetching the issuer's JWKS failed/),
      expect.stringMatching(/^could not verify a token/),
    ]);
    expect(JSON.stringify(lines)).not.toContain(jwt.slice(-16));
  });

  it('takes console-like and bunyan-style loggers, builds nothing for levels pino has off, and survives one that throws', async () => {
    const written: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk.toString());
        done();
      },
    });
    const consoleLike = new Console({ stdout: sink, stderr: sink });
    const client = await Client.discover(server.issuer, server.clients.basic, { logger: consoleLike });
    await client.clientCredentialsGrant();
    expect(written.join('')).toMatch(/component: 'tessera\.client'[\s\S]*token endpoint answered 200/);

    const bunyanStyle: Array<[string, LogFields, string]> = [];
    const record = (level: string) => (fields: LogFields, message: string) =>
      bunyanStyle.push([level, fields, message]);
    const manager = new TokenManager({
      client,
      grant: 'client_credentials',
      logger: { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') },
    });
    await manager.getValidAccessToken();
    await manager.close();
    expect(bunyanStyle.map(([level, fields]) => [level, fields.event])).toEqual([['info', 'token.acquired']]);

    const { logger: quiet, lines } = collectingPino();
    (quiet as unknown as { level: string }).level = 'info';
    const atInfo = await Client.discover(server.issuer, server.clients.basic, { logger: quiet });
    await atInfo.clientCredentialsGrant();
    expect(lines).toEqual([]);

    const throwing: Logger = {
      debug: () => {
        throw new Error('logger broke');
      },
      info: () => {
        throw new Error('logger broke');
      },
      warn: () => undefined,
      error: () => undefined,
    };
    const sturdy = await Client.discover(server.issuer, server.clients.basic, { logger: throwing });
    const still = new TokenManager({ client: sturdy, grant: 'client_credentials' });
    await expect(still.getValidAccessToken()).resolves.toEqual(expect.any(String));
    await still.close();
  });

  it('refuses what is not a logger, naming the option', () => {
    const metadata = { issuer: server.issuer, token_endpoint: `${server.issuer}/token` };
    const make = (): Client =>
      new Client(metadata, { client_id: 'c', client_secret: 's' }, { logger: { info() {} } as never });
    expect(make).toThrow(ConfigurationError);
    expect(make).toThrow('Client option logger must be a logger with debug, info, warn and error methods');
    const client = new Client(metadata, { client_id: 'c', client_secret: 's' });
    expect(() => new TokenManager({ client, logger: console.log as never })).toThrow(
      'TokenManager option logger must be a logger with debug, info, warn and error methods',
    );
  });
});
