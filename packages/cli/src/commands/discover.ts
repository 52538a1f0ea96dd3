import { Command } from 'commander';
import type { Capability } from '@tessera/core';
import { discoverServer, type ConnectionOptions } from '../connection.js';
import type { CommandContext } from '../io.js';
import { coloursFor, writeJsonLine, writeTable } from '../output.js';

/** The capabilities `discover` reports, in this order. */
const CAPABILITIES: readonly Capability[] = [
  'introspection',
  'revocation',
  'device_authorization',
  'backchannel_authentication',
  'dpop',
  'client_credentials',
  'refresh_token',
  'token_exchange',
  'jwt_bearer',
  'mtls',
  'pushed_authorization_requests',
];

/** `tessera discover`: the server's metadata (RFC 8414) and what the SDK can use of it. */
export function discoverCommand(context: CommandContext): Command {
  return new Command('discover')
    .description("show the server's metadata and capabilities (needs only --issuer)")
    .action(async (_options: unknown, command: Command) => {
      const options = command.optsWithGlobals<ConnectionOptions>();
      const client = await discoverServer(options, context.io.env);
      const metadata = client.serverMetadata();
      const capabilities = Object.fromEntries(
        CAPABILITIES.map((capability) => [capability, client.supports(capability)]),
      );
      const { io } = context;
      if (options.json === true) {
        writeJsonLine(io, { issuer: metadata.issuer, metadata, capabilities });
        return;
      }
      writeTable(io, Object.entries(metadata));
      io.stdout.write('\ncapabilities\n');
      const colours = coloursFor(io.stdout, io.env);
      writeTable(
        io,
        Object.entries(capabilities).map(([name, supported]) => [
          `  ${name}`,
          supported ? colours.green('yes') : colours.dim('no'),
        ]),
      );
    });
}
