/**
 * A server that echoes what it received into its error answer: no secret of the request, in any
 * form, reaches `err.message`, any field, `JSON.stringify(err)` or `util.inspect(err)`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { generateKeyPair, exportJWK } from 'jose';
import { inspect } from 'node:util';
import { Client, ResponseError, TesseraError } from '@tessera/core';
import type { ClientMetadata, ClientOptions } from '@tessera/core';
import { Redactor } from '../src/internal/redact.js';
import { formEncode } from '../src/internal/form.js';
import { rejection } from './support/test-helpers.js';
import { json, raw, startFakeServer } from './support/fake-server.js';
import type { FakeServer, RecordedRequest } from './support/fake-server.js';

const SECRET = 'p@ss+w/rd:%~ &=?#é-Secret-0123456789';
const REFRESH_TOKEN = 'rt-0123456789abcdefghijklmnopqrstuv';

/** Every form a secret may be echoed in, as the issue lists them. */
function encodedForms(secret: string): Record<string, string> {
  return {
    raw: secret,
    'form-encoded': formEncode(secret),
    'percent-encoded': encodeURIComponent(secret),
    'percent-encoded, lower-case hex': encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (h) =>
      h.toLowerCase(),
    ),
    'lower-cased': secret.toLowerCase(),
    'upper-cased': secret.toUpperCase(),
    base64: Buffer.from(secret).toString('base64'),
    'JSON-escaped': JSON.stringify(secret).slice(1, -1).replace(/\//g, '\\/'),
  };
}

/** All texts an error shows: its message, stack, fields, JSON and inspect output, and its cause. */
function textsOf(error: unknown): string[] {
  const e = error as Error;
  return [
    e.message,
    String(e.stack),
    JSON.stringify(error),
    inspect(error, { depth: 10, showHidden: true }),
    String((e as { cause?: unknown }).cause),
    inspect((e as { cause?: unknown }).cause, { depth: 10, showHidden: true }),
  ];
}

/** No form of any secret, and no 12-character piece of one, appears in any text of the error. */
function expectNoLeak(error: unknown, secrets: string[]): void {
  expect(error).toBeInstanceOf(TesseraError);
  const texts = textsOf(error).map((t) => t.toLowerCase());
  for (const secret of secrets) {
    for (const [form, value] of Object.entries(encodedForms(secret))) {
      const lower = value.toLowerCase();
      for (let i = 0; i + 12 <= lower.length; i += 3) {
        const piece = lower.slice(i, i + 12);
        for (const text of texts) {
          if (text.includes(piece))
            throw new Error(`a piece of the ${form} secret "${piece}" leaked into: ${text.slice(0, 300)}`);
        }
      }
    }
  }
}

/** What the server received that is a secret, by form field or header. */
function received(r: RecordedRequest): string[] {
  const values = [
    r.form.get('client_secret'),
    r.form.get('client_assertion'),
    r.form.get('refresh_token'),
    r.form.get('token'),
    r.headers.authorization,
    r.headers.authorization?.replace(/^Basic /, ''),
    r.headers.dpop as string | undefined,
  ];
  return values.filter((v): v is string => typeof v === 'string' && v.length > 0);
}

let server: FakeServer;
beforeAll(async () => {
  server = await startFakeServer();
});
afterAll(() => server.close());

let route = 0;
function clientFor(
  answer: (
    r: RecordedRequest,
    echo: string,
  ) => { status: number; body: unknown; headers?: Record<string, string> },
  metadata: Partial<ClientMetadata> = {},
  options: ClientOptions = {},
  encode: (value: string) => string = (v) => v,
) {
  const path = `/token-${++route}`;
  const seen: string[] = [];
  server.on(path, (r, res) => {
    const secrets = received(r);
    seen.push(...secrets);
    const { status, body, headers } = answer(r, secrets.map(encode).join(' | '));
    if (typeof body === 'string') raw(res, status, body, { 'content-type': 'text/plain', ...headers });
    else json(res, status, body, headers);
  });
  const client = new Client(
    {
      issuer: server.url,
      token_endpoint: `${server.url}${path}`,
      introspection_endpoint: `${server.url}${path}`,
    },
    {
      client_id: 'client-1',
      client_secret: SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      ...metadata,
    } as ClientMetadata,
    { retry: { retries: 0 }, ...options },
  );
  return { client, seen };
}

