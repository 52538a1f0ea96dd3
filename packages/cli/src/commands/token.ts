import { Command } from 'commander';
import { connect, type ConnectionOptions } from '../connection.js';
import type { CommandContext } from '../io.js';
import { writeJsonLine } from '../output.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * `tessera token [--scope s] [--resource r]`: a client credentials grant (RFC 6749 §4.4). Without
 * `--json` only the access token goes to stdout, for `$(tessera token)`.
 */
export function tokenCommand(context: CommandContext): Command {
  return new Command('token')
    .description('get an access token with the client credentials grant')
    .option('--scope <scope>', 'the scope to ask for, space-separated')
    .option('--resource <uri>', 'a resource indicator (RFC 8707); repeat for several', collect)
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions & { scope?: string; resource?: string[] }>();
      const client = await connect(options, context);
      const response = await client.clientCredentialsGrant({
        scope: options.scope,
        resource: options.resource,
      });
      if (options.json === true) {
        writeJsonLine(context.io, {
          access_token: response.access_token,
          token_type: response.token_type,
          expires_in: response.expires_in,
          ...(response.scope === undefined ? {} : { scope: response.scope }),
        });
      } else {
        context.io.stdout.write(`${response.access_token}\n`);
      }
    });
}
