/**
 * What is particular to FileTokenStore: options, file modes, the directory checks, encryption at
 * rest (no token in any form on disk), wrong keys and changed files, passphrases, stray temp files,
 * close(). Real files in a temp directory.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes, createSecretKey, generateKeyPairSync } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { ConfigurationError, TokenStoreError } from '@tessera/core';
import type { TokenSet } from '@tessera/core';
import { FileTokenStore } from '@tessera/store-file';

const root = mkdtempSync(join(tmpdir(), 'tessera-file-store-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let directories = 0;
const newDirectory = () => join(root, `d${++directories}`);
const encryptionKey = randomBytes(32);
const KEY = 'user:alice@example.com';
const TOKENS: TokenSet = {
  accessToken: 'at-very-secret-0123456789',
  tokenType: 'Bearer',
  refreshToken: 'rt-very-secret-9876543210',
  idToken: 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.',
  expiresAt: 1_900_000_000,
};

/** Every form a secret could take on disk or in a message. */
function forms(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    Buffer.from(secret).toString('hex'),
    secret.slice(0, 12),
  ];
}

function allFiles(directory: string): string {
  return readdirSync(directory)
    .map((file) => file + readFileSync(join(directory, file), 'latin1'))
    .join('\n');
}

const caught = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  );

describe('options', () => {
  it.each([
    [
      { directory: '/tmp/x' },
      /exactly one of the options encryptionKey \(32 bytes\), passphrase, or plaintext: true \(got none\)/,
    ],
    [{ directory: '/tmp/x', plaintext: true, passphrase: 'long enough phrase' }, /got more than one/],
    [
      { directory: '/tmp/x', encryptionKey: randomBytes(16) },
      /option encryptionKey must be 32 bytes \(A256GCM\), got 16/,
    ],
    [{ directory: '/tmp/x', encryptionKey: 'not base64url!' }, /option encryptionKey must be base64url/],
    [
      { directory: '/tmp/x', encryptionKey: generateKeyPairSync('ed25519').privateKey },
      /must be a secret KeyObject/,
    ],
    [{ directory: '/tmp/x', plaintext: false }, /option plaintext must be true/],
    [
      { directory: '/tmp/x', passphrase: 'short' },
      /option passphrase must be a string of at least 8 characters/,
    ],
    [{ directory: '', plaintext: true }, /option directory must be a non-empty path/],
    [{ directory: '/tmp/x', plaintext: true, watch: 'yes' }, /option watch must be a boolean/],
  ])('refuses %p with a ConfigurationError naming the options', (options, message) => {
    let error: unknown;
    try {
      new FileTokenStore(options as never);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as Error).message).toMatch(message);
  });

  it('accepts a key as bytes, as base64url and as a secret KeyObject: all three read each other', async () => {
    const directory = newDirectory();
    const stores = [
      new FileTokenStore({ directory, encryptionKey }),
      new FileTokenStore({ directory, encryptionKey: encryptionKey.toString('base64url') }),
      new FileTokenStore({ directory, encryptionKey: createSecretKey(encryptionKey) }),
    ];
    await stores[0]!.set(KEY, TOKENS);
    for (const store of stores) expect(await store.get(KEY)).toEqual(TOKENS);
    await Promise.all(stores.map((store) => store.close()));
  });

  it('touches nothing on disk until the first call', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey });
    expect(() => statSync(directory)).toThrow();
    expect(await store.get(KEY)).toBeUndefined();
    expect(statSync(directory).isDirectory()).toBe(true);
    await store.close();
  });
});

