/**
 * The HTTP integration of the TokenManager (RFC 6750 §2.1 and §3): `manager.fetch()` and
 * `attachTokenManager(axios)` against a local resource server, with the real authorization server
 * (oidc-provider) as token source, or a scripted token endpoint where a test needs to script or
 * count token responses exactly.
 */
import { Readable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import axios from 'axios';
import type { AxiosInstance, AxiosResponse } from 'axios';
import {
  Client,
  ConfigurationError,
  OAuthError,
  TokenManager,
  TokenStoreError,
  attachTokenManager,
  findChallenge,
} from '@tessera/core';
import type {
  TokenHandle,
  TokenManagerEventName,
  TokenManagerOptions,
  TokenSet,
  TokenStore,
} from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler, RecordedRequest } from './support/fake-server.js';
import { rejection } from './support/test-helpers.js';
import { EVENT_NAMES, onEveryEvent } from './support/events.js';

// --- event collection (for the redaction check at the end) -----------------------------------------

const events: Array<{ name: TokenManagerEventName; payload: unknown }> = [];
const managers: TokenManager[] = [];

/** Every token and secret that went over the wire in this file: none may show up in an event. */
const secrets = new Set<string>();

function track(manager: TokenManager): TokenManager {
  managers.push(manager);
  onEveryEvent(manager, (name, payload) => events.push({ name, payload }));
  return manager;
}

function remember(tokens: TokenSet | undefined): void {
  if (tokens === undefined) return;
  secrets.add(tokens.accessToken);
  if (tokens.refreshToken !== undefined) secrets.add(tokens.refreshToken);
}

// --- servers -----------------------------------------------------------------------------------------

let authServer: TestServer;
let client: Client;
let tokenServer: FakeServer;
let fakeClient: Client;
let rs: FakeServer;

/** Scripted token endpoint: the next answers, then the default (a new Bearer token each time). */
let tokenScript: Handler[] = [];
let issued = 0;
const FAKE_CLIENT_SECRET = 'fake-client-secret-9f2c';

const issueToken: Handler = (_request, response) => {
  issued += 1;
  const body = { access_token: `fake-at-${issued}`, token_type: 'bearer', expires_in: 300 };
  secrets.add(body.access_token);
  json(response, 200, body);
};

/** What the resource server does with a request, given the token it carried. */
type Behaviour = (
  request: RecordedRequest,
  response: ServerResponse,
  token: string | undefined,
) => void | Promise<void>;
const ok: Behaviour = (request, response) => json(response, 200, { ok: true, body: request.body });
let behaviour: Behaviour = ok;

function tokenOf(request: RecordedRequest): string | undefined {
  const header = request.headers.authorization;
  return header === undefined ? undefined : header.slice(header.indexOf(' ') + 1);
}

/** The resource server's answer to the tokens in `rejected` (every token when it is `'all'`). */
function reject(
  rejected: ReadonlySet<string> | 'all',
  status: number,
  headers: Record<string, string> = {},
  body: unknown = { error: 'rejected' },
): Behaviour {
  return (request, response, token) => {
    if (rejected === 'all' || (token !== undefined && rejected.has(token)))
      json(response, status, body, headers);
    else ok(request, response, token);
  };
}

const INVALID_TOKEN = {
  'www-authenticate': 'Bearer realm="api", error="invalid_token", error_description="expired"',
};

const api = (): string => `${rs.url}/api`;
const apiRequests = (): RecordedRequest[] => rs.requestsTo('/api');
const sentTokens = (): Array<string | undefined> => apiRequests().map(tokenOf);
const tokenRequests = (): number => authServer.stats().token;

beforeAll(async () => {
  [authServer, tokenServer, rs] = await Promise.all([
    startTestServer(),
    startFakeServer({
      '/token': (request, response) => (tokenScript.shift() ?? issueToken)(request, response),
    }),
    startFakeServer({
      '/api': (request, response) => {
        const token = tokenOf(request);
        if (token !== undefined) secrets.add(token);
        return behaviour(request, response, token);
      },
    }),
  ]);
  client = await Client.discover(authServer.issuer, authServer.clients.basic);
  secrets.add(authServer.clients.basic.client_secret!);
  fakeClient = new Client(
    { issuer: tokenServer.url, token_endpoint: `${tokenServer.url}/token` },
    {
      client_id: 'fake-client',
      client_secret: FAKE_CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
    },
  );
  secrets.add(FAKE_CLIENT_SECRET);
});

afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await Promise.all([authServer?.close(), tokenServer?.close(), rs?.close()]);
});

beforeEach(() => {
  rs.requests.length = 0;
  tokenServer.requests.length = 0;
  tokenScript = [];
  behaviour = ok;
});

function machineManager(options: Partial<TokenManagerOptions> = {}): TokenManager {
  return track(new TokenManager({ client, grant: 'client_credentials', ...options }));
}

// --- the two ways of sending a request ----------------------------------------------------------------

type Target = TokenManager | TokenHandle;

interface Outcome {
  status: number;
  wwwAuthenticate: string | undefined;
}

interface Session {
  /** One request; `body` is JSON sent as is (fetch) or as an object axios serialises. */
  request(url: string, init?: { method?: string; body?: Record<string, unknown> }): Promise<Outcome>;
  close(): void;
}

interface Caller {
  name: string;
  open(target: Target): Session;
}

const viaFetch: Caller = {
  name: 'manager.fetch()',
  open: (target) => ({
    async request(url, init = {}) {
      const response = await target.fetch(url, {
        method: init.method ?? 'GET',
        ...(init.body === undefined
          ? {}
          : { body: JSON.stringify(init.body), headers: { 'content-type': 'application/json' } }),
      });
      await response.arrayBuffer();
      return {
        status: response.status,
        wwwAuthenticate: response.headers.get('www-authenticate') ?? undefined,
      };
    },
    close: () => undefined,
  }),
};

function outcomeOf(response: AxiosResponse): Outcome {
  const header: unknown = response.headers['www-authenticate'];
  return { status: response.status, wwwAuthenticate: typeof header === 'string' ? header : undefined };
}

/**
 * axios with every status resolving (the success interceptor path), or with axios' default
 * `validateStatus` (a 4xx is an AxiosError: the error interceptor path). A final 4xx comes back as
 * the Outcome of the error's response either way.
 */
function viaAxios(name: string, instance: () => AxiosInstance): Caller {
  return {
    name,
    open: (target) => {
      const http = instance();
      const detach = attachTokenManager(http, target);
      return {
        async request(url, init = {}) {
          try {
            return outcomeOf(await http.request({ url, method: init.method ?? 'GET', data: init.body }));
          } catch (error) {
            if (axios.isAxiosError(error) && error.response !== undefined) return outcomeOf(error.response);
            throw error;
          }
        },
        close: detach,
      };
    },
  };
}

const callers: Caller[] = [
  viaFetch,
  viaAxios('attachTokenManager(axios), every status resolves', () =>
    axios.create({ validateStatus: () => true }),
  ),
  viaAxios('attachTokenManager(axios), default validateStatus', () => axios.create()),
];

async function call(
  caller: Caller,
  target: Target,
  url: string,
  init?: Parameters<Session['request']>[1],
): Promise<Outcome> {
  const session = caller.open(target);
  try {
    return await session.request(url, init);
  } finally {
    session.close();
  }
}

// --- shared cases ---------------------------------------------------------------------------------

