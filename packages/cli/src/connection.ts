import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Client, ClientMetadata } from '@tessera/core';
import type { AUTH_METHODS } from './auth-methods.js';
import { UsageError } from './exit-codes.js';
import type { Profile } from './state.js';
import type { CommandContext, Io } from './io.js';

/** The connection flags every command takes (commander's camelCase option names). */
export interface ConnectionOptions {
  issuer?: string;
  clientId?: string;
  clientSecretFile?: string;
  clientSecretStdin?: boolean;
  authMethod?: (typeof AUTH_METHODS)[number];
  /** A saved profile: its settings fill in the flags not given. */
  profile?: string;
  json?: boolean;
}

/** The environment variable a secret may come from. */
export const SECRET_ENV = 'TESSERA_CLIENT_SECRET';

/** The `client_id` sent when a command needs only the server's metadata and none was given. */
const PLACEHOLDER_CLIENT_ID = 'tessera-cli';

/** One trailing line break (as `echo` and editors leave) is not part of a secret. */
function withoutTrailingNewline(text: string): string {
  return text.replace(/\r?\n$/, '');
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The client secret from `--client-secret-file`, `--client-secret-stdin` or `TESSERA_CLIENT_SECRET`,
 * in that order; `undefined` when none is given. Never from a flag's value, so it stays out of
 * shell history and `ps`.
 *
 * @throws UsageError when both the file and stdin are named, or the secret found is empty.
 */
export async function readClientSecret(options: ConnectionOptions, io: Io): Promise<string | undefined> {
  if (options.clientSecretFile !== undefined && options.clientSecretStdin === true) {
    throw new UsageError('--client-secret-file and --client-secret-stdin cannot be used together');
  }
  let secret: string | undefined;
  let source: string;
  if (options.clientSecretFile !== undefined) {
    source = `--client-secret-file ${options.clientSecretFile}`;
    secret = withoutTrailingNewline(await readFile(options.clientSecretFile, 'utf8'));
  } else if (options.clientSecretStdin === true) {
    source = '--client-secret-stdin';
    secret = withoutTrailingNewline(await readAll(io.stdin));
  } else {
    source = SECRET_ENV;
    secret = io.env[SECRET_ENV];
    if (secret === undefined) return undefined;
  }
  if (secret === '') throw new UsageError(`the client secret from ${source} is empty`);
  return secret;
}

/**
 * The flags, with the settings of `--profile` (when given) filling in those left out. A secret
 * file saved in the profile is used only when no other secret source is given.
 *
 * @param options.allowNew - a profile not saved yet is fine (`login` saves it); otherwise an error.
 * @throws UsageError for a bad profile name, or an unknown profile without `allowNew`.
 */
export async function resolveConnection(
  options: ConnectionOptions,
  env: NodeJS.ProcessEnv,
  { allowNew = false }: { allowNew?: boolean } = {},
): Promise<ConnectionOptions> {
  if (options.profile === undefined) return options;
  // Loaded here, not at startup: only commands that use a profile read the config.
  const { checkProfileName, loadProfile } = await import('./state.js');
  const profile = await loadProfile(env, checkProfileName(options.profile));
  if (profile === undefined) {
    if (allowNew) return options;
    throw new UsageError(
      `there is no profile ${JSON.stringify(options.profile)}: create it with \`tessera login --device --profile ${options.profile} --issuer <url> --client-id <id>\``,
    );
  }
  const otherSecretSource =
    options.clientSecretFile !== undefined ||
    options.clientSecretStdin === true ||
    env[SECRET_ENV] !== undefined;
  return {
    ...options,
    issuer: options.issuer ?? profile.issuer,
    clientId: options.clientId ?? profile.client_id,
    authMethod: options.authMethod ?? profile.auth_method,
    clientSecretFile: otherSecretSource ? options.clientSecretFile : profile.client_secret_file,
  };
}

/** A profile's record of these options: the secret file's absolute path, never the secret. */
export function profileOf(options: ConnectionOptions, scope: string | undefined): Profile {
  return {
    issuer: requireIssuer(options),
    client_id: requireClientId(options),
    ...(options.authMethod === undefined ? {} : { auth_method: options.authMethod }),
    ...(options.clientSecretFile === undefined
      ? {}
      : { client_secret_file: resolve(options.clientSecretFile) }),
    ...(scope === undefined ? {} : { scope }),
  };
}

function requireClientId(options: ConnectionOptions): string {
  if (options.clientId === undefined) throw new UsageError('--client-id <id> is required');
  return options.clientId;
}

function requireIssuer(options: ConnectionOptions): string {
  if (options.issuer === undefined) throw new UsageError('--issuer <url> is required');
  return options.issuer;
}

/**
 * `@tessera/core`, loaded on first use: `tessera --help` and usage errors then start without it.
 */
async function loadClient(): Promise<typeof Client> {
  return (await import('@tessera/core')).Client;
}

/** Discovers the server with a placeholder public client: enough to read its metadata. */
export async function discoverServer(options: ConnectionOptions, env: NodeJS.ProcessEnv): Promise<Client> {
  const resolved = await resolveConnection(options, env);
  const Client = await loadClient();
  return Client.discover(requireIssuer(resolved), {
    client_id: resolved.clientId ?? PLACEHOLDER_CLIENT_ID,
    token_endpoint_auth_method: 'none',
  });
}

/**
 * Discovers the server and returns a client authenticated as the flags say. Without
 * `--auth-method`, a client with a secret uses the SDK's default and one without uses `none`.
 *
 * The secret is added to `context.secrets`, so error output can be scrubbed of it. With
 * `--profile`, the profile's settings fill in the flags not given (see {@link resolveConnection}).
 *
 * @throws UsageError without `--issuer` or `--client-id`, or when the secret sources conflict.
 */
export async function connect(given: ConnectionOptions, context: CommandContext): Promise<Client> {
  const options = await resolveConnection(given, context.io.env);
  const issuer = requireIssuer(options);
  requireClientId(options);
  const secret = await readClientSecret(options, context.io);
  const metadata: ClientMetadata = { client_id: requireClientId(options) };
  if (secret !== undefined) {
    context.secrets.add(secret);
    metadata.client_secret = secret;
  }
  const method = options.authMethod ?? (secret === undefined ? 'none' : undefined);
  if (method !== undefined) metadata.token_endpoint_auth_method = method;
  const Client = await loadClient();
  return Client.discover(issuer, metadata);
}
