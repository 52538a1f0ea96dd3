import type { Client, TokenManager } from '@tessera/core';
import { connect, resolveConnection, type ConnectionOptions } from './connection.js';
import { UsageError } from './exit-codes.js';
import type { CommandContext } from './io.js';

/** A profile's token with less than this many seconds left is refreshed before it is used. */
export const PROFILE_REFRESH_SKEW_SECONDS = 60;

/** A profile's client and the `TokenManager` of its tokens, open until {@link ProfileSession.close}. */
export interface ProfileSession {
  /** The profile's name: its key in the token store. */
  readonly name: string;
  /** The flags with the profile's settings filled in. */
  readonly options: ConnectionOptions;
  readonly client: Client;
  /** Keeps the profile's tokens in the `FileTokenStore`, refreshing them when needed. */
  readonly manager: TokenManager;
  /** Closes the manager and the store (its file watcher would keep the process alive). */
  close(): Promise<void>;
}

/**
 * Opens `--profile`: discovers its server, opens the token store (asking its passphrase when
 * needed) and puts a `TokenManager` on it, keyed by the profile's name.
 *
 * @param allowNew - `login`: the profile need not be saved yet; its flags then say everything.
 * @throws UsageError without `--profile`, or for an unknown profile without `allowNew`.
 */
export async function openProfile(
  given: ConnectionOptions,
  context: CommandContext,
  { allowNew = false }: { allowNew?: boolean } = {},
): Promise<ProfileSession> {
  if (given.profile === undefined) throw new UsageError('--profile <name> is required');
  const name = given.profile;
  const options = await resolveConnection(given, context.io.env, { allowNew });
  // The server first: an unreachable one fails before the passphrase is asked for.
  const client = await connect({ ...options, profile: undefined }, context);
  const [{ openTokenStore }, { TokenManager }] = await Promise.all([
    import('./state.js'),
    import('@tessera/core'),
  ]);
  const store = await openTokenStore(context);
  const manager = new TokenManager({
    client,
    store,
    key: name,
    refreshSkewSeconds: PROFILE_REFRESH_SKEW_SECONDS,
  });
  return {
    name,
    options,
    client,
    manager,
    close: async () => {
      await manager.close();
      await store.close();
    },
  };
}
