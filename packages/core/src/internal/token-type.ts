/**
 * `token_type` as the SDK writes it, whatever case the server used (RFC 6749 §7.1 types are
 * case-insensitive): `Bearer`, `DPoP` (RFC 9449 §5) and `N_A` (RFC 8693 §2.2.1).
 */
const KNOWN = new Map([
  ['bearer', 'Bearer'],
  ['dpop', 'DPoP'],
  ['n_a', 'N_A'],
]);

/** The normalised type, or `undefined` for a type this SDK does not know (a Map: `__proto__` is no type). */
export function normalizeTokenType(tokenType: string): string | undefined {
  return KNOWN.get(tokenType.toLowerCase());
}

/** Whether a token type is DPoP's (RFC 9449 §5), in any case. */
export function isDPoPTokenType(tokenType: string): boolean {
  return tokenType.toLowerCase() === 'dpop';
}
