import { Command } from 'commander';
import type { DeviceAuthorizationResponse } from '@tessera/core';
import { profileOf, type ConnectionOptions } from '../connection.js';
import { UsageError } from '../exit-codes.js';
import { isTerminal, type CommandContext, type Io } from '../io.js';
import { coloursFor, ERASE_LINE, writeJsonLine } from '../output.js';
import { withProfile } from '../profile-session.js';

interface LoginOptions extends ConnectionOptions {
  device?: boolean;
  scope?: string;
}

/** What `login` asks for without `--scope`: an ID Token, and a refresh token to stay signed in. */
const DEFAULT_SCOPE = 'openid offline_access';

/** `m:ss`, for the countdown. */
function minutesAndSeconds(seconds: number): string {
  const whole = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, '0')}`;
}

/** The sign-in instructions, with a QR code of the verification URI when stdout is a terminal. */
async function printInstructions(io: Io, device: DeviceAuthorizationResponse): Promise<void> {
  const colours = coloursFor(io.stdout, io.env);
  const link = device.verification_uri_complete ?? device.verification_uri;
  io.stdout.write(
    `To sign in, open ${colours.underline(device.verification_uri)}\n` +
      `and enter the code ${colours.bold(colours.cyan(device.user_code))}\n`,
  );
  if (isTerminal(io.stdout)) {
    // Loaded only here: a QR code is drawn for people, never for scripts.
    const { renderUnicodeCompact } = await import('uqr');
    const scan = device.verification_uri_complete === undefined ? '' : ' (the code is filled in)';
    io.stdout.write(`\nor scan this${scan}:\n\n${renderUnicodeCompact(link, { border: 2 })}\n\n`);
  }
}

/**
 * Shows on stderr, when it is a terminal, how long the code has left, updated every second until
 * the returned function is called (which erases the line). Elsewhere it shows nothing.
 */
function startCountdown(io: Io, expiresAtMs: number): () => void {
  if (!isTerminal(io.stderr)) return () => {};
  const colours = coloursFor(io.stderr, io.env);
  const draw = (): void => {
    const left = minutesAndSeconds((expiresAtMs - Date.now()) / 1000);
    io.stderr.write(
      `${ERASE_LINE}${colours.dim(`waiting for approval: the code expires in ${left} (Ctrl-C aborts)`)}`,
    );
  };
  draw();
  const timer = setInterval(draw, 1000);
  return () => {
    clearInterval(timer);
    io.stderr.write(ERASE_LINE);
  };
}

/**
 * `tessera login --device [--scope s] --profile p`: the device authorization grant (RFC 8628): the
 * verification URI and code (and a QR code and a live countdown on a terminal) while the user
 * approves elsewhere; then the tokens go to the profile's encrypted store and the profile's
 * settings (never its secret) to `config.json`. Ctrl-C stops waiting and exits 130.
 */
export function loginCommand(context: CommandContext): Command {
  return new Command('login')
    .description('sign in as a user with the device flow; the tokens are kept under --profile')
    .option('--device', 'use the device authorization grant (RFC 8628), the only flow offered')
    .option('--scope <scope>', `the scope to ask for (default "${DEFAULT_SCOPE}")`)
    .action(async (_options: unknown, command: Command) => {
      const given = command.optsWithGlobals<LoginOptions>();
      if (given.device !== true)
        throw new UsageError('login needs --device (the device flow is the one offered)');
      if (given.profile === undefined)
        throw new UsageError('login needs --profile <name> to keep the tokens under');
      const { io } = context;
      const json = given.json === true;
      await withProfile(given, context, { allowNew: true }, async (session) => {
        const { loadProfile, saveProfile } = await import('../state.js');
        const scope = given.scope ?? (await loadProfile(io.env, session.name))?.scope ?? DEFAULT_SCOPE;
        const device = await session.client.initiateDeviceAuthorization({ scope });
        if (json) {
          writeJsonLine(io, {
            event: 'device_authorization',
            verification_uri: device.verification_uri,
            ...(device.verification_uri_complete === undefined
              ? {}
              : { verification_uri_complete: device.verification_uri_complete }),
            user_code: device.user_code,
            expires_in: device.expires_in,
          });
        } else {
          await printInstructions(io, device);
        }
        const stopCountdown = startCountdown(io, Date.now() + device.expires_in * 1000);
        let response;
        try {
          // A stop signal ends the wait (withProfile then exits 130); the tokens, once they are
          // here, are stored whatever arrives.
          response = await session.client.pollDeviceAuthorizationGrant(device, undefined, {
            signal: session.stopped,
          });
        } finally {
          stopCountdown();
        }
        const tokens = await session.manager.storeTokens(response);
        await saveProfile(io.env, session.name, profileOf(session.options, scope));
        if (json) {
          writeJsonLine(io, {
            event: 'stored',
            profile: session.name,
            expires_at: tokens.expiresAt,
            ...(tokens.scope === undefined ? {} : { scope: tokens.scope }),
          });
        } else {
          const colours = coloursFor(io.stdout, io.env);
          const until =
            tokens.expiresAt === undefined
              ? ''
              : `, access token valid until ${new Date(tokens.expiresAt * 1000).toISOString()}`;
          io.stdout.write(
            `${colours.green('signed in')}: profile ${session.name}${until}` +
              `${tokens.refreshToken === undefined ? ' (no refresh token: sign in again when it expires)' : ''}\n`,
          );
        }
      });
    });
}
