/**
 * What attaching a managed token to a resource request needs of a manager, for one key: the
 * fetch and axios integrations know this interface only, never the TokenManager (as golang's
 * `oauth2.Transport` knows only a `TokenSource`).
 */
import type { DPoPHandle } from '../dpop.js';
import type { TokenSet } from '../token-set.js';

/** A manager's tokens for one key, as the HTTP integrations see them. @internal */
export interface TokenSource {
  /** A valid token set (cached, refreshed or acquired as needed). */
  current(): Promise<TokenSet>;
  /**
   * After the resource server rejected `sentAccessToken`: the stored token set if another request
   * already replaced that token, else a forced (single-flight) refresh.
   */
  renewAfterRejection(sentAccessToken: string): Promise<TokenSet | undefined>;
  readonly dpop: DPoPHandle | undefined;
}

/**
 * Where a TokenManager or a handle keeps its {@link TokenSource}: a symbol-keyed, non-enumerable
 * property, so the public API stays as it is and no module-level registry is needed. @internal
 */
export const TOKEN_SOURCE = Symbol('tessera.tokenSource');

/** The source a manager or handle holds, if it is one. */
export function tokenSourceOf(holder: unknown): TokenSource | undefined {
  if (typeof holder !== 'object' || holder === null) return undefined;
  return (holder as { [TOKEN_SOURCE]?: TokenSource })[TOKEN_SOURCE];
}

/** Gives `holder` its source (before it is frozen). */
export function holdTokenSource(holder: object, source: TokenSource): void {
  Object.defineProperty(holder, TOKEN_SOURCE, { value: source });
}
