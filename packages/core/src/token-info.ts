/**
 * OA4MP's admin token listing (the `urn:oa4mp:params:oauth:grant-type:token-info` extension grant,
 * RFC 6749 §4.5): every token a user holds, by client and transaction. The wire's milliseconds
 * become epoch seconds, duplicate entries go, and the listing, which holds live credentials, shows
 * `[redacted]` for every token value in `util.inspect` and `JSON.stringify`.
 */
import { inspect } from 'node:util';
import type { z } from 'zod';
import type { tokenInfoResponseSchema } from './internal/schemas.js';
import { REDACTED } from './internal/redact.js';

/** One token of a {@link TokenInfoListing}. */
export interface TokenInfoToken {
  /** Which kind of token it is. */
  readonly kind: 'access_token' | 'refresh_token';
  /** Whether the server still counts it valid; invalid entries are kept and flagged. */
  readonly isValid: boolean;
  /** When it was issued, epoch seconds (the wire's `issued_at`, in milliseconds). */
  readonly issuedAt: number;
  /** When it expires, epoch seconds (`issued_at` + `lifetime`). */
  readonly expiresAt: number;
  /** The token's id (URI-like at OA4MP). */
  readonly jti: string;
  /** The token itself: a live credential (never logged; `[redacted]` in inspect and JSON output). */
  readonly token: string;
}

/** One authorization grant (transaction) of a client in a {@link TokenInfoListing}. */
export interface TokenInfoTransaction {
  /** The transaction's id (the authorization grant, URI-like). */
  readonly code: string;
  /** Its tokens, each once. */
  readonly tokens: readonly TokenInfoToken[];
}

/** One client's transactions in a {@link TokenInfoListing}. */
export interface TokenInfoClient {
  /** The client the tokens were issued to. */
  readonly clientId: string;
  /** Its transactions, each once. */
  readonly transactions: readonly TokenInfoTransaction[];
}

/** What `client.tokenInfo()` lists: the user and every client's transactions and tokens. */
export interface TokenInfoListing {
  /** The user's unique id at the server. */
  readonly userUid: string;
  /** The clients the user holds tokens with. */
  readonly clients: readonly TokenInfoClient[];
}

/** Options of `client.tokenInfo()`. */
export interface TokenInfoOptions {
  /** `POST` sends the parameters in a form body, `GET` in the query (OA4MP accepts both). @default 'POST' */
  method?: 'POST' | 'GET';
  /** Aborts the request. */
  signal?: AbortSignal;
}

type Wire = z.output<typeof tokenInfoResponseSchema>;
type WireToken = NonNullable<
  Wire['clients'][number]['transactions'][number]['tokens'][number]['access_token']
>;

/** The listing of a parsed answer: converted, deduplicated, frozen, redacted in output. @internal */
export function tokenInfoListing(wire: Wire): TokenInfoListing {
  const clients = new Map<string, Map<string, Map<string, TokenInfoToken>>>();
  for (const client of wire.clients) {
    let transactions = clients.get(client.client_id);
    if (transactions === undefined) clients.set(client.client_id, (transactions = new Map()));
    for (const transaction of client.transactions) {
      let tokens = transactions.get(transaction.code);
      if (tokens === undefined) transactions.set(transaction.code, (tokens = new Map()));
      for (const entry of transaction.tokens) {
        for (const kind of ['access_token', 'refresh_token'] as const) {
          const token = entry[kind];
          // The same token listed twice (OA4MP may repeat a transaction) is one entry.
          if (token !== undefined) tokens.set(`${kind} ${token.jti}`, convert(kind, token));
        }
      }
    }
  }
  const listing: TokenInfoListing = {
    userUid: wire.user_uid,
    clients: [...clients].map(([clientId, transactions]) =>
      Object.freeze({
        clientId,
        transactions: Object.freeze(
          [...transactions].map(([code, tokens]) =>
            Object.freeze({ code, tokens: Object.freeze([...tokens.values()]) }),
          ),
        ),
      }),
    ),
  };
  Object.defineProperties(listing, {
    toJSON: { value: () => redacted(listing) },
    [inspect.custom]: {
      value: (_depth: number, options: object) =>
        `TokenInfoListing ${inspect(redacted(listing), { ...options, depth: 6 })}`,
    },
  });
  return Object.freeze(listing);
}

function convert(kind: TokenInfoToken['kind'], token: WireToken): TokenInfoToken {
  return Object.freeze({
    kind,
    isValid: token.is_valid,
    issuedAt: Math.floor(token.issued_at / 1000),
    expiresAt: Math.floor((token.issued_at + token.lifetime) / 1000),
    jti: token.jti,
    token: token.token,
  });
}

/** A plain copy with every token value replaced. */
function redacted(listing: TokenInfoListing): object {
  return {
    userUid: listing.userUid,
    clients: listing.clients.map((client) => ({
      clientId: client.clientId,
      transactions: client.transactions.map((transaction) => ({
        code: transaction.code,
        tokens: transaction.tokens.map((token) => ({ ...token, token: REDACTED })),
      })),
    })),
  };
}
