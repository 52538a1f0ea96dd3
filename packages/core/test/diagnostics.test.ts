import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { tracingChannel } from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import {
  Client,
  DIAGNOSTICS_CHANNELS,
  TokenManager,
  TokenVerificationError,
  TokenVerifier,
  TransportError,
  type RefreshTraceContext,
  type RequestTraceContext,
  type VerifyTraceContext,
} from '@tessera/core';
import { startTestServer, type TestServer } from '@tessera/testing';

// The `tessera:request` tracing channel, subscribed to as a tracer would, around real exchanges
// with oidc-provider (and a closed port for the failures).

type Phase = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error';
const seen: Array<{ phase: Phase; context: RequestTraceContext; snapshot: string }> = [];
const channel = tracingChannel<unknown, RequestTraceContext>(DIAGNOSTICS_CHANNELS.request);
const record =
  (phase: Phase) =>
  (context: RequestTraceContext): void => {
    const { error, ...rest } = context;
    seen.push({ phase, context, snapshot: JSON.stringify({ ...rest, error: error && String(error) }) });
  };
const subscribers = {
  start: record('start'),
  end: record('end'),
  asyncStart: record('asyncStart'),
  asyncEnd: record('asyncEnd'),
  error: record('error'),
};

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer();
  channel.subscribe(subscribers);
});

afterEach(() => {
  seen.length = 0;
});

afterAll(async () => {
  channel.unsubscribe(subscribers);
  await server?.close();
});

/** Every form of a secret that could show up in a trace. */
function formsOf(secret: string): string[] {
  return [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64'), secret.slice(0, 12)];
}

describe('tessera:request', () => {
  it('traces discovery and a grant: endpoint, method, URL, attempt and status, in order', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const tokens = await client.clientCredentialsGrant({ scope: 'api:read' });
    const finished = seen.filter((event) => event.phase === 'asyncEnd').map((event) => event.context);
    expect(finished).toEqual([
      {
        endpoint: 'discovery endpoint',
        method: 'GET',
        url: `${server.issuer}/.well-known/oauth-authorization-server`,
        attempt: 0,
        status: 200,
      },
      { endpoint: 'token endpoint', method: 'POST', url: `${server.issuer}/token`, attempt: 0, status: 200 },
    ]);
    // One context per attempt, through start, end, asyncStart and asyncEnd.
    const token = finished[1];
    expect(seen.filter((event) => event.context === token).map((event) => event.phase)).toEqual([
      'start',
      'end',
      'asyncStart',
      'asyncEnd',
    ]);
    for (const { snapshot } of seen) {
      for (const secret of [tokens.access_token, server.clients.basic.client_secret!]) {
        for (const form of formsOf(secret)) expect(snapshot).not.toContain(form);
      }
    }
  });

  it('gives an error answer its status, not an error', async () => {
    const client = await Client.discover(server.issuer, {
      ...server.clients.basic,
      client_secret: 'wrong-secret',
    });
    await expect(client.clientCredentialsGrant()).rejects.toMatchObject({ error: 'invalid_client' });
    const token = seen.find(
      (event) => event.phase === 'asyncEnd' && event.context.endpoint === 'token endpoint',
    );
    expect(token?.context).toMatchObject({ status: 401 });
    expect(seen.some((event) => event.phase === 'error')).toBe(false);
  });

  it('traces each attempt of a refused connection, with the error and its code', async () => {
    const client = new Client(
      { issuer: 'http://127.0.0.1:1', token_endpoint: 'http://127.0.0.1:1/token' },
      { client_id: 'c', client_secret: 's' },
      { retry: { retries: 2, minDelayMs: 1, maxDelayMs: 1 } },
    );
    await expect(client.clientCredentialsGrant()).rejects.toBeInstanceOf(TransportError);
    const errors = seen.filter((event) => event.phase === 'error').map((event) => event.context);
    expect(errors.map((context) => [context.attempt, context.errorCode])).toEqual([
      [0, 'NETWORK_ERROR'],
      [1, 'NETWORK_ERROR'],
      [2, 'NETWORK_ERROR'],
    ]);
    expect(errors[0]!.error).toBeInstanceOf(TransportError);
    expect(errors.every((context) => context.status === undefined)).toBe(true);
  });

  it('leaves the query out of the URL (a GET may carry a token there)', async () => {
    const user = await server.issueUserTokens('basic', { accountId: 'ivy' });
    const admin = await Client.discover(server.issuer, server.clients.admin);
    seen.length = 0;
    await admin.tokenInfo({ access_token: user.access_token }, { method: 'GET' });
    const [event] = seen.filter((entry) => entry.phase === 'asyncEnd');
    expect(event!.context).toMatchObject({ method: 'GET', url: `${server.issuer}/token`, status: 200 });
    for (const { snapshot } of seen) expect(snapshot).not.toContain(user.access_token);
  });
});

