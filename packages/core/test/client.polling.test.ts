/**
 * The polling grants (RFC 8628 device authorization, CIBA poll mode) against a scripted local
 * server, with jest fake timers: every wait is observed through `onPending` and then advanced,
 * so the schedule is checked exactly and nothing sleeps.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { Client, ConfigurationError, OAuthError, randomDPoPKeyPair } from '@tessera/core';
import type { PollState, TokenResponse } from '@tessera/core';
import { rejection } from './support/test-helpers.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, Handler } from './support/fake-server.js';

type Reply = Handler;
const pending: Reply = (_r, res) => json(res, 400, { error: 'authorization_pending' });
const slowDown: Reply = (_r, res) => json(res, 400, { error: 'slow_down' });
const success: Reply = (_r, res) =>
  json(res, 200, { access_token: 'at', token_type: 'Bearer', expires_in: 60 });
const parked: Array<() => void> = [];
const hang: Reply = () => new Promise<void>((resolve) => parked.push(resolve));

let server: FakeServer;
let script: Reply[] = [];

beforeAll(async () => {
  server = await startFakeServer({
    '/token': (request, response) => (script.shift() ?? success)(request, response),
    '/device': (_r, res) =>
      json(res, 200, {
        device_code: 'dc-secret',
        user_code: 'WDJB-MJHT',
        verification_url: 'https://as.example/device',
        expires_in: '1800',
      }),
    '/bc': (_r, res) => json(res, 200, { auth_req_id: 'req-1', expires_in: 120 }),
  });
});
afterAll(async () => {
  for (const release of parked) release();
  await server.close();
});
beforeEach(() => {
  jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  script = [];
  server.requests.length = 0;
});
afterEach(() => {
  jest.useRealTimers();
});

function newClient(
  options: ConstructorParameters<typeof Client>[2] = {},
  metadata: Record<string, unknown> = {},
) {
  return new Client(
    {
      issuer: server.url,
      token_endpoint: `${server.url}/token`,
      device_authorization_endpoint: `${server.url}/device`,
      backchannel_authentication_endpoint: `${server.url}/bc`,
    },
    { client_id: 'c1', client_secret: 's1', token_endpoint_auth_method: 'client_secret_post', ...metadata },
    options,
  );
}

const polls = () => server.requestsTo('/token').length;

/**
 * Runs a polling call to its end: each time it reports a wait, checks that no poll happens before
 * the wait is over, then advances the fake clock by exactly that wait.
 */
async function drive(
  start: (onPending: (state: PollState) => void) => Promise<TokenResponse>,
): Promise<{ waits: number[]; outcome: TokenResponse | Error }> {
  const waits: number[] = [];
  let notify: (() => void) | undefined;
  const call = start((state) => {
    waits.push(state.interval);
    notify?.();
  });
  const settled = call.then(
    (value) => ({ done: true as const, value }),
    (error: Error) => ({ done: true as const, value: error }),
  );
  for (;;) {
    const next = new Promise<{ done: false }>((resolve) => (notify = () => resolve({ done: false })));
    const step = await Promise.race([settled, next]);
    if (step.done) return { waits, outcome: step.value };
    const before = polls();
    const wait = waits.at(-1)! * 1000;
    await jest.advanceTimersByTimeAsync(wait - 1);
    expect(polls()).toBe(before); // never early
    await jest.advanceTimersByTimeAsync(1);
  }
}

