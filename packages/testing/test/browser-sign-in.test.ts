import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Client } from '@tessera/core';
import { startTestServer, type TestServer } from '../src/index.js';

// `browserSignIn: true` (what `tessera dev-server` runs): a person approves a device flow with
// oidc-provider's development pages. This test is that person: it follows the pages' redirects and
// submits their forms with a cookie jar, as a browser would, with nothing of the server's insides.

let server: TestServer;

beforeAll(async () => {
  // oidc-provider warns, once, that its development pages are on: expected, and kept out of the output.
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  try {
    server = await startTestServer({ browserSignIn: true, pollIntervalSeconds: 0 });
    expect(warn.mock.calls.flat().join('\n')).toMatch(/devInteractions/);
  } finally {
    warn.mockRestore();
  }
});

afterAll(async () => {
  await server?.close();
});

/** The first form of an HTML page: its action, and its inputs' names and values. */
function firstForm(html: string): { action: string; fields: Record<string, string> } | undefined {
  const form = /<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) return undefined;
  const fields: Record<string, string> = {};
  for (const input of form[2]!.matchAll(/<input[^>]*>/gi)) {
    const name = /name="([^"]*)"/.exec(input[0])?.[1];
    if (name !== undefined) fields[name] = /value="([^"]*)"/.exec(input[0])?.[1] ?? '';
  }
  return { action: form[1]!.replaceAll('&amp;', '&'), fields };
}

/** Opens `url` and submits every form it meets (signing in as `login`) until no form is left. */
async function approveInBrowser(url: string, login: string): Promise<string> {
  const cookies = new Map<string, string>();
  let request: { url: string; body?: URLSearchParams } = { url };
  for (let step = 0; step < 20; step++) {
    const response = await fetch(request.url, {
      method: request.body === undefined ? 'GET' : 'POST',
      body: request.body,
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([name, value]) => `${name}=${value}`).join('; ') },
    });
    for (const cookie of response.headers.getSetCookie()) {
      const [pair] = cookie.split(';');
      const [name, value] = pair!.split('=');
      cookies.set(name!, value ?? '');
    }
    const location = response.headers.get('location');
    if (location !== null) {
      request = { url: new URL(location, request.url).href };
      continue;
    }
    const html = await response.text();
    const form = firstForm(html);
    if (form === undefined) return html;
    const body = new URLSearchParams(form.fields);
    if ('login' in form.fields) body.set('login', login);
    if ('password' in form.fields) body.set('password', 'any');
    request = { url: new URL(form.action, request.url).href, body };
  }
  throw new Error('the sign-in pages never ended');
}

describe('browserSignIn', () => {
  it('lets a person at a browser approve a device authorization', async () => {
    const client = await Client.discover(server.issuer, {
      client_id: server.clients.public.client_id,
      token_endpoint_auth_method: 'none',
    });
    const device = await client.initiateDeviceAuthorization({ scope: 'openid offline_access' });
    const polled = client.pollDeviceAuthorizationGrant(device);
    const last = await approveInBrowser(device.verification_uri_complete!, 'carol');
    expect(last).toContain('Sign-in Success');
    const tokens = await polled;
    expect(tokens.claims()?.sub).toBe('carol');
    expect(tokens.refresh_token).toEqual(expect.any(String));
  });
});
