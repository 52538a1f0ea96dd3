import { Command } from 'commander';
import type { ConnectionOptions } from '../connection.js';
import { UsageError } from '../exit-codes.js';
import type { CommandContext } from '../io.js';
import { coloursFor, writeJsonLine } from '../output.js';
import { openProfile } from '../profile-session.js';

/**
 * `tessera logout --profile p`: revokes the profile's access and refresh tokens (RFC 7009) and
 * forgets them, whatever the server answered. The profile's settings stay in `config.json`, so
 * `login --device --profile p` needs no other flag next time.
 */
export function logoutCommand(context: CommandContext): Command {
  return new Command('logout')
    .description("revoke the --profile's tokens and forget them (the profile's settings are kept)")
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions>();
      if (options.profile === undefined) throw new UsageError('logout needs --profile <name>');
      const session = await openProfile(options, context);
      try {
        const results = await session.manager.revokeTokens();
        const { io } = context;
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
        if (results.length === 0) io.stdout.write(`profile ${session.name} had no tokens\n`);
        for (const result of results) {
          const what = result.tokenTypeHint === 'access_token' ? 'access token' : 'refresh token';
          io.stdout.write(
            result.revoked
              ? `${what}: ${colours.green('revoked')}\n`
              : `${what}: ${colours.red('not revoked')} (${result.error?.code ?? 'unknown'}: ${result.error?.message ?? ''}); forgotten here\n`,
          );
        }
      } finally {
        await session.close();
      }
    });
}
