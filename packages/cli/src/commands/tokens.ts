import { Command } from 'commander';
import { connect, type ConnectionOptions } from '../connection.js';
import type { CommandContext } from '../io.js';
import { coloursFor, withProgress, writeJsonLine } from '../output.js';

interface ListOptions extends ConnectionOptions {
  token: string;
  refresh?: boolean;
  get?: boolean;
  showTokens?: boolean;
}

/**
 * `tessera tokens list --token <t> [--get]`: OA4MP's admin listing of every token the token's user
 * holds (`client.tokenInfo`), as a table, or the listing with `--json` (token values `[redacted]`
 * unless `--show-tokens`).
 */
export function tokensCommand(context: CommandContext): Command {
  const list = new Command('list')
    .description(
      "list every token of the token's user (OA4MP token-info; the client must be an admin client)",
    )
    .requiredOption('--token <token>', 'any valid token of the user whose tokens to list')
    .option('--refresh', 'the --token is a refresh token (default: an access token)')
    .option('--get', 'send the request as GET, parameters in the query (default POST)')
    .option('--show-tokens', 'print the token values (live credentials) instead of [redacted]')
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ListOptions>();
      const client = await connect(options, context);
      const listing = await withProgress(
        context.io,
        'loading the listing…',
        client.tokenInfo(
          options.refresh === true ? { refresh_token: options.token } : { access_token: options.token },
          { method: options.get === true ? 'GET' : 'POST' },
        ),
      );
      if (options.json === true) {
        // The listing's own JSON shows [redacted] for token values; --show-tokens asks for them.
        // A structured clone is plain data: without the listing's redacting toJSON.
        writeJsonLine(context.io, options.showTokens === true ? structuredClone(listing) : listing);
        return;
      }
      const rows = listing.clients.flatMap((client) =>
        client.transactions.flatMap((transaction) =>
          transaction.tokens.map((token) => [
            client.clientId,
            transaction.code,
            token.kind,
            token.isValid ? 'valid' : 'invalid',
            new Date(token.expiresAt * 1000).toISOString(),
            ...(options.showTokens === true ? [token.token] : []),
          ]),
        ),
      );
      const header = [
        'client',
        'transaction',
        'kind',
        'valid',
        'expires',
        ...(options.showTokens === true ? ['token'] : []),
      ];
      const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
      const colours = coloursFor(context.io.stdout, context.io.env);
      const VALID = header.indexOf('valid');
      // Padded first, coloured after: escape codes have no width.
      const paint = (cell: string, i: number, isHeader: boolean): string => {
        const padded = cell.padEnd(widths[i]!);
        if (isHeader) return colours.bold(padded);
        if (i !== VALID) return padded;
        return cell === 'valid' ? colours.green(padded) : colours.red(padded);
      };
      context.io.stdout.write(`user ${listing.userUid}\n`);
      for (const [index, row] of [header, ...rows].entries()) {
        context.io.stdout.write(
          `${row
            .map((cell, i) => paint(cell, i, index === 0))
            .join('  ')
            .trimEnd()}\n`,
        );
      }
    });
  return new Command('tokens').description("a user's tokens at the server (OA4MP)").addCommand(list);
}