describe.each(callers)('$name', (caller) => {
  it('sends Authorization: Bearer with a capital B although the token endpoint said "bearer"', async () => {
    const manager = track(new TokenManager({ client: fakeClient, grant: 'client_credentials' }));
    const outcome = await call(caller, manager, api());
    expect(outcome.status).toBe(200);
    expect(tokenServer.requestsTo('/token')).toHaveLength(1);
    expect(apiRequests().map((r) => r.headers.authorization)).toEqual([`Bearer fake-at-${issued}`]);
  });

  it('sends Bearer for a stored token set whose token_type is "bearer" (not normalised by a Client)', async () => {
    const manager = track(new TokenManager({ client: fakeClient }));
    await manager.storeTokens({ access_token: 'stored-lowercase-at', token_type: 'bearer', expires_in: 300 });
    secrets.add('stored-lowercase-at');
    await call(caller, manager, api());
    expect(apiRequests().map((r) => r.headers.authorization)).toEqual(['Bearer stored-lowercase-at']);
  });

  it('401 invalid_token: exactly one refresh and one retry with the new token, then success', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(200);
    expect(tokenRequests() - before).toBe(1);
    const renewed = await manager.getValidAccessToken();
    expect(renewed).not.toBe(old);
    expect(sentTokens()).toEqual([old, renewed]);
  });

  it('a second 401 after the retry is given back to the caller, with no further refresh', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject('all', 401, INVALID_TOKEN);

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(401);
    expect(findChallenge(outcome.wwwAuthenticate, 'Bearer')?.parameters.error).toBe('invalid_token');
    expect(tokenRequests() - before).toBe(1);
    const renewed = await manager.getValidAccessToken();
    expect(sentTokens()).toEqual([old, renewed]);
  });

  it('401 without WWW-Authenticate: one refresh and one retry', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, {}, { message: 'Unauthorized' });

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(200);
    expect(tokenRequests() - before).toBe(1);
    expect(sentTokens()).toEqual([old, await manager.getValidAccessToken()]);
  });

  it('403 insufficient_scope: no refresh, no retry, the response (with the required scope) is returned', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 403, {
      'www-authenticate': 'Bearer error="insufficient_scope", scope="a b"',
    });

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(403);
    expect(findChallenge(outcome.wwwAuthenticate, 'bearer')?.parameters).toMatchObject({
      error: 'insufficient_scope',
      scope: 'a b',
    });
    expect(tokenRequests() - before).toBe(0);
    expect(sentTokens()).toEqual([old]);
    await expect(manager.getValidAccessToken()).resolves.toBe(old);
  });

  it('400 invalid_request: no refresh, no retry', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 400, { 'www-authenticate': 'Bearer error="invalid_request"' });

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(400);
    expect(tokenRequests() - before).toBe(0);
    expect(sentTokens()).toEqual([old]);
  });

  it('ten parallel requests that all get 401 share one token request and are all retried with the new token', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);

    const session = caller.open(manager);
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => session.request(api())));
    session.close();

    expect(outcomes.map((o) => o.status)).toEqual(Array(10).fill(200));
    expect(tokenRequests() - before).toBe(1);
    const renewed = await manager.getValidAccessToken();
    const sent = sentTokens();
    expect(sent).toHaveLength(20);
    expect(sent.filter((t) => t === old)).toHaveLength(10);
    expect(sent.filter((t) => t === renewed)).toHaveLength(10);
  });

  it('a token another request already replaced is not refreshed again: the retry uses the stored one', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    let rotated: string | undefined;
    behaviour = async (request, response, token) => {
      if (token !== old) return ok(request, response, token);
      // Meanwhile, someone else renewed the token (e.g. another request's refresh).
      rotated = (await manager.refreshTokens()).accessToken;
      json(response, 401, { error: 'invalid_token' }, INVALID_TOKEN);
    };
    const before = tokenRequests();

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(200);
    expect(tokenRequests() - before).toBe(1); // the other refresh only
    expect(rotated).toBeDefined();
    expect(sentTokens()).toEqual([old, rotated]);
  });

  it('replays the request body on the retry', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);

    const outcome = await call(caller, manager, api(), { method: 'POST', body: { n: 1, text: 'héllo' } });

    expect(outcome.status).toBe(200);
    expect(apiRequests().map((r) => [r.method, JSON.parse(r.body) as unknown])).toEqual([
      ['POST', { n: 1, text: 'héllo' }],
      ['POST', { n: 1, text: 'héllo' }],
    ]);
  });

  it('a refresh failing with invalid_grant rejects with that OAuthError and clears the key', async () => {
    const manager = track(new TokenManager({ client: fakeClient }));
    await manager.storeTokens({
      access_token: 'user-at-1',
      token_type: 'Bearer',
      refresh_token: 'user-rt-1',
      expires_in: 300,
    });
    secrets.add('user-at-1').add('user-rt-1');
    tokenScript = [
      (_request, response) =>
        json(response, 400, { error: 'invalid_grant', error_description: 'refresh token revoked' }),
    ];
    behaviour = reject(new Set(['user-at-1']), 401, INVALID_TOKEN);
    const cleared: unknown[] = [];
    manager.on('token.cleared', (event) => cleared.push(event));

    const error = await rejection(call(caller, manager, api()));

    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ code: 'OAUTH_ERROR', error: 'invalid_grant', status: 400 });
    await expect(manager.getTokens()).resolves.toBeUndefined();
    expect(cleared).toEqual([{ key: 'default', reason: 'invalid_grant' }]);
    expect(sentTokens()).toEqual(['user-at-1']);
    const refreshes = tokenServer.requestsTo('/token');
    expect(refreshes.map((r) => [r.form.get('grant_type'), r.form.get('refresh_token')])).toEqual([
      ['refresh_token', 'user-rt-1'],
    ]);
  });

  // RFC 6750 §3.1 retry rule: "T2 is null (cannot refresh) → return res". A user token without a refresh token,
  // and no grant to acquire another, cannot be renewed: the 401 should come back to the caller.
  // Regression: this used to reject with a ConfigurationError ("no tokens for key") although the
  // key had tokens; with nothing to renew with, the 401 is the answer (RFC 6750 §3.1).
  it('a 401 for a token that cannot be renewed (no refresh token, no grant) is given back, not thrown', async () => {
    const manager = track(new TokenManager({ client: fakeClient }));
    await manager.storeTokens({ access_token: 'user-at-no-rt', token_type: 'Bearer', expires_in: 300 });
    secrets.add('user-at-no-rt');
    behaviour = reject('all', 401, INVALID_TOKEN);

    const outcome = await call(caller, manager, api());

    expect(outcome.status).toBe(401);
    expect(sentTokens()).toEqual(['user-at-no-rt']);
    expect(tokenServer.requestsTo('/token')).toHaveLength(0);
  });

  it('a handle from manager.for(key) uses and renews its own key only', async () => {
    const manager = machineManager();
    const other = manager.for('other', { grant: 'client_credentials' });
    const main = await manager.getValidAccessToken();
    const old = await other.getValidAccessToken();
    expect(old).not.toBe(main);
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);

    const outcome = await call(caller, other, api());

    expect(outcome.status).toBe(200);
    expect(tokenRequests() - before).toBe(1);
    const renewed = await other.getValidAccessToken();
    expect(renewed).not.toBe(old);
    expect(sentTokens()).toEqual([old, renewed]);
    await expect(manager.getValidAccessToken()).resolves.toBe(main);
  });
});

