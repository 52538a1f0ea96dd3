import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, TokenManager, type TokenSet } from '@tessera/core';
import { FileTokenStore } from '@tessera/store-file';
import { startTestServer, type TestServer } from '@tessera/testing';
import { assertBuilt, printed, startTessera, stop, tessera } from './tessera-process.js';

// `tessera login --device`, `token --profile` and `logout`, against a real oidc-provider whose
// device approvals the test gives, with the profiles' tokens in a real FileTokenStore.

let server: TestServer;
/** Access tokens live 30 s, under the manager's 60 s skew: every `token --profile` refreshes. */
let shortLived: TestServer;
let directory: string;
let secretFile: string;
const storeKey = randomBytes(32).toString('base64url');

beforeAll(async () => {
  assertBuilt();
  [server, shortLived] = await Promise.all([
    startTestServer({ pollIntervalSeconds: 0 }),
    startTestServer({ pollIntervalSeconds: 0, accessTokenTtlSeconds: 30 }),
  ]);
  directory = await mkdtemp(join(tmpdir(), 'tessera-profiles-'));
  secretFile = join(directory, 'basic-secret');
  await writeFile(secretFile, server.clients.basic.client_secret!, { mode: 0o600 });
});

afterAll(async () => {
  await Promise.all([server?.close(), shortLived?.close()]);
  if (directory !== undefined) await rm(directory, { recursive: true, force: true });
});

let homes = 0;
/** A new, empty TESSERA_HOME (it need not exist: the command creates it). */
function newHome(): string {
  return join(directory, `home-${++homes}`);
}

function publicArgs(at: TestServer = server): string[] {
  return ['--issuer', at.issuer, '--client-id', at.clients.public.client_id];
}

/**
 * `tessera login --device --json` to its end, the device approved (as `accountId`) once the
 * command has printed its code; resolves with the run and the two JSON lines.
 */
async function login(
  home: string,
  args: readonly string[],
  { at = server, accountId = 'alice' }: { at?: TestServer; accountId?: string } = {},
) {
  const running = startTessera(['login', '--device', '--json', ...args], {
    env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
  });
  try {
    const [line] = await running.waitFor(/^.*\n/);
    const device = JSON.parse(line) as Record<string, unknown>;
    await at.approveDevice(String(device.user_code), { accountId });
    const run = await running.done;
    return {
      run,
      device,
      stored: JSON.parse(run.stdout.split('\n')[1] ?? 'null') as Record<string, unknown>,
    };
  } finally {
    stop(running);
  }
}

/** Runs `use` with a TokenManager on the profile's store, as another process of the same client. */
async function withProfileManager<T>(
  home: string,
  profile: string,
  at: TestServer,
  use: (manager: TokenManager) => Promise<T>,
): Promise<T> {
  const client = await Client.discover(at.issuer, {
    client_id: at.clients.public.client_id,
    token_endpoint_auth_method: 'none',
  });
  const store = new FileTokenStore({
    directory: join(home, 'tokens'),
    encryptionKey: storeKey,
    watch: false,
  });
  const manager = new TokenManager({ client, store, key: profile });
  try {
    return await use(manager);
  } finally {
    await manager.close();
    await store.close();
  }
}

/** What the profile holds in the store (possibly expired). */
function storedTokens(home: string, profile: string, at: TestServer = server): Promise<TokenSet | undefined> {
  return withProfileManager(home, profile, at, (manager) => manager.getTokens());
}

/** Every file under `root`, with its contents. */
async function filesUnder(root: string): Promise<Array<{ path: string; text: string }>> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return Promise.all(
    entries
      .filter((entry) => entry.isFile())
      .map(async (entry) => {
        const path = join(entry.parentPath, entry.name);
        return { path, text: await readFile(path, 'latin1') };
      }),
  );
}

/** The forms a secret could take in a file: raw, base64, base64url, percent-encoded. */
function formsOf(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  return [secret, bytes.toString('base64'), bytes.toString('base64url'), encodeURIComponent(secret)];
}