describe('secrets echoed in every form are redacted', () => {
  it.each(Object.entries(encodedForms('x')).map(([form]) => [form]))(
    'in error_description, %s',
    async (form) => {
      const { client, seen } = clientFor(
        (_r, echo) => ({ status: 400, body: { error: 'invalid_grant', error_description: `got ${echo}` } }),
        {},
        {},
        (value) => encodedForms(value)[form]!,
      );
      const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
      expect(error).toMatchObject({ code: 'OAUTH_ERROR', error: 'invalid_grant' });
      expect(seen.length).toBeGreaterThan(0);
      expectNoLeak(error, [SECRET, REFRESH_TOKEN, ...seen]);
    },
  );

  it('a signed, still-valid client_assertion (private_key_jwt) is redacted (regression: it was added after the redaction list was taken)', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const { client, seen } = clientFor(
      (r) => ({
        status: 401,
        body: {
          error: 'invalid_client',
          error_description: `bad assertion ${r.form.get('client_assertion')}`,
        },
      }),
      { client_secret: undefined, token_endpoint_auth_method: 'private_key_jwt' },
      { privateKey: jwk },
    );
    const error = await rejection(client.clientCredentialsGrant());
    const assertion = seen.find((s) => s.startsWith('eyJ'))!;
    expect(assertion).toBeDefined();
    expectNoLeak(error, [assertion]);
    expect(error.message).toContain('[redacted]');
  });

  it('a client_secret_jwt assertion echoed truncated in the middle of a text is redacted', async () => {
    const { client, seen } = clientFor(
      (r) => ({
        status: 400,
        body: {
          error: 'invalid_client',
          error_description: `jwt ${r.form.get('client_assertion')!.slice(0, 40)}... rejected`,
        },
      }),
      { token_endpoint_auth_method: 'client_secret_jwt' },
    );
    const error = await rejection(client.clientCredentialsGrant());
    expectNoLeak(error, [seen.find((s) => s.startsWith('eyJ'))!.slice(0, 40)]);
  });

  it.each<[string, (echo: string) => { status: number; body: unknown; headers?: Record<string, string> }]>([
    [
      'WWW-Authenticate',
      (echo) => ({
        status: 401,
        body: { error: 'invalid_client' },
        headers: { 'www-authenticate': `Basic realm="${echo}"` },
      }),
    ],
    [
      'error_uri',
      (echo) => ({
        status: 400,
        body: { error: 'invalid_request', error_uri: `https://as.example/e?got=${encodeURIComponent(echo)}` },
      }),
    ],
    ['error', (echo) => ({ status: 400, body: { error: `bad_${echo}` } })],
    ['$error', (echo) => ({ status: 500, body: { $error: echo } })],
    [
      '$request',
      (echo) => ({ status: 400, body: { $request: echo, $errors: [{ code: 'X', message: 'y' }] } }),
    ],
    ['$errors[].code', (echo) => ({ status: 400, body: { $errors: [{ code: echo, message: 'bad' }] } })],
    ['$errors[].message', (echo) => ({ status: 400, body: { $errors: [{ code: 'BAD', message: echo }] } })],
    [
      'token_type of a 200',
      (echo) => ({ status: 200, body: { access_token: 'at-live-0123456789abcdef', token_type: echo } }),
    ],
    ['a plain-text body', (echo) => ({ status: 502, body: `upstream said: ${echo}` })],
  ])('in %s', async (_field, answer) => {
    const { client, seen } = clientFor((_r, echo) => answer(echo));
    const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
    expectNoLeak(error, [SECRET, REFRESH_TOKEN, 'at-live-0123456789abcdef', ...seen]);
  });

  it('a secret that straddles the 2,048-byte body truncation leaves no piece behind', async () => {
    const { client } = clientFor(() => ({
      status: 502,
      body: `${'x'.repeat(2048 - 10)}${REFRESH_TOKEN}${'y'.repeat(100)}`,
    }));
    const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
    expect(error).toMatchObject({ code: 'HTTP_ERROR', status: 502 });
    expect((error as { body?: string }).body).not.toContain(REFRESH_TOKEN.slice(0, 6));
    expectNoLeak(error, [REFRESH_TOKEN]);
  });

  it('an ID Token header alg that echoes a secret does not reach the message', async () => {
    const header = Buffer.from(JSON.stringify({ alg: `none-${REFRESH_TOKEN}`, typ: 'JWT' })).toString(
      'base64url',
    );
    const payload = Buffer.from(JSON.stringify({ iss: server.url, aud: 'client-1', sub: 's' })).toString(
      'base64url',
    );
    const { client } = clientFor(() => ({
      status: 200,
      body: {
        access_token: 'at-live-0123456789abcdef',
        token_type: 'Bearer',
        id_token: `${header}.${payload}.c2ln`,
      },
    }));
    const error = await rejection(client.refreshTokenGrant(REFRESH_TOKEN));
    expect(error).toMatchObject({ code: 'INVALID_ID_TOKEN' });
    expectNoLeak(error, [REFRESH_TOKEN, 'at-live-0123456789abcdef']);
  });

  it('the token under introspection, echoed, is redacted', async () => {
    const token = 'opaque-at-0123456789abcdefghij';
    const { client } = clientFor((r) => ({
      status: 400,
      body: {
        error: 'invalid_request',
        error_description: `token=${encodeURIComponent(r.form.get('token')!)}`,
      },
    }));
    const error = await rejection(client.tokenIntrospection(token));
    expectNoLeak(error, [token]);
  });

  it("a credential in the caller's own headers is redacted", async () => {
    const apiKey = 'gw-key-0123456789abcdefghij';
    const { client } = clientFor(
      (r) => ({
        status: 400,
        body: { error: 'invalid_request', error_description: `key ${String(r.headers['x-api-key'])}` },
      }),
      {},
      { headers: { 'X-Api-Key': apiKey } },
    );
    const error = await rejection(client.clientCredentialsGrant());
    expectNoLeak(error, [apiKey]);
  });

  it('what is not secret stays readable', async () => {
    const { client } = clientFor(() => ({
      status: 401,
      body: { error: 'invalid_client', error_description: 'client authentication failed' },
      headers: { 'www-authenticate': 'Basic realm="as"' },
    }));
    const error = await rejection(client.clientCredentialsGrant());
    expect(error).toMatchObject({
      error: 'invalid_client',
      error_description: 'client authentication failed',
      wwwAuthenticate: 'Basic realm="as"',
      endpoint: 'token endpoint',
    });
  });
});