// --- fetch only -------------------------------------------------------------------------------------

describe('manager.fetch() only', () => {
  it('a ReadableStream body, which cannot be sent twice, is not retried: the 401 is returned', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('streamed payload'));
        controller.close();
      },
    });

    const response = await manager.fetch(api(), { method: 'POST', body, duplex: 'half' } as RequestInit);
    await response.arrayBuffer();

    expect(response.status).toBe(401);
    expect(tokenRequests() - before).toBe(0);
    expect(apiRequests().map((r) => [tokenOf(r), r.body])).toEqual([[old, 'streamed payload']]);
  });

  it("keeps the caller's other headers and replaces an Authorization the caller set", async () => {
    const manager = machineManager();
    const token = await manager.getValidAccessToken();
    await manager.fetch(api(), { headers: { authorization: 'Bearer callers-own', 'x-request-id': 'r-1' } });
    expect(apiRequests().map((r) => [r.headers.authorization, r.headers['x-request-id']])).toEqual([
      [`Bearer ${token}`, 'r-1'],
    ]);
  });
});

// --- attachTokenManager only ---------------------------------------------------------------------------

describe('attachTokenManager() only', () => {
  it('returns a detach function, after which no Authorization header is added', async () => {
    const manager = machineManager();
    const token = await manager.getValidAccessToken();
    const http = axios.create();
    const detach = attachTokenManager(http, manager);
    await http.get(api());
    detach();
    await http.get(api());
    expect(apiRequests().map((r) => r.headers.authorization)).toEqual([`Bearer ${token}`, undefined]);
  });

  it('after detaching, a 401 is not retried', async () => {
    const manager = machineManager();
    const token = await manager.getValidAccessToken();
    const http = axios.create({ validateStatus: () => true, headers: { authorization: `Bearer ${token}` } });
    attachTokenManager(http, manager)();
    behaviour = reject('all', 401, INVALID_TOKEN);
    const before = tokenRequests();
    expect((await http.get(api())).status).toBe(401);
    expect(apiRequests()).toHaveLength(1);
    expect(tokenRequests() - before).toBe(0);
  });

  it('throws ConfigurationError for anything but a TokenManager or a handle from manager.for()', () => {
    for (const notAManager of [{}, { fetch: () => undefined, getValidAccessToken: () => undefined }]) {
      let thrown: unknown;
      try {
        attachTokenManager(axios.create(), notAManager as unknown as TokenManager);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(ConfigurationError);
      expect(thrown).toMatchObject({ code: 'INVALID_CONFIGURATION' });
    }
  });

  it('two instances attached to the same manager with different keys keep their tokens apart', async () => {
    const manager = machineManager();
    const a = axios.create();
    const b = axios.create();
    attachTokenManager(a, manager);
    attachTokenManager(b, manager.for('b', { grant: 'client_credentials' }));
    await a.get(api());
    await b.get(api());
    expect(sentTokens()).toEqual([
      await manager.getValidAccessToken(),
      await manager.for('b', { grant: 'client_credentials' }).getValidAccessToken(),
    ]);
  });

  // A Node stream body cannot be replayed either (the retry rule: "streams that cannot be replayed →
  // no retry"). manager.fetch() checks this; the axios interceptor does not: it refreshes and resends
  // the request with the already consumed stream, i.e. a POST with an EMPTY body, and returns the
  // server's answer to that (a regression test: it used to do exactly that). The axios timeout only bounds a retry that might otherwise hang.
  it('a Node stream body is not retried either: the 401 is returned', async () => {
    const manager = machineManager();
    const old = await manager.getValidAccessToken();
    const before = tokenRequests();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);
    const http = axios.create({ validateStatus: () => true, timeout: 2_000 });
    attachTokenManager(http, manager);

    const response = await http.post(api(), Readable.from([Buffer.from('streamed payload')]), {
      headers: { 'content-type': 'application/octet-stream' },
    });

    // Today: retried with a new token and an empty body, and the server's 200 to that is returned.
    expect(apiRequests().map((r) => [tokenOf(r), r.body])).toEqual([[old, 'streamed payload']]);
    expect(response.status).toBe(401);
    expect(tokenRequests() - before).toBe(0);
  });
});

