import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startTestServer, type TestServer } from '@tessera/testing';
import { assertBuilt, BIN, startTessera, stop, type Running, type StartOptions } from './tessera-process.js';

// What a person at a terminal sees: the command runs in a real pseudo-terminal, made by util-linux
// `script` (Debian's essential bsdutils), which copies our writes to the terminal's input, so a
// written \u0003 is a real Ctrl-C: the terminal sends SIGINT to the command.

const CTRL_C = '\u0003';
/** An SGR escape sequence (colour, bold, ...). */
const SGR = new RegExp(`${String.fromCharCode(0x1b)}\\[\\d+(;\\d+)*m`);

let server: TestServer;
let directory: string;

beforeAll(async () => {
  assertBuilt();
  execFileSync('script', ['--version']); // fails the suite, clearly, where `script` is missing
  server = await startTestServer({ pollIntervalSeconds: 0 });
  directory = await mkdtemp(join(tmpdir(), 'tessera-terminal-'));
});

afterAll(async () => {
  await server?.close();
  if (directory !== undefined) await rm(directory, { recursive: true, force: true });
});

/** A shell word. */
function quote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** `tessera args` in a pseudo-terminal; its output (stdout and stderr together) on `stdout`. */
function inTerminal(args: readonly string[], options: StartOptions = {}): Running {
  const command = [process.execPath, BIN, ...args].map(quote).join(' ');
  return startTessera(['-q', '-e', '-c', command, '/dev/null'], {
    ...options,
    argv0: ['script'],
    keepStdinOpen: true,
    env: { TERM: 'xterm-256color', COLUMNS: '100', ...options.env },
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const publicArgs = (): string[] => [
  '--issuer',
  server.issuer,
  '--client-id',
  server.clients.public.client_id,
];

describe('tessera login --device on a terminal', () => {
  it('draws a QR code and a live countdown in colour, and Ctrl-C exits 130', async () => {
    const running = inTerminal(['login', '--device', '--profile', 'tty', ...publicArgs()], {
      env: {
        TESSERA_HOME: join(directory, 'countdown'),
        TESSERA_STORE_KEY: randomBytes(32).toString('base64url'),
        NO_COLOR: undefined,
      },
    });
    try {
      const [, first] = await running.waitFor(/expires in (\d+:\d\d)/);
      // The countdown moves: a later drawing shows another time.
      await running.waitFor(new RegExp(`expires in (?!${escapeRegExp(first!)})\\d+:\\d\\d`));
      running.child.stdin.write(CTRL_C);
      const run = await running.done;
      expect(run.code).toBe(130);
      expect(run.stdout).toMatch(/To sign in, open .*http:\/\/127\.0\.0\.1:\d+\//);
      expect(run.stdout).toMatch(/[▀▄█]{10}/); // the QR code
      expect(run.stdout).toMatch(SGR); // colour on a terminal without NO_COLOR
      expect(run.stdout).toMatch(/interrupted/);
    } finally {
      stop(running);
    }
  });

  it('asks a new store passphrase twice without echoing it, and nothing is coloured with NO_COLOR', async () => {
    const home = join(directory, 'passphrase');
    const passphrase = 'correct horse battery staple';
    const running = inTerminal(['login', '--device', '--profile', 'tty', ...publicArgs()], {
      env: { TESSERA_HOME: home, NO_COLOR: '1' },
    });
    let token: Running | undefined;
    let wrong: Running | undefined;
    try {
      await running.waitFor(/New token store passphrase: /);
      running.child.stdin.write(`${passphrase}\r`);
      await running.waitFor(/Repeat the passphrase: /);
      running.child.stdin.write(`${passphrase}\r`);
      const [, userCode] = await running.waitFor(/enter the code (\S+)/);
      await server.approveDevice(userCode!);
      const run = await running.done;
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/signed in: profile tty, access token valid until \d{4}-/);
      expect(run.stdout).not.toContain(passphrase);
      expect(run.stdout).not.toMatch(SGR);

      token = inTerminal(['token', '--profile', 'tty'], { env: { TESSERA_HOME: home } });
      await token.waitFor(/Token store passphrase: /);
      token.child.stdin.write(`${passphrase}\r`);
      const printed = await token.done;
      expect(printed.code).toBe(0);
      expect(printed.stdout).toMatch(/passphrase: \r?\n[\w-]{20,}\r?\n$/);

      // A mistyped passphrase is refused at once, not used to write tokens no one can read.
      wrong = inTerminal(['token', '--profile', 'tty'], { env: { TESSERA_HOME: home } });
      await wrong.waitFor(/Token store passphrase: /);
      wrong.child.stdin.write('correct horse battery stapler\r');
      const refused = await wrong.done;
      expect(refused.code).toBe(2);
      expect(refused.stdout).toMatch(/the passphrase is not the key of the token store/);
    } finally {
      stop(running);
      stop(token);
      stop(wrong);
    }
  });

  it('refuses a passphrase shorter than 8 characters', async () => {
    const running = inTerminal(['login', '--device', '--profile', 'tty', ...publicArgs()], {
      env: { TESSERA_HOME: join(directory, 'short') },
    });
    try {
      await running.waitFor(/passphrase: /);
      running.child.stdin.write('short\r');
      const run = await running.done;
      expect(run.code).toBe(2);
      expect(run.stdout).toMatch(/at least 8 characters/);
    } finally {
      stop(running);
    }
  });

  it('aborts with 130 on Ctrl-C at the passphrase prompt', async () => {
    const running = inTerminal(['login', '--device', '--profile', 'tty', ...publicArgs()], {
      env: { TESSERA_HOME: join(directory, 'abort') },
    });
    try {
      await running.waitFor(/passphrase: /);
      running.child.stdin.write(CTRL_C);
      expect((await running.done).code).toBe(130);
    } finally {
      stop(running);
    }
  });
});

describe('tessera tokens list on a terminal', () => {
  it('shows progress while the listing loads, then the table', async () => {
    const user = await server.issueUserTokens('basic', { accountId: 'hana' });
    const secretFile = join(directory, 'admin-secret');
    await writeFile(secretFile, server.clients.admin.client_secret!, { mode: 0o600 });
    const running = inTerminal([
      'tokens',
      'list',
      '--token',
      user.access_token,
      '--issuer',
      server.issuer,
      '--client-id',
      server.clients.admin.client_id,
      '--client-secret-file',
      secretFile,
    ]);
    try {
      const run = await running.done;
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] loading the listing…/);
      expect(run.stdout).toMatch(/user hana\r?\n/);
      expect(run.stdout).toMatch(/access_token/);
    } finally {
      stop(running);
    }
  });
});
