import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { FileTokenStore } from '@tessera/store-file';
import { z } from 'zod';
import { AUTH_METHODS } from './auth-methods.js';
import { UsageError } from './exit-codes.js';
import { isTerminal, type CommandContext, type Io } from './io.js';
import { readPassphrase } from './prompt.js';

/** The environment variable naming the one directory for both the config and the tokens. */
export const HOME_ENV = 'TESSERA_HOME';
/** The environment variable holding the token store's key: base64url of 32 bytes. */
export const STORE_KEY_ENV = 'TESSERA_STORE_KEY';

/** Where the command keeps its state. */
export interface StatePaths {
  /** `config.json`: the profiles, never a secret. */
  readonly configFile: string;
  /** The `FileTokenStore` directory of the profiles' tokens. */
  readonly tokensDirectory: string;
}

/**
 * `$TESSERA_HOME/config.json` and `$TESSERA_HOME/tokens`; without `TESSERA_HOME`, the XDG Base
 * Directory layout: the config under `$XDG_CONFIG_HOME/tessera` (default `~/.config`), the tokens
 * under `$XDG_STATE_HOME/tessera` (default `~/.local/state`). Relative XDG paths are ignored, as
 * the specification says.
 */
export function statePaths(env: NodeJS.ProcessEnv): StatePaths {
  const home = env[HOME_ENV];
  if (home !== undefined && home !== '') {
    return { configFile: join(home, 'config.json'), tokensDirectory: join(home, 'tokens') };
  }
  const base = (name: string, fallback: string): string => {
    const value = env[name];
    return value !== undefined && value.startsWith('/') ? value : join(env.HOME || homedir(), fallback);
  };
  return {
    configFile: join(base('XDG_CONFIG_HOME', '.config'), 'tessera', 'config.json'),
    tokensDirectory: join(base('XDG_STATE_HOME', '.local/state'), 'tessera', 'tokens'),
  };
}

/** A profile name: also the key of its tokens in the store. */
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * A profile: how to reach the server as one client. No secret: a confidential client's secret is
 * read again each time, from the file named here or the usual sources.
 */
const profileSchema = z.strictObject({
  issuer: z.url(),
  client_id: z.string().min(1),
  auth_method: z.enum(AUTH_METHODS).optional(),
  /** The path of the file the client secret is read from (the path, never the secret). */
  client_secret_file: z.string().min(1).optional(),
  /** The scope `login` asked for. */
  scope: z.string().optional(),
});

/** One saved profile of `config.json`. */
export type Profile = z.infer<typeof profileSchema>;

// Strict objects: an unknown member (a hand-added `client_secret`, say) is refused, not kept.
const configSchema = z.strictObject({
  profiles: z.record(z.string().regex(PROFILE_NAME), profileSchema).default({}),
});

type Config = z.infer<typeof configSchema>;

/** @throws UsageError when `name` cannot be a profile name. */
export function checkProfileName(name: string): string {
  if (!PROFILE_NAME.test(name)) {
    throw new UsageError(
      `--profile ${JSON.stringify(name)}: a profile name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

async function readConfig(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { profiles: {} };
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${path} is not JSON; fix or remove it`);
  }
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`${path} is not a tessera config: ${issue.path.join('.') || '(top)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** The saved profile `name`, or `undefined`. */
export async function loadProfile(env: NodeJS.ProcessEnv, name: string): Promise<Profile | undefined> {
  const { profiles } = await readConfig(statePaths(env).configFile);
  return Object.hasOwn(profiles, name) ? profiles[name] : undefined;
}

/**
 * Saves profile `name` into `config.json`, keeping the others: written to a temporary file
 * (mode 0600) and renamed over the old one, so a crash leaves the old or the new file, whole.
 */
export async function saveProfile(env: NodeJS.ProcessEnv, name: string, profile: Profile): Promise<void> {
  const path = statePaths(env).configFile;
  const config = await readConfig(path);
  config.profiles[name] = profileSchema.parse(profile);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600, flush: true });
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * The profiles' `FileTokenStore`, encrypted with `TESSERA_STORE_KEY` or, without it, a passphrase
 * asked on the terminal (twice when the store is new), which `signal` stops. A key or passphrase
 * that does not open an existing store is refused here, before anything is written with it.
 *
 * @throws UsageError when neither is available, or `TESSERA_STORE_KEY` is not 32 bytes of base64url.
 */
export async function openTokenStore(context: CommandContext, signal?: AbortSignal): Promise<FileTokenStore> {
  const { io } = context;
  const { FileTokenStore } = await import('@tessera/store-file');
  const directory = statePaths(io.env).tokensDirectory;
  const key = io.env[STORE_KEY_ENV];
  if (key !== undefined && key !== '') {
    context.secrets.add(key);
    if (!/^[\w-]{43}$/.test(key)) {
      throw new UsageError(`${STORE_KEY_ENV} must be 32 bytes in base64url (43 characters)`);
    }
    return checkedStore(new FileTokenStore({ directory, encryptionKey: key }), `${STORE_KEY_ENV} is not`);
  }
  const passphrase = await askPassphrase(io, directory, signal);
  context.secrets.add(passphrase);
  return checkedStore(new FileTokenStore({ directory, passphrase }), 'the passphrase is not');
}

/**
 * The store key of the entry that proves the key: written when a store is first opened, read on
 * every later opening, so a mistyped passphrase is an error at once, not tokens written under a
 * second key that later commands cannot read.
 */
const KEY_CHECK = 'tessera-cli:key-check';

async function checkedStore(store: FileTokenStore, wrong: string): Promise<FileTokenStore> {
  const { TokenStoreError } = await import('@tessera/core');
  try {
    const check = await store.get(KEY_CHECK);
    if (check === undefined) await store.set(KEY_CHECK, { accessToken: 'key-check', tokenType: 'none' });
    return store;
  } catch (error) {
    await store.close();
    if (error instanceof TokenStoreError && /encrypted with another key/.test(error.message)) {
      throw new UsageError(`${wrong} the key of the token store in ${store.directory}`);
    }
    throw error;
  }
}

/** As `FileTokenStore` requires. */
const MIN_PASSPHRASE_LENGTH = 8;

async function askPassphrase(io: Io, directory: string, signal: AbortSignal | undefined): Promise<string> {
  if (io.stdin.readableEnded === true) {
    throw new UsageError(
      `standard input was read to its end (--client-secret-stdin): set ${STORE_KEY_ENV} instead of a passphrase`,
    );
  }
  if (!isTerminal(io.stdin) || !isTerminal(io.stderr)) {
    throw new UsageError(
      `the token store needs ${STORE_KEY_ENV} (32 bytes in base64url) or a terminal to ask its passphrase`,
    );
  }
  const isNew = !(await exists(directory));
  const passphrase = await readPassphrase(
    io,
    isNew ? 'New token store passphrase: ' : 'Token store passphrase: ',
    signal,
  );
  if ([...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw new UsageError(`a token store passphrase has at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  if (isNew && (await readPassphrase(io, 'Repeat the passphrase: ', signal)) !== passphrase) {
    throw new UsageError('the passphrases differ');
  }
  return passphrase;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
