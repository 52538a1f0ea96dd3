/**
 * What a `Client` lends to the other parts of this package, and to nothing outside it: the key is a
 * symbol that `index.ts` does not export. The resource server's verifier fetches the issuer's JWKS
 * through the client's transport (its timeouts, size limit, https rules and agents).
 */
import type { HttpTransport } from './http.js';

/** The key of a Client's internals. */
export const CLIENT_INTERNALS: unique symbol = Symbol('tessera.client-internals');

/** What {@link CLIENT_INTERNALS} gives. */
export interface ClientInternals {
  readonly transport: HttpTransport;
  /** The client's `clockToleranceSeconds`. */
  readonly toleranceSeconds: number;
}
