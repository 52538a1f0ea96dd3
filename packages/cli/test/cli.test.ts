import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestServer, type TestServer } from '@tessera/testing';
import { assertBuilt, printed, startTessera, stop, tessera } from './tessera-process.js';

let server: TestServer;
let directory: string;
let secretFile: string;
let secret: string;
/** `--issuer`, `--client-id` and `--client-secret-file` of the `basic` client. */
let basic: string[];

beforeAll(async () => {
  assertBuilt();
  server = await startTestServer();
  secret = server.clients.basic.client_secret!;
  directory = await mkdtemp(join(tmpdir(), 'tessera-cli-'));
  secretFile = join(directory, 'secret');
  await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
  basic = [
    '--issuer',
    server.issuer,
    '--client-id',
    server.clients.basic.client_id,
    '--client-secret-file',
    secretFile,
  ];
});

afterAll(async () => {
  await server?.close();
  if (directory !== undefined) await rm(directory, { recursive: true, force: true });
});

describe('tessera token', () => {
  it('prints only the access token and a newline', async () => {
    const { code, stdout, stderr } = await tessera(['token', ...basic]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(stdout).toMatch(/^[\w-]+\n$/);
  });

  it('prints one JSON object with --json, the secret read from TESSERA_CLIENT_SECRET', async () => {
    const { code, stdout } = await tessera(
      [
        'token',
        '--json',
        '--scope',
        'api:read',
        '--issuer',
        server.issuer,
        '--client-id',
        server.clients.basic.client_id,
      ],
      { env: { TESSERA_CLIENT_SECRET: secret } },
    );
    expect(code).toBe(0);
    expect(stdout.endsWith('\n') && stdout.split('\n').length === 2).toBe(true);
    expect(JSON.parse(stdout)).toEqual({
      access_token: expect.any(String),
      token_type: 'Bearer',
      expires_in: expect.any(Number),
      scope: 'api:read',
    });
  });
});

describe('tessera introspect and revoke', () => {
  it('is active (exit 0), then revoked, then inactive (exit 3)', async () => {
    const token = (await tessera(['token', ...basic])).stdout.trim();

    const active = await tessera(
      [
        'introspect',
        token,
        '--json',
        '--issuer',
        server.issuer,
        '--client-id',
        server.clients.basic.client_id,
        '--client-secret-stdin',
      ],
      { input: `${secret}\n` },
    );
    expect(active.code).toBe(0);
    expect(JSON.parse(active.stdout)).toMatchObject({
      active: true,
      client_id: server.clients.basic.client_id,
    });

    const human = await tessera(['introspect', token, ...basic]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^active\s+true$/m);

    const revoked = await tessera(['revoke', token, '--hint', 'access_token', '--json', ...basic]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toBe('{"revoked":true}\n');

    const inactive = await tessera(['introspect', token, '--json', ...basic]);
    expect(inactive.code).toBe(3);
    expect(JSON.parse(inactive.stdout)).toEqual({ active: false });
  });
});

describe('tessera discover', () => {
  it('prints the metadata and the capabilities with --json, needing only --issuer', async () => {
    const { code, stdout } = await tessera(['discover', '--json', '--issuer', server.issuer]);
    expect(code).toBe(0);
    const output = JSON.parse(stdout) as {
      issuer: string;
      metadata: Record<string, unknown>;
      capabilities: object;
    };
    expect(output.issuer).toBe(server.issuer);
    expect(output.metadata.token_endpoint).toBe(`${server.issuer}/token`);
    expect(output.capabilities).toMatchObject({
      introspection: true,
      revocation: true,
      device_authorization: true,
      client_credentials: true,
      token_exchange: false,
      mtls: false,
    });
    expect(Object.keys(output.capabilities)).toHaveLength(11);
  });
});

describe('tessera dev-server', () => {
  it('prints the issuer and clients as one JSON line and exits 0 on SIGTERM', async () => {
    // The dev server's secrets are its own, printed for the newcomer (and the same as `server`'s).
    const running = startTessera(['dev-server', '--json'], { printsSecrets: true });
    try {
      const [line] = await running.waitFor(/^.*\n/);
      const output = JSON.parse(line) as { issuer: string; clients: Record<string, Record<string, unknown>> };
      expect(output.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(output.clients.basic).toEqual({
        client_id: expect.any(String),
        client_secret: expect.any(String),
        token_endpoint_auth_method: 'client_secret_basic',
      });
      expect(output.clients.public).toEqual({
        client_id: expect.any(String),
        token_endpoint_auth_method: 'none',
      });
      running.child.kill('SIGTERM');
      expect((await running.done).code).toBe(0);
    } finally {
      stop(running);
    }
  });
});

describe('exit codes and the secret', () => {
  it.each([
    ['an unknown option', ['token', '--nope']],
    ['a missing argument', ['introspect']],
    ['no command', []],
    ['a missing --issuer', ['token', '--client-id', 'x']],
    ['an invalid --auth-method', ['token', '--auth-method', 'password']],
  ])('exits 2 on %s', async (_name, args) => {
    const { code, stdout } = await tessera(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
  });

  it.each([['--client-secret', 'x'], ['--client-secret=x']])(
    'refuses %s as a flag with exit 2',
    async (...flag) => {
      const { code, stderr } = await tessera([
        'token',
        '--issuer',
        server.issuer,
        '--client-id',
        'basic',
        ...flag,
      ]);
      expect(code).toBe(2);
      expect(stderr).toContain('--client-secret-file');
    },
  );

  it('exits 1 with invalid_client on stderr for a wrong secret, which it never prints', async () => {
    const wrong = 'wrong-secret-value';
    const { code, stdout, stderr } = await tessera(
      ['token', '--issuer', server.issuer, '--client-id', server.clients.basic.client_id],
      { env: { TESSERA_CLIENT_SECRET: wrong } },
    );
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^error: OAUTH_ERROR: .*invalid_client/);
    expect(stderr).not.toContain(wrong);

    const json = await tessera(
      ['token', '--json', '--issuer', server.issuer, '--client-id', server.clients.basic.client_id],
      {
        env: { TESSERA_CLIENT_SECRET: wrong },
      },
    );
    expect(json.code).toBe(1);
    expect(json.stdout).toBe('');
    expect(JSON.parse(json.stderr)).toMatchObject({
      error: { code: 'OAUTH_ERROR', error: 'invalid_client' },
    });
  });

  it('never printed the client secret in any run', () => {
    expect(printed.length).toBeGreaterThan(10);
    for (const text of printed) {
      expect(text).not.toContain(secret);
      expect(text).not.toContain(encodeURIComponent(secret));
    }
  });
});

/** `--issuer`, `--client-id` and `--client-secret-file` of the test server's admin client. */
async function adminArgs(): Promise<string[]> {
  const file = join(directory, 'admin-secret');
  await writeFile(file, server.clients.admin.client_secret!, { mode: 0o600 });
  return [
    '--issuer',
    server.issuer,
    '--client-id',
    server.clients.admin.client_id,
    '--client-secret-file',
    file,
  ];
}

describe('tessera tokens list', () => {
  it("lists the user's tokens with the admin client, values [redacted] in --json unless --show-tokens", async () => {
    const user = await server.issueUserTokens('basic', { accountId: 'frank' });
    const admin = await adminArgs();
    const json = await tessera(['tokens', 'list', '--token', user.access_token, '--json', ...admin]);
    expect(json.code).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const listing = JSON.parse(json.stdout) as {
      userUid: string;
      clients: Array<{
        clientId: string;
        transactions: Array<{ tokens: Array<{ kind: string; token: string }> }>;
      }>;
    };
    expect(listing.userUid).toBe('frank');
    const tokens = listing.clients.flatMap((c) => c.transactions.flatMap((t) => t.tokens));
    expect(tokens.map((t) => t.kind).sort()).toEqual(['access_token', 'refresh_token']);
    expect(tokens.every((t) => t.token === '[redacted]')).toBe(true);
    expect(json.stdout).not.toContain(user.access_token);

    const shown = await tessera([
      'tokens',
      'list',
      '--token',
      user.access_token,
      '--json',
      '--show-tokens',
      ...admin,
    ]);
    expect(shown.stdout).toContain(user.refresh_token!);

    const viaGet = await tessera([
      'tokens',
      'list',
      '--token',
      user.access_token,
      '--json',
      '--get',
      ...admin,
    ]);
    expect({ code: viaGet.code, stdout: viaGet.stdout }).toEqual({ code: 0, stdout: json.stdout });

    const human = await tessera(['tokens', 'list', '--token', user.access_token, ...admin]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^user frank\nclient +transaction +kind +valid +expires\n/);
    expect(human.stdout).toMatch(/basic-client .* access_token +valid +\d{4}-/);
    expect(human.stdout).not.toContain(user.access_token);
  });

  it('fails with the server error for a revoked token, and needs --token', async () => {
    const user = await server.issueUserTokens('basic', { accountId: 'gina' });
    const admin = await adminArgs();
    await tessera(['revoke', user.access_token, ...basic]);
    const failed = await tessera(['tokens', 'list', '--token', user.access_token, ...admin]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/server_error/);
    expect(failed.stderr).not.toContain(user.access_token);
    expect((await tessera(['tokens', 'list', ...admin])).code).toBe(2);
  });
});
