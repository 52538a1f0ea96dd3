import { readFile } from 'node:fs/promises';
import type { Client, ClientAuthMethod, ClientMetadata } from '@tessera/core';
import { UsageError } from './exit-codes.js';
import type { CommandContext, Io } from './io.js';

/** The connection flags every command takes (commander's camelCase option names). */
export interface ConnectionOptions {
  issuer?: string;
  clientId?: string;
  clientSecretFile?: string;
  clientSecretStdin?: boolean;
  authMethod?: ClientAuthMethod;
  json?: boolean;
}

/** The methods `--auth-method` accepts: those that need nothing but a client id and a secret. */
export const AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic',
  'client_secret_post',
  'client_secret_jwt',
  'none',
];

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
export async function discoverServer(options: ConnectionOptions): Promise<Client> {
  const Client = await loadClient();
  return Client.discover(requireIssuer(options), {
    client_id: options.clientId ?? PLACEHOLDER_CLIENT_ID,
    token_endpoint_auth_method: 'none',
  });
}

/**
 * Discovers the server and returns a client authenticated as the flags say. Without
 * `--auth-method`, a client with a secret uses the SDK's default and one without uses `none`.
 *
 * The secret is added to `context.secrets`, so error output can be scrubbed of it.
 *
 * @throws UsageError without `--issuer` or `--client-id`, or when the secret sources conflict.
 */
export async function connect(options: ConnectionOptions, context: CommandContext): Promise<Client> {
  const issuer = requireIssuer(options);
  if (options.clientId === undefined) throw new UsageError('--client-id <id> is required');
  const secret = await readClientSecret(options, context.io);
  const metadata: ClientMetadata = { client_id: options.clientId };
  if (secret !== undefined) {
    context.secrets.add(secret);
    metadata.client_secret = secret;
  }
  const method = options.authMethod ?? (secret === undefined ? 'none' : undefined);
  if (method !== undefined) metadata.token_endpoint_auth_method = method;
  const Client = await loadClient();
  return Client.discover(issuer, metadata);
}
