/**
 * How a `TokenManager` tells a `TokenVerifier` of the same process which access tokens it revoked,
 * so a service that is both client and resource server stops accepting them at once. A symbol that
 * `index.ts` does not export: token values never travel through the public events.
 */

/** The key of a TokenManager's revocation feed: `manager[REVOKED_TOKENS](listener)` → unsubscribe. */
export const REVOKED_TOKENS: unique symbol = Symbol('tessera.revoked-tokens');

/** Called with each access token the manager revoked (or tried to, and forgot). */
export type RevokedTokenListener = (accessToken: string) => void;

/** What has a revocation feed. */
export interface RevocationFeed {
  [REVOKED_TOKENS](listener: RevokedTokenListener): () => void;
}