describe('files on disk', () => {
  it('creates the directory 0700 and each token file 0600, named by a hash of the key', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey });
    await store.set(KEY, TOKENS);
    expect(statSync(directory).mode & 0o777).toBe(0o700);
    const files = readdirSync(directory);
    expect(files).toEqual([expect.stringMatching(/^[0-9a-f]{64}\.token$/)]);
    expect(statSync(join(directory, files[0]!)).mode & 0o777).toBe(0o600);
    expect(files.join()).not.toContain('alice');
    await store.close();
  });

  it('never holds a token value, the key or any encoding of them, encrypted', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey });
    await store.set(KEY, TOKENS);
    const lock = await store.lock(KEY, { ttlMs: 10_000, waitMs: 0 });
    const disk = allFiles(directory);
    for (const secret of [TOKENS.accessToken, TOKENS.refreshToken!, TOKENS.idToken!, KEY]) {
      for (const form of forms(secret)) expect(disk).not.toContain(form);
    }
    await lock.release();
    await store.close();
  });

  it('holds them readable in plaintext mode (what plaintext: true means)', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, plaintext: true });
    await store.set(KEY, TOKENS);
    expect(allFiles(directory)).toContain(TOKENS.accessToken);
    await store.close();
  });

  it('refuses a directory writable by group or others, and one of another user', async () => {
    const open = newDirectory();
    mkdirSync(open);
    chmodSync(open, 0o777);
    const error = await caught(new FileTokenStore({ directory: open, plaintext: true }).get(KEY));
    expect(error).toBeInstanceOf(TokenStoreError);
    expect((error as Error).message).toMatch(/is writable by group or others \(mode 777\); chmod 700 it/);

    if (process.getuid?.() === 0) {
      const theirs = newDirectory();
      mkdirSync(theirs, { mode: 0o700 });
      chownSync(theirs, 12_345, 12_345);
      const refused = await caught(new FileTokenStore({ directory: theirs, plaintext: true }).get(KEY));
      expect((refused as Error).message).toMatch(/belongs to another user \(uid 12345\)/);
    }
  });

  it('removes temp files of writers that died, and keeps those of a live writer', async () => {
    const directory = newDirectory();
    mkdirSync(directory, { mode: 0o700 });
    const dead = spawnSync(process.execPath, ['-e', '']).pid;
    const deadTemp = `.abc.token.${dead}.${'0'.repeat(32)}.tmp`;
    const liveTemp = `.abc.token.${process.pid}.${'1'.repeat(32)}.tmp`;
    writeFileSync(join(directory, deadTemp), 'half a write');
    writeFileSync(join(directory, liveTemp), 'a write in progress');
    const store = new FileTokenStore({ directory, encryptionKey });
    await store.get(KEY);
    expect(readdirSync(directory).sort()).toEqual([liveTemp]);
    await store.close();
  });
});

describe('wrong keys and changed files', () => {
  it('a wrong key is a TokenStoreError saying so, never garbage and never "no tokens"', async () => {
    const directory = newDirectory();
    const writer = new FileTokenStore({ directory, encryptionKey });
    await writer.set(KEY, TOKENS);
    const other = new FileTokenStore({ directory, encryptionKey: randomBytes(32) });
    const error = await caught(other.get(KEY));
    expect(error).toBeInstanceOf(TokenStoreError);
    expect(error).toMatchObject({ operation: 'get' });
    expect((error as Error).message).toMatch(
      /was encrypted with another key \(kid "tessera-[\w-]+"; this store's key is tessera-/,
    );
    await Promise.all([writer.close(), other.close()]);
  });

  it('a changed file is a TokenStoreError, and a plaintext or encrypted file read in the other mode too', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey });
    await store.set(KEY, TOKENS);
    const [file] = readdirSync(directory);
    const path = join(directory, file!);
    const jwe = readFileSync(path, 'utf8');
    const parts = jwe.split('.');
    const ciphertext = Buffer.from(parts[3]!, 'base64url');
    ciphertext[0] = ciphertext[0]! ^ 1;
    parts[3] = ciphertext.toString('base64url');
    writeFileSync(path, parts.join('.'));
    const changed = await caught(store.get(KEY));
    expect(changed).toBeInstanceOf(TokenStoreError);
    expect((changed as Error).message).toMatch(/cannot be decrypted: it was changed or damaged/);

    writeFileSync(path, jwe);
    const plain = new FileTokenStore({ directory, plaintext: true });
    expect(((await caught(plain.get(KEY))) as Error).message).toMatch(
      /is encrypted, but this store was opened with plaintext: true/,
    );
    await plain.set('other', TOKENS);
    expect(((await caught(store.get('other'))) as Error).message).toMatch(
      /is not encrypted, but this store has an encryption key/,
    );
    await Promise.all([store.close(), plain.close()]);
  });

  it("a file holding another key's token set (copied over) is refused", async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, plaintext: true });
    await store.set('a', TOKENS);
    await store.set('b', { accessToken: 'b', tokenType: 'Bearer' });
    const files = readdirSync(directory);
    const contents = files.map((file) => readFileSync(join(directory, file)));
    writeFileSync(join(directory, files[0]!), contents[1]!);
    writeFileSync(join(directory, files[1]!), contents[0]!);
    expect(((await caught(store.get('a'))) as Error).message).toMatch(/holds another key's token set/);
    await store.close();
  });

  it('errors carry no token value and no key', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey });
    await store.set(KEY, TOKENS);
    const other = new FileTokenStore({ directory, encryptionKey: randomBytes(32) });
    const errors = [await caught(other.get(KEY)), await caught(other.setIfVersion(KEY, TOKENS, 1))];
    await store.close();
    errors.push(await caught(store.set(KEY, TOKENS)));
    const text = errors
      .map((error) => `${String(error)} ${JSON.stringify(error)} ${inspect(error, { depth: 5 })}`)
      .join('\n');
    for (const secret of [TOKENS.accessToken, TOKENS.refreshToken!, KEY]) {
      for (const form of forms(secret)) expect(text).not.toContain(form);
    }
    await other.close();
  });
});

