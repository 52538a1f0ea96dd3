import { Command } from 'commander';
import { connect, type ConnectionOptions } from '../connection.js';
import { EXIT_INACTIVE } from '../exit-codes.js';
import type { CommandContext } from '../io.js';
import { writeJsonLine, writeTable } from '../output.js';

/** Claims in epoch seconds, shown with their date in human output. */
const TIME_CLAIMS: ReadonlySet<string> = new Set(['exp', 'iat', 'nbf']);

/** `tessera introspect <token> [--hint h]`: RFC 7662; exits 3 when the token is not active. */
export function introspectCommand(context: CommandContext): Command {
  return new Command('introspect')
    .description('ask the server about a token (RFC 7662); exit code 3 when it is not active')
    .argument('<token>', 'the token to introspect')
    .option('--hint <type>', 'token_type_hint: access_token or refresh_token')
    .action(async (token: string, _options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions & { hint?: string }>();
      const client = await connect(options, context);
      const response = await client.tokenIntrospection(token, { token_type_hint: options.hint });
      if (options.json === true) {
        writeJsonLine(context.io, response);
      } else {
        writeTable(
          context.io,
          Object.entries(response).map(([key, value]) => [
            key,
            TIME_CLAIMS.has(key) && typeof value === 'number'
              ? `${value} (${new Date(value * 1000).toISOString()})`
              : value,
          ]),
        );
      }
      if (!response.active) context.exitCode = EXIT_INACTIVE;
    });
}
