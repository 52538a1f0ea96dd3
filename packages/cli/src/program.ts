import { createRequire } from 'node:module';
import { Command, CommanderError, Option } from 'commander';
import { devServerCommand } from './commands/dev-server.js';
import { discoverCommand } from './commands/discover.js';
import { introspectCommand } from './commands/introspect.js';
import { loginCommand } from './commands/login.js';
import { logoutCommand } from './commands/logout.js';
import { revokeCommand } from './commands/revoke.js';
import { tokenCommand } from './commands/token.js';
import { tokensCommand } from './commands/tokens.js';
import { AUTH_METHODS } from './auth-methods.js';
import { SECRET_ENV } from './connection.js';
import {
  EXIT_FAILURE,
  EXIT_INTERRUPTED,
  EXIT_SUCCESS,
  EXIT_USAGE,
  InterruptedError,
  UsageError,
} from './exit-codes.js';
import type { CommandContext, Io } from './io.js';
import { coloursFor } from './output.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

const HELP_HINT = '(add --help for usage)';

/**
 * Whether the command line tries to pass the secret as a flag. Checked before commander parses, so
 * that its "unknown option '--client-secret=...'" message cannot echo the value.
 */
function passesSecretAsFlag(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some(
    (arg) => arg === '--client-secret' || arg.startsWith('--client-secret='),
  );
}

/** The text with every known secret (raw, percent-, form- or JSON-encoded) replaced by `[redacted]`. */
function scrub(text: string, secrets: ReadonlySet<string>): string {
  let scrubbed = text;
  for (const secret of secrets) {
    for (const form of new Set([
      secret,
      encodeURIComponent(secret),
      new URLSearchParams({ s: secret }).toString().slice(2),
      JSON.stringify(secret).slice(1, -1), // as --json error lines escape it
    ])) {
      scrubbed = scrubbed.split(form).join('[redacted]');
    }
  }
  return scrubbed;
}

function createProgram(context: CommandContext): Command {
  const { io } = context;
  const program = new Command('tessera')
    .description('OAuth 2.0 / OpenID Connect from the terminal: discovery, tokens, introspection, revocation')
    .version(version)
    .option('--issuer <url>', 'the authorization server (its issuer identifier)')
    .option('--client-id <id>', 'the client identifier')
    .option('--client-secret-file <path>', 'read the client secret from this file')
    .option('--client-secret-stdin', 'read the client secret from standard input')
    .addOption(
      new Option('--auth-method <method>', 'client authentication at the server').choices(AUTH_METHODS),
    )
    .option('--profile <name>', 'a saved set of these connection settings (login saves it); its tokens too')
    .option('--json', 'print one JSON object per line on stdout, nothing else')
    .addHelpText(
      'after',
      `\nThe client secret may also come from ${SECRET_ENV}; it is never accepted as a flag.\n` +
        'Profiles live in $TESSERA_HOME/config.json (default $XDG_CONFIG_HOME/tessera), their tokens\n' +
        'encrypted in $TESSERA_HOME/tokens (default $XDG_STATE_HOME/tessera/tokens) with TESSERA_STORE_KEY\n' +
        '(32 bytes in base64url) or a passphrase asked on the terminal.\n' +
        'Exit codes: 0 success, 1 failure, 2 usage error, 3 inactive token (introspect), 130 interrupted.',
    )
    .exitOverride()
    .showHelpAfterError(HELP_HINT)
    .configureHelp({ showGlobalOptions: true })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(scrub(text, context.secrets)),
    });
  for (const command of [
    devServerCommand(context),
    discoverCommand(context),
    tokenCommand(context),
    introspectCommand(context),
    revokeCommand(context),
    tokensCommand(context),
    loginCommand(context),
    logoutCommand(context),
  ]) {
    program.addCommand(command.copyInheritedSettings(program));
    for (const sub of command.commands) sub.copyInheritedSettings(command); // e.g. tokens list
  }
  return program;
}

async function reportFailure(error: unknown, context: CommandContext, json: boolean): Promise<void> {
  // Loaded here, not at startup (see connection.ts); a failure past parsing has usually loaded it.
  const { TesseraError } = await import('@tessera/core');
  const write = (text: string): void => {
    context.io.stderr.write(`${scrub(text, context.secrets)}\n`);
  };
  const prefix = coloursFor(context.io.stderr, context.io.env).red('error:');
  if (error instanceof TesseraError) {
    write(json ? JSON.stringify({ error: error.toJSON() }) : `${prefix} ${error.code}: ${error.message}`);
    if (!json && error.code === 'NO_TOKENS')
      write('hint: sign in first with `tessera login --device --profile <name>`');
  } else {
    const message = error instanceof Error ? error.message : String(error);
    write(json ? JSON.stringify({ error: { code: 'CLI_ERROR', message } }) : `${prefix} ${message}`);
  }
}

/**
 * Runs the `tessera` command line (without `node` and the script) and resolves to the exit code.
 * Never rejects: every failure is reported on `io.stderr` and mapped to an exit code.
 */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const context: CommandContext = { io, secrets: new Set(), exitCode: EXIT_SUCCESS };
  if (passesSecretAsFlag(argv)) {
    io.stderr.write(
      `error: --client-secret is not accepted: use --client-secret-file, --client-secret-stdin or ${SECRET_ENV}\n`,
    );
    return EXIT_USAGE;
  }
  const program = createProgram(context);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return context.exitCode;
  } catch (error) {
    // Commander has already written its message (help, version or a usage error).
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT_SUCCESS : EXIT_USAGE;
    if (error instanceof InterruptedError) {
      io.stderr.write('interrupted\n');
      return EXIT_INTERRUPTED;
    }
    if (error instanceof UsageError) {
      io.stderr.write(`error: ${scrub(error.message, context.secrets)}\n${HELP_HINT}\n`);
      return EXIT_USAGE;
    }
    await reportFailure(error, context, program.opts<{ json?: boolean }>().json === true);
    return EXIT_FAILURE;
  }
}
