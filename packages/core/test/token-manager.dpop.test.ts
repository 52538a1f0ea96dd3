/**
 * The TokenManager with DPoP (RFC 9449 §7, §8, §9): tokens bound
 * to the manager's key, `Authorization: DPoP` plus a proof with `ath` at a local resource server,
 * the resource server's nonce retry apart from the refresh-and-retry, and tokens bound to another
 * key (or to any key, for a manager without one) never used. Against the real authorization server
 * (oidc-provider), with and without required DPoP nonces.
 */
import type { ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import axios from 'axios';
import type { AxiosResponse } from 'axios';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';
import type { JWK } from 'jose';
import {
  Client,
  OAuthError,
  TokenManager,
  TokenStoreError,
  accessTokenHash,
  attachTokenManager,
  randomDPoPKeyPair,
} from '@tessera/core';
import type {
  DPoPHandle,
  TokenHandle,
  TokenManagerEventName,
  TokenManagerOptions,
  TokenSet,
  TokenStore,
} from '@tessera/core';
import { startTestServer } from '@tessera/testing';
import type { TestServer } from '@tessera/testing';
// DESIGN.md lists MemoryTokenStore in @tessera/core, but src/index.ts does not export it (yet).
import { MemoryTokenStore } from '../src/memory-token-store.js';
import { json, startFakeServer } from './support/fake-server.js';
import type { FakeServer, RecordedRequest } from './support/fake-server.js';
import { rejection } from './support/test-helpers.js';
import { EVENT_NAMES, onEveryEvent } from './support/events.js';

// --- event collection (for the redaction check) -----------------------------------------------------

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
  if (tokens.idToken !== undefined) secrets.add(tokens.idToken);
}

// --- the resource server --------------------------------------------------------------------------

let rs: FakeServer;

interface Presented {
  scheme: string | undefined;
  token: string | undefined;
  proof: string | undefined;
}

function presented(request: RecordedRequest): Presented {
  const header = request.headers.authorization;
  const space = header?.indexOf(' ') ?? -1;
  return {
    scheme: header === undefined ? undefined : header.slice(0, space),
    token: header === undefined ? undefined : header.slice(space + 1),
    proof: request.headers.dpop as string | undefined,
  };
}

type Behaviour = (
  request: RecordedRequest,
  response: ServerResponse,
  sent: Presented,
) => void | Promise<void>;
const ok: Behaviour = (_request, response) => json(response, 200, { ok: true });
/** The next answers of the resource server, then `ok`. */
let script: Behaviour[] = [];

const nonceChallenge =
  (nonce: string): Behaviour =>
  (_request, response) =>
    json(
      response,
      401,
      { error: 'use_dpop_nonce' },
      { 'www-authenticate': 'DPoP algs="ES256", error="use_dpop_nonce"', 'dpop-nonce': nonce },
    );
const invalidToken: Behaviour = (_request, response) =>
  json(
    response,
    401,
    { error: 'invalid_token' },
    { 'www-authenticate': 'DPoP algs="ES256", error="invalid_token"' },
  );

const apiRequests = (): Presented[] => rs.requestsTo('/api').map(presented);
const claimsOf = (proof: string | undefined): Record<string, unknown> =>
  decodeJwt(proof!) as Record<string, unknown>;

beforeAll(async () => {
  rs = await startFakeServer({
    '/api': (request, response) => {
      const sent = presented(request);
      if (sent.token !== undefined) secrets.add(sent.token);
      return (script.shift() ?? ok)(request, response, sent);
    },
  });
});

afterAll(async () => {
  await Promise.all(managers.map((m) => m.close()));
  await rs?.close();
});

beforeEach(() => {
  rs.requests.length = 0;
  script = [];
});

// --- the two ways of sending a request ----------------------------------------------------------------

type Target = TokenManager | TokenHandle;
interface Caller {
  name: string;
  send(target: Target, url: string, method?: string): Promise<{ status: number }>;
}

