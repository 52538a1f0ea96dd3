/** Event helpers shared by the TokenManager tests. */
import { expect } from '@jest/globals';
import { inspect } from 'node:util';
import type { TokenManager, TokenManagerEventName } from '@tessera/core';

/** Every event of the TokenManagerEvents map; a missing or extra name fails `pnpm typecheck`. */
export const EVENT_NAMES: Record<TokenManagerEventName, true> = {
  'token.acquired': true,
  'token.stored': true,
  'token.refreshed': true,
  'refresh.failed': true,
  'token.expired': true,
  'token.revoked': true,
  'token.cleared': true,
  'token.introspected': true,
  'store.failed': true,
};

/** Calls `listener` for every event the manager emits. */
export function onEveryEvent(
  manager: TokenManager,
  listener: (name: TokenManagerEventName, payload: unknown) => void,
): void {
  for (const name of Object.keys(EVENT_NAMES) as TokenManagerEventName[]) {
    (manager.on as (event: string, fn: (payload: unknown) => void) => unknown).call(
      manager,
      name,
      (payload: unknown) => listener(name, payload),
    );
  }
}

/** No secret in the JSON or the `util.inspect` output of any value. */
export function expectNoSecrets(values: Iterable<unknown>, secrets: Iterable<string>): void {
  const hidden = [...secrets];
  for (const value of values) {
    for (const text of [JSON.stringify(value), inspect(value, { depth: 6, showHidden: true })]) {
      for (const secret of hidden) expect(text).not.toContain(secret);
    }
  }
}
