import { Command } from 'commander';
import { connect, type ConnectionOptions } from '../connection.js';
import { UsageError } from '../exit-codes.js';
import type { CommandContext } from '../io.js';
import { writeJsonLine } from '../output.js';
import { PROFILE_REFRESH_SKEW_SECONDS, withProfile } from '../profile-session.js';

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface TokenOptions extends ConnectionOptions {
  scope?: string;
  resource?: string[];
}

/** What `token` prints: the access token alone, or with `--json` the DESIGN.md shape. */
function printToken(
  context: CommandContext,
  json: boolean,
  token: {
    access_token: string;
    token_type: string;
    expires_in?: number | undefined;
    scope?: string | undefined;
  },
): void {
  if (!json) {
    context.io.stdout.write(`${token.access_token}\n`);
    return;
  }
  writeJsonLine(context.io, {
    access_token: token.access_token,
    token_type: token.token_type,
    expires_in: token.expires_in,
    ...(token.scope === undefined ? {} : { scope: token.scope }),
  });
}

/**
 * `tessera token [--scope s] [--resource r]`: a client credentials grant (RFC 6749 §4.4); with
 * `--profile`, the profile's access token, refreshed first when it expires within a minute.
 * Without `--json` only the access token goes to stdout, for `$(tessera token)`.
 */
export function tokenCommand(context: CommandContext): Command {
  return new Command('token')
    .description(
      "get an access token with the client credentials grant, or the --profile's (refreshed when needed)",
    )
    .option('--scope <scope>', 'the scope to ask for, space-separated')
    .option('--resource <uri>', 'a resource indicator (RFC 8707); repeat for several', collect)
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<TokenOptions>();
      const json = options.json === true;
      if (options.profile !== undefined) {
        if (options.scope !== undefined || options.resource !== undefined) {
          throw new UsageError(
            '--scope and --resource are for client credentials: a profile has the scope of its login',
          );
        }
        await withProfile(options, context, {}, async ({ manager, stopped }) => {
          let accessToken = await manager.getValidAccessToken();
          let tokens = await manager.getTokens();
          const nowSeconds = Math.floor(Date.now() / 1000);
          // Valid but inside the skew: the manager would renew behind it, but this process exits
          // now, and a script should get a token that lasts. Joins the renewal already started.
          if (
            tokens?.expiresAt !== undefined &&
            tokens.expiresAt - nowSeconds < PROFILE_REFRESH_SKEW_SECONDS &&
            tokens.refreshToken !== undefined
          ) {
            tokens = await manager.refreshTokens();
            accessToken = tokens.accessToken;
          }
          if (stopped.aborted) return; // interrupted: the refresh is stored, nothing is printed
          printToken(context, json, {
            access_token: accessToken,
            token_type: tokens?.tokenType ?? 'Bearer',
            expires_in:
              tokens?.expiresAt === undefined ? undefined : Math.max(0, tokens.expiresAt - nowSeconds),
            scope: tokens?.scope,
          });
        });
        return;
      }
      const client = await connect(options, context);
      const response = await client.clientCredentialsGrant({
        scope: options.scope,
        resource: options.resource,
      });
      printToken(context, json, response);
    });
}