describe('tessera login --device', () => {
  it('prints the device authorization, then stores the tokens under the profile', async () => {
    const home = newHome();
    const { run, device, stored } = await login(home, ['--profile', 'work', ...publicArgs()]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(run.stdout.split('\n')).toHaveLength(3); // two JSON lines and the final newline
    expect(device).toEqual({
      event: 'device_authorization',
      verification_uri: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\//),
      verification_uri_complete: expect.stringContaining(String(device.user_code)),
      user_code: expect.any(String),
      expires_in: expect.any(Number),
    });
    expect(stored).toEqual({
      event: 'stored',
      profile: 'work',
      expires_at: expect.any(Number),
      scope: 'openid offline_access',
    });
    const tokens = await storedTokens(home, 'work');
    expect(tokens).toMatchObject({ refreshToken: expect.any(String), expiresAt: stored.expires_at });

    // config.json: the profile's settings and nothing else, readable by its owner only.
    const config = join(home, 'config.json');
    expect(JSON.parse(await readFile(config, 'utf8'))).toEqual({
      profiles: {
        work: {
          issuer: server.issuer,
          client_id: server.clients.public.client_id,
          scope: 'openid offline_access',
        },
      },
    });
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect((await stat(join(home, 'tokens'))).mode & 0o777).toBe(0o700);

    // No token, in any form, in any file of the state directory.
    const files = await filesUnder(home);
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const secret of [tokens!.accessToken, tokens!.refreshToken!, tokens!.idToken!]) {
      for (const form of formsOf(secret)) {
        for (const file of files)
          expect({ file: file.path, holds: file.text.includes(form) }).toEqual({
            file: file.path,
            holds: false,
          });
      }
    }
  });

  it('keeps a confidential client’s secret file path in the profile, never the secret', async () => {
    const home = newHome();
    const args = [
      '--profile',
      'ci',
      '--issuer',
      server.issuer,
      '--client-id',
      server.clients.basic.client_id,
    ];
    const { run } = await login(home, [...args, '--client-secret-file', secretFile, '--scope', 'openid']);
    expect(run.code).toBe(0);
    const text = await readFile(join(home, 'config.json'), 'utf8');
    expect(JSON.parse(text).profiles.ci).toEqual({
      issuer: server.issuer,
      client_id: server.clients.basic.client_id,
      client_secret_file: secretFile,
      scope: 'openid',
    });
    for (const file of await filesUnder(home)) {
      for (const form of formsOf(server.clients.basic.client_secret!)) expect(file.text).not.toContain(form);
    }
    // The profile alone is enough afterwards: the secret is read from the saved path.
    const token = await tessera(['token', '--profile', 'ci'], {
      env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
    });
    expect({ code: token.code, stderr: token.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('exits 1 with access_denied when the user refuses, storing nothing', async () => {
    const home = newHome();
    const running = startTessera(['login', '--device', '--json', '--profile', 'work', ...publicArgs()], {
      env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
    });
    try {
      const [line] = await running.waitFor(/^.*\n/);
      await server.denyDevice(String((JSON.parse(line) as { user_code: string }).user_code));
      const run = await running.done;
      expect(run.code).toBe(1);
      expect(JSON.parse(run.stderr)).toMatchObject({
        error: { code: 'OAUTH_ERROR', error: 'access_denied' },
      });
      await expect(stat(join(home, 'config.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      stop(running);
    }
  });

  it('exits 130 on SIGINT while waiting, storing nothing', async () => {
    const home = newHome();
    const running = startTessera(['login', '--device', '--profile', 'work', ...publicArgs()], {
      env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
    });
    try {
      await running.waitFor(/enter the code/);
      running.child.kill('SIGINT');
      const run = await running.done;
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 130, stderr: 'interrupted\n' });
      await expect(stat(join(home, 'config.json'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      stop(running);
    }
  });

  it.each([
    ['without --device', ['login', '--profile', 'work'], /--device/],
    ['without --profile', ['login', '--device'], /--profile/],
    ['with a bad profile name', ['login', '--device', '--profile', '../up'], /profile name/],
  ])('exits 2 %s', async (_name, args, message) => {
    const run = await tessera([...args, ...publicArgs()], {
      env: { TESSERA_HOME: newHome(), TESSERA_STORE_KEY: storeKey },
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
  });

  it('exits 2 without TESSERA_STORE_KEY and no terminal to ask a passphrase, or with a bad key', async () => {
    const args = ['login', '--device', '--profile', 'work', ...publicArgs()];
    const missing = await tessera(args, { env: { TESSERA_HOME: newHome() } });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('TESSERA_STORE_KEY');
    const bad = 'not-a-key';
    const wrong = await tessera(args, { env: { TESSERA_HOME: newHome(), TESSERA_STORE_KEY: bad } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/^error: TESSERA_STORE_KEY must be 32 bytes in base64url/);
  });
});

describe('tessera token --profile', () => {
  it("prints the profile's token without a request while it is valid", async () => {
    const home = newHome();
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const stored = await storedTokens(home, 'work');
    const before = server.stats().token;
    const env = { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey };
    const plain = await tessera(['token', '--profile', 'work'], { env });
    expect(plain).toMatchObject({ code: 0, stdout: `${stored!.accessToken}\n`, stderr: '' });
    const json = await tessera(['token', '--profile', 'work', '--json'], { env });
    expect(JSON.parse(json.stdout)).toEqual({
      access_token: stored!.accessToken,
      token_type: 'Bearer',
      expires_in: expect.any(Number),
      scope: 'openid offline_access',
    });
    expect(server.stats().token).toBe(before);

    // --profile fills in the connection flags of the other commands too.
    const discovery = await tessera(['discover', '--profile', 'work', '--json'], { env });
    expect(JSON.parse(discovery.stdout)).toMatchObject({ issuer: server.issuer });
  });

  it('refreshes a token about to expire before printing it, keeping the rotated refresh token', async () => {
    const home = newHome();
    const env = { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey };
    await login(home, ['--profile', 'short', ...publicArgs(shortLived)], { at: shortLived });
    const first = await storedTokens(home, 'short', shortLived);
    const before = shortLived.stats().token;
    // 30 s left, inside the 60 s skew: still valid, but a script should get a token that lasts.
    const run = await tessera(['token', '--profile', 'short'], { env });
    const second = await storedTokens(home, 'short', shortLived);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 0, stdout: `${second!.accessToken}\n` });
    expect(second!.accessToken).not.toBe(first!.accessToken);
    expect(second!.refreshToken).not.toBe(first!.refreshToken); // rotated, and the new one kept
    expect(shortLived.stats().token).toBe(before + 1);
  });

  it('refreshes an expired token before printing it', async () => {
    const home = newHome();
    const env = { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey };
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const login_ = await storedTokens(home, 'work');
    // The same grant's tokens, stored as expired (as another process of this client would).
    await withProfileManager(home, 'work', server, (manager) =>
      manager.storeTokens({
        access_token: login_!.accessToken,
        token_type: 'Bearer',
        expires_in: 0,
        refresh_token: login_!.refreshToken!,
      }),
    );
    const before = server.stats().token;
    const run = await tessera(['token', '--profile', 'work'], { env });
    const refreshed = await storedTokens(home, 'work');
    expect(run).toMatchObject({ code: 0, stdout: `${refreshed!.accessToken}\n`, stderr: '' });
    expect(refreshed!.accessToken).not.toBe(login_!.accessToken);
    expect(server.stats().token).toBe(before + 1);
  });

  it('exits 2 with a wrong store key before any request, printing neither key', async () => {
    const home = newHome();
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const other = randomBytes(32).toString('base64url');
    const before = server.stats().deviceAuthorization;
    for (const args of [
      ['token', '--profile', 'work'],
      ['login', '--device', '--profile', 'other', ...publicArgs()],
    ]) {
      const run = await tessera(args, { env: { TESSERA_HOME: home, TESSERA_STORE_KEY: other } });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^error: TESSERA_STORE_KEY is not the key of the token store in /);
      for (const key of [storeKey, other]) expect(run.stderr).not.toContain(key);
    }
    // Refused before the device flow began, so nothing was written under the wrong key either.
    expect(server.stats().deviceAuthorization).toBe(before);
    expect(await storedTokens(home, 'work')).toBeDefined();
  });

  it('takes the global options before the command as well as after it', async () => {
    const home = newHome();
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const stored = await storedTokens(home, 'work');
    const run = await tessera(['--profile', 'work', '--json', 'token'], {
      env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
    });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ access_token: stored!.accessToken });
  });

  it('exits 2 for an unknown profile, and refuses --scope with a profile', async () => {
    const env = { TESSERA_HOME: newHome(), TESSERA_STORE_KEY: storeKey };
    const unknown = await tessera(['token', '--profile', 'nobody'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('tessera login --device --profile nobody');
    const scoped = await tessera(['token', '--profile', 'nobody', '--scope', 'x'], { env });
    expect(scoped.code).toBe(2);
  });

  it('refuses a config.json holding a secret, naming the member', async () => {
    const home = newHome();
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const config = JSON.parse(await readFile(join(home, 'config.json'), 'utf8'));
    config.profiles.work.client_secret = 'hand-added';
    await writeFile(join(home, 'config.json'), JSON.stringify(config));
    const run = await tessera(['token', '--profile', 'work'], {
      env: { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/config\.json is not a tessera config: .*client_secret/);
    expect(run.stderr).not.toContain('hand-added');
  });

  it('uses the XDG directories without TESSERA_HOME', async () => {
    const base = newHome();
    const env = {
      HOME: join(base, 'home'),
      XDG_CONFIG_HOME: join(base, 'config'),
      XDG_STATE_HOME: join(base, 'state'),
      TESSERA_STORE_KEY: storeKey,
    };
    const running = startTessera(['login', '--device', '--json', '--profile', 'xdg', ...publicArgs()], {
      env,
    });
    try {
      const [line] = await running.waitFor(/^.*\n/);
      await server.approveDevice(String((JSON.parse(line) as { user_code: string }).user_code));
      expect((await running.done).code).toBe(0);
    } finally {
      stop(running);
    }
    expect((await stat(join(base, 'config', 'tessera', 'config.json'))).isFile()).toBe(true);
    expect((await readdir(join(base, 'state', 'tessera', 'tokens'))).length).toBeGreaterThan(0);
    await expect(stat(join(base, 'home'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await tessera(['token', '--profile', 'xdg'], { env })).code).toBe(0);
  });
});

describe('tessera logout', () => {
  it('revokes both tokens and forgets them', async () => {
    const home = newHome();
    await login(home, ['--profile', 'work', ...publicArgs()]);
    const tokens = await storedTokens(home, 'work');
    const env = { TESSERA_HOME: home, TESSERA_STORE_KEY: storeKey };
    const run = await tessera(['logout', '--profile', 'work', '--json'], { env });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(run.stdout)).toEqual({
      event: 'revoked',
      results: [
        { token_type_hint: 'refresh_token', revoked: true },
        { token_type_hint: 'access_token', revoked: true },
      ],
    });
    expect(await storedTokens(home, 'work')).toBeUndefined();
    const basic = await Client.discover(server.issuer, server.clients.basic);
    expect((await basic.tokenIntrospection(tokens!.refreshToken!)).active).toBe(false);

    // The profile is kept; its tokens are gone.
    const after = await tessera(['token', '--profile', 'work'], { env });
    expect(after.code).toBe(1);
    expect(after.stderr).toMatch(/^error: NO_TOKENS: .*\nhint: sign in first with `tessera login --device/);
    const again = await tessera(['logout', '--profile', 'work'], { env });
    expect(again).toMatchObject({ code: 0, stdout: 'profile work had no tokens\n' });
  });
});

describe('secrets', () => {
  it('never printed a token store key or a client secret', () => {
    expect(printed.length).toBeGreaterThan(20);
    for (const text of printed) {
      for (const secret of [storeKey, server.clients.basic.client_secret!]) {
        for (const form of formsOf(secret)) expect(text).not.toContain(form);
      }
    }
  });
});
