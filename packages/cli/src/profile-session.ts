import type { Client, TokenManager } from '@tessera/core';
import { connect, resolveConnection, type ConnectionOptions } from './connection.js';
import { InterruptedError, UsageError } from './exit-codes.js';
import type { CommandContext } from './io.js';

/** A profile's token with less than this many seconds left is refreshed before it is used. */
export const PROFILE_REFRESH_SKEW_SECONDS = 60;

/** A profile's client and the `TokenManager` of its tokens, open while a command uses them. */
export interface ProfileSession {
  /** The profile's name: its key in the token store. */
  readonly name: string;
  /** The flags with the profile's settings filled in. */
  readonly options: ConnectionOptions;
  readonly client: Client;
  /** Keeps the profile's tokens in the `FileTokenStore`, refreshing them when needed. */
  readonly manager: TokenManager;
  /**
   * Aborted when Ctrl-C (or SIGTERM) arrives. The process does not die of the signal while the
   * profile is open: a refresh under way finishes and its rotated refresh token is stored (the old
   * one is already spent at the server); waiting for a user (the device flow) stops at once.
   */
  readonly stopped: AbortSignal;
}

/**
 * Opens `--profile` (discovers its server, opens the token store, asking its passphrase when
 * needed, and puts a `TokenManager` on it keyed by the profile's name), runs `use`, and closes it
 * all again. A stop signal received meanwhile ends the command with {@link InterruptedError} once
 * everything is closed.
 *
 * @param allowNew - `login`: the profile need not be saved yet; its flags then say everything.
 * @throws UsageError without `--profile`, or for an unknown profile without `allowNew`.
 * @throws InterruptedError after a stop signal.
 */
export async function withProfile(
  given: ConnectionOptions,
  context: CommandContext,
  { allowNew = false }: { allowNew?: boolean },
  use: (session: ProfileSession) => Promise<void>,
): Promise<void> {
  if (given.profile === undefined) throw new UsageError('--profile <name> is required');
  const name = given.profile;
  const stop = new AbortController();
  const unsubscribe = context.io.onStop(() => stop.abort());
  try {
    const options = await resolveConnection(given, context.io.env, { allowNew });
    // The server first: an unreachable one fails before the passphrase is asked for.
    const client = await connect({ ...options, profile: undefined }, context);
    const [{ openTokenStore }, { TokenManager }] = await Promise.all([
      import('./state.js'),
      import('@tessera/core'),
    ]);
    if (stop.signal.aborted) throw new InterruptedError();
    const store = await openTokenStore(context, stop.signal);
    const manager = new TokenManager({
      client,
      store,
      key: name,
      refreshSkewSeconds: PROFILE_REFRESH_SKEW_SECONDS,
    });
    try {
      await use({ name, options, client, manager, stopped: stop.signal });
    } finally {
      try {
        await manager.close(); // waits for a renewal in flight
      } finally {
        await store.close();
      }
    }
  } catch (error) {
    if (stop.signal.aborted) throw new InterruptedError();
    throw error;
  } finally {
    unsubscribe();
  }
  if (stop.signal.aborted) throw new InterruptedError();
}