describe('tessera:refresh', () => {
  const refreshes: Array<{ phase: Phase; context: RefreshTraceContext; parent?: unknown }> = [];
  const refreshChannel = tracingChannel<unknown, RefreshTraceContext>(DIAGNOSTICS_CHANNELS.refresh);
  // As a tracer does: the renewal's context is the active "span" while it runs.
  const active = new AsyncLocalStorage<RefreshTraceContext>();
  const parents: Array<{ endpoint: string; parent: RefreshTraceContext | undefined }> = [];
  const onRequest = (context: RequestTraceContext): void => {
    parents.push({ endpoint: context.endpoint, parent: active.getStore() });
  };
  const refreshSubscribers = {
    start: (context: RefreshTraceContext) => refreshes.push({ phase: 'start', context: { ...context } }),
    end: () => undefined,
    asyncStart: () => undefined,
    asyncEnd: (context: RefreshTraceContext) =>
      refreshes.push({ phase: 'asyncEnd', context: { ...context } }),
    error: (context: RefreshTraceContext) => refreshes.push({ phase: 'error', context: { ...context } }),
  };

  beforeAll(() => {
    refreshChannel.subscribe(refreshSubscribers);
    refreshChannel.start.bindStore(active, (context) => context);
    channel.start.subscribe(onRequest as (message: unknown) => void);
  });

  afterEach(() => {
    refreshes.length = 0;
    parents.length = 0;
  });

  afterAll(() => {
    refreshChannel.unsubscribe(refreshSubscribers);
    refreshChannel.start.unbindStore(active);
    channel.start.unsubscribe(onRequest as (message: unknown) => void);
  });

  it('traces an acquisition, with the token request inside it', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const manager = new TokenManager({ client, grant: 'client_credentials', key: 'billing' });
    try {
      const token = await manager.getValidAccessToken();
      expect(refreshes.map((event) => [event.phase, event.context])).toEqual([
        ['start', { key: keyFingerprintOf('billing') }],
        [
          'asyncEnd',
          { key: keyFingerprintOf('billing'), grantType: 'client_credentials', outcome: 'acquired' },
        ],
      ]);
      const request = parents.find((entry) => entry.endpoint === 'token endpoint');
      expect(request?.parent?.key).toBe(keyFingerprintOf('billing'));
      expect(JSON.stringify(refreshes)).not.toContain(token);
      expect(JSON.stringify(refreshes)).not.toContain('billing');
    } finally {
      await manager.close();
    }
  });

  it('traces a refresh with rotation, then a failed one with its error code', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const manager = new TokenManager({ client, key: 'user:jo' });
    try {
      await manager.storeTokens(await server.issueUserTokens('basic', { accountId: 'jo' }));
      const refreshed = await manager.refreshTokens();
      expect(refreshes.at(-1)).toEqual({
        phase: 'asyncEnd',
        context: {
          key: keyFingerprintOf('user:jo'),
          grantType: 'refresh_token',
          outcome: 'refreshed',
          rotated: true,
        },
      });
      await client.tokenRevocation(refreshed.refreshToken!, { token_type_hint: 'refresh_token' });
      refreshes.length = 0;
      await expect(manager.refreshTokens()).rejects.toMatchObject({ error: 'invalid_grant' });
      expect(refreshes.map((event) => event.phase)).toEqual(['start', 'error', 'asyncEnd']);
      expect(refreshes.at(-1)!.context).toMatchObject({
        grantType: 'refresh_token',
        outcome: 'failed',
        errorCode: 'OAUTH_ERROR',
      });
      for (const secret of [refreshed.accessToken, refreshed.refreshToken!]) {
        expect(
          JSON.stringify(
            refreshes.map((event) => ({ ...event.context, error: String(event.context.error) })),
          ),
        ).not.toContain(secret);
      }
    } finally {
      await manager.close();
    }
  });
});