describe('device authorization (RFC 8628)', () => {
  it('initiates with client authentication and folds verification_url into verification_uri', async () => {
    const device = await newClient().initiateDeviceAuthorization({ scope: 'openid' });
    expect(device).toMatchObject({
      device_code: 'dc-secret',
      user_code: 'WDJB-MJHT',
      verification_uri: 'https://as.example/device',
      expires_in: 1800,
    });
    expect(device.interval).toBeUndefined();
    const request = server.requestsTo('/device').at(-1)!;
    expect(Object.fromEntries(request.form)).toEqual({
      scope: 'openid',
      client_id: 'c1',
      client_secret: 's1',
    });
  });

  it('polls on the exact schedule: pending, pending, slow_down, pending, success → waits 5, 5, 10, 10', async () => {
    const client = newClient();
    const device = await client.initiateDeviceAuthorization();
    script = [pending, pending, slowDown, pending, success];
    const { waits, outcome } = await drive((onPending) =>
      client.pollDeviceAuthorizationGrant(device, undefined, { onPending }),
    );
    expect(waits).toEqual([5, 5, 10, 10]);
    expect(outcome).toMatchObject({ access_token: 'at' });
    const sent = server.requestsTo('/token');
    expect(sent).toHaveLength(5);
    expect(Object.fromEntries(sent[0]!.form)).toMatchObject({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      device_code: 'dc-secret',
    });
  });

  it('uses the server interval, treats slow_down as HTTP 429 the same, and a 200 carrying pending as pending', async () => {
    const client = newClient();
    const device = { ...(await client.initiateDeviceAuthorization()), interval: 2 };
    script = [
      (_r, res) => json(res, 200, { error: 'authorization_pending' }),
      (_r, res) => json(res, 429, { error: 'slow_down' }),
      success,
    ];
    const { waits } = await drive((onPending) =>
      client.pollDeviceAuthorizationGrant(device, undefined, { onPending }),
    );
    expect(waits).toEqual([2, 7]);
  });

  it('waits as long as a 503 Retry-After says (at least the interval)', async () => {
    const client = newClient();
    const device = await client.initiateDeviceAuthorization();
    script = [
      (_r, res) => raw(res, 503, '', { 'retry-after': '12' }),
      (_r, res) => raw(res, 503, '', { 'retry-after': '1' }),
      success,
    ];
    const { waits, outcome } = await drive((onPending) =>
      client.pollDeviceAuthorizationGrant(device, undefined, { onPending }),
    );
    expect(waits).toEqual([12, 5]);
    expect(outcome).toMatchObject({ access_token: 'at' });
  });

  it('doubles the interval after a timeout (RFC 8628 §3.5)', async () => {
    const client = newClient({ timeoutMs: 1000 });
    const device = await client.initiateDeviceAuthorization();
    script = [pending, hang, success];
    const waits: number[] = [];
    let reported: () => void = () => undefined;
    const call = client.pollDeviceAuthorizationGrant(device, undefined, {
      onPending: (s) => {
        waits.push(s.interval);
        reported();
      },
    });
    const nextReport = () => new Promise<void>((resolve) => (reported = resolve));
    let report = nextReport();
    await report;
    report = nextReport();
    await jest.advanceTimersByTimeAsync(5000); // second poll goes out and hangs
    await jest.advanceTimersByTimeAsync(1000); // ... until the timeout
    await report;
    await jest.advanceTimersByTimeAsync(10_000);
    await expect(call).resolves.toMatchObject({ access_token: 'at' });
    expect(waits).toEqual([5, 10]);
  });

  it.each<[string, Reply]>([
    ['access_denied', (_r, res) => json(res, 400, { error: 'access_denied' })],
    ['expired_token', (_r, res) => json(res, 400, { error: 'expired_token' })],
    ['invalid_grant', (_r, res) => json(res, 400, { error: 'invalid_grant' })],
  ])('%s stops polling with an OAuthError', async (error, reply) => {
    const client = newClient();
    const device = await client.initiateDeviceAuthorization();
    script = [pending, reply];
    const { outcome } = await drive((onPending) =>
      client.pollDeviceAuthorizationGrant(device, undefined, { onPending }),
    );
    expect(outcome).toBeInstanceOf(OAuthError);
    expect(outcome).toMatchObject({ error, status: 400 });
    expect(server.requestsTo('/token')).toHaveLength(2);
  });

  it('stops at the local deadline without another request', async () => {
    const client = newClient();
    const device = { ...(await client.initiateDeviceAuthorization()), expires_in: 12 };
    script = [pending, pending, pending, pending];
    const { waits, outcome } = await drive((onPending) =>
      client.pollDeviceAuthorizationGrant(device, undefined, { onPending }),
    );
    expect(waits).toEqual([5, 5]);
    expect(outcome).toMatchObject({ error: 'expired_token', status: 0 });
    expect(server.requestsTo('/token')).toHaveLength(3);
  });

  it('an abort while waiting rejects at once with ABORTED and sends nothing more', async () => {
    const client = newClient();
    const device = await client.initiateDeviceAuthorization();
    script = [pending, success];
    const controller = new AbortController();
    let waiting: () => void = () => undefined;
    const isWaiting = new Promise<void>((resolve) => (waiting = resolve));
    const call = client.pollDeviceAuthorizationGrant(device, undefined, {
      signal: controller.signal,
      onPending: () => waiting(),
    });
    await isWaiting;
    controller.abort();
    expect(await rejection(call)).toMatchObject({ code: 'ABORTED' });
    await jest.advanceTimersByTimeAsync(10_000);
    expect(server.requestsTo('/token')).toHaveLength(1);
  });

  it('sends dpop_jkt when asked for (RFC 9449 §10)', async () => {
    const client = newClient();
    const handle = client.getDPoPHandle(await randomDPoPKeyPair());
    await client.initiateDeviceAuthorization({ scope: 'openid', dpop_jkt: await handle.thumbprint() });
    expect(server.requestsTo('/device').at(-1)!.form.get('dpop_jkt')).toBe(await handle.thumbprint());
  });

  it('is UNSUPPORTED without a device authorization endpoint', async () => {
    const client = new Client(
      { issuer: server.url, token_endpoint: `${server.url}/token` },
      { client_id: 'c', client_secret: 's' },
    );
    expect(client.supports('device_authorization')).toBe(false);
    expect(await rejection(client.initiateDeviceAuthorization())).toMatchObject({ code: 'UNSUPPORTED' });
    expect(await rejection(client.initiateBackchannelAuthentication({ login_hint: 'a' }))).toMatchObject({
      code: 'UNSUPPORTED',
    });
  });

  it('refuses a response without a device_code', async () => {
    const error = await rejection(newClient().pollDeviceAuthorizationGrant({} as never));
    expect(error).toBeInstanceOf(ConfigurationError);
  });
});

