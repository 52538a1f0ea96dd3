import { Command } from 'commander';
import { connect, type ConnectionOptions } from '../connection.js';
import type { CommandContext } from '../io.js';
import { writeJsonLine } from '../output.js';

/** `tessera revoke <token> [--hint h]`: RFC 7009 (an unknown token is revoked too, §2.2). */
export function revokeCommand(context: CommandContext): Command {
  return new Command('revoke')
    .description('revoke a token (RFC 7009)')
    .argument('<token>', 'the token to revoke')
    .option('--hint <type>', 'token_type_hint: access_token or refresh_token')
    .action(async (token: string, _options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions & { hint?: string }>();
      const client = await connect(options, context);
      await client.tokenRevocation(token, { token_type_hint: options.hint });
      if (options.json === true) writeJsonLine(context.io, { revoked: true });
      else context.io.stdout.write('revoked\n');
    });
}
