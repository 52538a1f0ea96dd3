import { Command, InvalidArgumentError } from 'commander';
import type { ConnectionOptions } from '../connection.js';
import type { CommandContext } from '../io.js';
import { writeJsonLine, writeTable } from '../output.js';

function parsePort(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535) throw new InvalidArgumentError('a port number from 0 to 65535');
  return port;
}

/**
 * `tessera dev-server [--port N]`: the embedded oidc-provider of `@tessera/testing` on 127.0.0.1,
 * until SIGINT or SIGTERM. Prints the issuer and the registered clients (with their secrets: they
 * are the dev server's own, not the user's).
 */
export function devServerCommand(context: CommandContext): Command {
  return new Command('dev-server')
    .description('run a local development authorization server until SIGINT/SIGTERM')
    .option('--port <port>', 'TCP port on 127.0.0.1 (0 picks a free one)', parsePort, 0)
    .action(async (_options: unknown, command: Command) => {
      const { port, json } = command.optsWithGlobals<ConnectionOptions & { port: number }>();
      const { io } = context;
      // Loaded only here: oidc-provider is large, and no other command needs it.
      const { startTestServer } = await import('@tessera/testing');
      // With its development sign-in pages: `tessera login --device` is approved in a browser.
      const server = await startTestServer({ port, browserSignIn: true });
      let stop!: () => void;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      const unsubscribe = io.onStop(stop);
      try {
        const clients = Object.fromEntries(
          Object.entries(server.clients).map(([name, client]) => [
            name,
            {
              client_id: client.client_id,
              ...(client.client_secret === undefined ? {} : { client_secret: client.client_secret }),
              token_endpoint_auth_method: client.token_endpoint_auth_method,
            },
          ]),
        );
        if (json === true) {
          writeJsonLine(io, { issuer: server.issuer, clients });
        } else {
          writeTable(io, [['issuer', server.issuer]]);
          io.stdout.write('\nclients\n');
          writeTable(
            io,
            Object.entries(clients).map(([name, client]) => [
              `  ${name}`,
              `${client.client_id}  ${client.token_endpoint_auth_method}${
                client.client_secret === undefined ? '' : `  secret ${JSON.stringify(client.client_secret)}`
              }`,
            ]),
          );
          io.stdout.write(
            '\nDevice sign-in (tessera login --device): any username and password sign in.\nCtrl-C stops the server.\n',
          );
        }
        await stopped;
      } finally {
        unsubscribe();
        await server.close();
      }
    });
}