describe('Redactor', () => {
  const redactor = new Redactor([SECRET, 'abc', undefined]);

  it.each(Object.entries(encodedForms(SECRET)))('redacts the %s form', (_form, value) => {
    expect(redactor.redact(`<${value}>`)).toBe('<[redacted]>');
  });

  it.each([[0], [1], [2]])(
    'redacts a secret base64-encoded inside a longer blob, %i bytes into a 3-byte group (found by the fuzz harness)',
    (offset) => {
      const blob = Buffer.from(`{"x":"${'a'.repeat(offset)}${SECRET}"}`).toString('base64url');
      expect(redactor.redact(blob)).toContain('[redacted]');
      expect(redactor.redact(blob)).not.toContain(Buffer.from(SECRET).toString('base64url').slice(4, 16));
    },
  );

  it('redacts a piece of 12 characters anywhere', () => {
    expect(redactor.redact(`a ${SECRET.slice(5, 17)} b`)).toBe('a [redacted] b');
    expect(redactor.redact(`ends with ${SECRET.slice(0, 12)}`)).toBe('ends with [redacted]');
    expect(redactor.redact(`${SECRET.slice(-12)} starts it`)).toBe('[redacted] starts it');
  });

  it("never rewrites the SDK's own fields, whatever a server-chosen token is spelled like (found by the fuzz harness)", () => {
    const spelled = new Redactor(['INVALID_RESPONSE', 'token endpoint', 'ResponseError']);
    const error = new ResponseError(
      'INVALID_RESPONSE',
      'token endpoint response: token_type mac is not supported',
      {
        endpoint: 'token endpoint',
        status: 200,
        field: 'token_type',
      },
    );
    spelled.redactError(error);
    expect(error).toMatchObject({
      code: 'INVALID_RESPONSE',
      name: 'ResponseError',
      endpoint: 'token endpoint',
      field: 'token_type',
    });
  });

  it('leaves ordinary text and secrets shorter than 4 characters alone', () => {
    expect(redactor.redact('token endpoint returned invalid_grant (HTTP 400): abc')).toBe(
      'token endpoint returned invalid_grant (HTTP 400): abc',
    );
    expect(Redactor.NONE.redact(SECRET)).toBe(SECRET);
  });

  it('redacts an error in place: message, stack, nested fields; its cause keeps only name, message and code', () => {
    const cause = Object.assign(new Error(`driver failed on ${SECRET}`), {
      code: 'E_DRIVER',
      config: { headers: { authorization: SECRET } },
    });
    const error = Object.assign(new TesseraError('INVALID_RESPONSE', `m ${SECRET}`, { cause }), {
      nested: { list: [SECRET] },
    });
    redactor.redactError(error);
    expect(error.message).toBe('m [redacted]');
    expect(error.stack).not.toContain(SECRET);
    expect(error.nested).toEqual({ list: ['[redacted]'] });
    expect(error.cause).toMatchObject({
      name: 'Error',
      message: 'driver failed on [redacted]',
      code: 'E_DRIVER',
    });
    expect((error.cause as { config?: unknown }).config).toBeUndefined();
  });
});