const callers: Caller[] = [
  {
    name: 'manager.fetch()',
    async send(target, url, method = 'GET') {
      const response = await target.fetch(url, { method });
      await response.arrayBuffer();
      return { status: response.status };
    },
  },
  {
    name: 'attachTokenManager(axios)',
    async send(target, url, method = 'GET') {
      const http = axios.create({ validateStatus: () => true });
      const detach = attachTokenManager(http, target);
      try {
        const response: AxiosResponse = await http.request({ url, method });
        return { status: response.status };
      } finally {
        detach();
      }
    },
  },
];

// --- against the real authorization server, with and without required nonces ------------------------

describe.each([
  { title: 'nonces not required', requireDPoPNonce: false },
  { title: 'requireDPoPNonce: true', requireDPoPNonce: true },
])('DPoP-bound tokens ($title)', ({ requireDPoPNonce }) => {
  let server: TestServer;
  let client: Client;
  /** Token endpoint requests of the first grant with a new key: with required nonces, the AS asks for one first. */
  const firstGrant = requireDPoPNonce ? 2 : 1;

  beforeAll(async () => {
    server = await startTestServer({ requireDPoPNonce, pollIntervalSeconds: 0 });
    client = await Client.discover(server.issuer, server.clients.basic);
    secrets.add(server.clients.basic.client_secret!);
  });
  afterAll(() => server?.close());

  const tokenRequests = (): number => server.stats().token;
  const api = (query = ''): string => `${rs.url}/api${query}`;

  async function dpopManager(
    options: Partial<TokenManagerOptions> = {},
  ): Promise<{ manager: TokenManager; handle: DPoPHandle }> {
    const handle = options.dpop ?? client.getDPoPHandle(await randomDPoPKeyPair());
    const manager = track(
      new TokenManager({ client, grant: 'client_credentials', ...options, dpop: handle }),
    );
    return { manager, handle };
  }

  it("acquires a token set of type DPoP bound to the handle's thumbprint", async () => {
    const { manager, handle } = await dpopManager();
    const before = tokenRequests();
    const accessToken = await manager.getValidAccessToken();
    expect(tokenRequests() - before).toBe(firstGrant);
    const tokens = await manager.getTokens();
    expect(tokens).toMatchObject({ accessToken, tokenType: 'DPoP', dpopJkt: await handle.thumbprint() });
    const info = await client.tokenIntrospection(accessToken);
    expect(info.cnf?.jkt).toBe(await handle.thumbprint());
  });

  if (requireDPoPNonce) {
    it("never sends the authorization server's nonce to the resource server", async () => {
      const { manager, handle } = await dpopManager();
      await manager.getValidAccessToken();
      expect(handle.nonce(server.issuer)).toEqual(expect.any(String));
      await (await manager.fetch(api())).arrayBuffer();
      expect(claimsOf(apiRequests()[0]!.proof).nonce).toBeUndefined();
    });
  }

  describe.each(callers)('$name', (caller) => {
    it("sends Authorization: DPoP with a proof carrying htm, htu without query, ath and the handle's key", async () => {
      const { manager, handle } = await dpopManager();
      const token = await manager.getValidAccessToken();

      expect((await caller.send(manager, api('?page=2&q=a%20b'), 'POST')).status).toBe(200);

      const [sent] = apiRequests();
      expect(sent).toMatchObject({ scheme: 'DPoP', token });
      const header = decodeProtectedHeader(sent!.proof!);
      expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' });
      expect(await calculateJwkThumbprint(header.jwk as JWK, 'sha256')).toBe(await handle.thumbprint());
      expect(claimsOf(sent!.proof)).toMatchObject({
        htm: 'POST',
        htu: `${rs.url}/api`,
        ath: accessTokenHash(token),
        jti: expect.any(String),
        iat: expect.any(Number),
      });
      expect(claimsOf(sent!.proof).nonce).toBeUndefined();
    });

    it('a use_dpop_nonce challenge: exactly one retry with the nonce, no token request', async () => {
      const { manager } = await dpopManager();
      const token = await manager.getValidAccessToken();
      const before = tokenRequests();
      script = [nonceChallenge('n1')];

      expect((await caller.send(manager, api())).status).toBe(200);

      expect(tokenRequests() - before).toBe(0);
      const [first, second] = apiRequests();
      expect(apiRequests()).toHaveLength(2);
      expect([first!.token, second!.token]).toEqual([token, token]);
      expect(claimsOf(first!.proof).nonce).toBeUndefined();
      expect(claimsOf(second!.proof)).toMatchObject({ nonce: 'n1', ath: accessTokenHash(token) });
      expect(claimsOf(second!.proof).jti).not.toBe(claimsOf(first!.proof).jti);
    });

    it('nonce challenge, then invalid_token: one nonce retry, then one refresh and one retry', async () => {
      const { manager } = await dpopManager();
      const old = await manager.getValidAccessToken();
      const before = tokenRequests();
      script = [nonceChallenge('n1'), invalidToken];

      expect((await caller.send(manager, api())).status).toBe(200);

      expect(tokenRequests() - before).toBe(1);
      const renewed = await manager.getValidAccessToken();
      expect(renewed).not.toBe(old);
      const sent = apiRequests();
      expect(sent.map((s) => s.token)).toEqual([old, old, renewed]);
      expect(sent.map((s) => claimsOf(s.proof).nonce)).toEqual([undefined, 'n1', 'n1']);
      expect(claimsOf(sent[2]!.proof).ath).toBe(accessTokenHash(renewed));
      expect((await manager.getTokens())?.tokenType).toBe('DPoP');
    });

    it('a second use_dpop_nonce in a row is given back to the caller: no loop, no refresh', async () => {
      const { manager } = await dpopManager();
      await manager.getValidAccessToken();
      const before = tokenRequests();
      script = [nonceChallenge('n1'), nonceChallenge('n2')];

      expect((await caller.send(manager, api())).status).toBe(401);

      expect(apiRequests()).toHaveLength(2);
      expect(tokenRequests() - before).toBe(0);
    });

    // RFC 9449 §8 and §9: "always remember the latest value" of DPoP-Nonce, from any response.
    // Regression: the nonce of a retried response used to be lost, so the next request paid
    // another use_dpop_nonce round trip (RFC 9449 §9: always remember the latest nonce).
    it('remembers a DPoP-Nonce sent with the retried response for the next request', async () => {
      const { manager } = await dpopManager();
      await manager.getValidAccessToken();
      script = [
        nonceChallenge('n1'),
        (_request, response) => json(response, 200, { ok: true }, { 'dpop-nonce': 'n2' }),
      ];

      await caller.send(manager, api());
      await caller.send(manager, api());

      expect(apiRequests().map((s) => claimsOf(s.proof).nonce)).toEqual([undefined, 'n1', 'n2']);
    });

    it('a DPoP invalid_dpop_proof challenge is not a token rejection: no refresh', async () => {
      const { manager } = await dpopManager();
      await manager.getValidAccessToken();
      const before = tokenRequests();
      script = [
        (_request, response) =>
          json(response, 401, {}, { 'www-authenticate': 'DPoP algs="ES256", error="invalid_dpop_proof"' }),
      ];

      expect((await caller.send(manager, api())).status).toBe(401);

      expect(apiRequests()).toHaveLength(1);
      expect(tokenRequests() - before).toBe(0);
    });

    // RFC 9449 §7.1: "A server supporting both schemes may send a Bearer and a DPoP challenge in one
    // header — parse per scheme". The DPoP challenge says the proof was bad; the Bearer challenge
    // without an error only advertises the other scheme. Regression: any challenge without `error`
    // used to count as a token rejection, refreshing a valid token.
    it('…nor when the server also sends a Bearer challenge without error in the same header', async () => {
      const { manager } = await dpopManager();
      await manager.getValidAccessToken();
      const before = tokenRequests();
      script = [
        (_request, response) =>
          json(
            response,
            401,
            {},
            { 'www-authenticate': 'Bearer realm="api", DPoP algs="ES256", error="invalid_dpop_proof"' },
          ),
      ];

      await caller.send(manager, api());

      expect(tokenRequests() - before).toBe(0);
      expect(apiRequests()).toHaveLength(1);
    });

    it("a handle from manager.for(key) sends its own key's DPoP token", async () => {
      const { manager, handle } = await dpopManager();
      const other = manager.for('other', { grant: 'client_credentials' });
      const token = await other.getValidAccessToken();
      expect(token).not.toBe(await manager.getValidAccessToken());
      await caller.send(other, api());
      const [sent] = apiRequests();
      expect(sent).toMatchObject({ scheme: 'DPoP', token });
      expect(claimsOf(sent!.proof).ath).toBe(accessTokenHash(token));
      expect((await other.getTokens())?.dpopJkt).toBe(await handle.thumbprint());
    });
  });

  it('a stored token set bound to another key (shared store) is not used: a new one is acquired', async () => {
    const store = new MemoryTokenStore();
    const a = await dpopManager({ store, namespace: '' });
    const tokenOfA = await a.manager.getValidAccessToken();
    const b = await dpopManager({ store, namespace: '' });
    const before = tokenRequests();

    await (await b.manager.fetch(api())).arrayBuffer();

    expect(tokenRequests() - before).toBe(firstGrant);
    const stored = await store.get('default');
    expect(stored).toMatchObject({ tokenType: 'DPoP', dpopJkt: await b.handle.thumbprint() });
    expect(stored?.accessToken).not.toBe(tokenOfA);
    const [sent] = apiRequests();
    expect(sent).toMatchObject({ scheme: 'DPoP', token: stored?.accessToken });
    expect(await calculateJwkThumbprint(decodeProtectedHeader(sent!.proof!).jwk as JWK, 'sha256')).toBe(
      await b.handle.thumbprint(),
    );
  });

  it('a crafted token set bound to another thumbprint is not used: a new one is acquired', async () => {
    const store = new MemoryTokenStore();
    const stranger = client.getDPoPHandle(await randomDPoPKeyPair());
    await store.set('default', {
      accessToken: 'crafted-token-of-another-key',
      tokenType: 'DPoP',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
      dpopJkt: await stranger.thumbprint(),
    });
    secrets.add('crafted-token-of-another-key');
    const { manager, handle } = await dpopManager({ store, namespace: '' });
    const before = tokenRequests();

    const token = await manager.getValidAccessToken();

    expect(token).not.toBe('crafted-token-of-another-key');
    expect(tokenRequests() - before).toBe(firstGrant);
    expect((await manager.getTokens())?.dpopJkt).toBe(await handle.thumbprint());
  });

  it('a DPoP-bound token set is never sent as Bearer by a manager without dpop: it acquires a Bearer token', async () => {
    const store = new MemoryTokenStore();
    const { manager: bound } = await dpopManager({ store, namespace: '' });
    const dpopToken = await bound.getValidAccessToken();
    const plain = track(new TokenManager({ client, store, grant: 'client_credentials', namespace: '' }));
    const before = tokenRequests();

    await (await plain.fetch(api())).arrayBuffer();

    expect(tokenRequests() - before).toBe(1);
    const [sent] = apiRequests();
    expect(sent!.scheme).toBe('Bearer');
    expect(sent!.proof).toBeUndefined();
    expect(sent!.token).not.toBe(dpopToken);
    expect(apiRequests().some((s) => s.token === dpopToken)).toBe(false);
    expect(await store.get('default')).toMatchObject({ tokenType: 'Bearer', accessToken: sent!.token });
  });

  it('a crafted DPoP token set without dpopJkt is not sent as Bearer by a manager without dpop either', async () => {
    const store = new MemoryTokenStore();
    await store.set('default', {
      accessToken: 'crafted-unbound-dpop-token',
      tokenType: 'DPoP',
      expiresAt: Math.floor(Date.now() / 1000) + 3600,
    });
    secrets.add('crafted-unbound-dpop-token');
    const plain = track(new TokenManager({ client, store, grant: 'client_credentials', namespace: '' }));

    await (await plain.fetch(api())).arrayBuffer();

    expect(apiRequests().map((s) => s.token)).not.toContain('crafted-unbound-dpop-token');
  });

  // storeTokens() takes any token response, e.g. one a caller got from another library, where
  // token_type may be lower case (RFC 6749 §7.1: case-insensitive). Regression: a 'dpop' token set
  // used to be treated as a Bearer token.
  it('storeTokens({ token_type: "dpop" }) in a manager without dpop: that token is never sent as Bearer', async () => {
    const plain = track(new TokenManager({ client, grant: 'client_credentials' }));
    await plain.storeTokens({ access_token: 'lowercase-dpop-token-1', token_type: 'dpop', expires_in: 300 });
    secrets.add('lowercase-dpop-token-1');

    await (await plain.fetch(api())).arrayBuffer();

    expect(apiRequests().map((s) => s.token)).not.toContain('lowercase-dpop-token-1');
  });

  it('storeTokens({ token_type: "dpop" }) in a DPoP manager: sent with the DPoP scheme and a proof', async () => {
    const { manager, handle } = await dpopManager();
    await manager.storeTokens({
      access_token: 'lowercase-dpop-token-2',
      token_type: 'dpop',
      expires_in: 300,
    });
    secrets.add('lowercase-dpop-token-2');

    await (await manager.fetch(api())).arrayBuffer();

    expect(apiRequests()[0]).toMatchObject({
      scheme: 'DPoP',
      token: 'lowercase-dpop-token-2',
      proof: expect.any(String),
    });
    expect((await manager.getTokens())?.dpopJkt).toBe(await handle.thumbprint());
  });

  it('events carry no token values or secrets (every event name, DPoP-bound user tokens)', async () => {
    // DPoP-bound user tokens from the device flow.
    const flowKey = client.getDPoPHandle(await randomDPoPKeyPair());
    const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access api:read' });
    await server.approveDevice(device.user_code);
    const response = await client.pollDeviceAuthorizationGrant(device, undefined, { DPoP: flowKey });
    expect(response.token_type).toBe('DPoP');
    secrets.add(response.access_token).add(response.refresh_token!);

    // token.stored, token.introspected, token.expired, token.refreshed, token.revoked, token.cleared.
    let nowMs = Date.now();
    const { manager: user, handle } = await dpopManager({
      dpop: flowKey,
      grant: undefined,
      now: () => nowMs,
    });
    const stored = await user.storeTokens(response);
    expect(stored).toMatchObject({ tokenType: 'DPoP', dpopJkt: await handle.thumbprint() });
    await expect(user.introspectToken()).resolves.toMatchObject({ active: true });
    nowMs += 3_600_000;
    const refreshed = await user.getValidAccessToken();
    expect(refreshed).not.toBe(response.access_token);
    remember(await user.getTokens());
    await (await user.fetch(api())).arrayBuffer();
    const revokedTokens = await user.getTokens();
    await user.revokeTokens();

    // refresh.failed and token.cleared (invalid_grant): the revoked refresh token.
    await user.storeTokens({
      access_token: revokedTokens!.accessToken,
      token_type: 'DPoP',
      refresh_token: revokedTokens!.refreshToken!,
      expires_in: 300,
    });
    const error = await rejection(user.refreshTokens());
    expect(error).toBeInstanceOf(OAuthError);
    expect(error).toMatchObject({ error: 'invalid_grant' });
    await expect(user.getTokens()).resolves.toBeUndefined();

    // token.acquired (client credentials), store.failed.
    const { manager: machine } = await dpopManager();
    remember(await machine.refreshTokens());
    const broken = track(
      new TokenManager({ client, store: new FailingStore(), grant: 'client_credentials', dpop: handle }),
    );
    await expect(broken.getValidAccessToken()).rejects.toBeInstanceOf(TokenStoreError);

    const seen = new Set(events.map((e) => e.name));
    expect([...seen].sort()).toEqual(Object.keys(EVENT_NAMES).sort());
    assertNoSecretInEvents();
  });
});

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

/** Every event seen so far in this file, as JSON and as util.inspect shows it, against every secret. */
function assertNoSecretInEvents(): void {
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
}
