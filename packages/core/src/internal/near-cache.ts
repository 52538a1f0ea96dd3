import type { TokenSet } from '../token-set.js';

interface Entry {
  tokens: TokenSet | null;
  /** The access token when usable by this manager, for the hot path. */
  accessToken: string | undefined;
  /** Until when (epoch ms) the token counts as fresh; -Infinity when not usable. */
  freshUntilMs: number;
}

/**
 * The TokenManager's near-cache of token sets (kept only for stores with a change feed). Freshness
 * and usability are worked out when an entry is stored, so a cached `getValidAccessToken()` is one
 * map lookup and one comparison with the clock.
 */
export class NearCache {
  readonly #entries = new Map<string, Entry>();
  readonly #usable: (tokens: TokenSet) => boolean;
  readonly #skewMs: number;

  constructor(usable: (tokens: TokenSet) => boolean, skewMs: number) {
    this.#usable = usable;
    this.#skewMs = skewMs;
  }

  /** The cached access token of `key` if it is usable and fresh at `nowMs`. */
  fresh(key: string, nowMs: number): string | undefined {
    const entry = this.#entries.get(key);
    return entry !== undefined && nowMs <= entry.freshUntilMs ? entry.accessToken : undefined;
  }

  /** `undefined`: not cached; `null`: cached as absent. */
  get(key: string): TokenSet | null | undefined {
    return this.#entries.get(key)?.tokens;
  }

  set(key: string, tokens: TokenSet | null): void {
    const usable = tokens !== null && this.#usable(tokens);
    this.#entries.set(key, {
      tokens,
      accessToken: usable ? tokens.accessToken : undefined,
      freshUntilMs: !usable
        ? Number.NEGATIVE_INFINITY
        : tokens.expiresAt === undefined
          ? Number.POSITIVE_INFINITY
          : tokens.expiresAt * 1000 - this.#skewMs,
    });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  clear(): void {
    this.#entries.clear();
  }
}