describe('CIBA poll mode', () => {
  it.each<[string, Record<string, string>]>([
    ['no hint', { scope: 'openid' }],
    ['two hints', { scope: 'openid', login_hint: 'a', id_token_hint: 'b' }],
    ['a requested_expiry that is not a positive integer', { login_hint: 'a', requested_expiry: '0' }],
  ])('refuses %s before any request', async (_name, parameters) => {
    const before = server.requestsTo('/bc').length;
    expect(await rejection(newClient().initiateBackchannelAuthentication(parameters))).toBeInstanceOf(
      ConfigurationError,
    );
    expect(server.requestsTo('/bc')).toHaveLength(before);
  });

  it('refuses a public client', async () => {
    const client = newClient({}, { client_secret: undefined, token_endpoint_auth_method: 'none' });
    expect(await rejection(client.initiateBackchannelAuthentication({ login_hint: 'alice' }))).toBeInstanceOf(
      ConfigurationError,
    );
  });

  it('adds openid to the scope and sends the optional parameters only when set', async () => {
    const client = newClient();
    await client.initiateBackchannelAuthentication({ login_hint: 'alice', scope: 'api:read' });
    expect(Object.fromEntries(server.requestsTo('/bc').at(-1)!.form)).toEqual({
      login_hint: 'alice',
      scope: 'openid api:read',
      client_id: 'c1',
      client_secret: 's1',
    });
    await client.initiateBackchannelAuthentication({
      login_hint: 'alice',
      binding_message: 'W4SCT',
      user_code: '1234',
      requested_expiry: '60',
    });
    expect(Object.fromEntries(server.requestsTo('/bc').at(-1)!.form)).toMatchObject({
      binding_message: 'W4SCT',
      user_code: '1234',
      requested_expiry: '60',
      scope: 'openid',
    });
  });

  it('polls with the CIBA grant type and the default 5 s interval', async () => {
    const client = newClient();
    const request = await client.initiateBackchannelAuthentication({ login_hint: 'alice' });
    expect(request).toMatchObject({ auth_req_id: 'req-1', expires_in: 120 });
    script = [pending, slowDown, success];
    const { waits, outcome } = await drive((onPending) =>
      client.pollBackchannelAuthenticationGrant(request, undefined, { onPending }),
    );
    expect(waits).toEqual([5, 10]);
    expect(outcome).toMatchObject({ access_token: 'at' });
    expect(Object.fromEntries(server.requestsTo('/token').at(-1)!.form)).toMatchObject({
      grant_type: 'urn:openid:params:grant-type:ciba',
      auth_req_id: 'req-1',
    });
  });
});
