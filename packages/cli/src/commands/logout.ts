import { Command } from 'commander';
import type { ConnectionOptions } from '../connection.js';
import { EXIT_FAILURE, UsageError } from '../exit-codes.js';
import type { CommandContext } from '../io.js';
import { coloursFor, writeJsonLine } from '../output.js';
import { withProfile } from '../profile-session.js';

/**
 * `tessera logout --profile p`: revokes the profile's access and refresh tokens (RFC 7009) and
 * forgets them, whatever the server answered (exit code 1 when it did not revoke one). The
 * profile's settings stay in `config.json`, so
 * `login --device --profile p` needs no other flag next time.
 */
export function logoutCommand(context: CommandContext): Command {
  return new Command('logout')
    .description("revoke the --profile's tokens and forget them (the profile's settings are kept)")
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions>();
      if (options.profile === undefined) throw new UsageError('logout needs --profile <name>');
      await withProfile(options, context, {}, async ({ name, manager }) => {
        const results = await manager.revokeTokens();
        const { io } = context;
        // Forgotten here either way; a token the server did not revoke may still be live there.
        if (results.some((result) => !result.revoked)) context.exitCode = EXIT_FAILURE;
        if (options.json === true) {
          writeJsonLine(io, {
            event: 'revoked',
            results: results.map((result) => ({
              token_type_hint: result.tokenTypeHint,
              revoked: result.revoked,
              ...(result.error === undefined ? {} : { error: result.error.toJSON() }),
            })),
          });
          return;
        }
        const colours = coloursFor(io.stdout, io.env);
        if (results.length === 0) io.stdout.write(`profile ${name} had no tokens\n`);
        for (const result of results) {
          const what = result.tokenTypeHint === 'access_token' ? 'access token' : 'refresh token';
          io.stdout.write(
            result.revoked
              ? `${what}: ${colours.green('revoked')}\n`
              : `${what}: ${colours.red('not revoked')} (${result.error?.code ?? 'unknown'}: ${result.error?.message ?? ''}); forgotten here\n`,
          );
        }
      });
    });
}