describe('passphrases', () => {
  it('derive the same key across instances (the salt is in the directory); another passphrase is a wrong key', async () => {
    const directory = newDirectory();
    const first = new FileTokenStore({ directory, passphrase: 'correct horse battery staple' });
    await first.set(KEY, TOKENS);
    await first.close();
    expect(readFileSync(join(directory, '.salt'), 'utf8')).toMatch(/^[0-9a-f]{32}$/);
    const again = new FileTokenStore({ directory, passphrase: 'correct horse battery staple' });
    expect(await again.get(KEY)).toEqual(TOKENS);
    const wrong = new FileTokenStore({ directory, passphrase: 'incorrect horse battery staple' });
    expect(((await caught(wrong.get(KEY))) as Error).message).toMatch(/was encrypted with another key/);
    expect(allFiles(directory)).not.toContain('horse');
    await Promise.all([again.close(), wrong.close()]);
  });
});

describe('close()', () => {
  it('releases the locks it holds, so another process (store) takes them at once', async () => {
    const directory = newDirectory();
    const holder = new FileTokenStore({ directory, encryptionKey });
    const other = new FileTokenStore({ directory, encryptionKey });
    await holder.lock(KEY, { ttlMs: 60_000, waitMs: 0 });
    await expect(other.lock(KEY, { ttlMs: 60_000, waitMs: 0 })).rejects.toBeInstanceOf(TokenStoreError);
    await holder.close();
    const lock = await other.lock(KEY, { ttlMs: 60_000, waitMs: 0 });
    await lock.release();
    expect(readdirSync(directory).filter((file) => file.endsWith('.lock'))).toEqual([]);
    await other.close();
  });

  it('without fs.watch (watch: false) offers no subscribe(), and locks still work by backoff', async () => {
    const directory = newDirectory();
    const store = new FileTokenStore({ directory, encryptionKey, watch: false });
    expect(store.subscribe).toBeUndefined();
    const first = await store.lock(KEY, { ttlMs: 60_000, waitMs: 0 });
    const second = store.lock(KEY, { ttlMs: 60_000, waitMs: 5_000 });
    await first.release();
    await (await second).release();
    await store.close();
  });

  it('keeps a process alive while it waits for a lock, until the answer (regression: it exited, code 13)', async () => {
    const directory = newDirectory();
    const holder = new FileTokenStore({ directory, encryptionKey });
    const held = await holder.lock('shared', { ttlMs: 60_000, waitMs: 0 });
    const waiter = fileURLToPath(new URL('./fixtures/lock-waiter.ts', import.meta.url));
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [
          '--conditions=tessera-source',
          '--import',
          'tsx',
          waiter,
          directory,
          encryptionKey.toString('base64url'),
        ],
        {
          cwd: fileURLToPath(new URL('../../..', import.meta.url)),
          timeout: 30_000,
          env: { ...process.env, NODE_OPTIONS: '' },
        },
        (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(output.trim()).toBe('refused TokenStoreError');
    expect(code).toBe(0);
    await held.release();
    await holder.close();
  }, 40_000);
});