/** The key fingerprint traces show: the first 16 hex digits of the key's SHA-256. */
function keyFingerprintOf(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16);
}

describe('tessera:verify', () => {
  const verifyChannel = tracingChannel<unknown, VerifyTraceContext>(DIAGNOSTICS_CHANNELS.verify);
  const finished: VerifyTraceContext[] = [];
  const active = new AsyncLocalStorage<VerifyTraceContext>();
  const introspectedWithin: Array<VerifyTraceContext | undefined> = [];
  const onRequest = (context: RequestTraceContext): void => {
    if (context.endpoint === 'introspection endpoint') introspectedWithin.push(active.getStore());
  };
  const verifySubscribers = {
    start: () => undefined,
    end: () => undefined,
    asyncStart: () => undefined,
    asyncEnd: (context: VerifyTraceContext) => finished.push(context),
    error: () => undefined,
  };

  beforeAll(() => {
    verifyChannel.subscribe(verifySubscribers);
    verifyChannel.start.bindStore(active, (context) => context);
    channel.start.subscribe(onRequest as (message: unknown) => void);
  });

  afterAll(() => {
    verifyChannel.unsubscribe(verifySubscribers);
    verifyChannel.start.unbindStore(active);
    channel.start.unsubscribe(onRequest as (message: unknown) => void);
  });

  it('traces a first verification (introspected inside it), a cached one and a rejection', async () => {
    const client = await Client.discover(server.issuer, server.clients.basic);
    const verifier = new TokenVerifier({ client, resource: server.apiResource });
    const { access_token } = await client.clientCredentialsGrant({
      scope: 'api:read',
      resource: server.apiResource,
    });
    await verifier.verify(access_token);
    await verifier.verify(access_token);
    await expect(verifier.verify('not-a-token-this-server-issued')).rejects.toBeInstanceOf(
      TokenVerificationError,
    );
    const outcomes = finished.map(({ error, ...rest }) => ({
      ...rest,
      error: error === undefined ? undefined : error.name,
    }));
    expect(outcomes).toEqual([
      { scheme: 'Bearer', kind: 'introspection', cached: false, outcome: 'verified', error: undefined },
      { scheme: 'Bearer', kind: 'introspection', cached: true, outcome: 'verified', error: undefined },
      {
        scheme: 'Bearer',
        cached: false,
        outcome: 'rejected',
        reason: expect.any(String),
        status: 401,
        errorCode: expect.any(String),
        error: 'TokenVerificationError',
      },
    ]);
    expect(introspectedWithin[0]).toBe(finished[0]);

    // A token refused before the cache was asked says nothing of the cache.
    finished.length = 0;
    await expect(verifier.verify('x'.repeat(20_000))).rejects.toMatchObject({ reason: 'malformed' });
    expect(finished).toEqual([expect.objectContaining({ outcome: 'rejected', reason: 'malformed' })]);
    expect(finished[0]).not.toHaveProperty('cached');
    const shown = JSON.stringify(finished.map(({ error, ...rest }) => ({ ...rest, error: String(error) })));
    expect(shown).not.toContain(access_token);
    expect(shown).not.toContain('not-a-token-this-server-issued');
  });
});