// --- redaction ------------------------------------------------------------------------------------

class FailingStore implements TokenStore {
  async get(): Promise<TokenSet | undefined> {
    throw new Error('disk on fire');
  }
  async set(): Promise<void> {
    throw new Error('disk on fire');
  }
  async delete(): Promise<void> {
    throw new Error('disk on fire');
  }
}

describe('events never carry token values or client secrets', () => {
  it('JSON.stringify and util.inspect of every payload of every event name', async () => {
    // token.acquired, token.introspected; a rejection → another acquisition.
    const machine = machineManager();
    remember(await machine.refreshTokens());
    await machine.introspectToken();
    const old = await machine.getValidAccessToken();
    behaviour = reject(new Set([old]), 401, INVALID_TOKEN);
    await (await machine.fetch(api())).arrayBuffer();
    remember(await machine.getTokens());

    // token.stored, token.expired, token.refreshed (real refresh with rotation), token.revoked,
    // token.cleared (revoked).
    let nowMs = Date.now();
    const user = track(new TokenManager({ client, now: () => nowMs }));
    const issuedTokens = await authServer.issueUserTokens('basic');
    secrets.add(issuedTokens.access_token).add(issuedTokens.refresh_token!);
    remember(await user.storeTokens(issuedTokens));
    nowMs += 3_600_000;
    await user.getValidAccessToken();
    remember(await user.getTokens());
    await user.revokeTokens();

    // refresh.failed and token.cleared (invalid_grant).
    const doomed = track(new TokenManager({ client: fakeClient }));
    remember(
      await doomed.storeTokens({
        access_token: 'doomed-at',
        token_type: 'Bearer',
        refresh_token: 'doomed-rt',
        expires_in: 300,
      }),
    );
    tokenScript = [(_request, response) => json(response, 400, { error: 'invalid_grant' })];
    await expect(doomed.refreshTokens()).rejects.toMatchObject({ error: 'invalid_grant' });

    // store.failed.
    const broken = track(
      new TokenManager({ client: fakeClient, store: new FailingStore(), grant: 'client_credentials' }),
    );
    await expect(broken.getValidAccessToken()).rejects.toBeInstanceOf(TokenStoreError);

    const seen = new Set(events.map((e) => e.name));
    expect([...seen].sort()).toEqual(Object.keys(EVENT_NAMES).sort());

    const values = [...secrets].filter((s) => s.length >= 8);
    expect(values.length).toBeGreaterThan(10);
    for (const { name, payload } of events) {
      const renderings = [
        JSON.stringify(payload),
        inspect(payload, { depth: Infinity }),
        inspect(payload, { depth: Infinity, showHidden: true }),
      ];
      for (const rendering of renderings) {
        for (const secret of values) {
          if (rendering.includes(secret)) throw new Error(`${name} payload contains a secret: ${rendering}`);
        }
      }
    }
  });
});
